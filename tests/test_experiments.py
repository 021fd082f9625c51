"""The experiment settings and runners (Figure 1 in chapter "Linear models"; FNN figures)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from lora_theory import linear, runtime
from lora_theory.experiments import (
    BUDGETS,
    COLUMNS,
    EXPERIMENTS,
    FAMILIES,
    Budget,
    Row,
    budget,
    experiment,
    family,
    median_curve,
    read_csv,
    run,
    write_csv,
)
from lora_theory.experiments.budgets import FULL, QUICK
from lora_theory.experiments.runners import construction_rows, total_steps
from lora_theory.experiments.settings import Panel
from lora_theory.experiments.tasks import build_tasks
from lora_theory.linalg import product

#: A test-only budget: one seed, one grid point, a few hundred steps.
TINY = Budget(steps=300, seeds=(0,), lrs=(1e-2,), weight_decays=(0.0,), n_test=2000, eval_every=10)


@pytest.fixture(scope="module")
def fig1_rows() -> list[Row]:
    return run("fig1", budget=TINY, progress=False)


def by(rows: list[Row], panel: str, method: str) -> dict[int, float]:
    return {r.rank: r.test_mse for r in rows if r.panel == panel and r.method == method}


def test_fig1_construction_is_exact_from_the_threshold_on(fig1_rows):
    for panel in ("random", "pretrained"):
        mse = by(fig1_rows, panel, "construction")
        assert sorted(mse) == list(range(1, 17))
        assert all(mse[r] < 1e-10 for r in range(8, 17))
        below = [mse[r] for r in range(1, 9)]
        assert all(b < a for a, b in itertools.pairwise(below))


def test_fig1_gradient_tracks_the_construction(fig1_rows):
    for panel in ("random", "pretrained"):
        construction, gradient = (by(fig1_rows, panel, m) for m in ("construction", "gradient"))
        for r in range(1, 8):  # the construction is optimal (EYM); gradient gets close to it
            assert 0.9 * construction[r] <= gradient[r] <= 2 * construction[r]
        assert max(gradient[r] for r in range(9, 17)) < 1e-6


def test_fig1_pretrained_frozen_model_is_closer(fig1_rows):
    random, pretrained = (by(fig1_rows, p, "construction") for p in ("random", "pretrained"))
    assert all(pretrained[r] < random[r] for r in range(1, 8))


def test_fig1_construction_matches_population_mse():
    tasks = build_tasks(EXPERIMENTS["fig1"], (0,))
    task = tasks[("random", 0)]
    x, y = task.test_set(20_000)
    target = product(task.target.weights)
    for rank in (1, 4, 7):
        measured = float((family("linear").construct(task, rank)(x) - y).square().mean())
        expected = linear.population_mse(target, task.frozen.weights, rank)
        assert measured == pytest.approx(expected, rel=0.05)


def test_fig1_rows_schema(fig1_rows):
    assert len(fig1_rows) == 2 * 2 * 16  # panels × methods × ranks, one seed
    for r in fig1_rows:
        assert r.n_params == 2 * r.rank * 16 * 2  # 2RDL, no biases
        assert r.test_mse >= 0


def test_fig2_construction_rows_use_theorem3():
    fig = EXPERIMENTS["fig2"]
    random_only = dataclasses.replace(
        fig, panels=tuple(p for p in fig.panels if not p.pretrained), ranks=(4, 8)
    )
    work = dataclasses.replace(TINY, n_test=500)
    rows = construction_rows(random_only, work, build_tasks(random_only, work.seeds))
    assert {(r.panel, r.rank) for r in rows if r.test_mse < 1e-10} == {
        ("Lbar2-L4-random", 8),
        ("Lbar1-L2-random", 8),
    }
    depth = {p.name: p.depth for p in fig.panels}
    assert all(r.n_params == (2 * r.rank + 1) * 16 * depth[r.panel] for r in rows)  # + biases


def test_csv_has_exactly_the_documented_columns(tmp_path):
    rows = [Row("random", "gradient", 3, 0, 1.5e-3, 192), Row("p", "construction", 8, 4, 0.0, 512)]
    path = write_csv(rows, tmp_path / "sub" / "fig.csv")
    assert path.read_text().splitlines()[0] == "panel,method,rank,seed,test_mse,n_params"
    assert COLUMNS == ("panel", "method", "rank", "seed", "test_mse", "n_params")
    assert read_csv(path) == rows
    path.write_text("panel,rank\nx,1\n")
    with pytest.raises(ValueError, match="columns"):
        read_csv(path)


def test_median_curve_over_seeds():
    rows = [Row("p", "gradient", r, s, float(10 * r + s), 0) for r in (2, 1) for s in range(3)]
    assert median_curve(rows, "p", "gradient") == ([1, 2], [11.0, 21.0])
    with pytest.raises(ValueError, match="rank"):
        median_curve(rows, "p", "gradient", x="seed")


def test_full_budget_is_the_papers_protocol():
    assert FULL.steps == 5000 and FULL.seeds == (0, 1, 2, 3, 4)
    assert FULL.lrs == (1e-2, 1e-3, 1e-4) and FULL.weight_decays == (0.0, 1e-4, 1e-3, 1e-2)
    assert (FULL.batch_size, FULL.n_val, FULL.n_test, FULL.eval_every) == (256, 256, 5000, 1)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_quick_budget_only_reduces_work(name):
    fig = EXPERIMENTS[name]
    quick = fig.budget("quick")
    assert fig.budget("full") is fig.full  # FULL, or FULL with the paper's longer training
    assert fig.full is FULL or fig.full == dataclasses.replace(FULL, steps=fig.full.steps)
    assert (quick.batch_size, quick.n_val) == (FULL.batch_size, FULL.n_val)
    assert quick.steps < fig.full.steps and set(quick.seeds) < set(FULL.seeds)
    assert set(quick.lrs) <= set(FULL.lrs) and set(quick.weight_decays) <= set(FULL.weight_decays)
    assert quick.n_test < FULL.n_test
    assert fig.budget("quick") is QUICK or name != "fig1"  # the ReLU figures do less work
    # Quick mode may sweep fewer ranks, but never drops a threshold; full mode sweeps all of them.
    assert fig.in_mode("full").ranks == fig.ranks
    quick_ranks = set(fig.in_mode("quick").ranks)
    assert quick_ranks <= set(fig.ranks)
    assert {p.threshold(fig.width) for p in fig.panels} <= quick_ranks


def test_mode_switch_env_and_explicit(monkeypatch):
    monkeypatch.setenv(runtime.MODE_ENV, "full")
    assert runtime.mode() == "full" and budget(runtime.mode()) is FULL
    assert runtime.mode("quick") == "quick"  # an explicit argument beats the environment
    monkeypatch.setenv(runtime.MODE_ENV, "quick")
    assert budget(runtime.mode()) is QUICK
    monkeypatch.setenv(runtime.MODE_ENV, "fast")
    with pytest.raises(ValueError, match="mode"):
        runtime.mode()
    with pytest.raises(ValueError, match="mode"):
        budget("slow")
    assert set(BUDGETS) == {"quick", "full"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_device_selection_without_cuda(monkeypatch):
    monkeypatch.delenv(runtime.MODE_ENV, raising=False)
    assert runtime.device().type == "cpu"
    assert runtime.mode() == "quick"
    with pytest.raises(ValueError, match="CUDA"):
        runtime.device("cuda")


def test_thresholds_of_the_settings():
    assert {p.threshold(16) for p in EXPERIMENTS["fig1"].panels} == {8}
    assert {p.threshold(16) for p in EXPERIMENTS["fig2"].panels} == {8}
    assert [p.threshold(16) for p in EXPERIMENTS["depth"].panels] == [8, 4, 3, 2, 2, 2, 2]


def test_unknown_figure_and_bad_panels():
    with pytest.raises(ValueError, match="fig1"):
        experiment("fig9")
    with pytest.raises(ValueError, match="family"):
        run(dataclasses.replace(EXPERIMENTS["fig1"], panels=(Panel("x", 1, 2, family="nope"),)))
    with pytest.raises(ValueError, match="L̄"):
        Panel("x", target_depth=3, depth=2)
    with pytest.raises(ValueError, match="methods"):
        Panel("x", target_depth=1, depth=2, methods=("magic",))
    with pytest.raises(ValueError, match="tune_bias"):
        Panel("x", target_depth=1, depth=2, bias=False, tune_bias=True)


def stand_in_construction(task, rank):
    """Replaces Theorem 3's construction to exercise the plumbing only."""
    return task.frozen


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_figure_runs_and_yields_one_row_per_run(name, monkeypatch):
    stand_in = dataclasses.replace(FAMILIES["fnn"], construct=stand_in_construction)
    monkeypatch.setitem(FAMILIES, "fnn", stand_in)
    fig = dataclasses.replace(EXPERIMENTS[name], ranks=(1, 8))
    work = dataclasses.replace(TINY, steps=3, seeds=(0, 1), n_test=50)
    calls: list[int] = []
    monkeypatch.setattr("lora_theory.experiments.runners.tqdm", _counting_bar(calls))
    rows = [r for r in run(fig, budget=work) if r.step is None]  # not the curves' points
    assert sum(calls) == total_steps(fig, work)
    per_seed = sum(p.depth - 1 if m == "final_layers" else 2 for p in fig.panels for m in p.methods)
    assert len(rows) == len(work.seeds) * per_seed
    assert len({(r.panel, r.method, r.rank, r.seed) for r in rows}) == len(rows)
    for r in rows:
        p = next(p for p in fig.panels if p.name == r.panel)
        if p.family not in ("linear", "fnn") or p.layer_ranks(r.rank, 16) != r.rank:
            continue  # the other families and the per-layer schedules test their own counts
        if r.method == "final_layers":
            assert r.n_params == r.rank * (16 * 16 + 16)  # k layers: weights and biases
        else:
            tuned_biases = p.tune_bias if r.method == "gradient" else p.bias  # construction: all
            assert r.n_params == 2 * r.rank * 16 * p.depth + tuned_biases * 16 * p.depth


def _counting_bar(calls: list[int]):
    class Bar:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            calls.append(n)

    return Bar


def test_pretraining_is_shared_by_panels_with_the_same_models():
    fig = EXPERIMENTS["bias"]
    tasks = build_tasks(fig, (0,))
    fixed, tuned = tasks[("pretrained-fixed-bias", 0)], tasks[("pretrained-tuned-bias", 0)]
    assert fixed is tuned
    assert tasks[("random-fixed-bias", 0)] is not fixed
    x, y = fixed.sample((4000,), torch.Generator().manual_seed(1))
    random = tasks[("random-fixed-bias", 0)]
    assert (fixed.frozen(x) - y).square().mean() < (random.frozen(x) - y).square().mean() / 2


def test_final_layers_method_plugs_in():
    panel = Panel("flt", target_depth=1, depth=3, methods=("gradient", "final_layers"))
    fig = dataclasses.replace(EXPERIMENTS["fig1"], panels=(panel,), ranks=(2,))
    rows = run(fig, budget=dataclasses.replace(TINY, steps=20, n_test=100), progress=False)
    assert [(r.method, r.rank) for r in rows] == [
        ("gradient", 2),
        ("final_layers", 1),
        ("final_layers", 2),
    ]
    assert [r.n_params for r in rows] == [2 * 2 * 16 * 3 + 16 * 3, 16 * 16 + 16, 2 * (16 * 16 + 16)]
    assert all(math.isfinite(r.test_mse) for r in rows)


def test_budget_describe_names_mode_seeds_steps_grid_and_precision():
    from lora_theory.experiments import budget

    text = budget("quick").describe("quick")
    b = budget("quick")
    assert text.startswith("quick mode: ")
    assert f"{len(b.seeds)} seeds, {b.steps} Adam steps" in text
    assert f"{b.n_test} test points" in text and "float64" in text and "float32" in text
    with pytest.raises(ValueError, match="mode"):
        b.describe("fast")


def test_describe_names_version_mode_and_device(monkeypatch):
    import lora_theory

    monkeypatch.setenv("LORA_THEORY_MODE", "quick")
    expected = f"lora_theory {lora_theory.__version__}, mode quick, device {runtime.device()}"
    assert lora_theory.describe() == expected
