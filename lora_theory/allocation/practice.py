r"""Rank allocation in practice: PEFT's LoRA (with a static ``rank_pattern``), PiSSA initialisation
and AdaLoRA on a small network of independent linear layers.

The network has ``M`` frozen ``nn.Linear(D, D, bias=False)`` layers that all read the same input;
layer ``m`` must move from ``W_m`` to ``W̄_m = W_m + E_m``. Trained on the ``D`` inputs
``x = e_1, …, e_D`` (the identity batch), the loss ``Σ_m ‖W'_m − W̄_m‖_F²`` is exactly the loss
that the inputs ``x ~ N(0, I)`` give in expectation (up to the factor ``1``), and rank ``r_m`` in
layer ``m`` can at best leave ``Σ_{i>r_m} σ_i(E_m)²`` (Eckart–Young). So the best *static*
allocation of a budget ``Σ_m r_m`` is :func:`~lora_theory.allocation.optimal_ranks` of the spectra
of ``E_m``, and each method's final loss can be compared with that floor.

``peft`` is imported only when a PEFT model is built (it is not a dependency of the package).

Introduced in :ref:`sec-allocation-practice`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from .. import checks
from .seed import random_orthogonal

Method = Literal["lora", "pissa", "adalora"]
METHODS: tuple[str, ...] = ("lora", "pissa", "adalora")


class Task(NamedTuple):
    """``M`` frozen weights ``(D, D)``, their targets and the discrepancies ``E_m = W̄_m − W_m``.

    Introduced in :ref:`sec-allocation-practice`.
    """

    frozen: list[torch.Tensor]
    targets: list[torch.Tensor]
    discrepancies: list[torch.Tensor]


def spectrum_task(
    decays: Sequence[float], generator: torch.Generator, width: int = 64, sigma_1: float = 1.0
) -> Task:
    """One layer per entry of ``decays``: ``W_m`` with ``N(0, 1/D)`` entries and
    ``E_m = U_m diag(σ_1 d_m^{i−1}) V_mᵀ`` with Haar-random ``U_m``, ``V_m`` (float64). Drawn in the
    order ``W_m, U_m, V_m`` for each layer in turn.

    Introduced in :ref:`sec-allocation-practice`.
    """
    width = checks.integer(width, "width", low=1)
    checks.elements((width, width), "spectrum_task")
    checks.generator(generator)
    sigma_1 = checks.real(sigma_1, "sigma_1", positive=True)
    if isinstance(decays, (str, bytes)) or not isinstance(decays, Sequence) or not decays:
        raise ValueError(f"decays must be a non-empty list of numbers in (0, 1], got {decays!r}")
    frozen, targets, errors = [], [], []
    for m, d in enumerate(decays):
        d = checks.real(d, f"decays[{m}]", positive=True)
        if d > 1:
            raise ValueError(f"decays[{m}] must lie in (0, 1], got {d}")
        w = torch.randn(width, width, generator=generator, dtype=torch.float64) / math.sqrt(width)
        u, v = random_orthogonal(width, generator), random_orthogonal(width, generator)
        e = (u * (sigma_1 * d ** torch.arange(width, dtype=torch.float64))) @ v.T
        frozen.append(w)
        targets.append(w + e)
        errors.append(e)
    return Task(frozen, targets, errors)


@dataclass
class Output:
    """What :class:`ParallelLinear` returns when given targets: the predictions and a ``loss``
    attribute (the attribute AdaLoRA's model adds its orthogonal regularisation to).

    Introduced in :ref:`sec-allocation-practice`.
    """

    prediction: torch.Tensor
    loss: torch.Tensor


class ParallelLinear(nn.Module):
    """``M`` bias-free ``nn.Linear(D, D)`` layers ``layers.0 … layers.{M−1}`` applied to the same
    input ``x`` ``(n, D)``; the output is stacked, ``(M, n, D)``. With ``target`` ``(M, n, D)`` the
    forward returns an :class:`Output` whose loss is the summed squared error.

    Introduced in :ref:`sec-allocation-practice`.
    """

    def __init__(self, weights: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32):
        super().__init__()
        weights = checks.square_list(weights, "weights")
        dtype = checks.dtype(dtype)
        self.layers = nn.ModuleList()
        for w in weights:
            layer = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(w)
            self.layers.append(layer)

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        weight = self.layers[0].weight
        if not isinstance(x, torch.Tensor) or x.dtype != weight.dtype or x.ndim != 2:
            raise ValueError(f"x must be a {weight.dtype} tensor (n, D), got {_describe(x)}")
        checks.shape(x, (None, weight.shape[1]), "x")
        y = torch.stack([layer(x) for layer in self.layers])
        if target is None:
            return y
        if (
            not isinstance(target, torch.Tensor)
            or target.shape != y.shape
            or target.dtype != y.dtype
        ):
            raise ValueError(
                f"target must be a {y.dtype} tensor {tuple(y.shape)}, got {_describe(target)}"
            )
        return Output(y, ((y - target) ** 2).sum())


def _describe(t: object) -> str:
    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}"
    return type(t).__name__


def layer_names(n_layers: int) -> list[str]:
    """The module names PEFT sees: ``["layers.0", …]``.

    Introduced in :ref:`sec-allocation-practice`.
    """
    n_layers = checks.integer(n_layers, "n_layers", 1, checks.MAX_LENGTH)
    return [f"layers.{m}" for m in range(n_layers)]


def peft_model(
    task: Task,
    method: Method,
    ranks: Sequence[int],
    total_step: int = 0,
    init_r: int | None = None,
):
    """A ``peft`` model around :class:`ParallelLinear` (float32) of ``task.frozen``.

    ``"lora"``/``"pissa"``: ``peft.LoraConfig`` with ``rank_pattern`` and ``alpha_pattern`` set
    to ``ranks`` (so the scale ``α/r`` is ``1`` in every layer), ``init_lora_weights`` ``True``
    (``B = 0``) or ``"pissa"`` (the adapter starts at ``LR_r(W_m)``, the frozen weight becomes the
    residual); layers with rank ``0`` are not adapted. ``"adalora"``: ``peft.AdaLoraConfig`` with
    ``target_r = Σ ranks / M`` (the same total budget, which AdaLoRA pools over the layers),
    ``init_r`` (default ``2 · target_r``), ``tinit = total_step // 10``,
    ``tfinal = total_step // 5``, ``deltaT = 5``, ``lora_alpha = init_r``.

    Introduced in :ref:`sec-allocation-practice`.
    """
    import peft

    checks.instance(task, "task", Task, "a practice.Task (from spectrum_task)")
    method = checks.choice(method, "method", METHODS)  # type: ignore[assignment]
    names = layer_names(len(task.frozen))
    ranks = list(checks.integers(ranks, "ranks", low=0))
    if len(ranks) != len(names) or not any(ranks):
        raise ValueError(f"ranks must list {len(names)} ranks, not all 0; got {ranks}")
    base = ParallelLinear(task.frozen)
    if method == "adalora":
        total_step = checks.integer(total_step, "total_step", low=1)
        if sum(ranks) % len(names):
            raise ValueError(f"AdaLoRA needs a budget divisible by M={len(names)}, got {ranks}")
        target_r = sum(ranks) // len(names)
        init_r = 2 * target_r if init_r is None else checks.integer(init_r, "init_r", low=1)
        config = peft.AdaLoraConfig(
            init_r=init_r,
            target_r=target_r,
            tinit=total_step // 10,
            tfinal=total_step // 5,
            deltaT=5,
            lora_alpha=init_r,
            total_step=total_step,
            target_modules=names,
        )
    else:
        used = {n: r for n, r in zip(names, ranks, strict=True) if r > 0}
        config = peft.LoraConfig(
            r=max(used.values()),
            lora_alpha=max(used.values()),
            rank_pattern=used,
            alpha_pattern=used,
            target_modules=list(used),
            init_lora_weights="pissa" if method == "pissa" else True,
        )
    return peft.get_peft_model(base, config)


def effective_weights(model: nn.Module, width: int) -> list[torch.Tensor]:
    """The weights ``W'_m`` the (PEFT-wrapped) :class:`ParallelLinear` applies, read off its output
    on the identity batch (``y = x W'ᵀ``), float64.

    Introduced in :ref:`sec-allocation-practice`.
    """
    checks.instance(model, "model", nn.Module, "a torch.nn.Module (from peft_model)")
    width = checks.integer(width, "width", low=1)
    checks.elements((width, width), "effective_weights")
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        y = model(torch.eye(width, dtype=dtype))
    return [w.T.to(torch.float64) for w in y]


def layer_losses(model: nn.Module, task: Task) -> torch.Tensor:
    """``‖W'_m − W̄_m‖_F²`` per layer, shape ``(M,)``, float64.

    Introduced in :ref:`sec-allocation-practice`.
    """
    checks.instance(task, "task", Task, "a practice.Task (from spectrum_task)")
    width = task.targets[0].shape[0]
    return torch.stack(
        [
            torch.linalg.matrix_norm(w - t) ** 2
            for w, t in zip(effective_weights(model, width), task.targets, strict=True)
        ]
    )


def adalora_ranks(model: nn.Module) -> list[int]:
    """The ranks AdaLoRA left in each layer: the non-zero entries of each ``lora_E`` (its
    singular values ``Λ``), in layer order.

    Introduced in :ref:`sec-allocation-practice`.
    """
    checks.instance(model, "model", nn.Module, "a torch.nn.Module (from peft_model)")
    return [int((p != 0).sum()) for n, p in model.named_parameters() if "lora_E" in n]


def fit(model: nn.Module, task: Task, steps: int, lr: float, adalora: bool = False) -> torch.Tensor:
    """Full-batch Adam on the identity batch for ``steps`` steps; returns the loss
    ``Σ_m ‖W'_m − W̄_m‖_F²`` before each step and after the last, ``(steps + 1,)``, float64.

    With ``adalora=True`` the loss is computed through AdaLoRA's model (which adds its orthogonal
    regularisation; the returned curve excludes it) and ``update_and_allocate(step)`` is called
    after every ``optimizer.step()``, as PEFT's documentation prescribes.

    Introduced in :ref:`sec-allocation-practice`.
    """
    checks.instance(model, "model", nn.Module, "a torch.nn.Module (from peft_model)")
    checks.instance(task, "task", Task, "a practice.Task (from spectrum_task)")
    steps = checks.integer(steps, "steps", 0, checks.MAX_LENGTH)
    lr = checks.real(lr, "lr", positive=True)
    if not isinstance(adalora, bool):
        raise ValueError(f"adalora must be a bool, got {adalora!r}")
    if adalora and not hasattr(getattr(model, "base_model", None), "update_and_allocate"):
        raise ValueError("adalora=True needs an AdaLoRA model (peft_model(task, 'adalora', …))")
    width = task.targets[0].shape[0]
    dtype = next(model.parameters()).dtype
    x = torch.eye(width, dtype=dtype)
    target = torch.stack([t.T.to(dtype) for t in task.targets])
    forward = model.base_model if adalora else model
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    curve = torch.empty(steps + 1, dtype=torch.float64)
    for step in range(steps + 1):
        out = forward(x, target)
        curve[step] = float(((out.prediction.detach() - target) ** 2).sum())
        if step == steps:
            break
        out.loss.backward()
        opt.step()
        if adalora:
            model.base_model.update_and_allocate(step)
        opt.zero_grad()
    return curve
