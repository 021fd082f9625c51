"""The sweeps behind Chapters 1-2, the local optimisers, the paper's bias rules and the figure
annotations, on small closed-form or planted cases."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from lora_theory import bounds, experiments, fnn, instances, linalg, optimality, sweeps

EPS = torch.finfo(torch.float64).eps


def test_box_corners_are_all_corners_with_identity_second_moment():
    x = instances.box_corners(4, 2.0)
    assert x.shape == (16, 4) and len({tuple(r.tolist()) for r in x}) == 16
    assert torch.allclose(bounds.empirical_second_moment(x), 4 * torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="width"):
        instances.box_corners(21)


def test_lemma1_gaps_are_round_off_and_the_threshold_is_exact():
    rows = sweeps.lemma1_gaps(2, ranks=[1, 4, 8], seeds=[0, 1], width=8)
    assert [(r.rank, r.seed) for r in rows] == [(1, 0), (1, 1), (4, 0), (4, 1), (8, 0), (8, 1)]
    assert all(r.gap <= 100 * EPS * r.kappa for r in rows)


def test_conditioning_grows_with_depth():
    runs = sweeps.conditioning_by_depth([1, 4], seeds=[0], width=8)
    assert runs[0].rank == 8 and runs[1].rank == 2 and runs[0].kappa < runs[1].kappa


def test_exact_on_box_and_outside_box():
    check = sweeps.exact_on_box(6, 2, seed=0)
    assert check.threshold == 3 and check.worst <= 6
    g = torch.Generator().manual_seed(0)
    target, frozen = fnn.FNN.random(6, 1, g), fnn.FNN.random(6, 2, g)
    adapted = fnn.construct(target, frozen, 3, 1.0)
    rows = sweeps.outside_box(adapted, target, fnn.box_sample(6, 1.0, 200, g), [1, 10])
    assert rows[0].mse < 1e-20 and rows[0].units_off == 0 and rows[1].inputs_off > 0


def test_lemma2_table_orders_the_bounds():
    g = torch.Generator().manual_seed(1)
    target, frozen = fnn.FNN.random(6, 1, g), fnn.FNN.random(6, 2, g)
    x = fnn.box_sample(6, 1.0, 200, g)
    rows = sweeps.lemma2_table(target, frozen, x, ranks=[1, 2, 3])
    assert all(r.measured <= r.sharp <= r.trace for r in rows[:2])
    assert rows[0].frobenius_sigma2 > rows[1].frobenius_sigma2 > 0
    assert rows[-1].measured < 1e-20 and rows[-1].trace < 1e-20  # rank 3 = ⌈6/2⌉: exact


def test_bias_rules_agree_on_the_box_and_the_sample_rule_fails_off_sample():
    g = torch.Generator().manual_seed(2)
    target, frozen = fnn.FNN.random(6, 1, g), fnn.FNN.random(6, 3, g)
    ours = fnn.construct(target, frozen, 2, 1.0)
    x = fnn.box_sample(6, 1.0, 200, g)
    paper = fnn.constant_biases(ours, target, 1.0)
    assert all(torch.allclose(b, b[0].expand_as(b)) for b in paper.biases[:-1])  # c_l 1
    assert (paper(x) - target(x)).abs().max() <= 6 * EPS * paper.roundoff_scale(x)
    sampled = fnn.sample_calibrated_biases(ours, target, 0.01 * x)
    assert (sampled(0.01 * x) - target(0.01 * x)).abs().max() < 1e-10
    assert (sampled(x) - target(x)).abs().max() > 1e-3  # the sample saw only a small ball
    with pytest.raises(ValueError, match="one layer"):
        fnn.constant_biases(ours, frozen, 1.0)


def test_bias_rules_by_depth_reports_a_refusal_as_data():
    runs = sweeps.bias_rules_by_depth([2], width=8)
    assert runs[0].refused is None and runs[0].errors[0] <= 16 * EPS * runs[0].scales[0]


def test_perturbation_rivals_never_beat_the_truncated_svd():
    a = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rivals = optimality.perturbation_rivals(a, 2, [1e-3, 1e-1], 50, torch.Generator())
    assert rivals.best == pytest.approx(float(linalg.sigma(a, 3)), rel=1e-12)
    assert min(rivals.excess.values()) > 0


def test_local_fit_reaches_the_frobenius_tail():
    a = torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tail = float(linalg.singular_values(a)[2:].square().sum())
    assert min(optimality.local_low_rank_fit(a, 2, [0, 1, 2])) == pytest.approx(tail, rel=1e-8)


def test_unit_off_network_computes_the_projected_product():
    g = torch.Generator().manual_seed(0)
    frozen, target = fnn.FNN.random(4, 2, g), fnn.FNN.random(4, 1, g)
    fit = optimality.unit_off_fit(frozen, target, unit=1, steps=1)
    net = optimality.unit_off_network(frozen, target, fit)
    x = instances.box_corners(4)
    assert (net.hidden_states(x)[1][:, 1] == 0).all()
    v1, v2 = net.effective_weights
    p = torch.eye(4, dtype=torch.float64)
    p[1, 1] = 0
    loss = float((v2 @ p @ v1 - target.weights[0]).square().sum())
    assert loss == pytest.approx(fit.loss, rel=1e-9)
    with pytest.raises(ValueError, match="two-layer frozen network"):
        optimality.unit_off_fit(target, frozen, 0)


def test_seed_counterexample_carries_its_instance_and_the_valid_frobenius_form():
    ce = bounds.seed_constant_counterexample()
    assert ce.frozen.depth == 2 and ce.target.depth == 1
    assert ce.construction_bound <= ce.frobenius_bound <= ce.trace_bound
    assert ce.frobenius_bound == pytest.approx(4 * 14**0.5, rel=1e-12)


def test_budget_describe_without_training_and_the_floor_band():
    budget = experiments.budget("quick")
    text = budget.describe("quick")
    assert text.startswith(f"quick mode: {len(budget.seeds)} seeds, {budget.steps} Adam steps")
    untrained = budget.describe("full", trained=False)
    assert "float64" in untrained and "Adam" not in untrained
    with pytest.raises(ValueError, match="trained"):
        budget.describe("quick", trained=1)
    rows = [experiments.Row("p", "construction", r, 0, 10.0 ** (-10 * r), r) for r in (1, 3)]
    figure = experiments.plot_mse_vs_rank(rows, threshold=2, floor=1e-20)
    ys = [list(line.get_ydata()) for line in figure.axes[0].get_lines()]
    assert [1e-10, 1e-20] in ys  # 1e-30 drawn at the floor
    assert [0, 1] in ys  # the threshold line is left alone
