"""Targets and frozen models of the experiments: random, or pretrained towards the target.

Seed ``s`` fixes everything: each family draws the random target and frozen model of a panel from
the ``"model"`` stream of ``s``; the pretrained frozen model is that random model trained towards
the target (every parameter, Adam) on the ``"pretrain"`` stream — the paper's "pretrained" setting.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from itertools import product as cartesian

import torch

from ..training import FitSettings, Run, Task, fit
from .budgets import PRETRAINING, Pretraining
from .families import Family, family
from .settings import Experiment, Panel, task_arguments

Progress = Callable[[int], None]


def random_task(panel: Panel, width: int, seed: int) -> Task:
    """The random target and frozen model of ``panel`` for ``seed`` (not pretrained), drawn by
    the panel's family.

    Introduced in :ref:`sec-fig1`.
    """
    panel, width, seed = task_arguments(panel, width, seed)
    return family(panel.family).random_task(panel, width, seed)


def pretrain(
    tasks: Sequence[Task],
    panel: Panel,
    protocol: Pretraining = PRETRAINING,
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[Task]:
    """The tasks with their frozen models pretrained (all parameters, batched over tasks).

    Adam (``lr = protocol.lr``, no weight decay) on every parameter of the frozen model
    (``family.pretrain_spec``), fresh batches of ``protocol.batch_size``, each model stopping on
    its own once its training MSE is below (its first batch's MSE) / ``protocol.ratio``, after at
    most ``protocol.max_steps`` steps. The tasks must share the shape of ``panel``.

    Introduced in :ref:`sec-fig1`.
    """
    fam = family(panel.family)
    spec = fam.pretrain_spec(panel)
    runs = [Run(i, spec, protocol.lr) for i in range(len(tasks))]
    settings = FitSettings(
        steps=protocol.max_steps,
        batch_size=protocol.batch_size,
        n_val=0,
        n_test=0,
        stop_ratio=protocol.ratio,
        train_stream="pretrain",
    )
    result = fit(tasks, runs, settings, stacked=fam.stacked, device=device, progress=progress)
    return [replace(t, frozen=result.model(i)) for i, t in enumerate(tasks)]


def shape_key(panel: Panel) -> tuple[Hashable, ...]:
    """Runs of panels with equal keys train in one batched fit: the family and its shape key.

    Introduced in :ref:`sec-fig1`.
    """
    fam: Family = family(panel.family)
    return (fam.name, fam.shape_key(panel))


def build_tasks(
    exp: Experiment,
    seeds: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> dict[tuple[str, int], Task]:
    """``{(panel name, seed): task}``; panels with equal model keys share models and pretraining.

    Introduced in :ref:`sec-fig1`.
    """
    random: dict[tuple[Hashable, int], Task] = {}
    for p, s in cartesian(exp.panels, seeds):
        random.setdefault((p.model_key, s), random_task(p, exp.width, s))
    wanted = {(p.model_key, s): p for p in exp.panels if p.pretrained for s in seeds}
    pretrained: dict[tuple[Hashable, int], Task] = {}
    for key in dict.fromkeys(shape_key(p) for p in wanted.values()):
        keys = [k for k, p in wanted.items() if shape_key(p) == key]
        trained = pretrain(
            [random[k] for k in keys], wanted[keys[0]], device=device, progress=progress
        )
        pretrained.update(zip(keys, trained, strict=True))
    return {
        (p.name, s): (pretrained if p.pretrained else random)[(p.model_key, s)]
        for p, s in cartesian(exp.panels, seeds)
    }
