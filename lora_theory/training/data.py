"""The data of a fit: the tasks, the runs, the work to do and what comes back.

A :class:`Task` is one adaptation problem of any model family: a target and a frozen model (any
callables on batches), the seed of its random streams and the shape of one input. A :class:`Run`
is one configuration: which task, what is trained (a family-specific, hashable spec that the
family's stacked form interprets), and Adam's learning rate and weight decay. :class:`FitSettings`
is the work of one fit; :class:`FitResult` what it returns.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import checks
from ..runtime import generator
from .objectives import Objective

if TYPE_CHECKING:
    from .stacked import Stacked

#: Most Adam steps a fit accepts (the paper's protocol runs 5000).
MAX_STEPS = 10**8
#: The paper's std of the randomly initialised LoRA factor.
LORA_INIT_STD = 0.25
#: Which parameters a fit keeps: the best validation evaluation's, or the final iterate.
KEEP = ("best", "final")


@dataclass(frozen=True)
class Task:
    """One adaptation problem: ``target`` and ``frozen`` models, ``seed``, ``input_shape``.

    Inputs are ``x ~ N(0, I)`` of shape ``input_shape`` (``(D,)`` for an FNN, ``(D, N)`` for a
    Transformer); labels are ``target(x)``. ``target`` maps a batch ``(n, *input_shape)`` to
    ``(n, *output_shape)``. The family's stacked form reads ``frozen``.

    Introduced in :ref:`sec-fig1`.
    """

    target: Callable[[torch.Tensor], torch.Tensor]
    frozen: Any
    seed: int
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        checks.integer(self.seed, "seed", low=0)
        if not callable(self.target):
            raise ValueError(f"target must be callable, got {type(self.target).__name__}")
        shape = checks.integers(self.input_shape, "input_shape", low=1, empty=True)
        if not shape:
            raise ValueError("input_shape must have at least one dimension, got ()")
        checks.elements(shape, "input_shape")
        object.__setattr__(self, "input_shape", shape)

    def sample(
        self, shape: tuple[int, ...], gen: torch.Generator, scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``x`` of shape ``(*shape, *input_shape)`` from ``gen`` and labels ``f̄(x)``
        (float64, CPU); ``scale`` multiplies the inputs, ``x ~ N(0, scale² I)`` (the paper's
        shifted test set has ``scale = 5``)."""
        shape = checks.integers(shape, "shape", low=0, empty=True)
        checks.elements((*shape, *self.input_shape), "sample")
        checks.generator(gen, "gen")
        scale = checks.real(scale, "scale", positive=True)
        x = torch.randn(*shape, *self.input_shape, generator=gen, dtype=torch.float64)
        if scale != 1.0:
            x = x.mul_(scale)
        n = math.prod(shape)
        y = self.target(x.reshape(-1, *self.input_shape))
        if not isinstance(y, torch.Tensor) or y.ndim < 1 or len(y) != n or y.is_complex():
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"the task's target must map a batch (n, *input_shape) = (n, "
                f"{', '.join(map(str, self.input_shape))}) to a real tensor (n, …); got {got} "
                f"for n = {n}"
            )
        return x, y.reshape(*shape, *y.shape[1:])

    def test_set(self, n: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n``-point test set ``(x, f̄(x))`` of the ``"test"`` stream; with ``scale`` the
        same points times ``scale`` (the shifted test set) and their labels."""
        n = checks.integer(n, "n", low=1)
        return self.sample((n,), generator(self.seed, "test"), scale)


@dataclass(frozen=True)
class Run:
    """One configuration: task index, what is trained, Adam's ``lr`` and ``weight_decay``.

    Introduced in :ref:`sec-fig1`.
    """

    task: int
    trainable: Hashable
    lr: float
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        checks.integer(self.task, "task", low=0)
        try:
            hash(self.trainable)
        except TypeError as exc:
            raise ValueError(
                f"trainable must be hashable (e.g. a frozen dataclass), got {self.trainable!r}"
            ) from exc
        object.__setattr__(self, "lr", checks.real(self.lr, "lr", positive=True))
        wd = checks.real(self.weight_decay, "weight_decay", non_negative=True)
        object.__setattr__(self, "weight_decay", wd)


@dataclass(frozen=True)
class FitSettings:
    """The work of one fit.

    ``steps`` Adam updates on fresh batches of ``batch_size`` points from the ``train_stream`` of
    each task's seed; validation MSE on ``n_val`` points (``"val"`` stream) after every
    ``eval_every``-th update, at the start and at the end (``n_val = 0``: no validation, the final
    parameters are kept); test MSE on ``n_test`` points at the kept parameters (``0``: none).
    ``stop_ratio``: stop a run as soon as its training MSE falls below (its first batch's MSE) /
    ``stop_ratio``. ``chunk``: how many steps of data are drawn at once.

    The defaults are the paper's regression protocol; the other experiments set:

    * ``n_train``: a **fixed** training set of ``n_train`` points drawn once from the
      ``train_stream``, and full-batch Adam on it (``batch_size`` must then equal ``n_train``);
      ``None``: fresh batches every step (the paper's "infinite" stream);
    * ``keep``: which parameters are kept and tested, ``"best"`` (those of the best validation
      evaluation, the paper's ``best_epoch=1``) or ``"final"`` (the final iterate, its
      ``best_epoch=0``; validation is still measured, for the curve and for choosing among runs);
    * ``loss`` (one of :data:`~lora_theory.training.objectives.LOSSES`) and ``output_groups``
      (sum the outputs over that many contiguous groups first, ``0``: none), see
      :class:`~lora_theory.training.objectives.Objective`; with ``loss="cross_entropy"`` the
      kept parameters are those of the best validation **accuracy** (ties: the earlier one);
    * ``curve_every``: record every run's training loss every ``curve_every`` steps (``0``:
      none); these are the losses the updates are computed from, so no extra forward pass;
    * ``test_shift``: also test on the test inputs times ``test_shift`` (the paper's 5×
      distribution shift).

    Introduced in :ref:`sec-fig1`.
    """

    steps: int
    batch_size: int = 256
    n_val: int = 256
    n_test: int = 5000
    eval_every: int = 1
    stop_ratio: float | None = None
    init_std: float = LORA_INIT_STD
    train_stream: str = "train"
    chunk: int = 50
    n_train: int | None = None
    keep: str = "best"
    loss: str = "mse"
    output_groups: int = 0
    curve_every: int = 0
    test_shift: float | None = None

    def __post_init__(self) -> None:
        checks.integer(self.steps, "steps", 0, MAX_STEPS)
        for name in ("n_val", "n_test"):
            checks.integer(getattr(self, name), name, 0, checks.MAX_ELEMENTS)
        for name in ("batch_size", "eval_every", "chunk"):
            checks.integer(getattr(self, name), name, 1, checks.MAX_ELEMENTS)
        if self.stop_ratio is not None and checks.real(self.stop_ratio, "stop_ratio") <= 1:
            raise ValueError(f"stop_ratio must be > 1, got {self.stop_ratio}")
        checks.real(self.init_std, "init_std", non_negative=True)
        if not isinstance(self.train_stream, str) or not self.train_stream:
            raise ValueError(f"train_stream must be a non-empty string, got {self.train_stream!r}")
        if self.n_train is not None:
            checks.integer(self.n_train, "n_train", 1, checks.MAX_ELEMENTS)
            if self.batch_size != self.n_train:
                raise ValueError(
                    f"n_train={self.n_train} trains full-batch on a fixed set: batch_size must "
                    f"equal n_train, got batch_size={self.batch_size}"
                )
        checks.choice(self.keep, "keep", KEEP)
        Objective(self.loss, self.output_groups)  # checks both
        checks.integer(self.curve_every, "curve_every", 0, MAX_STEPS)
        if self.test_shift is not None:
            checks.real(self.test_shift, "test_shift", positive=True)
            if not self.n_test:
                raise ValueError(f"test_shift={self.test_shift} needs a test set, got n_test=0")

    @property
    def objective(self) -> Objective:
        """The training loss: :class:`~lora_theory.training.objectives.Objective`."""
        return Objective(self.loss, self.output_groups)


@dataclass(frozen=True)
class FitResult:
    """What a fit returns; tensors are on the CPU, indexed by run.

    ``best_val`` ``(C,)`` (``inf`` without validation, ``nan`` for a diverged run),
    ``best_step`` ``(C,)`` (updates done at the kept parameters), ``test_mse`` ``(C,)`` (``nan``
    without a test set or for a diverged run), ``val_curve`` ``(C, n_evals)`` at ``eval_steps``,
    ``steps_run`` ``(C,)`` (fewer than ``steps`` after an early stop or a divergence),
    ``final_train_mse`` ``(C,)``, ``diverged`` ``(C,)`` (the training loss became NaN or
    infinite), and the kept parameters ``params`` (name → ``(C, …)``, in the stacked layout of
    the family's :class:`~lora_theory.training.stacked.Stacked` form ``stacked``).

    Added for the later experiments (NaN where not measured): ``train_curve``
    ``(C, n_points)``, the training loss after ``curve_steps`` ``(n_points,)`` updates (with
    ``curve_every``; NaN once a run has stopped); ``train_loss`` ``(C,)``, the loss of the kept
    parameters on the fixed training set (with ``n_train``); ``val_accuracy`` and
    ``test_accuracy`` ``(C,)`` of the kept parameters (with ``loss="cross_entropy"``);
    ``shift_mse`` and ``shift_accuracy`` ``(C,)`` on the shifted test set (with
    ``test_shift``). ``best_val`` is the validation loss (the objective) of the kept
    parameters. ``final_train_mse`` is the last training loss (the objective) computed.

    Introduced in :ref:`sec-fig1`.
    """

    tasks: tuple[Task, ...]
    runs: tuple[Run, ...]
    stacked: type[Stacked]
    best_val: torch.Tensor
    best_step: torch.Tensor
    test_mse: torch.Tensor
    val_curve: torch.Tensor
    eval_steps: torch.Tensor
    steps_run: torch.Tensor
    final_train_mse: torch.Tensor
    diverged: torch.Tensor
    params: dict[str, torch.Tensor]
    train_curve: torch.Tensor
    curve_steps: torch.Tensor
    train_loss: torch.Tensor
    val_accuracy: torch.Tensor
    test_accuracy: torch.Tensor
    shift_mse: torch.Tensor
    shift_accuracy: torch.Tensor

    def model(self, i: int) -> Any:
        """Run ``i``'s kept model, rebuilt by the family (e.g. an ``FNN`` with ``.adapters``)."""
        i = checks.integer(i, "i", 0, len(self.runs) - 1)
        run = self.runs[i]
        return self.stacked.model(
            self.tasks[run.task], run, {k: v[i] for k, v in self.params.items()}
        )


def select_by_validation(
    keys: Sequence[Hashable], val_loss: Sequence[float]
) -> dict[Hashable, int]:
    """For each distinct key, the index of its run with the smallest validation loss.

    The paper's model selection: e.g. keys ``(panel, rank, seed)`` over an lr × wd grid. NaN counts
    as ``+inf``; ties go to the earliest run. Keys appear in order of first occurrence.

    Introduced in :ref:`sec-fig1`.
    """
    keys = checks.sequence(keys, "keys", "hashable keys", empty=True)
    if isinstance(val_loss, torch.Tensor):
        val_loss = val_loss.tolist() if val_loss.ndim else [val_loss.item()]
    values = checks.sequence(val_loss, "val_loss", "validation losses", empty=True)
    if len(keys) != len(values):
        raise ValueError(f"got {len(keys)} keys but {len(values)} validation losses")
    losses = [
        checks.real(v, f"val_loss[{i}]", finite=False) if not _is_nan(v) else math.inf
        for i, v in enumerate(values)
    ]
    for i, key in enumerate(keys):
        try:
            hash(key)
        except TypeError as exc:
            raise ValueError(f"keys[{i}] must be hashable, got {key!r}") from exc
    chosen: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        if key not in chosen or losses[i] < losses[chosen[key]]:
            chosen[key] = i
    return chosen


def _is_nan(v: object) -> bool:
    """True for a real NaN (a diverged run's loss), False for anything else."""
    return isinstance(v, (float, np.floating)) and math.isnan(v)
