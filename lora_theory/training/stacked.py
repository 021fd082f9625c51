r"""The stacked form through which a model family joins the batched engine.

A family trains ``C`` configurations (ranks × seeds × learning rates × weight decays …) as one
computation by stacking every parameter tensor over a leading config dimension, e.g. LoRA factors
``A: (C, L, R_max, D)``. Runs of different ranks share one shape by padding to ``R_max``; a 0/1
mask marks the trainable entries. The padded rows of ``A`` and columns of ``B`` start at exactly
zero and receive exactly zero gradient (``∂ℓ/∂B_{:,r} = G A_{r,:}ᵀ = 0``,
``∂ℓ/∂A_{r,:} = B_{:,r}ᵀ G = 0``), and the mask keeps Adam from touching them, so each run is
exactly a rank-``R`` run.

A family subclasses :class:`Stacked` and provides three things: ``build`` (its tensors and masks
from the tasks and runs), ``forward`` (the stacked forward pass) and ``model`` (one run's
parameters back as the family's model). Gradients come from autograd
(:meth:`Stacked.loss_and_grad`).

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .. import checks
from ..runtime import generator
from .data import Run, Task
from .objectives import Objective


class Stacked(ABC):
    """``C`` configurations' parameters: the trainable entries in one buffer ``flat: (C, P)``
    (what Adam updates, with a boolean ``mask`` of the same shape), the others in ``fixed``.

    ``index`` ``(C,)`` maps each run to its task, so per-task data ``(T, n, …)`` becomes per-run
    data ``(C, n, …)`` by one gather.

    Introduced in :ref:`sec-fig1`.
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        runs: Sequence[Run],
        dev: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.index = torch.tensor([r.task for r in runs], device=dev)
        self._buffers: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}
        self.names = tuple(tensors)
        self.trained = [n for n in self.names if bool(masks[n].any())]
        if not self.trained:
            raise ValueError("nothing to train: every run's trainable set is empty")
        self.shapes = {n: tensors[n].shape[1:] for n in self.trained}
        self.fixed = {
            n: tensors[n].detach().to(dev, dtype) for n in self.names if n not in self.trained
        }
        self.flat = torch.cat([tensors[n].detach().flatten(1) for n in self.trained], 1)
        self.flat = self.flat.to(dev, dtype)
        self.mask = torch.cat(
            [masks[n].expand(tensors[n].shape).flatten(1) for n in self.trained], 1
        ).to(dev)

    @classmethod
    @abstractmethod
    def build(
        cls,
        tasks: Sequence[Task],
        runs: Sequence[Run],
        init_std: float,
        dev: torch.device,
        dtype: torch.dtype,
    ) -> Stacked:
        """The stacked parameters of ``runs``; raises ``ValueError`` for specs that do not fit."""

    @abstractmethod
    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The outputs ``(C', n, …)`` of ``C'`` configurations on per-run inputs ``(C', n, …)``;
        ``params`` holds ``(C', …)`` tensors (a slice of :meth:`params`)."""

    @staticmethod
    @abstractmethod
    def model(task: Task, run: Run, params: Mapping[str, torch.Tensor]) -> Any:
        """Run ``run``'s model from its unstacked parameters (each without the config dim)."""

    def params(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All tensors, ``(C, …)`` each; the trained ones are views into ``flat`` (default: the
        current buffer), so autograd through them reaches ``flat``."""
        flat = self.flat if flat is None else flat
        sizes = [math.prod(self.shapes[n]) for n in self.trained]
        views = {
            n: p.view(len(flat), *self.shapes[n])
            for n, p in zip(self.trained, flat.split(sizes, dim=1), strict=True)
        }
        return {n: views[n] if n in views else self.fixed[n] for n in self.names}

    def buffer(self, name: str, shape: Sequence[int], dtype: torch.dtype | None = None):
        """The work buffer ``name`` of this shape (allocated on first use, reused after).

        Activations of size ``C × n × …`` allocated afresh every step would be returned to the OS
        and page-faulted back each time; families write them into these buffers instead.
        """
        key = (name, tuple(shape), dtype or self.flat.dtype)
        if key not in self._buffers:
            self._buffers[key] = self.flat.new_empty(key[1], dtype=key[2])
        return self._buffers[key]

    def gather(self, data: torch.Tensor, name: str) -> torch.Tensor:
        """Per-task ``data`` ``(T, n, …)`` → per-run ``(C, n, …)``: each run gets its task's."""
        shape = (len(self.index), *data.shape[1:])
        return torch.index_select(data, 0, self.index, out=self.buffer(name, shape))

    def outputs(
        self, x: torch.Tensor, flat: torch.Tensor | None = None, runs: slice | None = None
    ) -> torch.Tensor:
        """The outputs on per-run inputs ``(C', n, …)`` of the configurations ``runs`` (default:
        all) at the parameters ``flat`` (default: the current buffer)."""
        p = self.params(flat)
        if runs is not None:
            p = {n: t[runs] for n, t in p.items()}
        return self.forward(p, x)

    def mse(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        flat: torch.Tensor | None = None,
        runs: slice | None = None,
    ) -> torch.Tensor:
        """MSE per run (mean over points and outputs) on per-run data ``(C', n, …)``, for the
        configurations ``runs`` (default: all)."""
        pred = self.outputs(x, flat, runs)
        if torch.is_grad_enabled():
            return _MSE.apply(pred, y)
        return _MSE.value(pred.sub_(y))

    def loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        flat: torch.Tensor | None = None,
        objective: Objective | None = None,
    ) -> torch.Tensor:
        """The loss per run on per-run data ``(C, n, …)``: :meth:`mse` without an
        ``objective``, else ``objective.value`` of the outputs."""
        if objective is None:
            return self.mse(x, y, flat)
        return objective.value(self.outputs(x, flat), y)

    def loss_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, objective: Objective | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss ``ℓ_c`` ``(C,)`` (the MSE, or ``objective``'s) and ``∂ℓ_c/∂flat``
        ``(C, P)`` by autograd, on per-task data ``(T, n, …)`` (run ``c`` trains on its task's
        batch).

        Run ``c``'s parameters enter only its own loss, so the gradient of ``Σ_c ℓ_c`` is every
        run's own gradient at once.
        """
        xs, ys = self.gather(x, "x"), self.gather(y, "y")
        flat = self.flat.detach().requires_grad_(True)
        with torch.enable_grad():
            linear_map = None if objective is not None else self.linear_map(self.params(flat))
            if linear_map is None:
                losses = self.loss(xs, ys, flat, objective)
            else:
                losses = _LinearMSE.apply(linear_map, xs, ys, *self._moments(x, y))
            (grad,) = torch.autograd.grad(losses.sum(), flat)
        return losses.detach(), grad

    def linear_map(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The matrices ``M_c`` ``(C', d, D)`` when every configuration's model is the linear map
        ``x ↦ M_c x`` (inputs ``(C', n, D)``), else ``None`` (the default). A family that returns
        them gets the training gradient of the MSE from the data's moments
        (``_LinearMSE``)."""
        return None

    def _moments(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-run ``Σ = XᵀX/n`` ``(C, D, D)`` and ``C = YᵀX/n`` ``(C, d, D)`` of the per-task
        batches ``x`` ``(T, n, D)``, ``y`` ``(T, n, d)``: ``T`` products, then one gather."""
        n = x.shape[1]
        return self.gather(x.mT @ x / n, "xx"), self.gather(y.mT @ x / n, "yx")


class _MSE(torch.autograd.Function):
    """``ℓ_c = ‖f_c − y_c‖² / m`` per config (``m`` entries each), with the one-multiply backward
    ``∂ℓ_c/∂f_c = (2/m) (f_c − y_c)`` (autograd's generic square-and-mean backward spends most
    of a small fit's time on broadcast copies)."""

    @staticmethod
    def value(residual: torch.Tensor) -> torch.Tensor:
        """``‖r_c‖² / m`` per config of the residual ``r``."""
        return torch.linalg.vector_norm(residual.flatten(1), dim=1).square() / residual[0].numel()

    @staticmethod
    def forward(ctx, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        residual = pred - y
        ctx.save_for_backward(residual)
        return _MSE.value(residual)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (residual,) = ctx.saved_tensors
        scale = grad * (2 / residual[0].numel())
        return residual * scale.reshape(-1, *([1] * (residual.ndim - 1))), None


class _LinearMSE(torch.autograd.Function):
    """``ℓ_c = ‖X_c M_cᵀ − Y_c‖² / (n d)`` for linear models ``x ↦ M_c x``, with the backward
    ``∂ℓ_c/∂M_c = (2/d)(M_c Σ_c − C_c)`` from the data's moments ``Σ = XᵀX/n``, ``C = YᵀX/n``
    (the same matrix as autograd's ``(2/(nd)) (X Mᵀ − Y)ᵀ X``): a ``d × D × D`` product per run
    instead of ``n × d × D``. On the Figure 1 sweep (``benchmarks/bench_engine.py``, 2-core
    CPU, ``n = 256``, ``D = d = 16``) the batched engine trains 1.29× the configurations per
    second (1.38× per CPU second) of the same engine with autograd's backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, m: torch.Tensor, x: torch.Tensor, y: torch.Tensor, xx: torch.Tensor, yx: torch.Tensor
    ) -> torch.Tensor:
        residual = torch.baddbmm(y, x, m.mT, beta=-1)  # X Mᵀ − Y
        ctx.save_for_backward(m, xx, yx)
        ctx.width = residual.shape[-1]
        return _MSE.value(residual)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        m, xx, yx = ctx.saved_tensors
        g = torch.baddbmm(yx, m, xx, beta=-1)  # M Σ − C
        return g * (grad * (2 / ctx.width)).reshape(-1, 1, 1), None, None, None, None


def check_runs(tasks: Sequence[Task], runs: Sequence[Run]) -> tuple[list[Task], list[Run]]:
    """``tasks`` and ``runs`` as lists: at least one of each, every run's task an index into
    ``tasks``; ``ValueError`` naming the first bad item otherwise.

    Introduced in :ref:`sec-fig1`.
    """
    tasks = checks.sequence(tasks, "tasks", "Task objects")
    checks.instances(tasks, "tasks", Task, "a Task")
    runs = checks.sequence(runs, "runs", "Run objects")
    checks.instances(runs, "runs", Run, "a Run")
    for i, r in enumerate(runs):
        if r.task >= len(tasks):
            raise ValueError(f"runs[{i}].task={r.task} is not an index into {len(tasks)} tasks")
    return tasks, runs


def check_build(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    init_std: float,
    dev: torch.device,
    dtype: torch.dtype,
) -> tuple[list[Task], list[Run], float]:
    """The arguments of a family's :meth:`Stacked.build`, checked once at its door (the engine
    passes checked ones; a direct call may not): :func:`check_runs`, ``init_std ≥ 0``, a
    ``torch.device`` and a computation dtype.

    Introduced in :ref:`sec-fig1`.
    """
    tasks, runs = check_runs(tasks, runs)
    init_std = checks.real(init_std, "init_std", non_negative=True)
    checks.instance(dev, "dev", torch.device, "a torch.device")
    checks.dtype(dtype)
    return tasks, runs, init_std


def lora_init(
    task: Task, rank: int, r_max: int, shape: tuple[int, ...], init_std: float
) -> torch.Tensor:
    """The paper's random LoRA factor for one run: ``N(0, init_std²)`` entries from the task
    seed's ``"lora-init"`` stream in the first ``rank`` of ``r_max`` rows, zeros after.

    ``shape = (n_matrices, width)``: the result is ``(n_matrices, r_max, width)``, float64. The
    other factor starts at zero, so ``ΔW = 0`` at initialisation.

    Introduced in :ref:`sec-fig1`.
    """
    checks.instance(task, "task", Task, "a training.Task")
    r_max = checks.integer(r_max, "r_max", low=0)
    rank = checks.integer(rank, "rank", 0, r_max)
    shape = checks.integers(shape, "shape", low=1)
    if len(shape) != 2:
        raise ValueError(f"shape must be (n_matrices, width), got {shape}")
    init_std = checks.real(init_std, "init_std", non_negative=True)
    n_mats, width = shape
    checks.elements((n_mats, r_max, width), "lora_init")
    out = torch.zeros(n_mats, r_max, width, dtype=torch.float64)
    gen = generator(task.seed, "lora-init")
    out[:, :rank] = torch.randn(n_mats, rank, width, generator=gen, dtype=torch.float64)
    return out * init_std
