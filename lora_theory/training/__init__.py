"""Batched gradient-based training of adapters, for any model family with a stacked form.

* ``.data`` — :class:`Task`, :class:`Run`, :class:`FitSettings`, :class:`FitResult`,
  :func:`select_by_validation`;
* ``.stacked`` — :class:`Stacked`, the form through which a family joins the engine;
* ``.engine`` — :func:`fit`;
* ``.adam`` — :class:`BatchedAdam`;
* ``.shards`` — CPU sharding.

Training knows nothing about experiments: the families (linear, FNN, …) declare their stacked forms
in ``lora_theory.experiments.families``.

Introduced in :ref:`sec-fig1`.
"""

from ..runtime import generator
from .adam import BatchedAdam
from .data import LORA_INIT_STD, FitResult, FitSettings, Run, Task, select_by_validation
from .engine import fit
from .stacked import Stacked, lora_init

__all__ = [
    "LORA_INIT_STD",
    "BatchedAdam",
    "FitResult",
    "FitSettings",
    "Run",
    "Stacked",
    "Task",
    "fit",
    "generator",
    "lora_init",
    "select_by_validation",
]
