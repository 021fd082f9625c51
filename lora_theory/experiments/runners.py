"""Run one of the paper's experiments: one code path for the book, the CLI and the benchmarks.

For every panel and seed its family builds a :class:`~lora_theory.training.Task` (random, or
pretrained); ``construction`` rows evaluate the family's analytic adapters on the task's test set;
the trained methods (``gradient`` for LoRA, ``final_layers`` for final-layer tuning, …) come from
:func:`lora_theory.training.fit`, all runs of one shape key trained as one batch over ranks × seeds
× learning rates × weight decays, then the paper's model selection: per (panel, method, rank,
seed) the grid point with the smallest validation MSE. A diverged run has a NaN validation loss,
so selection prefers any grid point that did not diverge; if all diverged, the row's ``test_mse``
is NaN.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from itertools import product as cartesian

import torch
from tqdm import tqdm

from ..runtime import device as resolve_device
from ..runtime import generator
from ..runtime import mode as resolve_mode
from ..training import FitSettings, Run, Task, fit, select_by_validation
from ..training.objectives import TASKS, Objective
from .budgets import PRETRAINING, Budget
from .families import family
from .results import Row
from .settings import METHODS, Experiment, Panel
from .settings import experiment as lookup
from .tasks import build_tasks, shape_key

Progress = Callable[[int], None]


def _trained(panel: Panel) -> list[str]:
    """The panel's trained methods (all but ``construction``), checked against its family."""
    sweeps = family(panel.family).sweeps
    methods = [m for m in panel.methods if m != "construction"]
    unknown = [m for m in methods if m not in sweeps]
    if unknown:
        raise ValueError(
            f"panel {panel.name!r}: family {panel.family!r} cannot run {unknown}; "
            f"it trains {sorted(sweeps)}"
        )
    return methods


def _score(mse: float) -> float:
    """A row's ``test_mse``: NaN (the mark of a diverged run) for any non-finite value."""
    return mse if math.isfinite(mse) else math.nan


def fit_settings(exp: Experiment, work: Budget, panel: Panel) -> FitSettings:
    """The :class:`~lora_theory.training.FitSettings` of ``panel``'s gradient runs: ``work``'s
    budget with the panel's task (loss), fixed training set, and the experiment's iterate,
    curve and shift settings.

    Introduced in :ref:`ch-partitions-depth`.
    """
    loss, groups = TASKS[panel.task]
    return FitSettings(
        steps=work.steps,
        batch_size=panel.n_train or work.batch_size,
        n_val=work.n_val,
        n_test=work.n_test,
        eval_every=work.eval_every,
        n_train=panel.n_train,
        keep=exp.keep,
        loss=loss,
        output_groups=groups,
        curve_every=exp.curve_every,
        test_shift=exp.test_shift,
    )


def _measure(model: Callable, x: torch.Tensor, y: torch.Tensor, goal: Objective) -> dict:
    """MSE (raw outputs), loss and, for a classifier, accuracy of ``model`` on ``(x, y)``."""
    pred = model(x)[None]
    out = {"mse": _score(float((pred[0] - y).square().mean()))}
    out["loss"] = _score(float(goal.value(pred, y[None])[0]))
    if goal.classifies:
        out["accuracy"] = float(goal.accuracy(pred, y[None])[0])
    return out


def construction_rows(
    exp: Experiment, work: Budget, tasks: dict[tuple[str, int], Task]
) -> list[Row]:
    """Test MSE of the analytic adapters for every panel with ``construction``, rank and seed;
    with the panel's settings also its accuracy, its loss on the gradient runs' fixed training
    set and its shifted-test MSE and accuracy (the construction itself never sees data).

    Introduced in :ref:`sec-fig1`.
    """
    rows = []
    for p in exp.panels:
        if "construction" not in p.methods:
            continue
        fam, settings = family(p.family), fit_settings(exp, work, p)
        goal = settings.objective
        for s in work.seeds:
            task = tasks[(p.name, s)]
            x, y = task.test_set(work.n_test)
            train = shift = None
            if settings.n_train is not None:  # the points the gradient runs train on
                stream = generator(task.seed, settings.train_stream)
                train = task.sample((settings.n_train,), stream)
            if exp.test_shift is not None:
                shift = task.test_set(work.n_test, exp.test_shift)
            for r in exp.ranks:
                ranks = p.layer_ranks(r, exp.width)
                model = fam.construct(task, ranks)
                test = _measure(model, x, y, goal)
                extra = {"test_accuracy": test.get("accuracy")}
                if train is not None:
                    extra["train_loss"] = _measure(model, *train, goal)["loss"]
                if shift is not None:
                    shifted = _measure(model, *shift, goal)
                    extra["shift_mse"] = shifted["mse"]
                    extra["shift_accuracy"] = shifted.get("accuracy")
                n_params = fam.n_params(exp.width, p, fam.construction_spec(p, ranks))
                rows.append(Row(p.name, "construction", r, s, test["mse"], n_params, **extra))
    return rows


@dataclass
class Plan:
    """The runs of one batched :func:`~lora_theory.training.fit`: its family, tasks and runs, and
    for each run its row key ``(panel, method, rank, seed)`` and trainable parameter count.

    Introduced in :ref:`sec-fig1`.
    """

    family: str
    tasks: list[Task] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    keys: list[tuple[str, str, int, int]] = field(default_factory=list)
    n_params: list[int] = field(default_factory=list)
    settings: FitSettings | None = None

    def task_index(self, task: Task) -> int:
        """Position of ``task`` in :attr:`tasks` (appended on first use; compared by identity)."""
        for i, t in enumerate(self.tasks):
            if t is task:
                return i
        self.tasks.append(task)
        return len(self.tasks) - 1


def plans(
    exp: Experiment, work: Budget, tasks: dict[tuple[str, int], Task]
) -> dict[tuple[Hashable, ...], Plan]:
    """One :class:`Plan` per shape key (:func:`~.tasks.shape_key`) and :func:`fit_settings`:
    ranks × seeds × lr × wd runs.

    Introduced in :ref:`sec-fig1`.
    """
    out: dict[tuple[Hashable, ...], Plan] = {}
    for p in exp.panels:
        fam, settings = family(p.family), fit_settings(exp, work, p)
        for method in _trained(p):
            plan = out.setdefault((shape_key(p), settings), Plan(fam.name, settings=settings))
            for (rank, spec), s in cartesian(fam.sweeps[method](exp, p), work.seeds):
                t = plan.task_index(tasks[(p.name, s)])
                for lr, wd in cartesian(work.lrs, work.weight_decays):
                    plan.runs.append(Run(t, spec, lr, wd))
                    plan.keys.append((p.name, method, rank, s))
                    plan.n_params.append(fam.n_params(exp.width, p, spec))
    return out


def trained_rows(
    exp: Experiment,
    work: Budget,
    tasks: dict[tuple[str, int], Task],
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[Row]:
    """Rows of the trained methods, one batched :func:`fit` per plan, after selection: by
    validation loss, or by validation accuracy (the higher) for a classification task. With
    curves, each selected run also gives one row per recorded step.

    Introduced in :ref:`sec-fig1`.
    """
    rows = []
    for plan in plans(exp, work, tasks).values():
        stacked, settings = family(plan.family).stacked, plan.settings
        assert settings is not None  # plans() sets it
        result = fit(
            plan.tasks, plan.runs, settings, stacked=stacked, device=device, progress=progress
        )
        classifies = settings.objective.classifies
        scores = -result.val_accuracy if classifies else result.best_val
        for key, i in select_by_validation(plan.keys, scores.tolist()).items():
            extra = {"test_accuracy": float(result.test_accuracy[i]) if classifies else None}
            if settings.n_train is not None:
                extra["train_loss"] = _score(float(result.train_loss[i]))
            if settings.test_shift is not None:
                extra["shift_mse"] = _score(float(result.shift_mse[i]))
                extra["shift_accuracy"] = float(result.shift_accuracy[i]) if classifies else None
            row = Row(*key, _score(float(result.test_mse[i])), plan.n_params[i], **extra)
            rows.append(row)
            done = int(result.steps_run[i])
            curve = zip(result.curve_steps.tolist(), result.train_curve[i].tolist(), strict=True)
            for t, v in curve:
                if t <= done:  # the losses the run computed (a stopped run records no more)
                    rows.append(replace(row, step=t, train_loss=_score(v)))
    return rows


def total_steps(exp: Experiment, work: Budget) -> int:
    """Optimiser steps of :func:`run` (pretraining counted at its maximum), for progress bars.

    Introduced in :ref:`sec-fig1`.
    """
    pretrain_shapes = {shape_key(p) for p in exp.panels if p.pretrained}
    train_shapes = {(shape_key(p), fit_settings(exp, work, p)) for p in exp.panels if _trained(p)}
    return PRETRAINING.max_steps * len(pretrain_shapes) + work.steps * len(train_shapes)


def run(
    experiment: str | Experiment,
    mode: str | None = None,
    *,
    budget: Budget | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[Row]:
    """All rows of ``experiment`` (a name of ``settings.EXPERIMENTS`` or an
    :class:`~.settings.Experiment`).

    ``mode`` ``"quick"``/``"full"`` picks the figure's :class:`Budget` (default:
    :func:`~lora_theory.runtime.mode`); ``budget`` overrides it (tests use a tiny one). Rows are
    ordered by
    panel, method, rank, seed. A tqdm progress bar goes to stderr unless ``progress=False``.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be a bool, got {progress!r}")
    resolved = resolve_mode(mode)
    if isinstance(experiment, str):
        experiment = lookup(experiment)
    elif not isinstance(experiment, Experiment):
        raise ValueError(f"experiment must be a name or an Experiment, got {experiment!r}")
    if budget is not None and not isinstance(budget, Budget):
        raise ValueError(f"budget must be a Budget, got {type(budget).__name__}")
    resolve_device(device)  # a bad device fails before any work
    exp = experiment.in_mode(resolved)
    for p in exp.panels:  # unknown families and methods, empty sweeps and bad schedules fail
        for method in _trained(p):  # before any work
            if not family(p.family).sweeps[method](exp, p):
                raise ValueError(
                    f"panel {p.name!r}: method {method!r} has nothing to run (its sweep is empty "
                    f"for ranks {exp.ranks} and depth {p.depth})"
                )
        for r in exp.ranks:
            p.layer_ranks(r, exp.width)
    work = budget if budget is not None else exp.budget(resolved)
    bar = tqdm(
        total=total_steps(exp, work),
        desc=exp.name,
        unit="step",
        file=sys.stderr,
        disable=not progress,
    )
    with bar:
        tasks = build_tasks(exp, work.seeds, device=device, progress=bar.update)
        rows = construction_rows(exp, work, tasks)
        rows += trained_rows(exp, work, tasks, device=device, progress=bar.update)
    panels = [p.name for p in exp.panels]
    return sorted(
        rows, key=lambda r: (panels.index(r.panel), METHODS.index(r.method), r.rank, r.seed)
    )
