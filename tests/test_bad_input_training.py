"""Bad input at the door: ``training`` (Task, Run, FitSettings, fit, BatchedAdam, lora_init,
select_by_validation, the families' build) and ``experiments`` (run, experiment, budget, Panel,
Budget, Experiment, register, family, random_task, the CSV functions, median_curve,
plot_mse_vs_rank). One parametrized test per function or group; each case names the call, the
exception class and words of the message (the argument, the value, what was expected); see
``test_bad_input.py``."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import matplotlib
import numpy as np
import pytest
import torch

from lora_theory import experiments, fnn, training
from lora_theory.experiments.families.fnn import FNNStack, Trainable
from lora_theory.experiments.families.tfn import TFNStack, TFNTrainable
from lora_theory.training import BatchedAdam, FitSettings, Run, Task

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NAN, INF = math.nan, math.inf
D = 4
PANEL = experiments.Panel("p", 1, 2)
TASK = experiments.random_task(PANEL, D, 0)
LORA = Trainable(lora_rank=1)
RUN = Run(0, LORA, 1e-2)
SETTINGS = FitSettings(steps=2, batch_size=8, n_val=8, n_test=8, chunk=2)
BUDGET = experiments.Budget(
    steps=2, seeds=(0,), lrs=(1e-2,), weight_decays=(0.0,), batch_size=8, n_val=8, n_test=8
)
TINY = experiments.Experiment("tiny", "t", "c", (PANEL,), width=D, ranks=(1,), quick=BUDGET)
ROWS = [experiments.Row("p", "gradient", 1, 0, 0.5, 16)]


def case(call, match, exc=ValueError, id=None):
    """One bad-input case: ``call()`` must raise ``exc`` with ``match`` in its message."""
    return pytest.param(call, exc, match, id=id or re.sub(r"[^\w]+", "-", match).strip("-")[:40])


def check(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def fit(tasks=(TASK,), runs=(RUN,), settings=SETTINGS, **kw):
    kw.setdefault("stacked", FNNStack)
    kw.setdefault("workers", 1)
    return training.fit(list(tasks), list(runs), settings, **kw)


def adam(param=None, mask=None, lr=None, wd=None):
    return BatchedAdam(
        torch.zeros(2, 3) if param is None else param,
        torch.ones(2, 3, dtype=torch.bool) if mask is None else mask,
        torch.full((2,), 0.1) if lr is None else lr,
        torch.zeros(2) if wd is None else wd,
    )


# --- training.Task, Run, FitSettings --------------------------------------------------------------

TASK_CASES = [
    case(lambda: Task(TASK.target, TASK.frozen, -1, (D,)), r"seed out of range: need seed ≥ 0"),
    case(lambda: Task(TASK.target, TASK.frozen, True, (D,)), "seed must be an integer, got True"),
    case(lambda: Task(TASK.target, TASK.frozen, 0.5, (D,)), "seed must be an integer, got 0.5"),
    case(lambda: Task("f", TASK.frozen, 0, (D,)), "target must be callable, got str"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, ()), r"input_shape must have at least one"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, (0,)), r"input_shape\[0\] out of range"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, (2.0,)), r"input_shape\[0\] must be an int"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, 4), "input_shape must be a list of integers"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, "4"), "input_shape must be a list .* got str"),
    case(lambda: Task(TASK.target, TASK.frozen, 0, (10**6, 10**6)), "at most 1073741824"),
    case(lambda: TASK.sample((2,), None), "gen must be a torch.Generator"),
    case(lambda: TASK.sample((-1,), torch.Generator()), r"shape\[0\] out of range"),
    case(lambda: TASK.sample((10**5, 10**5), torch.Generator()), "sample asks for a tensor"),
    case(lambda: TASK.test_set(0), r"n out of range: need n ≥ 1, got 0"),
    case(lambda: TASK.test_set(2.5), "n must be an integer, got 2.5"),
    case(
        lambda: Task(lambda x: x.sum(), TASK.frozen, 0, (D,)).sample((2,), torch.Generator()),
        r"the task's target must map a batch .* to a real tensor \(n, …\); got \(\) for n = 2",
        id="target-scalar",
    ),
    case(
        lambda: Task(lambda x: x.to(torch.complex128), None, 0, (D,)).test_set(3),
        "to a real tensor",
        id="target-complex",
    ),
]
RUN_CASES = [
    case(lambda: Run(-1, LORA, 1e-2), r"task out of range: need task ≥ 0, got -1"),
    case(lambda: Run(True, LORA, 1e-2), "task must be an integer, got True"),
    case(lambda: Run(0, [1], 1e-2), r"trainable must be hashable .* got \[1\]"),
    case(lambda: Run(0, LORA, NAN), "lr must be a finite number, got nan", id="lr-nan"),
    case(lambda: Run(0, LORA, INF), "lr must be a finite number, got inf", id="lr-inf"),
    case(lambda: Run(0, LORA, 0.0), "lr must be positive, got 0.0"),
    case(lambda: Run(0, LORA, "1e-2"), "lr must be a real number, got '1e-2'"),
    case(lambda: Run(0, LORA, 1e-2j), r"lr must be a real number, got 0.01j \(complex\)"),
    case(lambda: Run(0, LORA, 1e-2, -1e-3), "weight_decay must be non-negative, got -0.001"),
    case(lambda: Run(0, LORA, 1e-2, NAN), "weight_decay must be a finite number, got nan"),
    case(lambda: Run(0, LORA, 1e-2, None), "weight_decay must be a real number, got None"),
]
SETTINGS_CASES = [
    case(lambda: FitSettings(steps=-1), r"steps out of range: need 0 ≤ steps ≤ 100000000"),
    case(lambda: FitSettings(steps=10**9), r"steps out of range: .* got 1000000000"),
    case(lambda: FitSettings(steps=2.0), "steps must be an integer, got 2.0"),
    case(lambda: FitSettings(steps=True), "steps must be an integer, got True"),
    case(lambda: FitSettings(steps="10"), "steps must be an integer, got '10'"),
    case(lambda: FitSettings(1, batch_size=0), r"batch_size out of range: need 1 ≤ batch_size"),
    case(lambda: FitSettings(1, n_val=-1), r"n_val out of range: need 0 ≤ n_val"),
    case(lambda: FitSettings(1, n_test=2**31), r"n_test out of range: .* got 2147483648"),
    case(lambda: FitSettings(1, eval_every=0), r"eval_every out of range"),
    case(lambda: FitSettings(1, chunk=None), "chunk must be an integer, got None"),
    case(lambda: FitSettings(1, stop_ratio=1.0), "stop_ratio must be > 1, got 1.0"),
    case(lambda: FitSettings(1, stop_ratio=NAN), "stop_ratio must be a finite number, got nan"),
    case(lambda: FitSettings(1, init_std=-0.1), "init_std must be non-negative, got -0.1"),
    case(lambda: FitSettings(1, init_std=INF), "init_std must be a finite number, got inf"),
    case(lambda: FitSettings(1, train_stream=""), "train_stream must be a non-empty string"),
    case(lambda: FitSettings(1, train_stream=3), "train_stream must be a non-empty string, got 3"),
]


@pytest.mark.parametrize(("call", "exc", "match"), TASK_CASES + RUN_CASES + SETTINGS_CASES)
def test_task_run_and_settings_reject(call, exc, match):
    check(call, exc, match)


# --- training.fit ---------------------------------------------------------------------------------

FIT_CASES = [
    case(lambda: fit(tasks=()), "fit needs at least one task and one run"),
    case(lambda: fit(runs=()), "fit needs at least one task and one run", id="no-runs"),
    case(lambda: fit(tasks=[TASK.frozen]), r"tasks\[0\] must be a Task, got FNN"),
    case(lambda: fit(runs=[(0, LORA, 1e-2)]), r"runs\[0\] must be a Run, got tuple"),
    case(lambda: training.fit(TASK, [RUN], SETTINGS, stacked=FNNStack), "tasks must be a list"),
    case(lambda: training.fit([TASK], "runs", SETTINGS, stacked=FNNStack), "runs must be a list"),
    case(lambda: fit(runs=[Run(3, LORA, 1e-2)]), r"runs\[0\].task=3 is not an index into 1 tasks"),
    case(lambda: fit(stacked=Trainable), "stacked must be a Stacked subclass"),
    case(lambda: fit(stacked=None), "stacked must be a Stacked subclass, got None", id="stk-None"),
    case(lambda: fit(settings={"steps": 2}), "settings must be FitSettings, got dict"),
    case(lambda: fit(dtype=torch.float16), "dtype must be torch.float32 or torch.float64"),
    case(lambda: fit(dtype="float64"), "dtype must be torch.float32 .* got 'float64'"),
    case(lambda: fit(progress=3), "progress must be a callable .* got int"),
    case(lambda: fit(workers=0), r"workers out of range: need workers ≥ 1, got 0"),
    case(lambda: fit(workers=1.5), "workers must be an integer, got 1.5"),
    case(lambda: fit(device="bogus"), "bogus", id="device-bogus"),
    case(lambda: fit(runs=[Run(0, TFNTrainable(lora_rank=1), 1e-2)]), "must be a Trainable"),
    case(lambda: fit(runs=[Run(0, Trainable(lora_rank=D + 1), 1e-2)]), r"lora_rank out of range"),
    case(
        lambda: fit(tasks=[replace(TASK, input_shape=(D + 1,))]),
        r"tasks\[0\].input_shape is \(5,\) but its frozen FNN has width 4",
    ),
    case(
        lambda: fit(tasks=[replace(TASK, target=lambda x: x[:, :2])]),
        r"tasks\[0\].target must map \(n, 4\) inputs to \(n, 4\) outputs",
        id="target-shape",
    ),
    case(lambda: fit(tasks=[replace(TASK, frozen="net")]), r"must be an FNN, got str"),
    case(
        lambda: fit(tasks=[TASK, experiments.random_task(experiments.Panel("q", 1, 3), D, 0)]),
        r"must share \(width, depth, activation, has_bias\)",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), FIT_CASES)
def test_fit_rejects(call, exc, match):
    check(call, exc, match)


# --- BatchedAdam, lora_init, select_by_validation, the families' build ----------------------------

ENGINE_PARTS = [
    case(lambda: adam(param=torch.zeros(2, 3, dtype=torch.long)), "param must be a floating"),
    case(lambda: adam(param=torch.tensor(1.0)), r"param must be a floating tensor \(C, …\)"),
    case(lambda: adam(mask=torch.ones(2, 3)), "mask must be a boolean tensor, got a torch.float32"),
    case(lambda: adam(mask=torch.ones(3, 2, dtype=torch.bool)), "does not broadcast to param"),
    case(lambda: adam(lr=torch.full((3,), 0.1)), r"lr must be a tensor of shape \(2,\)"),
    case(lambda: adam(lr=torch.tensor([0.1, NAN])), r"lr must be finite and non-negative"),
    case(lambda: adam(wd=torch.tensor([-1.0, 0.0])), r"weight_decay must be finite and non-neg"),
    case(
        lambda: adam(lr=torch.full((2,), 0.1j)),
        "lr must be a tensor .* torch.complex64",
        id="lr-cx",
    ),
    case(lambda: adam(lr=[0.1, 0.1]), r"lr must be a tensor of shape \(2,\), .* got list"),
    case(lambda: training.lora_init("task", 1, 2, (2, D), 0.25), "task must be a training.Task"),
    case(lambda: training.lora_init(TASK, 3, 2, (2, D), 0.25), r"need 0 ≤ rank ≤ 2, got 3"),
    case(lambda: training.lora_init(TASK, -1, 2, (2, D), 0.25), r"rank out of range"),
    case(lambda: training.lora_init(TASK, 1.5, 2, (2, D), 0.25), "rank must be an integer"),
    case(lambda: training.lora_init(TASK, 1, 2, (2, D, 1), 0.25), r"shape must be \(n_matrices"),
    case(lambda: training.lora_init(TASK, 1, 2, None, 0.25), "shape must be a list of integers"),
    case(lambda: training.lora_init(TASK, 1, 2, (2, D), NAN), "init_std must be a finite"),
    case(lambda: training.lora_init(TASK, 1, 10**6, (10**3, D), 1.0), "lora_init asks for"),
    case(lambda: training.select_by_validation(["a"], [0.1, 0.2]), "got 1 keys but 2 validation"),
    case(lambda: training.select_by_validation([["a"]], [0.1]), r"keys\[0\] must be hashable"),
    case(lambda: training.select_by_validation("ab", [0.1, 0.2]), "keys must be a list .* str"),
    case(lambda: training.select_by_validation(["a"], ["x"]), r"val_loss\[0\] must be a real"),
    case(lambda: training.select_by_validation(["a"], None), "val_loss must be a list"),
    case(lambda: FNNStack.build([TASK], [RUN], -1.0, torch.device("cpu"), torch.float64), "init"),
    case(
        lambda: FNNStack.build([TASK], [RUN], 0.25, "cpu", torch.float64),
        "dev must be a torch.device, got str",
    ),
    case(
        lambda: FNNStack.build([TASK], [RUN], 0.25, torch.device("cpu"), torch.int64),
        "dtype must be torch.float32 or torch.float64",
    ),
    case(
        lambda: FNNStack.build([TASK], [None], 0.25, torch.device("cpu"), torch.float64),
        r"runs\[0\] must be a Run, got NoneType",
    ),
    case(
        lambda: TFNStack.build([TASK], [RUN], 0.25, torch.device("cpu"), torch.float64),
        "frozen models of tasks.* must be a TFN, got FNN",
    ),
    case(lambda: Trainable(lora_rank=1).check("4", 2, True), "width must be an integer, got '4'"),
    case(lambda: Trainable(lora_rank=1).check(4, 2, 1), "bias must be a bool, got 1"),
    case(lambda: Trainable(lora_rank=1).n_params(4, 10**12), "depth out of range"),
    case(lambda: TFNTrainable(lora_rank=1).n_params(4, 1, None), "heads must be an integer"),
]


@pytest.mark.parametrize(("call", "exc", "match"), ENGINE_PARTS)
def test_engine_parts_reject(call, exc, match):
    check(call, exc, match)


# --- experiments: run, experiment, budget, Panel, Budget, Experiment, families --------------------

EXPERIMENT_CASES = [
    case(lambda: experiments.run("fig9"), r"unknown experiment 'fig9'; choose one of \['bias'"),
    case(lambda: experiments.run(3), "experiment must be a name or an Experiment, got 3"),
    case(lambda: experiments.run(TINY, "slow"), "mode must be one of", id="run-mode"),
    case(lambda: experiments.run(TINY, budget={"steps": 2}), "budget must be a Budget, got dict"),
    case(lambda: experiments.run(TINY, progress=1), "progress must be a bool, got 1"),
    case(lambda: experiments.run(TINY, device="cuda:7"), "CUDA", id="run-cuda"),
    case(
        lambda: experiments.run(replace(TINY, panels=(replace(PANEL, family="mlp"),))),
        r"unknown model family 'mlp'",
        id="run-family",
    ),
    case(
        lambda: experiments.run(
            replace(TINY, panels=(experiments.Panel("t", 1, 1, methods=("final_layers",)),))
        ),
        r"panel 't': method 'final_layers' has nothing to run \(its sweep is empty",
        id="run-method",
    ),
    case(lambda: experiments.experiment(None), r"unknown experiment None; choose one of"),
    case(lambda: experiments.experiment("FIG1"), r"unknown experiment 'FIG1'"),
    case(lambda: experiments.budget("medium"), "mode must be one of .* got 'medium'"),
    case(lambda: experiments.budget(None), "mode must be one of", id="budget-None"),
    case(lambda: experiments.family("cnn"), r"unknown model family 'cnn'; registered: \["),
    case(lambda: experiments.family(["fnn"]), r"unknown model family \['fnn'\]"),
    case(lambda: experiments.register("fnn"), "register needs a Family, got str"),
    case(
        lambda: experiments.register(experiments.family("fnn")),
        "family 'fnn' is already registered",
    ),
    case(
        lambda: experiments.register(replace(experiments.family("fnn"), name="")),
        "a family's name must be a non-empty string",
    ),
    case(lambda: experiments.unregister("cnn"), r"unknown model family 'cnn'"),
    case(lambda: experiments.random_task("p", D, 0), "panel must be a Panel, got str"),
    case(lambda: experiments.random_task(PANEL, 0, 0), r"width out of range: need 1 ≤ width"),
    case(lambda: experiments.random_task(PANEL, 5000, 0), r"width ≤ 4096, got 5000"),
    case(lambda: experiments.random_task(PANEL, D, -3), r"seed out of range: need seed ≥ 0"),
    case(lambda: experiments.random_task(PANEL, D, 1.0), "seed must be an integer, got 1.0"),
]
SETTING_CASES = [
    case(lambda: experiments.Panel("", 1, 2), "panel name must be a non-empty string"),
    case(lambda: experiments.Panel("a,b", 1, 2), "without commas: 'a,b'"),
    case(lambda: experiments.Panel("p", 0, 2), r"panel 'p': target_depth out of range"),
    case(lambda: experiments.Panel("p", 3, 2), r"panel 'p': need 1 ≤ L̄ ≤ L, got 3, 2"),
    case(lambda: experiments.Panel("p", 1, 2.0), r"panel 'p': depth must be an integer, got 2.0"),
    case(lambda: experiments.Panel("p", 1, 2, family=None), "family must be a non-empty string"),
    case(lambda: experiments.Panel("p", 1, 2, bias=1), "panel 'p': bias must be a bool"),
    case(lambda: experiments.Panel("p", 1, 2, bias=False), "tune_bias needs bias=True"),
    case(lambda: experiments.Panel("p", 1, 2, methods=()), "methods must contain at least one"),
    case(lambda: experiments.Panel("p", 1, 2, methods=("sgd",)), r"methods\[0\] must be one of"),
    case(lambda: experiments.Panel("p", 1, 2, methods="gradient"), "methods must be a list"),
    case(
        lambda: experiments.Panel("p", 1, 2, methods=("gradient", "gradient")),
        "methods repeat a method",
    ),
    case(lambda: experiments.Panel("p", 1, 2, options=(("heads",),)), r"options\[0\] must be a"),
    case(lambda: experiments.Panel("p", 1, 2, options=(("h", [2]),)), "must have a hashable"),
    case(lambda: PANEL.option(["heads"]), r"option name must be a string, got \['heads'\]"),
    case(lambda: replace(BUDGET, steps=0), r"budget steps out of range: need 1 ≤ budget steps"),
    case(lambda: replace(BUDGET, seeds=(0, 0)), r"budget seeds repeat a seed: \(0, 0\)"),
    case(lambda: replace(BUDGET, seeds=()), "budget seeds must contain at least one"),
    case(lambda: replace(BUDGET, seeds=(-1,)), r"budget seeds\[0\] out of range"),
    case(lambda: replace(BUDGET, lrs=(NAN,)), r"budget lrs\[0\] must be a finite number, got nan"),
    case(lambda: replace(BUDGET, lrs=(0.0,)), r"budget lrs\[0\] must be positive"),
    case(lambda: replace(BUDGET, lrs=0.01), "budget lrs must be a list of numbers, got float"),
    case(lambda: replace(BUDGET, weight_decays=(-1.0,)), r"weight_decays\[0\] must be non-neg"),
    case(lambda: replace(BUDGET, n_test=0), r"budget n_test out of range: need 1 ≤ budget n_test"),
    case(lambda: replace(BUDGET, batch_size=True), "budget batch_size must be an integer"),
    case(lambda: replace(TINY, name=""), "experiment name must be a non-empty string"),
    case(lambda: replace(TINY, panels=()), r"experiment 'tiny': panels must contain at least"),
    case(lambda: replace(TINY, panels=("p",)), r"experiment 'tiny': panels\[0\] must be a Panel"),
    case(lambda: replace(TINY, panels=(PANEL, PANEL)), r"panel names repeat: \['p', 'p'\]"),
    case(lambda: replace(TINY, width=0), r"experiment 'tiny': width out of range"),
    case(lambda: replace(TINY, ranks=(-1,)), r"experiment 'tiny': ranks\[0\] out of range"),
    case(lambda: replace(TINY, ranks=[1.5]), r"experiment 'tiny': ranks\[0\] must be an integer"),
    case(lambda: replace(TINY, quick="quick"), "experiment 'tiny': quick must be a Budget"),
    case(lambda: replace(TINY, quick_ranks=(-1,)), r"quick_ranks\[0\] out of range"),
    case(lambda: TINY.budget("medium"), "mode must be one of", id="experiment-budget"),
    case(lambda: TINY.in_mode(None), "mode must be one of", id="experiment-in-mode"),
]


@pytest.mark.parametrize(("call", "exc", "match"), EXPERIMENT_CASES + SETTING_CASES)
def test_experiments_reject(call, exc, match):
    check(call, exc, match)


# --- results: read_csv, write_csv, median_curve; plots: plot_mse_vs_rank --------------------------


def bad_file(tmp_path, content: bytes):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    return path


RESULT_CASES = [
    case(lambda tmp: experiments.read_csv(None), r"path must be a file path .* got None"),
    case(lambda tmp: experiments.read_csv(3), "path must be a file path .* got 3", id="read-int"),
    case(lambda tmp: experiments.read_csv(""), "path must be a file path .* got ''"),
    case(lambda tmp: experiments.read_csv(tmp / "none.csv"), "none.csv", FileNotFoundError),
    case(lambda tmp: experiments.read_csv(tmp), "Is a directory", IsADirectoryError),
    case(lambda tmp: experiments.read_csv(bad_file(tmp, b"")), r"bad\.csv: empty file"),
    case(
        lambda tmp: experiments.read_csv(bad_file(tmp, b"a,b\n")),
        r"bad\.csv, line 1: expected columns panel,method",
    ),
    case(lambda tmp: experiments.read_csv(bad_file(tmp, b"\xff\xfe")), "not UTF-8 text"),
    case(lambda tmp: experiments.write_csv(ROWS, None), "path must be a file path .* got None"),
    case(lambda tmp: experiments.write_csv(None, tmp / "x.csv"), "rows must be an iterable of"),
    case(lambda tmp: experiments.write_csv("rows", tmp / "x.csv"), "rows must be an iterable"),
    case(
        lambda tmp: experiments.write_csv([("p", "gradient", 1, 0, 0.5, 16)], tmp / "x.csv"),
        r"x\.csv not written: row 1 of 1, expected a Row, got tuple",
    ),
    case(
        lambda tmp: experiments.write_csv([replace(ROWS[0], test_mse=INF)], tmp / "x.csv"),
        "column test_mse: expected a finite float >= 0 or NaN, got inf",
    ),
    case(
        lambda tmp: experiments.write_csv(ROWS, experiments.write_csv(ROWS, tmp / "f") / "x.csv"),
        "f",
        FileExistsError,
        id="write-under-a-file",
    ),
    case(lambda tmp: experiments.median_curve(None, "p", "gradient"), "rows must be a list of"),
    case(lambda tmp: experiments.median_curve([None], "p", "gradient"), r"rows\[0\] must be a Row"),
    case(lambda tmp: experiments.median_curve(ROWS, "p", "gradient", x="seed"), "x must be one"),
    case(lambda tmp: experiments.median_curve(7, "p", "gradient"), "rows must be a list .* int"),
    case(lambda tmp: experiments.plot_mse_vs_rank(None), "rows must be a list of result Rows"),
    case(lambda tmp: experiments.plot_mse_vs_rank([1]), r"rows\[0\] must be a Row, got int"),
    case(lambda tmp: experiments.plot_mse_vs_rank([]), "no rows to plot"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, ["q"]), r"no rows for panels \['q'\]"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, "p"), r"panels must be a list .* str"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, [1]), r"panels\[0\] must be a panel name"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, x="seed"), "x must be one of"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, threshold=-1), "threshold out of range"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, threshold=2.5), "threshold must be an"),
    case(
        lambda tmp: experiments.plot_mse_vs_rank(ROWS, threshold={"p": NAN}),
        r"threshold\['p'\] must be an integer, got nan",
    ),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, titles=["t"]), "titles must be a mapping"),
    case(lambda tmp: experiments.plot_mse_vs_rank(ROWS, axes=[None]), r"axes\[0\] must be a matp"),
    case(
        lambda tmp: experiments.plot_mse_vs_rank(ROWS, axes=list(plt.subplots(1, 2)[1])),
        "got 2 axes for 1 panels",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), RESULT_CASES)
def test_results_and_plots_reject(call, exc, match, tmp_path):
    try:
        check(lambda: call(tmp_path), exc, match)
    finally:
        plt.close("all")


def test_median_curve_of_none_is_a_value_error_not_a_type_error():
    """The known bug: ``median_curve(None, …)`` raised ``TypeError`` from iterating ``None``."""
    with pytest.raises(ValueError, match="rows must be a list of result Rows, got NoneType"):
        experiments.median_curve(None, "p", "gradient")


def test_constructions_of_the_families_reject_a_task_of_another_family():
    tfn_panel = experiments.Panel("t", 1, 1, family="tfn", options=(("heads", 1), ("tokens", 3)))
    tfn_task = experiments.random_task(tfn_panel, D, 0)
    fam = experiments.family("fnn")
    with pytest.raises(ValueError, match="target must be an FNN, got TFN"):
        fam.construct(tfn_task, 1)
    with pytest.raises(ValueError, match=r"task must be a training\.Task, got FNN"):
        fam.construct(fnn.FNN.random(D, 1, torch.Generator()), 1)
    with pytest.raises(ValueError, match="target must be a TFN, got FNN"):
        experiments.family("tfn").construct(TASK, 1)
    with pytest.raises(
        ValueError, match=r"panel 'p': Theorem 7 needs target_depth == depth, got 1 and 2"
    ):
        experiments.family("tfn").random_task(replace(PANEL, family="tfn"), D, 0)
    assert np.isfinite(float(fam.construct(TASK, D)(torch.zeros(1, D)).sum()))
