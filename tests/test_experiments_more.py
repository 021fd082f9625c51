"""The appendix experiments (curves, generalization, classification, rank-schedule): the engine's
new settings (training curves, a fixed training set, the final iterate, cross-entropy, the
shifted test set), per-layer LoRA ranks, the rank schedules, the CSV's optional columns and the
figures."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import pytest
import torch

from lora_theory import fnn
from lora_theory.experiments import (
    COLUMNS,
    EXPERIMENTS,
    Budget,
    Row,
    family,
    median_curve,
    read_csv,
    run,
    write_csv,
)
from lora_theory.experiments.budgets import FULL
from lora_theory.experiments.families.fnn import INPUT_BOUND, Trainable
from lora_theory.experiments.figures import (
    caption,
    plot_curves,
    plot_rank_schedule,
    plot_vs_rank,
    schedule_curves,
)
from lora_theory.experiments.results import OPTIONAL_COLUMNS
from lora_theory.experiments.schedules import rank_schedule
from lora_theory.experiments.settings import Panel
from lora_theory.experiments.tasks import random_task
from lora_theory.runtime import generator
from lora_theory.training import FitSettings, Run
from lora_theory.training import fit as engine_fit
from lora_theory.training.objectives import TASKS, Objective

matplotlib.use("Agg")

TINY = Budget(steps=40, seeds=(0,), lrs=(1e-2,), weight_decays=(0.0,), n_test=300, eval_every=5)
STACK = family("fnn").stacked


def fit(tasks, runs, settings, **kw):
    """The engine's fit of FNN runs."""
    return engine_fit(tasks, runs, settings, stacked=STACK, **kw)


def task(depths=(1, 2), seed=0):
    return random_task(Panel("p", *depths), 16, seed)


# --- objectives -----------------------------------------------------------------------------------


def test_soft_cross_entropy_is_torchs_with_probability_targets():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 50, 16, generator=g, dtype=torch.float64)
    y = torch.rand(3, 50, 16, generator=g, dtype=torch.float64) * 2  # not normalised
    ours = Objective("cross_entropy").value(pred, y)
    for c in range(3):
        expected = torch.nn.functional.cross_entropy(pred[c], y[c])
        assert float(ours[c]) == pytest.approx(float(expected), rel=1e-12)


def test_binary_task_sums_the_two_halves_of_the_outputs():
    pred = torch.zeros(1, 2, 16, dtype=torch.float64)
    pred[0, 0, :8], pred[0, 1, 8:] = 1.0, 1.0  # point 0 → class 0, point 1 → class 1
    y = torch.zeros(1, 2, 16, dtype=torch.float64)
    y[0, :, 3] = 1.0  # the teacher says class 0 for both
    binary = Objective(*TASKS["binary"])
    assert binary.pool(pred).tolist() == [[[8.0, 0.0], [0.0, 8.0]]]
    assert binary.accuracy(pred, y).tolist() == [0.5]
    assert math.isnan(float(binary.accuracy(pred * math.nan, y)[0]))
    with pytest.raises(ValueError, match="output_groups=3 must divide the number of outputs"):
        Objective("cross_entropy", 3).pool(pred)
    with pytest.raises(ValueError, match="loss must be one of"):
        Objective("hinge")


# --- fit settings: validated clearly --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_train": 400}, "n_train=400 trains full-batch .* batch_size must equal n_train"),
        ({"n_train": 0, "batch_size": 0}, "batch_size out of range"),
        ({"keep": "last"}, r"keep must be one of \('best', 'final'\), got 'last'"),
        ({"loss": "ce"}, "loss must be one of"),
        ({"output_groups": -1}, "output_groups out of range"),
        ({"curve_every": -5}, "curve_every out of range"),
        ({"test_shift": 0.0}, "test_shift must be positive"),
        ({"test_shift": 5.0, "n_test": 0}, "test_shift=5.0 needs a test set"),
    ],
)
def test_fit_settings_refuse_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        FitSettings(steps=5, **kw)


# --- the engine: curves, fixed training set, final iterate, cross-entropy, shift ------------------


def test_training_curve_is_the_loss_of_each_step_and_changes_nothing_else():
    tasks = [task()]
    runs = [Run(0, Trainable(lora_rank=r, tune_bias=True), 1e-2) for r in (2, 8)]
    plain = fit(tasks, runs, FitSettings(steps=30, n_test=200, eval_every=5))
    curved = fit(tasks, runs, FitSettings(steps=30, n_test=200, eval_every=5, curve_every=7))
    assert torch.equal(plain.test_mse, curved.test_mse) and torch.equal(
        plain.best_val, curved.best_val
    )
    assert curved.curve_steps.tolist() == [0, 7, 14, 21, 28] and curved.train_curve.shape == (2, 5)
    assert plain.train_curve.shape == (2, 0)
    x, y = tasks[0].sample((1, 256), generator(0, "train"))  # the first batch; B = 0 there
    first = float((tasks[0].frozen(x[0]) - y[0]).square().mean())
    assert curved.train_curve[:, 0].tolist() == pytest.approx([first, first], rel=1e-12)


def test_fixed_training_set_full_batch_and_the_final_iterate():
    tasks = [task()]
    runs = [Run(0, Trainable(lora_rank=4, tune_bias=True), lr) for lr in (1e-2, 1e-3)]
    settings = FitSettings(
        steps=25, batch_size=64, n_train=64, n_test=200, keep="final", curve_every=1
    )
    result = fit(tasks, runs, settings)
    assert result.best_step.tolist() == [25, 25]
    x, y = tasks[0].sample((64,), generator(0, "train"))
    xt, yt = tasks[0].test_set(200)
    for i in range(2):
        model = result.model(i)
        assert float(result.train_loss[i]) == pytest.approx(
            float((model(x) - y).square().mean()), rel=1e-10
        )
        assert float(result.test_mse[i]) == pytest.approx(
            float((model(xt) - yt).square().mean()), rel=1e-10
        )
        curve = result.train_curve[i]
        assert float(curve[-1]) > float(result.train_loss[i])  # full batch: the loss falls
    assert float(result.train_curve[0, 0]) == float(result.train_curve[1, 0])  # same set, B = 0


def test_cross_entropy_runs_report_accuracy_and_the_shifted_test_set():
    tasks = [task()]
    runs = [Run(0, Trainable(lora_rank=8, tune_bias=True), 1e-2)]
    settings = FitSettings(
        steps=30, n_test=300, eval_every=3, loss="cross_entropy", output_groups=2, test_shift=5.0
    )
    result = fit(tasks, runs, settings)
    goal = settings.objective
    model = result.model(0)
    for scale, mse, accuracy in (
        (1.0, "test_mse", "test_accuracy"),
        (5.0, "shift_mse", "shift_accuracy"),
    ):
        x, y = tasks[0].test_set(300, scale)
        pred = model(x)[None]
        assert float(getattr(result, accuracy)[0]) == float(goal.accuracy(pred, y[None])[0])
        assert float(getattr(result, mse)[0]) == pytest.approx(
            float((pred[0] - y).square().mean()), rel=1e-10
        )
    assert 0 <= float(result.val_accuracy[0]) <= 1
    assert math.isnan(float(fit(tasks, runs, FitSettings(steps=3, n_test=50)).val_accuracy[0]))


def test_new_settings_keep_runs_independent_of_their_batch():
    tasks = [task(seed=0), task(seed=1)]
    runs = [Run(t, Trainable(lora_rank=r, tune_bias=True), 1e-2) for t in (0, 1) for r in (3, 9)]
    settings = FitSettings(
        steps=12, batch_size=50, n_train=50, n_test=100, loss="cross_entropy", curve_every=4
    )
    together = fit(tasks, runs, settings, workers=2)
    for i, r in enumerate(runs):
        alone = fit([tasks[r.task]], [dataclasses.replace(r, task=0)], settings, workers=1)
        for name in ("test_accuracy", "val_accuracy", "train_loss", "train_curve"):
            assert torch.allclose(getattr(alone, name)[0], getattr(together, name)[i], rtol=1e-9)


# --- per-layer ranks ------------------------------------------------------------------------------


def test_per_layer_ranks_train_exactly_those_ranks():
    tasks = [task((2, 4))]
    spec = Trainable(lora_rank=[8, 0, 3, 5], tune_bias=True)
    assert spec.lora_rank == (8, 0, 3, 5) and spec.n_params(16, 4) == 2 * 16 * 16 + 4 * 16
    result = fit(tasks, [Run(0, spec, 1e-2)], FitSettings(steps=20, n_test=0))
    adapters = result.model(0).adapters
    assert [a.inner_dim for a in adapters] == [8, 0, 3, 5]
    assert [a.rank() for a in adapters] == [8, 0, 3, 5]
    uniform = [Run(0, Trainable(lora_rank=r, tune_bias=True), 1e-2) for r in (4, (4, 4, 4, 4))]
    one, per_layer = (fit(tasks, [u], FitSettings(steps=20, n_test=100)) for u in uniform)
    assert torch.equal(one.test_mse, per_layer.test_mse)  # one rank = the same rank per layer


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (Trainable(lora_rank=(1, 2, 3)), "lora_rank has 3 per-layer ranks for 4 frozen layers"),
        (Trainable(lora_rank=(1, 2, 3, 17), tune_bias=True), r"lora_rank\[3\] out of range"),
        (Trainable(lora_rank=(0, 0, 0, 0)), "nothing to train"),
    ],
)
def test_per_layer_ranks_that_do_not_fit_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        spec.check(16, 4, True)


def test_trainable_refuses_negative_per_layer_ranks():
    with pytest.raises(ValueError, match=r"lora_rank\[1\] out of range"):
        Trainable(lora_rank=(1, -1))


# --- rank schedules -------------------------------------------------------------------------------


def test_rank_schedules_of_the_paper_and_of_the_official_code():
    paper = {s: rank_schedule(8, s, 4, 16) for s in (-2, -1, 1, 2)}
    assert paper == {-2: (8, 6, 4, 2), -1: (8, 7, 6, 5), 1: (8, 9, 10, 11), 2: (8, 10, 12, 14)}
    assert rank_schedule(8, -1, 4, 16, "code") == paper[1]  # the bug: the schedule of +|s|
    assert rank_schedule(8, -2, 4, 16, "code") == paper[2]
    assert rank_schedule(8, 5, 4, 16) == (8, 13, 16, 16)  # capped at D
    assert rank_schedule(8, -5, 4, 16, "code") == (8, 13, 16, 16)  # clamped at D
    assert rank_schedule(8, -3, 4, 16) == (8, 5, 2, 0)  # floored at 0
    for s in (-2, -1, 1, 2):
        balanced = rank_schedule(8, s, 4, 16, "balanced", target_depth=2)
        sums = (
            [sum(r[:2]) for r in (balanced, paper[s])],
            [sum(r[2:]) for r in (balanced, paper[s])],
        )
        assert sums[0][0] == sums[0][1] and sums[1][0] == sums[1][1]
        assert (
            max(balanced[:2]) - min(balanced[:2]) <= 1
            and max(balanced[2:]) - min(balanced[2:]) <= 1
        )
    with pytest.raises(ValueError, match="schedule 'code' is the official code's schedule for"):
        rank_schedule(8, 1, 4, 16, "code")
    with pytest.raises(ValueError, match="schedule must be one of"):
        rank_schedule(8, 1, 4, 16, "random")


def test_only_block_sums_matter_for_the_construction():
    t = task((2, 4))
    x = fnn.box_sample(16, INPUT_BOUND, 200, torch.Generator().manual_seed(3))
    for s in (-2, 1):
        paper, balanced = (
            family("fnn").construct(t, rank_schedule(8, s, 4, 16, kind, target_depth=2))(x)
            for kind in ("paper", "balanced")
        )
        assert float((paper - balanced).abs().max()) < 1e-9 * (1 + float(paper.abs().max()))


# --- panels and the registered experiments --------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"n_train": 0}, "n_train out of range"),
        ({"schedule": "zigzag"}, "schedule must be one of"),
        ({"rank_step": 1.5}, "rank_step must be an integer"),
    ],
)
def test_panels_refuse_bad_appendix_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        Panel("p", 1, 2, **kw)


def test_a_code_schedule_with_a_non_negative_step_fails_before_any_work():
    exp = dataclasses.replace(
        EXPERIMENTS["rank-schedule"], panels=(Panel("p", 2, 4, schedule="code", rank_step=1),)
    )
    with pytest.raises(ValueError, match="rank_step < 0"):
        run(exp, budget=TINY, progress=False)


def test_the_appendix_experiments_have_the_papers_settings():
    curves, gen, cls, sched = (
        EXPERIMENTS[n] for n in ("curves", "generalization", "classification", "rank-schedule")
    )
    assert curves.ranks == (1, 4, 8, 13, 16) and curves.curve_every > 0
    assert {(p.target_depth, p.depth) for p in curves.panels} == {(1, 2), (2, 4)}
    assert [p.n_train for p in gen.panels] == [400 * p.target_depth for p in gen.panels]
    assert gen.keep == "final" and gen.full == dataclasses.replace(FULL, steps=20_000)
    assert cls.ranks == tuple(range(17)) and cls.test_shift == 5.0
    assert {p.task for p in cls.panels} == set(TASKS) and not any(p.pretrained for p in cls.panels)
    steps = {(p.schedule, p.pretrained): [] for p in sched.panels}
    for p in sched.panels:
        steps[(p.schedule, p.pretrained)].append(p.rank_step)
        assert (p.target_depth, p.depth) == (2, 4)
    for pretrained in (False, True):
        assert steps[("paper", pretrained)] == [-2, -1, 0, 1, 2]
        assert steps[("code", pretrained)] == [-2, -1]
    assert sched.ranks == (8,)


# --- tiny runs of each experiment and their CSV ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_rows():
    shrink = {
        "curves": {"ranks": (1, 8)},
        "generalization": {"ranks": (2, 8)},
        "classification": {"ranks": (0, 8)},
        "rank-schedule": {},
    }
    return {
        name: run(dataclasses.replace(EXPERIMENTS[name], **kw), budget=TINY, progress=False)
        for name, kw in shrink.items()
    }


@pytest.mark.parametrize("name", ["curves", "generalization", "classification", "rank-schedule"])
def test_each_appendix_experiment_round_trips_through_its_csv(name, tiny_rows, tmp_path):
    rows = tiny_rows[name]
    path = write_csv(rows, tmp_path / f"{name}.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header[:6]) == COLUMNS and set(header[6:]) <= set(OPTIONAL_COLUMNS)
    back = read_csv(path)
    assert len(back) == len(rows)
    for a, b in zip(back, rows, strict=True):
        for f in dataclasses.fields(Row):
            u, v = getattr(a, f.name), getattr(b, f.name)
            assert u == v or (isinstance(u, float) and math.isnan(u) and math.isnan(v))


def test_curves_rows_hold_the_selected_runs_curves(tiny_rows):
    rows = tiny_rows["curves"]
    summary = [r for r in rows if r.step is None]
    points = [r for r in rows if r.step is not None]
    assert len(summary) == 2 * 2  # panels × ranks, one seed
    assert len(points) == len(summary) * 4  # steps 0, 10, 20, 30 of 40
    steps, losses = median_curve(
        rows, "Lbar1-L2-random", "gradient", "step", y="train_loss", rank=8
    )
    assert steps == [0, 10, 20, 30] and losses[-1] < losses[0]


def test_generalization_rows_have_train_and_test_mse(tiny_rows):
    rows = tiny_rows["generalization"]
    assert all(r.train_loss is not None and r.step is None for r in rows)
    exact = [r for r in rows if r.method == "construction" and r.rank == 8]
    assert all(r.train_loss < 1e-12 and r.test_mse < 1e-12 for r in exact)


def test_classification_rows_and_the_construction_outside_its_box(tiny_rows):
    rows = tiny_rows["classification"]
    for r in rows:
        assert r.shift_mse is not None
        classifies = not r.panel.startswith("regression")
        assert (r.test_accuracy is not None) == classifies == (r.shift_accuracy is not None)
    exact = [r for r in rows if r.method == "construction" and r.rank == 8]
    assert all(r.test_mse < 1e-12 for r in exact)
    assert all(r.test_accuracy == 1.0 for r in exact if r.test_accuracy is not None)
    depth = {p.name: p.depth for p in EXPERIMENTS["classification"].panels}
    zero = [r for r in rows if r.rank == 0 and r.method == "gradient"]
    assert len(zero) == 6 and all(r.n_params == 16 * depth[r.panel] for r in zero)  # biases only
    # The 5× shifted inputs leave the box ‖x‖_∞ ≤ INPUT_BOUND almost always.
    x, _ = task().test_set(300, 5.0)
    assert float((x.abs().amax(1) > INPUT_BOUND).double().mean()) > 0.9


def test_rank_schedule_rows(tiny_rows):
    rows, exp = tiny_rows["rank-schedule"], EXPERIMENTS["rank-schedule"]
    steps, mse = schedule_curves(rows, exp, "random", "paper", "construction")
    assert steps == [-2, -1, 0, 1, 2]
    assert min(mse[:2]) > 1e-6 and max(mse[2:]) < 1e-12  # exact iff both block sums reach 16
    code = schedule_curves(rows, exp, "random", "code", "gradient")
    paper = schedule_curves(rows, exp, "random", "paper", "gradient")
    assert code[0] == [-2, -1]
    assert code[1] == pytest.approx([paper[1][4], paper[1][3]], rel=1e-9)  # = the runs of +|s|
    balanced = schedule_curves(rows, exp, "random", "balanced", "construction")[1]
    assert balanced[:2] == pytest.approx(mse[:2], rel=1e-6)


# --- CSV optional columns -------------------------------------------------------------------------


def test_optional_columns_only_appear_when_used(tmp_path):
    plain = [Row("random", "gradient", 3, 0, 1.5e-3, 192)]
    assert write_csv(plain, tmp_path / "a.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    rows = [
        Row("p", "gradient", 3, 0, 0.1, 192, test_accuracy=0.75),
        Row("p", "construction", 3, 0, 0.0, 192, shift_accuracy=math.nan),
    ]
    text = write_csv(rows, tmp_path / "b.csv").read_text().splitlines()
    assert text[0] == ",".join(COLUMNS) + ",test_accuracy,shift_accuracy"
    assert text[1].endswith(",0.75,") and read_csv(tmp_path / "b.csv")[0] == rows[0]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (Row("p", "gradient", 3, 0, 0.1, 192, test_accuracy=1.5), "column test_accuracy"),
        (Row("p", "gradient", 3, 0, 0.1, 192, step=-1), "column step"),
        (Row("p", "gradient", 3, 0, 0.1, 192, train_loss=-1.0), "column train_loss"),
    ],
)
def test_bad_optional_values_are_refused(row, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        write_csv([row], tmp_path / "c.csv")


def test_read_csv_checks_the_optional_header_and_values(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(",".join(COLUMNS) + ",shift_mse,step\np,gradient,1,0,0.1,4,0.2,3\n")
    with pytest.raises(ValueError, match="optionally followed by some of"):
        read_csv(path)
    path.write_text(",".join(COLUMNS) + ",step,train_loss\np,gradient,1,0,0.1,4,,0.5\n")
    assert read_csv(path) == [Row("p", "gradient", 1, 0, 0.1, 4, train_loss=0.5)]
    path.write_text(",".join(COLUMNS) + ",test_accuracy\np,gradient,1,0,0.1,4,2\n")
    with pytest.raises(ValueError, match="column test_accuracy: expected a float in"):
        read_csv(path)


def test_median_curve_of_an_accuracy_counts_a_diverged_run_as_worst():
    rows = [
        Row("p", "gradient", 1, s, 0.1, 4, test_accuracy=a)
        for s, a in enumerate((0.9, math.nan, 0.8))
    ]
    assert median_curve(rows, "p", "gradient", y="test_accuracy") == ([1], [0.8])
    with pytest.raises(ValueError, match="y must be"):
        median_curve(rows, "p", "gradient", y="seed")


# --- figures and captions -------------------------------------------------------------------------


def test_figures_draw_every_curve(tiny_rows):
    fig = plot_curves(tiny_rows["curves"], threshold=8)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    fig = plot_vs_rank(tiny_rows["generalization"], columns=("test_mse", "train_loss"), threshold=8)
    assert [len(ax.get_lines()) for ax in fig.axes] == [5, 5]  # 2 methods × 2 columns + threshold
    panels = [p.name for p in EXPERIMENTS["classification"].panels if p.task == "binary"]
    fig = plot_vs_rank(
        tiny_rows["classification"], panels, columns=("test_accuracy", "shift_accuracy"), log=False
    )
    assert [len(ax.get_lines()) for ax in fig.axes] == [4, 4]
    fig = plot_rank_schedule(tiny_rows["rank-schedule"], EXPERIMENTS["rank-schedule"])
    assert [len(ax.get_lines()) for ax in fig.axes] == [4, 4]
    with pytest.raises(ValueError, match="no curve rows"):
        plot_curves(tiny_rows["generalization"])
    matplotlib.pyplot.close("all")


def test_captions_state_mode_and_budget():
    text = caption(EXPERIMENTS["generalization"], "full")
    assert text.startswith("full mode: 5 seeds, 20000 Adam steps, learning rates 0.01, 0.001")
    assert "400 and 800 points, full batch" in text and "final iterate" in text
    quick = caption(EXPERIMENTS["classification"], "quick")
    assert (
        "quick mode" in quick and "ranks 0, 1, 2, 4, 6, 8, 12, 16" in quick and "5·N(0, I)" in quick
    )
    with pytest.raises(ValueError, match="mode"):
        caption(EXPERIMENTS["curves"], "slow")
