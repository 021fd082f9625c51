"""Error bounds below the threshold (chapter "Below the threshold"): Lemma 2 and Theorem 5.

Every bound is evaluated with the empirical second moment of the very sample it is checked on, so
it holds deterministically for that empirical distribution: no statistical slack is needed.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import box_inputs, construct_or_refuse, random_pair
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import bounds, fnn
from lora_theory.linalg import low_rank_approx, sigma

FNN = fnn.FNN


def roundoff(adapted: FNN, x: torch.Tensor) -> float:
    """A generous bound on ``‖f_float(x) − f(x)‖₂`` per input (``√D`` times 1e-12 · yardstick)."""
    return math.sqrt(x.shape[1]) * 1e-12 * adapted.roundoff_scale(x)


# --- Lemma 2 ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(3, 10),
    depth=st.integers(1, 4),
    c=st.floats(0.2, 5.0),
    data=st.data(),
)
def test_lemma2_trace_bound_holds(seed, width, depth, c, data):
    target, frozen = random_pair(seed, width, 1, depth)
    rank = data.draw(st.integers(1, width), label="R")
    adapted = construct_or_refuse(fnn.construct, target, frozen, rank, input_bound=c)
    if adapted is None:
        return
    x = box_inputs(width, c, 200, seed)
    s = bounds.empirical_second_moment(x)
    measured = bounds.measured_error(target, adapted, x, squared=True)
    sharp = bounds.lemma2_construction_bound(target, frozen, rank, s)
    loose = bounds.lemma2_bound(target, frozen, rank, s)
    # Minkowski: √E‖f_float − f̄‖² ≤ √E‖f − f̄‖² + round-off.
    assert math.sqrt(measured) <= math.sqrt(sharp) + roundoff(adapted, x)
    assert sharp <= loose * (1 + 1e-12) + 1e-14


def test_lemma2_construction_bound_is_attained_when_all_relus_are_active():
    """A large target bias keeps every ReLU on: then E‖f − f̄‖² = ‖(E − LR_{RL}E)Σ^{1/2}‖_F²."""
    target, frozen = random_pair(1, 8, 1, 2)
    target.biases[0] = torch.full((8,), 100.0, dtype=torch.float64)
    x = box_inputs(8, 1.0, 500, 1)
    s = bounds.empirical_second_moment(x)
    for rank in (1, 2, 3):
        adapted = fnn.construct(target, frozen, rank, input_bound=1.0)
        measured = bounds.measured_error(target, adapted, x, squared=True)
        assert measured == pytest.approx(
            bounds.lemma2_construction_bound(target, frozen, rank, s), rel=1e-9
        )


def test_seed_constant_counterexample():
    """‖Σ‖_F fails: 14 = E‖f − f̄‖² > ‖Σ‖_F σ_3²(E) = 4, while tr(Σ) σ_3²(E) = 16 holds."""
    result = bounds.seed_constant_counterexample()
    assert result.measured == pytest.approx(14.0, rel=1e-10)
    assert result.construction_bound == pytest.approx(14.0, rel=1e-10)
    assert result.seed_claim == pytest.approx(4.0, rel=1e-10)
    assert result.trace_bound == pytest.approx(16.0, rel=1e-10)
    assert result.violates_seed_claim
    assert result.measured <= result.trace_bound


def test_empirical_second_moment_of_all_corners_is_the_identity():
    bits = (torch.arange(2**6)[:, None] >> torch.arange(6)) & 1
    x = (2 * bits - 1).to(torch.float64)
    assert torch.equal(bounds.empirical_second_moment(x), torch.eye(6, dtype=torch.float64))


# --- Theorem 5 ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(3, 10),
    target_depth=st.integers(1, 3),
    c=st.floats(0.2, 5.0),
    data=st.data(),
)
def test_theorem5_bound_holds_below_the_threshold(seed, width, target_depth, c, data):
    depth = data.draw(st.integers(target_depth, 3 * target_depth), label="L")
    target, frozen = random_pair(seed, width, target_depth, depth)
    threshold = fnn.required_rank(target, frozen)
    rank = data.draw(st.integers(1, max(1, threshold - 1)), label="R")
    x = box_inputs(width, c, 200, seed)
    bound = bounds.theorem5_bound(target, frozen, rank, bounds.empirical_second_moment(x))
    for ranks in (rank, fnn.theorem5_ranks(depth, target_depth, rank)):
        adapted = fnn.construct(target, frozen, ranks, input_bound=c)
        measured = bounds.measured_error(target, adapted, x)
        assert measured <= bound.value * (1 + 1e-12) + roundoff(adapted, x)


def test_theorem5_pieces_by_hand():
    target, frozen = random_pair(2, 6, 2, 5)  # M = 2, blocks [0, 1], [2, 3, 4]
    x = box_inputs(6, 1.0, 300, 2)
    s = bounds.empirical_second_moment(x)
    bound = bounds.theorem5_bound(target, frozen, 2, s)
    fro = [float(torch.linalg.matrix_norm(w)) for w in target.weights]
    bias = [float(torch.linalg.vector_norm(b)) for b in target.biases]
    b0 = math.sqrt(float(s.trace()))
    b1 = fro[0] * b0 + bias[0]
    assert bound.beta == pytest.approx(max(b0, b1))  # the states entering blocks 1 and 2
    errors = [float(sigma(e, 2 * 2 + 1)) for e in fnn.discrepancies(target, frozen)]
    assert bound.block_errors == pytest.approx(errors)
    growth = max(f + e for f, e in zip(fro, errors, strict=True))
    assert bound.growth == pytest.approx(growth)
    assert bound.value == pytest.approx(bound.beta * (growth * errors[0] + errors[1]))


def test_theorem5_beta_bounds_the_target_states():
    """β ≥ E‖z̄_i‖₂ for the states z̄_0..z̄_{L̄−1} entering the blocks (what the proof uses)."""
    target, _ = random_pair(3, 8, 3, 3)
    x = box_inputs(8, 2.0, 500, 3)
    beta = bounds.theorem5_beta(target, bounds.empirical_second_moment(x))
    states = target.hidden_states(x)[:-1]
    means = [float(torch.linalg.vector_norm(z, dim=1).mean()) for z in states]
    assert max(means) <= beta


def test_theorem5_bound_vanishes_at_the_threshold():
    target, frozen = random_pair(4, 8, 2, 4)
    s = torch.eye(8, dtype=torch.float64) / 3  # uniform on [−1, 1]^8
    assert bounds.theorem5_bound(target, frozen, 4, s).value == 0.0
    assert bounds.theorem5_bound(target, frozen, 3, s).value > 0.0


def test_lemma2_and_theorem5_agree_on_the_block_error_for_one_layer():
    target, frozen = random_pair(5, 8, 1, 2)
    s = torch.eye(8, dtype=torch.float64)
    (e,) = fnn.discrepancies(target, frozen)
    t5 = bounds.theorem5_bound(target, frozen, 2, s)
    assert t5.block_errors[0] == pytest.approx(float(sigma(e, 5)))
    assert bounds.lemma2_bound(target, frozen, 2, s) == pytest.approx(8 * t5.block_errors[0] ** 2)
    resid = e - low_rank_approx(e, 4)
    assert bounds.lemma2_construction_bound(target, frozen, 2, s) == pytest.approx(
        float((resid**2).sum())
    )


# --- bad inputs ---------------------------------------------------------------------------------


def test_bounds_reject_bad_inputs():
    target, frozen = random_pair(6, 4, 2, 4)
    s = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="one-layer target, got depth L_bar=2"):
        bounds.lemma2_bound(target, frozen, 1, s)
    with pytest.raises(ValueError, match=r"second_moment must have shape \(4, 4\)"):
        bounds.theorem5_bound(target, frozen, 1, torch.eye(3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        bounds.theorem5_bound(target, frozen, 1, -s)
    with pytest.raises(ValueError, match="rank must be an integer"):
        bounds.theorem5_bound(target, frozen, [1, 1, 1, 1], s)
    with pytest.raises(ValueError, match="rank out of range"):
        bounds.theorem5_bound(target, frozen, 5, s)
    with pytest.raises(ValueError, match="batch of shape"):
        bounds.empirical_second_moment(torch.ones(3))


@pytest.mark.parametrize(("target_depth", "depth", "rank"), [(2, 4, 3), (3, 6, 3), (2, 5, 2)])
def test_theorem5_chain_is_a_chain_of_inequalities(target_depth, depth, rank):
    """Below the threshold (D = 8, M = 2: threshold 4), each step of the proof bounds the last."""
    target, frozen = random_pair(7, 8, target_depth, depth)
    x = fnn.truncated_normal_sample(8, 2.0, 400, torch.Generator().manual_seed(1))
    chain = bounds.theorem5_chain(target, frozen, rank, x, 2.0)
    tol = 1e-9 * max(chain)
    assert all(a <= b + tol for a, b in itertools.pairwise(chain))
    assert chain.theorem5 == pytest.approx(
        bounds.theorem5_bound(target, frozen, rank, bounds.empirical_second_moment(x)).value
    )
