"""Bad input at the door: ``bounds`` (Lemma 2 and Theorem 5). Bad shapes, inputs outside the box a
construction is built for, NaN and infinity, complex and half-precision values, ranks out of range,
a target deeper than the frozen model. One parametrized test per function; see
``test_bad_input.py``."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch

from lora_theory import bounds, fnn

NAN, INF = math.nan, math.inf
D = 4


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


T1, F2 = fnn.FNN.random(D, 1, gen(1)), fnn.FNN.random(D, 2, gen(2))
T2, F4 = fnn.FNN.random(D, 2, gen(3)), fnn.FNN.random(D, 4, gen(4))
EYE = torch.eye(D, dtype=torch.float64)
X = 2 * torch.rand(16, D, generator=gen(5), dtype=torch.float64) - 1  # in the box ‖x‖_∞ ≤ 1


def case(call, match, exc=ValueError, id=None):
    """One bad-input case: ``call()`` must raise ``exc`` with ``match`` in its message."""
    return pytest.param(call, exc, match, id=id or re.sub(r"[^\w]+", "-", match).strip("-")[:40])


def check(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def with_nan(t: torch.Tensor) -> torch.Tensor:
    out = t.clone()
    out.view(-1)[0] = NAN
    return out


SECOND_MOMENT = [
    case(lambda: bounds.empirical_second_moment(X[0]), r"batch of shape \(n, D\), got \(4,\)"),
    case(lambda: bounds.empirical_second_moment(X[:0]), r"non-empty batch .* got \(0, 4\)"),
    case(lambda: bounds.empirical_second_moment(with_nan(X)), "x contains non-finite entries"),
    case(lambda: bounds.empirical_second_moment(X.to(torch.complex128)), "x must be real"),
    case(lambda: bounds.empirical_second_moment("x"), "x must be a numeric tensor or array"),
    case(lambda: bounds.empirical_second_moment(None), "got NoneType", id="moment-None"),
]
LEMMA2 = [
    case(lambda: bounds.lemma2_bound(T2, F4, 1, EYE), "Lemma 2 needs a one-layer target, got dep"),
    case(lambda: bounds.lemma2_bound(T1, F2, 1, EYE[:3, :3]), r"second_moment must have sha"),
    case(lambda: bounds.lemma2_bound(T1, F2, 1, -EYE), "positive semi-definite"),
    case(
        lambda: bounds.lemma2_bound(T1, F2, 1, EYE + torch.triu(torch.ones(D, D), 1)),
        r"second_moment must be symmetric positive semi-definite \(E\[x xᵀ\]\)",
        id="not-symmetric",
    ),
    case(lambda: bounds.lemma2_bound(T1, F2, 1, with_nan(EYE)), "second_moment contains non-fin"),
    case(lambda: bounds.lemma2_bound(T1, F2, 1, EYE * INF), "second_moment contains non-finite"),
    case(lambda: bounds.lemma2_bound(T1, F2, 1, EYE.to(torch.complex128)), "must be real"),
    case(lambda: bounds.lemma2_bound(T1, F2, 0, EYE), r"rank out of range: need 1 ≤ rank ≤ 4"),
    case(lambda: bounds.lemma2_bound(T1, F2, D + 1, EYE), r"rank ≤ 4, got 5"),
    case(lambda: bounds.lemma2_bound(T1, F2, 1.0, EYE), "rank must be an integer, got 1.0"),
    case(lambda: bounds.lemma2_bound(T1, F2, True, EYE), "rank must be an integer, got True"),
    case(lambda: bounds.lemma2_bound(T1, F2, [1, 1, 1], EYE), "got 3 per-layer ranks for 2"),
    case(lambda: bounds.lemma2_bound(T1, F2, [1, -1], EYE), r"rank\[1\] out of range"),
    case(lambda: bounds.lemma2_bound(None, F2, 1, EYE), "target must be an fnn.FNN, got None"),
    case(lambda: bounds.lemma2_bound(T1, "F", 1, EYE), "frozen must be an FNN, got str"),
    case(
        lambda: bounds.lemma2_bound(T1, fnn.FNN.random(D + 1, 2, gen()), 1, EYE),
        "width mismatch: target has D=4, frozen has D=5",
    ),
    case(lambda: bounds.lemma2_construction_bound(T1, F2, 1, EYE[None]), "must have shape"),
    case(lambda: bounds.lemma2_construction_bound(T2, F4, 1, EYE), "one-layer target"),
    case(lambda: bounds.lemma2_construction_bound(T1, F2, 9, EYE), r"rank out of range"),
    case(lambda: bounds.lemma2_construction_bound(T1, F2, 1, "I"), "numeric tensor or array"),
]
THEOREM5 = [
    case(lambda: bounds.theorem5_beta(T2, -EYE), "second_moment must be symmetric positive semi"),
    case(lambda: bounds.theorem5_beta(T2, with_nan(EYE)), "second_moment contains non-finite"),
    case(lambda: bounds.theorem5_beta(T2, torch.ones(D)), r"second_moment must have shape \(4,"),
    case(lambda: bounds.theorem5_beta(F4, None), "second_moment must be a numeric tensor"),
    case(lambda: bounds.theorem5_beta("T", EYE), "target must be an fnn.FNN, got str"),
    case(lambda: bounds.theorem5_bound(T2, F4, 0, EYE), r"rank out of range: need 1 ≤ rank ≤ 4"),
    case(lambda: bounds.theorem5_bound(T2, F4, 5, EYE), r"need 1 ≤ rank ≤ 4, got 5"),
    case(lambda: bounds.theorem5_bound(T2, F4, [1, 1, 1, 1], EYE), r"rank must be an integer"),
    case(lambda: bounds.theorem5_bound(T2, F4, NAN, EYE), "rank must be an integer, got nan"),
    case(lambda: bounds.theorem5_bound(F4, T2, 1, EYE), "target depth L_bar=4 exceeds frozen"),
    case(lambda: bounds.theorem5_bound(T2, F4, 1, 2 * EYE - 3), "positive semi-definite"),
    case(lambda: bounds.theorem5_bound(T2, F4, 1, EYE[:2]), r"must have shape \(4, 4\)"),
    case(lambda: bounds.theorem5_bound(T2, T1, 1, EYE), "exceeds frozen depth"),
]
MEASURED = [
    case(lambda: bounds.measured_error(T1, F2, X[:, :3]), r"x must have shape \(n, 4\)"),
    case(lambda: bounds.measured_error(T1, F2, with_nan(X)), "x contains non-finite entries"),
    case(lambda: bounds.measured_error(T1, F2, X.to(torch.complex64)), "x must be real"),
    case(lambda: bounds.measured_error(T1, X, X), "adapted must be an fnn.FNN, got Tensor"),
    case(lambda: bounds.measured_error(None, F2, X), "target must be an fnn.FNN, got NoneType"),
    case(lambda: bounds.measured_error(T1, F2, X, squared="yes"), "squared must be a bool, got"),
    case(
        lambda: bounds.measured_error(T1, fnn.FNN.random(D + 1, 1, gen()), X),
        "target and adapted must have one width, got 4 and 5",
    ),
]
CHAIN = [
    case(lambda: bounds.theorem5_chain(T2, F4, 1, 3 * X, 1.0), r"x must lie in the box ‖x‖_∞ ≤"),
    case(
        lambda: bounds.theorem5_chain(T2, F4, 1, X, 1e-3),
        r"input_bound = 0.001 the construction is built for; it reaches 9\.",
        id="box-too-small",
    ),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, with_nan(X), 1.0), "x contains non-finite"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X[0], 1.0), r"x must be a batch \(n, 4\)"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X[:0], 1.0), r"got shape \(0, 4\)"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X[:, :2], 1.0), r"got shape \(16, 2\)"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X, NAN), "input_bound must be a finite number"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X, -1.0), "input_bound must be positive"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X, "1"), "input_bound must be a real number"),
    case(lambda: bounds.theorem5_chain(T2, F4, 0, X, 1.0), r"rank out of range: need rank ≥ 1"),
    case(lambda: bounds.theorem5_chain(T2, F4, 5, X, 1.0), r"rank\[0\] out of range: need 0 ≤"),
    case(lambda: bounds.theorem5_chain(T2, F4, 2.5, X, 1.0), "rank must be an integer, got 2.5"),
    case(lambda: bounds.theorem5_chain(T2, "F", 1, X, 1.0), "frozen must be an FNN, got str"),
    case(lambda: bounds.theorem5_chain(F4, T2, 1, X, 1.0), "exceeds frozen depth"),
    case(lambda: bounds.theorem5_chain(T2, F4, 1, X.to(torch.complex128), 1.0), "x must be real"),
]
COUNTEREXAMPLE = [
    case(lambda: bounds.seed_constant_counterexample(5), "generator must be a torch.Generator"),
    case(lambda: bounds.seed_constant_counterexample("g"), "generator must be a torch.Generator"),
]


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    SECOND_MOMENT + LEMMA2 + THEOREM5 + MEASURED + CHAIN + COUNTEREXAMPLE,
)
def test_bounds_reject(call, exc, match):
    check(call, exc, match)


def test_half_precision_inputs_are_computed_in_float64():
    """float16/bfloat16 second moments and samples are converted, not refused or cut."""
    half = bounds.lemma2_bound(T1, F2, 1, EYE.to(torch.float16))
    assert half == pytest.approx(bounds.lemma2_bound(T1, F2, 1, EYE), rel=1e-12)
    moment = bounds.empirical_second_moment(X.to(torch.bfloat16))
    assert moment.dtype == torch.float64
    chain = bounds.theorem5_chain(T2, F4, 1, X.to(torch.float16), 1.0)
    assert all(a <= b * (1 + 1e-9) for a, b in itertools.pairwise(chain))
