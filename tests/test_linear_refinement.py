"""Gauss–Newton steps on LoRA factors: rank kept, a perturbed solution repaired, a deep float64
solution not (its error is the float64 evaluation's, not the factors')."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import conditioned, linear, verification
from lora_theory.adapters import LoRAFactors


def gaussian(seed: int, width: int, depth: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    mats = torch.randn(depth + 1, width, width, generator=g, dtype=torch.float64)
    return mats[0] / math.sqrt(width), list(mats[1:] / math.sqrt(width))


def nudge(adapters, scale: float, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    noise = [torch.randn(b.shape, generator=g, dtype=b.dtype) for b, _ in adapters]
    return [(b * (1 + scale * n), a) for (b, a), n in zip(adapters, noise, strict=True)]


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 6), depth=st.integers(1, 3))
def test_a_perturbed_exact_solution_is_repaired_with_its_ranks(seed, width, depth):
    """Orthogonal frozen layers (well conditioned): one relative perturbation of 1e-6 of the B_l
    of an exact solution is undone to round-off, and every factor keeps its shape."""
    g = torch.Generator().manual_seed(seed)
    frozen = verification.orthogonal_layers(width, depth, g)
    target = torch.randn(width, width, generator=g, dtype=torch.float64) + 3 * torch.eye(width)
    exact = linear.construct(target, frozen, math.ceil(width / depth))
    run = linear.gauss_newton(target, frozen, nudge(exact, 1e-6, seed))
    assert run.errors[0] > 1e-9
    assert min(run.errors) < 1e-12
    assert run.errors.index(min(run.errors)) > 0  # a step, not the start, is kept
    for new, old in zip(run.adapters, exact, strict=True):
        assert new.B.shape == old.B.shape and new.A.shape == old.A.shape


def test_the_best_iterate_is_returned_and_the_start_counts():
    target, frozen = gaussian(0, 6, 2)
    start = linear.construct(target, frozen, 3)
    run = linear.gauss_newton(target, frozen, start, steps=0)
    assert len(run.errors) == 1 and run.errors[0] < 1e-13
    assert all(torch.equal(n.B, o.B) for n, o in zip(run.adapters, start, strict=True))
    run = linear.gauss_newton(target, frozen, start, steps=2)
    assert len(run.errors) == 3
    best = linear.adapted_product(frozen, run.adapters) - target
    rel = float(torch.linalg.matrix_norm(best, 2) / torch.linalg.matrix_norm(target, 2))
    assert rel == pytest.approx(min(run.errors), rel=1e-12, abs=0)


def test_deep_sequential_solution_stays_at_its_round_off_floor():
    """D = 16, L = 8 (the chapter's instance): Gauss–Newton steps from the float64 sequential
    solution do not gain a factor 10; the error sits near eps · κ, and κ does not fall."""
    g = torch.Generator().manual_seed(0)
    mats = torch.randn(9, 16, 16, generator=g, dtype=torch.float64) / 4
    target, frozen = mats[0], list(mats[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linear.ConditioningWarning)
        start = linear.construct(target, frozen, 2, rtol=1e300)
    run = linear.gauss_newton(target, frozen, start, steps=2)
    assert run.errors[0] > 1e-7
    assert min(run.errors[1:]) > run.errors[0] / 10
    eps = torch.finfo(torch.float64).eps
    kappa = conditioned.roundoff_amplification(target, frozen, start)
    assert 1e-3 * eps * kappa < run.errors[0] < eps * kappa
    kappa_after = conditioned.roundoff_amplification(target, frozen, run.adapters)
    assert kappa_after > kappa / 10


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rank=st.integers(0, 4), zero=st.booleans())
def test_the_balanced_gauge_keeps_the_update(seed, rank, zero):
    """B G and G⁻¹ A: the same ΔW, equal column/row norms; zero columns stay as they are."""
    g = torch.Generator().manual_seed(seed)
    powers = torch.randint(-6, 6, (rank,), generator=g).double()
    b = torch.randn(5, rank, generator=g, dtype=torch.float64) * 10.0**powers
    a = torch.randn(rank, 5, generator=g, dtype=torch.float64)
    if zero and rank:
        b[:, 0] = 0
    f = LoRAFactors(b, a)
    out = f.balanced()
    # entrywise round-off of a sum of r products, relative to the sum of their magnitudes
    scale = b.abs() @ a.abs()
    assert ((out.delta() - f.delta()).abs() <= 1e-14 * scale).all()
    live = (b.norm(dim=0) > 0) & (a.norm(dim=1) > 0)
    torch.testing.assert_close(out.B.norm(dim=0)[live], out.A.norm(dim=1)[live], rtol=1e-14, atol=0)
    assert torch.equal(out.B[:, ~live], b[:, ~live]) and torch.isfinite(out.A).all()


def test_relative_error_is_the_spectral_gap_over_the_target():
    target, frozen = gaussian(3, 5, 2)
    zero = [LoRAFactors.zeros(5)] * 2
    gap = torch.linalg.matrix_norm(linear.error_matrix(target, frozen), 2)
    expected = float(gap / torch.linalg.matrix_norm(target, 2))
    assert linear.relative_error(target, frozen, zero) == pytest.approx(expected, rel=1e-14)
    assert linear.relative_error(target, frozen, linear.construct(target, frozen, 3)) < 1e-13
    with pytest.raises(ValueError, match=r"target must be \(5, 5\)"):
        linear.relative_error(torch.eye(4), frozen, zero)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"adapters": [(torch.zeros(4, 1), torch.zeros(1, 4))]}, "2 frozen layers but 1"),
        ({"adapters": [(torch.zeros(3, 1), torch.zeros(1, 4))] * 2}, r"B: \(4, r\)"),
        ({"adapters": [(torch.zeros(4, 1), torch.zeros(2, 4))] * 2}, "inner dimensions"),
        ({"adapters": [(torch.full((4, 1), math.nan), torch.zeros(1, 4))] * 2}, "finite|NaN"),
        ({"steps": -1}, "steps"),
        ({"iterations": 0}, "iterations"),
        ({"target": torch.zeros(4, 4)}, "non-zero"),
    ],
)
def test_bad_input_is_refused_clearly(change, match):
    target, frozen = gaussian(0, 4, 2)
    args = {"target": target, "frozen": frozen, "adapters": linear.construct(target, frozen, 2)}
    with pytest.raises(ValueError, match=match):
        linear.gauss_newton(**{**args, **change})
