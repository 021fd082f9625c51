"""Theorem 7 (chapter "Transformers"): the paper's TFN, the gaps G_i, Assumption 4, the exact
construction, and the tfn family in the batched engine.

Every public name of ``lora_theory.transformer`` cites the label ``ch-transformer``, which the
book's Transformer chapter defines (``tests/test_book_links.py`` checks that it exists)."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch
from helpers import construct_or_refuse
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import transformer
from lora_theory.experiments import EXPERIMENTS, Budget, Row, family, plot_mse_vs_rank, run
from lora_theory.experiments.families.tfn import TFNStack, TFNTrainable
from lora_theory.linalg import AssumptionError
from lora_theory.plotting import method_style
from lora_theory.training import FitSettings, Run, fit
from lora_theory.transformer import TFN


def pair(width: int, heads: int, depth: int, seed: int) -> tuple[TFN, TFN]:
    g = torch.Generator().manual_seed(seed)
    return TFN.random(width, heads, depth, g), TFN.random(width, heads, depth, g)


def inputs(n: int, width: int, tokens: int, scale: float = 1.0, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, width, tokens, generator=g, dtype=torch.float64)


def reference(net: TFN, x: torch.Tensor) -> torch.Tensor:
    """The paper's definition, one sequence and one head at a time."""
    p = net.effective()
    out = []
    for z in x:
        for blk in range(net.depth):
            h = 0
            for hd in range(net.heads):
                scores = (p["w_k"][blk, hd] @ z).T @ (p["w_q"][blk, hd] @ z)
                h = h + p["w_o"][blk, hd] @ p["w_v"][blk, hd] @ z @ torch.softmax(scores, dim=0)
            hidden = torch.relu(p["w_1"][blk] @ h + p["b_1"][blk][:, None])
            z = p["w_2"][blk] @ hidden + p["b_2"][blk][:, None]
        out.append(p["w_out"] @ z)
    return torch.stack(out)


def test_tfn_is_the_papers_definition():
    target, frozen = pair(5, 3, 2, 0)
    x = inputs(4, 5, 6)
    y = target(x)
    assert y.shape == (4, 5, 6) and y.dtype == torch.float64
    torch.testing.assert_close(y, reference(target, x), rtol=1e-12, atol=1e-12)
    adapted = transformer.construct(target, frozen, rank=2)
    # the adapted weights reach 1e3 (w_q): two evaluation orders differ by ~3e-12 absolute
    torch.testing.assert_close(adapted(x), reference(adapted, x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(adapted.merged()(x), adapted(x), rtol=1e-12, atol=1e-12)


def test_random_tfn_uses_the_paper_codes_initialisation():
    net = TFN.random(16, 2, 3, torch.Generator().manual_seed(0))
    assert (net.depth, net.heads, net.width) == (3, 2, 16)
    attn = torch.stack([net.w_q, net.w_k, net.w_v, net.w_o])
    assert abs(float(attn.std()) - 1.0) < 0.05  # N(0, 1), unscaled
    for t in (net.w_1, net.b_1, net.w_2, net.b_2, net.w_out):
        assert float(t.abs().max()) <= 0.25  # nn.Linear: U(−1/√D, 1/√D)


@settings(max_examples=20)
@given(
    width=st.integers(2, 8),
    heads=st.integers(1, 3),
    depth=st.integers(1, 3),
    tokens=st.integers(1, 6),
    scale=st.sampled_from([1e-2, 1.0, 30.0, 1e3]),
    seed=st.integers(0, 10_000),
)
def test_construction_is_exact_for_every_input(width, heads, depth, tokens, scale, seed):
    target, frozen = pair(width, heads, depth, seed)
    rank = transformer.required_rank(target, frozen)
    assert rank == math.ceil(width / 2)
    adapted = construct_or_refuse(transformer.construct, target, frozen, rank=rank)
    if adapted is None:  # refused: it raises rather than return an inexact model
        return
    x = inputs(5, width, tokens, scale, seed)
    assert transformer.relative_error(adapted, target, x) < 1e-9
    for f in adapted.adapters.named():
        assert f[1].rank() <= rank


@pytest.mark.parametrize("depth", [1, 2])
def test_paper_setting_at_the_threshold(depth):
    target, frozen = pair(16, 2, depth, 0)
    assert transformer.gaps(target, frozen) == [16] * (depth + 1)
    adapted = transformer.construct(target, frozen, rank=8)
    for scale in (1.0, 1e3):
        assert transformer.relative_error(adapted, target, inputs(50, 16, 10, scale)) < 1e-10
    n_adapters = 4 * depth * 2 + 2
    assert adapted.adapters.n_params() == 2 * 8 * 16 * n_adapters
    below = transformer.construct(target, frozen, rank=7)  # truncated: no guarantee, inexact
    assert transformer.relative_error(below, target, inputs(50, 16, 10)) > 1e-3


@pytest.mark.parametrize(("depth", "seed"), [(1, 1), (2, 2), (3, 3)])
def test_gaps_are_the_width_for_random_models_and_match_the_subproblems(depth, seed):
    target, frozen = pair(6, 2, depth, seed)
    gaps = transformer.gaps(target, frozen)
    assert gaps == [6] * (depth + 1)
    problems = transformer.subproblems(target, frozen)
    assert len(problems) == 2 * depth * 2 + 1
    for i, g in enumerate(gaps, 1):
        assert max(s.gap_rank() for s in problems if s.block == i) == g
    assert transformer.gaps(target, target) == [0] * (depth + 1)


@pytest.mark.parametrize(("depth", "gap"), [(1, 2), (2, 4), (2, 5)])
def test_planted_small_gaps_need_a_smaller_rank(depth, gap):
    target, frozen = transformer.planted_pair(8, 2, depth, gap, torch.Generator().manual_seed(3))
    assert transformer.gaps(target, frozen) == [gap] * (depth + 1)
    rank = transformer.required_rank(target, frozen)
    assert rank == math.ceil(gap / 2) < 4
    x = inputs(20, 8, 5, 10.0)
    assert transformer.relative_error(transformer.construct(target, frozen, rank), target, x) < 1e-9
    if rank > 1:
        below = transformer.construct(target, frozen, rank - 1)
        assert transformer.relative_error(below, target, x) > 1e-3


@pytest.mark.parametrize(("width", "depth"), [(6, 1), (8, 2), (7, 2)])
def test_one_rank_below_the_threshold_is_inexact(width, depth):
    target, frozen = pair(width, 2, depth, 5)
    rank = transformer.required_rank(target, frozen) - 1
    below = transformer.construct(target, frozen, rank)
    assert transformer.relative_error(below, target, inputs(20, width, 4)) > 1e-3


def test_assumption4_report_and_a_singular_model():
    target, frozen = pair(6, 2, 2, 0)
    report = transformer.check_assumption(target, frozen, 3)
    assert report.holds and len(report.problems) == 2 * 2 * 2 + 1
    # per sub-problem: its two factors, named as in the model, and ∏W + LR_3(E) (never ∏W alone)
    listed = [[c.name for c in r.frozen + r.corrected] for _, r in report.problems]
    assert listed[:2] == [["W_Q", "W_Kᵀ", "∏W + LR_3(E)"], ["W_V", "W_O", "∏W + LR_3(E)"]]
    assert listed[-1] == ["W_22", "W_o", "∏W + LR_3(E)"]
    name, worst = report.closest
    assert name in {s.name for s in transformer.subproblems(target, frozen)}
    assert worst.condition >= 1 and "closest to singular" in str(report)
    table = str(report).splitlines()
    assert len(table) == 2 + len(report.weights) + len(report.problems)
    assert max(len(line) for line in table) <= 79
    params = frozen.effective()
    params["w_1"] = params["w_1"].clone()
    params["w_1"][1, :, 0] = 0.0  # W_12 singular
    singular = TFN(**params)
    assert not transformer.check_assumption(target, singular, 3).holds
    with pytest.raises(AssumptionError, match="W_12"):
        transformer.construct(target, singular, 3)


def test_bad_input_is_named():
    target, frozen = pair(4, 2, 2, 0)
    p = target.effective()
    with pytest.raises(ValueError, match="w_k"):
        TFN(**{**p, "w_k": p["w_k"][:, :1]})  # one head instead of two
    with pytest.raises(ValueError, match="b_2"):
        TFN(**{**p, "b_2": p["b_2"][:1]})  # depth mismatch
    with pytest.raises(ValueError, match="w_q"):
        TFN(**{**p, "w_q": p["w_q"][0]})
    for bad in (torch.zeros(2, 5, 3), torch.zeros(2, 4, 0), torch.zeros(4, 3)):
        with pytest.raises(ValueError, match="X must have shape"):
            target(bad)
    with pytest.raises(ValueError, match="non-finite"):
        target(torch.full((1, 4, 2), math.nan))
    for other, word in (
        (pair(5, 2, 2, 1)[0], "width"),
        (pair(4, 3, 2, 1)[0], "heads"),
        (pair(4, 2, 1, 1)[0], "depth"),
    ):
        with pytest.raises(ValueError, match=f"{word} mismatch"):
            transformer.construct(target, other, rank=2)
        with pytest.raises(ValueError, match=f"{word} mismatch"):
            transformer.gaps(other, frozen)
    for rank in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match="rank"):
            transformer.construct(target, frozen, rank=rank)
    with pytest.raises(ValueError, match="heads"):
        TFN.random(4, 0, 1, torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        TFN.random(4, 1, 1, 0)
    with pytest.raises(ValueError, match="must be a TFN"):
        transformer.required_rank(target, "frozen")


def test_batched_tfn_training_equals_one_by_one():
    task = family("tfn").random_task(EXPERIMENTS["tfn"].panels[2], 6, 0)
    task = dataclasses.replace(task, input_shape=(6, 4))
    runs = [Run(0, TFNTrainable(lora_rank=r), lr) for r, lr in ((1, 1e-2), (3, 1e-3), (6, 1e-2))]
    runs.append(Run(0, TFNTrainable(full=True), 1e-3))
    work = FitSettings(steps=8, batch_size=16, n_val=16, n_test=64, eval_every=2)
    together = fit([task], runs, work, stacked=TFNStack)
    for i, r in enumerate(runs):
        alone = fit([task], [r], work, stacked=TFNStack)
        torch.testing.assert_close(alone.test_mse[0], together.test_mse[i], rtol=1e-9, atol=0)
        torch.testing.assert_close(alone.best_val[0], together.best_val[i], rtol=1e-9, atol=0)
    x, y = task.test_set(64)
    model = together.model(2)
    assert model.adapters is not None and model.adapters.w_q[0][0].B.shape == (6, 6)
    mse = float((model(x) - y).square().mean())
    assert mse == pytest.approx(float(together.test_mse[2]), rel=1e-9)
    assert together.model(3).adapters is None


def test_tfn_experiment_end_to_end_on_a_tiny_budget():
    exp = EXPERIMENTS["tfn"]
    assert [p.name for p in exp.panels] == [
        "L1-random",
        "L1-pretrained",
        "L2-random",
        "L2-pretrained",
    ]
    assert exp.width == 16 and exp.ranks == tuple(range(1, 17))
    assert all(p.option("heads") == 2 and p.option("tokens") == 10 for p in exp.panels)
    assert exp.panels[0].threshold(16) == 8
    tiny = Budget(steps=3, seeds=(0,), lrs=(1e-2,), weight_decays=(0.0,), n_test=200)
    tiny = dataclasses.replace(tiny, batch_size=16, n_val=16, eval_every=3)
    rows = run(dataclasses.replace(exp, ranks=(7, 8, 16)), "quick", budget=tiny, progress=False)
    assert [r.panel for r in rows[::6]] == [p.name for p in exp.panels]
    assert len(rows) == 4 * 2 * 3  # panels × methods × ranks
    for r in rows:
        depth = int(r.panel[1])
        assert r.n_params == 2 * r.rank * 16 * (4 * depth * 2 + 2) + 2 * depth * 16
        if r.method == "construction":
            assert (r.test_mse < 1e-15) == (r.rank >= 8)
        else:
            assert r.test_mse > 1e-3  # three Adam steps are far from exact
    assert exp.in_mode("quick").ranks == (1, 4, 7, 8, 12, 16)


def test_certificate_at_and_below_the_threshold():
    target, frozen = pair(6, 2, 2, 1)
    at = transformer.certify(target, frozen, transformer.construct(target, frozen, 3), 3)
    assert len(at.problems) == 2 * 2 * 2 + 1 and len(at.biases) == 2 * 2
    assert all(opt == 0 and err < 1e-10 * scale for _, err, opt, scale in at.problems)
    assert 0 <= at.spot_error <= at.spot_allowed
    text = str(at)
    assert "Lemma 1 optimum 0.0e+00" in text and "<= allowed" in text
    below = transformer.certify(target, frozen, transformer.construct(target, frozen, 2), 2)
    assert all(opt > 0 and err == pytest.approx(opt) for _, err, opt, _ in below.problems)
    assert math.isnan(below.spot_error) and "not run (below the threshold)" in str(below)
    assert max(len(line) for line in (text + "\n" + str(below)).splitlines()) <= 79


def test_the_figure_draws_round_off_at_the_floor():
    import matplotlib.pyplot as plt

    mse = {1: 3.0, 8: 1e-27, 16: 4e-19}
    rows = [Row("L1-random", "construction", r, 0, v, 1) for r, v in mse.items()]
    rows += [Row("L1-random", "gradient", r, 0, 2.0, 1) for r in mse]
    fig = plot_mse_vs_rank(rows, threshold=8, floor=1e-15)
    ax = fig.axes[0]
    label = method_style("construction")["label"]
    lines = [line for line in ax.get_lines() if line.get_label() == label]
    assert list(lines[0].get_ydata()) == [3.0, 1e-15, 1e-15]
    assert ax.get_ylim()[0] == pytest.approx(1e-15 / 30) and ax.get_ylim()[1] > 3.0
    labels = ax.get_legend_handles_labels()[1]
    assert "round-off (< 1e-15), drawn at the floor" in labels
    plt.close(fig)
    for bad in (0.0, -1.0, "1e-15"):
        with pytest.raises(ValueError, match="floor"):
            plot_mse_vs_rank(rows, floor=bad)
    plt.close("all")


def test_public_names_cite_the_transformer_chapter():
    for name in transformer.__all__:
        obj = getattr(transformer, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            assert doc.rstrip().endswith("Introduced in :ref:`ch-transformer`."), name
