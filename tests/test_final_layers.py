"""Lemma 4: the certified region, its lower bound against real final-layer tunings, the hypotheses,
and the parameter counts with the corrected inequality."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from helpers import random_pair

from lora_theory import final_layers, fnn
from lora_theory.fnn import FNN

C = 6.0  # the book's input box (experiments.families.fnn.INPUT_BOUND)
INSTANCES = [(0, 2, 2), (1, 3, 2), (2, 4, 3), (3, 8, 4), (4, 16, 8)]


def target_pre(target: FNN, x: torch.Tensor) -> torch.Tensor:
    return x @ target.weights[0].T + target.biases[0]


@pytest.mark.parametrize(("seed", "width", "depth"), INSTANCES)
def test_region_certificate_holds_on_samples(seed, width, depth):
    target, frozen = random_pair(seed, width, 1, depth)
    region = final_layers.find_region(target, frozen, C)
    assert region.bound > 0 and region.active and region.length > 0
    assert float(region.hi[region.unit]) <= 0
    assert final_layers.certify_region(region, target, frozen).bound == region.bound
    x = region.sample(4000, torch.Generator().manual_seed(seed))
    assert bool(region.contains(x).all())
    assert float(x.abs().max()) <= C
    assert bool((region.x_lo <= x).all() and (x <= region.x_hi).all())
    hidden = torch.relu(x @ frozen.weights[0].T + frozen.biases[0])
    assert float(hidden[:, region.unit].abs().max()) == 0.0  # frozen unit j is off on S
    pre = target_pre(target, x)[:, list(region.active)]
    assert float(pre.min()) >= min(region.target_margin) * (1 - 1e-9) > 0
    # moving along v_j inside S changes the target (rate M_ij) but not the frozen first layer
    v = region.direction
    assert torch.allclose(frozen.weights[0] @ v, torch.eye(width, dtype=torch.float64)[region.unit])
    assert torch.allclose(target.weights[0] @ v, region.slopes)


def conditional_variance(region, target, n_lines: int, n_points: int, seed: int) -> float:
    """``E_{p_{−j}} (1/D) Σ_i Var(f̄_i | p_{−j})`` by midpoint quadrature along ``n_lines`` random
    lines of ``S`` in the direction ``v_j``: the error of the best function of ``p_{−j}``, which no
    final-layer tuning beats."""
    g = torch.Generator().manual_seed(seed)
    j = region.unit
    p = region.lo + (region.hi - region.lo) * torch.rand(n_lines, 1, region.width, generator=g)
    t = (torch.arange(n_points, dtype=torch.float64) + 0.5) / n_points
    p = p.expand(n_lines, n_points, region.width).clone()
    p[:, :, j] = region.lo[j] + (region.hi[j] - region.lo[j]) * t
    x = torch.linalg.solve(
        region.first_weight, (p - region.first_bias).reshape(-1, region.width).T
    ).T
    y = target(x).reshape(n_lines, n_points, region.width)
    return float(y.var(dim=1, correction=0).mean())


@pytest.mark.parametrize(("seed", "width", "depth"), INSTANCES)
def test_bound_is_below_the_best_function_of_the_frozen_first_layer(seed, width, depth):
    target, frozen = random_pair(seed, width, 1, depth)
    region = final_layers.find_region(target, frozen, C)
    best = conditional_variance(region, target, n_lines=64, n_points=4000, seed=seed)
    assert region.bound <= best * (1 + 1e-6)
    assert region.bound >= 0.5 * best  # and it captures most of it (A holds the varying units)


def train_final_layers(frozen: FNN, x: torch.Tensor, y: torch.Tensor, steps: int) -> FNN:
    """Adam on all weights and biases of layers 2..L (first layer frozen), full batch."""
    torch.manual_seed(0)
    params = [w.clone().requires_grad_(True) for w in frozen.weights[1:]]
    params += [b.clone().requires_grad_(True) for b in frozen.biases[1:]]
    adam = torch.optim.Adam(params, lr=1e-2)
    z1 = torch.relu(x @ frozen.weights[0].T + frozen.biases[0])
    n = len(frozen.weights) - 1
    for _ in range(steps):
        h = z1
        for w, b in zip(params[:n], params[n:], strict=True):
            h = torch.relu(h @ w.T + b)
        loss = (h - y).square().mean()
        adam.zero_grad()
        loss.backward()
        adam.step()
    detached = [p.detach() for p in params]
    return FNN(
        [frozen.weights[0], *detached[:n]], [frozen.biases[0], *detached[n:]], activation="relu"
    )


@pytest.mark.parametrize(("seed", "width", "depth"), [(0, 2, 2), (2, 4, 3)])
def test_trained_final_layers_stay_above_the_bound_while_lora_is_exact(seed, width, depth):
    target, frozen = random_pair(seed, width, 1, depth)
    region = final_layers.find_region(target, frozen, C)
    gen = torch.Generator().manual_seed(seed)
    x, x_test = region.sample(2000, gen), region.sample(2000, gen)
    tuned = train_final_layers(frozen, x, target(x), steps=300)
    mse = float((tuned(x_test) - target(x_test)).square().mean())
    assert mse >= region.bound
    # the same frozen model with LoRA at rank ⌈D/L⌉ is exact on the whole box, S included
    rank = fnn.corollary4_threshold(width, depth, 1)
    adapted = fnn.construct(target, frozen, rank=rank, input_bound=C)
    assert float((adapted(x_test) - target(x_test)).square().mean()) < 1e-20 * (1 + region.bound)


def test_no_region_when_every_frozen_unit_is_on_the_whole_box_and_tuning_is_exact():
    target, frozen = random_pair(5, 3, 1, 2)
    w1 = frozen.weights[0]
    b1 = w1.abs().sum(1) * C + 1.0  # every first-layer pre-activation > 0 on the box
    frozen = FNN(frozen.weights, [b1, frozen.biases[1]])
    with pytest.raises(final_layers.RegionNotFoundError, match="may be exact"):
        final_layers.find_region(target, frozen, C)
    # indeed: layer 2 = W̄ W_1^{-1}, b̄ − W̄ W_1^{-1} b_1 reproduces the target on the box
    m = target.weights[0] @ torch.linalg.inv(w1)
    tuned = FNN([w1, m], [b1, target.biases[0] - m @ b1])
    x = fnn.box_sample(3, C, 500, torch.Generator().manual_seed(0))
    assert torch.allclose(tuned(x), target(x), rtol=0, atol=1e-12)


def test_hypotheses_and_bad_input():
    target, frozen = random_pair(0, 3, 1, 3)
    deep_target, _ = random_pair(0, 3, 2, 3)
    with pytest.raises(ValueError, match="one-layer target"):
        final_layers.find_region(deep_target, frozen, C)
    with pytest.raises(ValueError, match="D ≥ 2"):
        final_layers.find_region(*random_pair(0, 1, 1, 2), C)
    with pytest.raises(ValueError, match="L ≥ 2"):
        final_layers.find_region(*random_pair(0, 3, 1, 1), C)
    g = torch.Generator().manual_seed(0)
    linear = [FNN.random(3, d, g, activation="identity") for d in (1, 2)]
    with pytest.raises(ValueError, match="ReLU"):
        final_layers.find_region(*linear, C)
    with pytest.raises(ValueError, match="target must be an FNN"):
        final_layers.find_region("target", frozen, C)
    with pytest.raises(ValueError, match="input_bound"):
        final_layers.find_region(target, frozen, -1.0)
    with pytest.raises(ValueError, match="n_candidates"):
        final_layers.find_region(target, frozen, C, n_candidates=1.5)
    singular = FNN([torch.zeros(3, 3), *frozen.weights[1:]], frozen.biases)
    with pytest.raises(ValueError, match="invertible first layer"):
        final_layers.find_region(target, singular, C)
    region = final_layers.find_region(target, frozen, C)
    with pytest.raises(ValueError, match="region must be a Region"):
        final_layers.certify_region("S", target, frozen)
    _, other = random_pair(1, 3, 1, 3)
    with pytest.raises(ValueError, match="different frozen first layer"):
        final_layers.certify_region(region, target, other)
    j = region.unit
    on = region.hi.clone()
    on[j] = 1.0
    with pytest.raises(ValueError, match="not off"):
        final_layers.certify_region(replace(region, hi=on), target, frozen)
    with pytest.raises(ValueError, match="leaves the box"):
        final_layers.certify_region(replace(region, input_bound=1e-3), target, frozen)
    with pytest.raises(ValueError, match="lo < hi"):
        final_layers.certify_region(replace(region, lo=region.hi), target, frozen)


@pytest.mark.parametrize(("D", "L", "lora", "flt"), [(16, 3, 576, 512), (16, 8, 512, 1792)])
def test_counts_of_the_examples(D, L, lora, flt):
    counts = final_layers.parameter_comparison(D, L)
    assert (counts.lora_weights, counts.flt_weights) == (lora, flt)
    assert counts.lora_rank == math.ceil(D / L) and counts.layers == L - 1
    assert (counts.lora_biases, counts.flt_biases) == (D * L, (L - 1) * D)
    row = counts.row()
    assert row["LoRA weights 2RDL"] == lora and row["final-layer weights kD²"] == flt


def test_corrected_inequality_on_a_grid():
    for D in range(1, 33):
        for L in range(2, 17):
            c = final_layers.parameter_comparison(D, L)
            assert c.lora_floor == 2 * D * D <= c.lora_weights < 2 * D * D + 2 * D * L
            assert (c.lora_weights == 2 * D * D) == (D % L == 0) == c.seed_claim_holds
            assert c.lora_excess >= 0
            assert (c.flt_weights >= 2 * D * D) == (L >= 3)
            for k in range(1, L):
                assert final_layers.parameter_comparison(D, L, k).flt_weights == k * D * D


def test_counts_bad_input():
    with pytest.raises(ValueError, match="L"):
        final_layers.parameter_comparison(16, 1)
    with pytest.raises(ValueError, match="k"):
        final_layers.parameter_comparison(16, 8, 8)
    with pytest.raises(ValueError, match="D"):
        final_layers.parameter_comparison(True, 8)
