"""Lemma 2, Theorem 3 and friends (chapters "One-layer FNN" and "Multi-layer FNN").

Exactness is checked on the whole input box ``‖x‖_∞ ≤ c``, corners included, against the float64
yardstick :meth:`FNN.roundoff_scale`: the adapted network sums large terms (large biases, large
adapters when frozen products are ill-conditioned), so its round-off is ``eps`` times those, not
times the output.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import box_inputs, construct_or_refuse, random_pair
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lora_theory import fnn, linear
from lora_theory.adapters import LoRAFactors
from lora_theory.linalg import AssumptionError, low_rank_approx, product

FNN = fnn.FNN


def max_error(target: FNN, adapted: FNN, x: torch.Tensor) -> tuple[float, float]:
    """``max |f(x) − f̄(x)|`` and the float64 yardstick :meth:`FNN.roundoff_scale` of ``f``."""
    return float((adapted(x) - target(x)).abs().max()), adapted.roundoff_scale(x)


def pre_activations(net: FNN, x: torch.Tensor) -> list[torch.Tensor]:
    states = net.hidden_states(x)
    return [
        z @ w.T + b for z, w, b in zip(states[:-1], net.effective_weights, net.biases, strict=True)
    ]


models = st.integers(1, 3).flatmap(
    lambda lb: st.tuples(
        st.integers(0, 10_000), st.integers(3, 10), st.just(lb), st.integers(lb, 3 * lb)
    )
)


# --- partitions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("L", "L_bar", "expected"),
    [
        (4, 2, [[0, 1], [2, 3]]),
        (7, 3, [[0, 1], [2, 3], [4, 5, 6]]),
        (3, 1, [[0, 1, 2]]),
        (3, 3, [[0], [1], [2]]),
        (5, 2, [[0, 1], [2, 3, 4]]),
    ],
)
def test_uniform_partition_examples(L, L_bar, expected):
    assert fnn.uniform_partition(L, L_bar) == expected
    assert fnn.check_partition(expected, L, L_bar) == expected


@pytest.mark.parametrize(
    ("L", "L_bar", "match"),
    [
        (2, 3, "exceeds frozen depth"),
        (3, 0, "L_bar out of range: need L_bar ≥ 1"),
        (2.0, 1, "L must"),
    ],
)
def test_uniform_partition_rejects_bad_depths(L, L_bar, match):
    with pytest.raises(ValueError, match=match):
        fnn.uniform_partition(L, L_bar)


@pytest.mark.parametrize(
    ("partition", "match"),
    [
        ([[0, 1], [2, 3]], "2 blocks but the target has L_bar=3"),
        ([[0], [], [1, 2, 3]], "block 1 is empty"),
        ([[0], [2], [1, 3]], "consecutive"),
        ([[0], [1], [2]], "consecutive"),
        ([[0], [1, 1], [2, 3]], "consecutive"),
        ([[0], [1.0], [2, 3]], "entry must be an integer"),
    ],
)
def test_check_partition_names_the_problem(partition, match):
    with pytest.raises(ValueError, match=match):
        fnn.check_partition(partition, 4, 3)


# --- Theorem 3: exact on the box at the threshold ---------------------------------------------


@settings(max_examples=80, deadline=None)
@given(model=models, c=st.floats(0.1, 10.0))
def test_exact_on_the_whole_box_at_the_threshold(model, c):
    seed, width, target_depth, depth = model
    target, frozen = random_pair(seed, width, target_depth, depth)
    rank = fnn.required_rank(target, frozen)
    assert rank == fnn.corollary4_threshold(width, depth, target_depth)  # random: rank(Ē_i) = D
    adapted = fnn.construct(target, frozen, rank=rank, input_bound=c)
    assert all(a.rank() <= rank for a in adapted.adapters)
    x = box_inputs(width, c, 200, seed)
    err, scale = max_error(target, adapted, x)
    assert err <= 1e-12 * scale
    # The mechanism: on the box, every layer except each block's last one is linear.
    last = {block[-1] for block in fnn.uniform_partition(depth, target_depth)}
    for k, pre in enumerate(pre_activations(adapted, x)):
        if k not in last:
            assert float(pre.min()) > 0


@settings(max_examples=50, deadline=None)
@given(model=models, c=st.floats(0.5, 5.0))
def test_not_exact_one_rank_below_the_threshold(model, c):
    seed, width, target_depth, depth = model
    target, frozen = random_pair(seed, width, target_depth, depth)
    rank = fnn.required_rank(target, frozen)
    x = box_inputs(width, c, 200, seed)
    assume(rank > 1)
    # Narrow random targets can be constant (all final ReLUs off) on the box: then any rank works.
    assume(float(target(x).std(dim=0).max()) > 1e-6)
    adapted = fnn.construct(target, frozen, rank=rank - 1, input_bound=c)
    err, _ = max_error(target, adapted, x)
    assert err > 1e-6


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(3, 8), data=st.data())
def test_general_partition_with_per_layer_ranks(seed, width, data):
    """Only each block's rank *sum* matters; rank-0 layers keep their frozen weight."""
    target_depth = data.draw(st.integers(1, 3), label="L_bar")
    depth = data.draw(st.integers(target_depth, 3 * target_depth), label="L")
    cuts = sorted(data.draw(st.permutations(range(1, depth)), label="cuts")[: target_depth - 1])
    partition = [list(range(a, b)) for a, b in zip([0, *cuts], [*cuts, depth], strict=True)]
    ranks = data.draw(st.lists(st.integers(0, width), min_size=depth, max_size=depth), label="R_l")
    target, frozen = random_pair(seed, width, target_depth, depth)
    adapted = construct_or_refuse(
        fnn.construct, target, frozen, ranks, input_bound=1.0, partition=partition
    )
    if adapted is None:
        return
    assert all(a.inner_dim <= r for a, r in zip(adapted.adapters, ranks, strict=True))
    for wbar, e, block in zip(
        target.weights, fnn.discrepancies(target, frozen, partition), partition, strict=True
    ):
        budget = sum(ranks[k] for k in block)
        block_product = product([adapted.effective_weights[k] for k in block])
        expected = wbar - e + low_rank_approx(e, budget)  # ∏W + LR_budget(Ē_i)
        # float64 yardstick of a product: eps · ∏‖W'_l‖₂ (deep near-singular blocks get large ΔW).
        scale = math.prod(
            float(torch.linalg.matrix_norm(adapted.effective_weights[k], 2)) for k in block
        )
        assert float(torch.linalg.matrix_norm(block_product - expected, 2)) <= 1e-12 * scale
    if all(sum(ranks[k] for k in block) >= width for block in partition):
        err, scale = max_error(target, adapted, box_inputs(width, 1.0, 100, seed))
        assert err <= 1e-12 * scale


def test_theorem5_ranks_adapt_m_layers_per_block():
    assert fnn.theorem5_ranks(7, 3, 2) == [2, 2, 2, 2, 2, 2, 0]
    assert fnn.theorem5_ranks(5, 1, 3) == [3] * 5
    target, frozen = random_pair(0, 6, 2, 5)  # M = 2, last block has 3 layers
    adapted = fnn.construct(target, frozen, fnn.theorem5_ranks(5, 2, 3), input_bound=1.0)
    assert adapted.adapters[-1].inner_dim == 0
    err, scale = max_error(target, adapted, box_inputs(6, 1.0, 200, 0))
    assert err <= 1e-12 * scale  # RM = 6 = D: still exact


def test_lemma2_is_the_one_layer_case():
    target, frozen = random_pair(1, 8, 1, 3)
    assert fnn.required_rank(target, frozen) == math.ceil(8 / 3)
    adapted = fnn.construct(target, frozen, rank=3, input_bound=2.0)
    expected = linear.construct(target.weights[0], frozen.weights, 3)
    for a, b in zip(adapted.adapters, expected, strict=True):
        assert torch.allclose(a.delta(), b.delta(), atol=1e-12)
    err, scale = max_error(target, adapted, box_inputs(8, 2.0, 500, 1))
    assert err <= 1e-12 * scale


def test_guarantee_is_only_on_the_box():
    """Biases are proved large enough for ‖x‖_∞ ≤ c, not beyond: ×5 inputs switch ReLUs off."""
    target, frozen = random_pair(2, 16, 2, 4)
    adapted = fnn.construct(target, frozen, rank=8, input_bound=1.0)
    x = box_inputs(16, 1.0, 500, 2)
    err, scale = max_error(target, adapted, x)
    assert err <= 1e-12 * scale
    assert err <= 1e-9 * float(target(x).abs().max())  # well conditioned: relative to the output
    err_out, _ = max_error(target, adapted, 5 * x)
    assert err_out > 1.0


def test_identity_activation_is_exact_everywhere():
    g = torch.Generator().manual_seed(3)
    target = FNN.random(6, 2, g, activation="identity")
    frozen = FNN.random(6, 5, g, activation="identity")
    adapted = fnn.construct(target, frozen, rank=3, input_bound=1.0)
    x = 100 * box_inputs(6, 1.0, 100, 3)
    assert float((adapted(x) - target(x)).abs().max()) <= 1e-9 * float(target(x).abs().max())


def test_frozen_network_equal_to_target_needs_no_rank():
    g = torch.Generator().manual_seed(4)
    frozen = FNN.random(5, 4, g)
    target = FNN(
        [product(frozen.weights[:2]), product(frozen.weights[2:])], FNN.random(5, 2, g).biases
    )
    assert fnn.required_rank(target, frozen) == 0
    adapted = fnn.construct(target, frozen, [0, 0, 0, 0], input_bound=1.0)
    assert all(a.inner_dim == 0 for a in adapted.adapters)
    err, scale = max_error(target, adapted, box_inputs(5, 1.0, 200, 4))
    assert err <= 1e-12 * scale


# --- Assumption 1 and Lemma 3 -------------------------------------------------------------------


def test_singular_frozen_layer_is_detected():
    target, frozen = random_pair(5, 6, 2, 4)
    frozen.weights[1][:, 0] = 0.0  # W_2 singular; block 1 = W_1, W_2 must solve with it
    report = fnn.check_assumption(target, frozen, 3)
    assert not report.holds
    assert report.worst.name == "W_2"
    assert str(report).startswith("Assumption 1 FAILS; worst W_2")
    with pytest.raises(AssumptionError, match="W_2"):
        fnn.construct(target, frozen, rank=3, input_bound=1.0)


def test_singular_layer_folded_into_a_rank_zero_group_is_detected():
    target, frozen = random_pair(6, 6, 1, 3)
    frozen.weights[0][:, 0] = 0.0  # W_1 singular, rank 0: folded into W_2's group
    with pytest.raises(AssumptionError, match="W_1"):
        fnn.construct(target, frozen, [0, 3, 3], input_bound=1.0)


def test_assumption_report_lists_the_ranks_in_use():
    target, frozen = random_pair(7, 8, 2, 5)  # blocks [0,1], [2,3,4]
    report = fnn.check_assumption(target, frozen, 2)
    assert report.holds
    assert report.partition == ((0, 1), (2, 3, 4))
    assert [c.name for c in report.frozen] == [f"W_{k}" for k in range(1, 6)]
    names = [c.name for c in report.corrected]
    assert names == [
        "block 1 (W_1..W_2): ∏W + LR_2(E)",
        "block 2 (W_3..W_5): ∏W + LR_2(E)",
        "block 2 (W_3..W_5): ∏W + LR_4(E)",
    ]
    # Theorem 5's ranks stay within Assumption 1's range r ≤ R(M − 1) = 2.
    proof = fnn.check_assumption(target, frozen, fnn.theorem5_ranks(5, 2, 2))
    assert max(int(c.name.rsplit("LR_", 1)[1].split("(")[0]) for c in proof.corrected) == 2


def test_assumption1_judges_a_block_product_by_its_factors():
    """One block of six layers ``diag(1, 1, 1, 10⁻³)``: the float64 block product has
    ``cond = 10¹⁸ > 1/ε`` but is not listed, and the assumption holds; a singular partial
    correction (Lemma 1's counter-example of chapter 1) still makes it fail."""
    d = torch.tensor([1.0, 1.0, 1.0, 1e-3], dtype=torch.float64)
    frozen = FNN([torch.diag(d)] * 6)
    assert float(torch.linalg.cond(product(frozen.weights))) > 1e16
    target = FNN.random(4, 1, torch.Generator().manual_seed(0))
    report = fnn.check_assumption(target, frozen, 1)
    assert report.holds
    names = [f"block 1 (W_1..W_6): ∏W + LR_{r}(E)" for r in (1, 2, 3, 4)]
    assert [c.name for c in report.corrected] == names
    eye = torch.eye(4, dtype=torch.float64)
    toy = FNN([torch.diag(torch.tensor([0.0, 1.5, 1.25, 1.125], dtype=torch.float64))])
    failed = fnn.check_assumption(toy, FNN([eye, eye]), 1)
    assert not failed.holds and failed.worst.name == "block 1 (W_1..W_2): ∏W + LR_1(E)"
    assert [c.name for c in failed.corrected] == [failed.worst.name]


def test_lemma3_random_models_are_non_singular():
    margins = fnn.lemma3_margins(8, 4, 2, 4, n_draws=20, generator=torch.Generator().manual_seed(8))
    assert margins.sigma_min.shape == margins.condition.shape == (20,)
    assert bool((margins.sigma_min > 0).all())
    assert bool((margins.condition < 1e12).all())


# --- Corollary 4 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("D", "L", "L_bar", "R"),
    [(16, 4, 2, 8), (16, 2, 1, 8), (16, 8, 1, 2), (16, 7, 3, 8), (10, 9, 3, 4)],
)
def test_corollary4_threshold_and_parameter_counts(D, L, L_bar, R):
    assert fnn.corollary4_threshold(D, L, L_bar) == R
    counts = fnn.parameter_counts(D, L, L_bar)
    assert counts.rank == R
    assert counts.lora_weights == 2 * R * D * L and counts.lora_biases == D * L
    assert counts.target_weights == D * D * L_bar and counts.target_biases == D * L_bar
    assert counts.ratio >= 2  # at least about twice the target's weights, never "at most"
    exact_division = D % (L // L_bar) == 0 and L % L_bar == 0
    assert (counts.ratio == 2) == exact_division


# --- beyond the paper: the best partition -------------------------------------------------------


def brute_force(target: FNN, frozen: FNN) -> int:
    depth, target_depth = frozen.depth, target.depth
    best = math.inf
    for cuts in itertools.combinations(range(1, depth), target_depth - 1):
        bounds = [0, *cuts, depth]
        partition = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
        best = min(best, fnn.required_rank(target, frozen, partition))
    return int(best)


def test_optimal_partition_beats_uniform_on_the_example():
    example = fnn.example_partition_gap(torch.Generator().manual_seed(9))
    choice = fnn.optimal_partition(example.target, example.frozen)
    assert choice == fnn.PartitionChoice([[0], [1, 2, 3]], 4)
    assert choice.partition == example.partition
    assert fnn.required_rank(example.target, example.frozen) == 6  # uniform [[0, 1], [2, 3]]
    adapted = fnn.construct(
        example.target, example.frozen, choice.rank, input_bound=1.0, partition=choice.partition
    )
    err, scale = max_error(example.target, adapted, box_inputs(12, 1.0, 300, 9))
    assert err <= 1e-12 * scale


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_optimal_partition_matches_brute_force(seed, data):
    width = data.draw(st.integers(3, 8), label="D")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="block sizes")
    ranks = data.draw(
        st.lists(st.integers(0, width), min_size=len(sizes), max_size=len(sizes)),
        label="discrepancy ranks",
    )
    example = fnn.example_partition_gap(torch.Generator().manual_seed(seed), width, sizes, ranks)
    choice = fnn.optimal_partition(example.target, example.frozen)
    assert choice.rank == brute_force(example.target, example.frozen)
    assert fnn.required_rank(example.target, example.frozen, choice.partition) == choice.rank
    assert choice.rank <= fnn.required_rank(example.target, example.frozen, example.partition)


def test_example_partition_gap_is_deterministic():
    a = fnn.example_partition_gap(torch.Generator().manual_seed(10), 6, (2, 1), (1, 6))
    b = fnn.example_partition_gap(torch.Generator().manual_seed(10), 6, (2, 1), (1, 6))
    assert a.partition == b.partition == [[0, 1], [2]]
    assert all(torch.equal(x, y) for x, y in zip(a.target.weights, b.target.weights, strict=True))
    assert [
        int(torch.linalg.matrix_rank(e)) for e in fnn.discrepancies(a.target, a.frozen, a.partition)
    ] == [1, 6]


# --- bad inputs ---------------------------------------------------------------------------------


@pytest.fixture
def pair() -> tuple[FNN, FNN]:
    return random_pair(11, 5, 2, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "rank out of range"),
        ({"rank": 6}, "rank out of range"),
        ({"rank": 2.5}, "rank must be an integer"),
        ({"rank": [1, 2, 3]}, "3 per-layer ranks for 4"),
        ({"rank": [1, 2, -1, 3]}, r"rank\[2\] out of range: need 0 ≤ rank\[2\] ≤ 5"),
        ({"input_bound": 0.0}, "input_bound must be positive"),
        ({"input_bound": -1}, "input_bound must be positive"),
        ({"input_bound": math.inf}, "input_bound must be a finite number"),
        ({"input_bound": math.nan}, "input_bound must be a finite number"),
        ({"input_bound": "big"}, "input_bound must be a real number"),
        ({"partition": [[0, 1, 2, 3]]}, "1 blocks but the target has L_bar=2"),
        ({"partition": [[0, 2], [1, 3]]}, "consecutive"),
    ],
)
def test_construct_rejects_bad_arguments(pair, kwargs, match):
    target, frozen = pair
    args = {"rank": 2, "input_bound": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        fnn.construct(target, frozen, **args)


def test_construct_rejects_mismatched_models(pair):
    target, frozen = pair
    g = torch.Generator().manual_seed(12)
    with pytest.raises(ValueError, match="target depth L_bar=4 exceeds frozen depth L=2"):
        fnn.construct(frozen, target, 2, 1.0)
    with pytest.raises(ValueError, match="width mismatch: target has D=6, frozen has D=5"):
        fnn.construct(FNN.random(6, 2, g), frozen, 2, 1.0)
    with pytest.raises(ValueError, match="activation mismatch"):
        fnn.construct(FNN.random(5, 2, g, activation="identity"), frozen, 2, 1.0)
    with pytest.raises(ValueError, match="frozen must be an FNN, got list"):
        fnn.construct(target, frozen.weights, 2, 1.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        FNN(frozen.weights, activation="tanh")


def test_models_built_from_numpy_float32_are_handled_in_float64():
    g = np.random.default_rng(13)
    frozen = FNN(
        [g.standard_normal((4, 4)).astype(np.float32) for _ in range(2)], dtype=torch.float32
    )
    target = FNN([g.standard_normal((4, 4))], [g.standard_normal(4)])
    (e,) = fnn.discrepancies(target, frozen)
    assert e.dtype == torch.float64
    assert fnn.required_rank(target, frozen) == 2
    adapted = fnn.construct(target, frozen, 2, input_bound=1.0)
    assert isinstance(adapted.adapters[0], LoRAFactors)
    assert adapted.dtype == torch.float64
    err, scale = max_error(target, adapted, box_inputs(4, 1.0, 100, 13))
    assert err <= 1e-12 * scale


def test_truncated_normal_sample_stays_in_the_box():
    g = torch.Generator().manual_seed(0)
    x = fnn.truncated_normal_sample(16, 2.0, 500, g)
    assert x.shape == (500, 16) and x.dtype == torch.float64
    assert float(x.abs().max()) <= 2.0
    with pytest.raises(ValueError, match="input_bound"):
        fnn.truncated_normal_sample(16, -1.0, 5, g)


def test_flat_spectrum_target_has_equal_singular_values():
    g = torch.Generator().manual_seed(1)
    target, frozen = fnn.FNN.random(8, 2, g), fnn.FNN.random(8, 4, g)
    flat = fnn.flat_spectrum_target(target, frozen)
    for e in fnn.discrepancies(flat, frozen):
        s = torch.linalg.svdvals(e)
        assert float(s.max() - s.min()) < 1e-12 * float(s.max())
    assert fnn.required_rank(flat, frozen) == 4
    assert all(torch.equal(a, b) for a, b in zip(flat.biases, target.biases, strict=True))


def test_singular_layer_error_names_the_block():
    g = torch.Generator().manual_seed(0)
    target, frozen = fnn.FNN.random(6, 2, g), fnn.FNN.random(6, 4, g)
    frozen.weights[3][:, 0] = 0.0  # W_4, the top layer of the second block, is singular
    with pytest.raises(ValueError, match=r"block of frozen layers W_3\.\.W_4"):
        fnn.construct(target, frozen, 3, 1.0)
