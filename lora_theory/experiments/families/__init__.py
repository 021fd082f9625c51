"""The family registry: how a model family joins the experiments, in one declaration.

A :class:`Family` says, for one kind of model (linear, FNN, …), how to draw a panel's random task,
how to build the analytic construction, which trainable sets each trained method sweeps, which
panels can share one batched fit (the shape key), and the family's stacked form for the engine.
:class:`~lora_theory.experiments.settings.Panel` names its family; the runners and the CLI look it
up here and never branch on the family. A new chapter registers its family with :func:`register`
(in its own module) and needs no edit of the engine or the runners.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ...training import Stacked, Task

if TYPE_CHECKING:
    from ..settings import Experiment, Panel

#: ``(experiment, panel) → [(rank column, trainable spec), …]`` for one trained method.
Sweep = Callable[["Experiment", "Panel"], list[tuple[int, Hashable]]]


@dataclass(frozen=True)
class Family:
    """One model family's declaration.

    * ``random_task(panel, width, seed)`` — the panel's random target and frozen model for a seed
      (a :class:`~lora_theory.training.Task`);
    * ``construct(task, rank)`` — the analytic rank-``rank`` adaptation (a callable model); it
      may not look at any data of the task (e.g. an FNN construction's box is fixed in advance);
    * ``sweeps`` — for each trained method (``"gradient"``, ``"final_layers"``, …) the
      ``(rank column, trainable spec)`` pairs it runs;
    * ``shape_key(panel)`` — panels with equal keys train in one batched fit;
    * ``stacked`` — the :class:`~lora_theory.training.Stacked` form;
    * ``n_params(width, panel, spec)`` — trainable parameters of a spec (``spec=None``: the
      construction at ``rank``, see ``construction_spec``);
    * ``construction_spec(panel, rank)`` — the trainable spec whose count a construction row
      reports (what the construction tunes);
    * ``pretrain_spec(panel)`` — the spec that trains every parameter (the "pretrained" protocol);
    * ``threshold(panel, width)`` — the rank at which the construction becomes exact for random
      models.

    Introduced in :ref:`sec-fig1`.
    """

    name: str
    random_task: Callable[[Panel, int, int], Task]
    construct: Callable[[Task, int], Callable[[torch.Tensor], torch.Tensor]]
    sweeps: Mapping[str, Sweep]
    shape_key: Callable[[Panel], Hashable]
    stacked: type[Stacked]
    n_params: Callable[[int, Panel, Any], int]
    construction_spec: Callable[[Panel, int], Any]
    pretrain_spec: Callable[[Panel], Any]
    threshold: Callable[[Panel, int], int]


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` to ``FAMILIES`` (a new name only) and return it.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(family, Family):
        raise ValueError(f"register needs a Family, got {type(family).__name__}")
    if not isinstance(family.name, str) or not family.name:
        raise ValueError(f"a family's name must be a non-empty string, got {family.name!r}")
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove the family ``name`` (tests register toy families and remove them again).

    Introduced in :ref:`sec-fig1`.
    """
    FAMILIES.pop(family(name).name)


def family(name: str) -> Family:
    """The registered family ``name``; ``ValueError`` naming the valid choices otherwise.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; registered: {sorted(FAMILIES)}")
    return FAMILIES[name]


from . import fnn as _fnn  # noqa: E402  (registers "linear" and "fnn")
from . import tfn as _tfn  # noqa: E402  (registers "tfn")

__all__ = ["FAMILIES", "Family", "Sweep", "family", "register", "unregister"]
del _fnn, _tfn
