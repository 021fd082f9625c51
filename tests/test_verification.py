"""The FNN chapters' verification helpers: exactness, seed and depth sweeps, Theorem 5 sweeps."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import box_inputs, random_pair

from lora_theory import bounds, fnn, verification

FNN = fnn.FNN


def test_exactness_of_the_construction_and_of_a_perturbed_copy():
    target, frozen = random_pair(0, 8, 1, 2)
    x = box_inputs(8, 1.0, 50, 1)
    adapted = fnn.construct(target, frozen, 4, input_bound=1.0)
    ok = verification.exactness(adapted, target, x)
    assert ok.exact and ok.tolerance > 0
    shifted = FNN(target.weights, [b + 1e-3 for b in target.biases])
    off = verification.exactness(adapted, shifted, x)
    assert not off.exact and off.error == pytest.approx(1e-3, rel=1e-6)


def test_allocation_check_and_clear_cut_verdicts():
    target, frozen = random_pair(2, 8, 2, 4)
    x = box_inputs(8, 1.0, 50, 3)
    even = verification.allocation_check(target, frozen, [4, 4, 6, 2], x, 1.0)
    short = verification.allocation_check(target, frozen, [4, 3, 6, 2], x, 1.0)
    moved = verification.allocation_check(
        target, frozen, [4, 3, 6, 2], x, 1.0, partition=[[0, 1, 2], [3]]
    )
    assert even.matches(True) and short.matches(False) and not short.matches(True)
    assert not moved.exact  # block sums 13 and 2 < 8
    assert not verification.Exactness(1e-6, 1e-9).matches(False)  # not clear-cut


def test_exactness_refuses_a_non_network():
    target, _ = random_pair(0, 4, 1, 1)
    with pytest.raises(ValueError, match="networks"):
        verification.exactness("net", target, box_inputs(4, 1.0, 3, 0))


@pytest.mark.parametrize(("depth", "target_depth"), [(2, 1), (5, 2)])
def test_theorem3_check_exact_at_threshold_not_below(depth, target_depth):
    check = verification.theorem3_check(depth, target_depth, seed=3, width=8, n=50)
    assert check.rank == fnn.corollary4_threshold(8, depth, target_depth)
    assert check.at.exact and check.below.error > 1e3 * check.at.tolerance


def test_theorem3_check_needs_a_rank_to_go_below():
    with pytest.raises(ValueError, match="threshold rank is 1"):
        verification.theorem3_check(8, 1, seed=0, width=4)


def test_deep_block_shallow_is_exact_and_orthogonal_layers_are_orthogonal():
    g = torch.Generator().manual_seed(0)
    qs = verification.orthogonal_layers(8, 4, g)
    eye = torch.eye(8, dtype=torch.float64)
    assert all(torch.allclose(q.T @ q, eye, atol=1e-12) for q in qs)
    shallow = verification.deep_block(FNN.random(8, 2, g).weights, g)
    assert not shallow.refused and shallow.error < 1e-10 and shallow.condition >= 1
    deep = verification.deep_block(qs, g)
    assert not deep.refused and deep.error < 1e-10


def test_deep_block_reports_a_refusal_instead_of_raising():
    g = torch.Generator().manual_seed(0)
    deep = verification.deep_block(FNN.random(16, 8, g).weights, g, method="sequential")
    assert deep.refused and deep.error > 0


def test_deep_block_default_is_exact_where_the_sequential_construction_refuses():
    g = torch.Generator().manual_seed(0)
    deep = verification.deep_block(FNN.random(16, 8, g).weights, g)
    assert not deep.refused and deep.error < 1e-9


def test_orthogonal_layers_bad_input():
    with pytest.raises(ValueError, match="depth"):
        verification.orthogonal_layers(4, 0, torch.Generator())


def test_state_bounds_closed_form():
    w = 2 * torch.eye(3, dtype=torch.float64)
    b = torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)
    target = FNN([w, w], [b, b])
    out = verification.state_bounds(target, torch.eye(3, dtype=torch.float64))
    f = 2 * math.sqrt(3)  # ‖2 I_3‖_F
    b1 = f * math.sqrt(3) + 5
    assert out == pytest.approx([math.sqrt(3), b1, f * b1 + 5])
    assert max(out[:-1]) == pytest.approx(bounds.theorem5_beta(target, torch.eye(3)))


def test_rank_sweep_bound_holds_and_vanishes_at_threshold():
    target, frozen = random_pair(1, 8, 2, 4)
    x = fnn.truncated_normal_sample(8, 3.0, 300, torch.Generator().manual_seed(2))
    rows = verification.rank_sweep(target, frozen, x, input_bound=3.0)
    assert [r.rank for r in rows] == list(range(1, 5))
    assert all(r.measured <= r.bound + r.tolerance for r in rows)
    assert rows[-1].bound == 0 and rows[-1].measured <= rows[-1].tolerance


def test_deficit_in_block_last_block_is_not_amplified():
    target, frozen = random_pair(4, 8, 2, 4)
    x = fnn.truncated_normal_sample(8, 3.0, 200, torch.Generator().manual_seed(5))
    after, final = verification.deficit_in_block(target, frozen, x, 1, 1, input_bound=3.0)
    assert after == pytest.approx(final) and final > 0
    with pytest.raises(ValueError, match="block"):
        verification.deficit_in_block(target, frozen, x, 2, 1, input_bound=3.0)


def test_spectral_bound_between_measured_and_theorem5():
    target, frozen = random_pair(6, 8, 2, 4)
    x = fnn.truncated_normal_sample(8, 3.0, 300, torch.Generator().manual_seed(7))
    for rank in (1, 3):
        adapted = fnn.construct(
            target, frozen, rank=fnn.theorem5_ranks(4, 2, rank), input_bound=3.0
        )
        sharp = verification.spectral_bound(target, frozen, rank, x)
        thm5 = bounds.theorem5_bound(target, frozen, rank, bounds.empirical_second_moment(x))
        assert bounds.measured_error(target, adapted, x) <= sharp <= thm5.value
