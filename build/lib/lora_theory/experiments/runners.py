"""Run a figure of the paper: one code path for the book, the CLI and the benchmarks.

For every panel and seed a :class:`~lora_theory.training.Task` is built (random, or pretrained);
``construction`` rows evaluate the analytic adapters on the task's test set; ``gradient`` (LoRA)
and ``final_layers`` (FLT) rows come from :func:`lora_theory.training.fit`, all runs of one frozen
shape trained as one batch over ranks × seeds × learning rates × weight decays, then the paper's
model selection: per (panel, method, rank, seed) the grid point with the smallest validation MSE.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from itertools import product as cartesian

import torch
from tqdm import tqdm

from ..runtime import mode as resolve_mode
from ..training import FitSettings, Run, Task, Trainable, fit, select_by_validation
from .constructions import construct
from .results import Row
from .settings import METHODS, PRETRAINING, Budget, Figure, Panel
from .settings import figure as lookup
from .tasks import pretrain, random_task

Progress = Callable[[int], None]

#: How each trained method turns a panel into ``(rank column, what is trained)`` pairs.
TRAINED_METHODS: dict[str, Callable[[Figure, Panel], list[tuple[int, Trainable]]]] = {
    "gradient": lambda fig, p: [
        (r, Trainable(lora_rank=r, tune_bias=p.tune_bias)) for r in fig.ranks
    ],
    "final_layers": lambda fig, p: [(k, Trainable(final_layers=k)) for k in range(1, p.depth)],
}


def _shape(panel: Panel) -> tuple[int, str]:
    """Runs whose frozen models share this key train in one batch."""
    return (panel.depth, panel.activation)


def _trained(panel: Panel) -> list[str]:
    return [m for m in panel.methods if m in TRAINED_METHODS]


def build_tasks(
    fig: Figure,
    seeds: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> dict[tuple[str, int], Task]:
    """``{(panel name, seed): task}``; panels with equal model keys share models and pretraining."""
    random: dict[tuple[Hashable, int], Task] = {}
    for p, s in cartesian(fig.panels, seeds):
        random.setdefault((p.model_key, s), random_task(p, fig.width, s))
    wanted = {(p.model_key, s): _shape(p) for p in fig.panels if p.pretrained for s in seeds}
    pretrained: dict[tuple[Hashable, int], Task] = {}
    for shape in dict.fromkeys(wanted.values()):
        keys = [k for k, v in wanted.items() if v == shape]
        trained = pretrain([random[k] for k in keys], device=device, progress=progress)
        pretrained.update(zip(keys, trained, strict=True))
    return {
        (p.name, s): (pretrained if p.pretrained else random)[(p.model_key, s)]
        for p, s in cartesian(fig.panels, seeds)
    }


def construction_rows(fig: Figure, work: Budget, tasks: dict[tuple[str, int], Task]) -> list[Row]:
    """Test MSE of the analytic adapters for every panel with ``construction``, rank and seed."""
    rows = []
    for p in fig.panels:
        if "construction" not in p.methods:
            continue
        for s in work.seeds:
            task = tasks[(p.name, s)]
            x, y = task.test_set(work.n_test)
            for r in fig.ranks:
                mse = float((construct(task, r, x)(x) - y).square().mean())
                n_params = Trainable(lora_rank=r, tune_bias=p.bias).n_params(
                    fig.width, p.depth, p.bias
                )
                rows.append(Row(p.name, "construction", r, s, mse, n_params))
    return rows


@dataclass
class Plan:
    """The runs of one batched :func:`~lora_theory.training.fit`: its tasks and runs, and for each
    run its row key ``(panel, method, rank, seed)`` and trainable parameter count."""

    tasks: list[Task] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    keys: list[tuple[str, str, int, int]] = field(default_factory=list)
    n_params: list[int] = field(default_factory=list)

    def task_index(self, task: Task) -> int:
        """Position of ``task`` in :attr:`tasks` (appended on first use; compared by identity)."""
        for i, t in enumerate(self.tasks):
            if t is task:
                return i
        self.tasks.append(task)
        return len(self.tasks) - 1


def plans(
    fig: Figure, work: Budget, tasks: dict[tuple[str, int], Task]
) -> dict[tuple[int, str], Plan]:
    """One :class:`Plan` per frozen shape ``(L, activation)``: ranks × seeds × lr × wd runs."""
    out: dict[tuple[int, str], Plan] = {}
    for p in fig.panels:
        for method in _trained(p):
            plan = out.setdefault(_shape(p), Plan())
            for (rank, spec), s in cartesian(TRAINED_METHODS[method](fig, p), work.seeds):
                t = plan.task_index(tasks[(p.name, s)])
                for lr, wd in cartesian(work.lrs, work.weight_decays):
                    plan.runs.append(Run(t, spec, lr, wd))
                    plan.keys.append((p.name, method, rank, s))
                    plan.n_params.append(spec.n_params(fig.width, p.depth, p.bias))
    return out


def trained_rows(
    fig: Figure,
    work: Budget,
    tasks: dict[tuple[str, int], Task],
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[Row]:
    """Rows of the trained methods, one batched :func:`fit` per frozen shape, after selection."""
    settings = FitSettings(
        steps=work.steps,
        batch_size=work.batch_size,
        n_val=work.n_val,
        n_test=work.n_test,
        eval_every=work.eval_every,
    )
    rows = []
    for plan in plans(fig, work, tasks).values():
        result = fit(plan.tasks, plan.runs, settings, device=device, progress=progress)
        for key, i in select_by_validation(plan.keys, result.best_val.tolist()).items():
            rows.append(Row(*key, float(result.test_mse[i]), plan.n_params[i]))
    return rows


def total_steps(fig: Figure, work: Budget) -> int:
    """Optimiser steps of :func:`run` (pretraining counted at its maximum), for progress bars."""
    pretrain_shapes = {_shape(p) for p in fig.panels if p.pretrained}
    train_shapes = {_shape(p) for p in fig.panels if _trained(p)}
    return PRETRAINING.max_steps * len(pretrain_shapes) + work.steps * len(train_shapes)


def run(
    figure: str | Figure,
    mode: str | None = None,
    *,
    budget: Budget | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[Row]:
    """All rows of ``figure`` (a name of :data:`~.settings.FIGURES` or a :class:`Figure`).

    ``mode`` ``"quick"``/``"full"`` picks the figure's :class:`Budget` (default:
    :func:`runtime.mode`); ``budget`` overrides it (tests use a tiny one). Rows are ordered by
    panel, method, rank, seed. A tqdm progress bar goes to stderr unless ``progress=False``.
    """
    resolved = resolve_mode(mode)
    fig = (lookup(figure) if isinstance(figure, str) else figure).in_mode(resolved)
    work = budget if budget is not None else fig.budget(resolved)
    bar = tqdm(
        total=total_steps(fig, work),
        desc=fig.name,
        unit="step",
        file=sys.stderr,
        disable=not progress,
    )
    with bar:
        tasks = build_tasks(fig, work.seeds, device=device, progress=bar.update)
        rows = construction_rows(fig, work, tasks)
        rows += trained_rows(fig, work, tasks, device=device, progress=bar.update)
    panels = [p.name for p in fig.panels]
    return sorted(
        rows, key=lambda r: (panels.index(r.panel), METHODS.index(r.method), r.rank, r.seed)
    )
