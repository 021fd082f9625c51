r"""Full-batch gradient descent and Adam on the matrix problem ``min_{B, A} ‖W₀ + s B A − W̄‖_F²``,
vectorised over seeds (and step sizes), for comparing initialisations fairly.

With ``E = W̄ − W₀`` (per run: PiSSA changes it) and ``Res = s B A − E`` the loss is
``‖Res‖_F²`` and its gradients are ``∇_B = 2s Res Aᵀ``, ``∇_A = 2s Bᵀ Res`` (closed form, no
autograd). ``n`` runs are stacked on a leading dimension: ``E`` ``(n, D, D)`` (or one ``(D, D)``
shared), ``B`` ``(n, D, r)``, ``A`` ``(n, r, D)``. A run whose loss becomes non-finite is marked
diverged: its curve reads ``inf`` from then on.

Introduced in :ref:`ch-allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch

from .. import checks
from ..checks import ArrayLike
from .inits import Start, lora_scale

Method = Literal["gd", "adam"]
METHODS: tuple[str, ...] = ("gd", "adam")
#: Adam's defaults, as in ``torch.optim.Adam``.
BETAS = (0.9, 0.999)
EPS = 1e-8


class Stack(NamedTuple):
    """``n`` starts stacked: ``residual`` ``(n, D, D)``, ``B`` ``(n, D, r)``, ``A`` ``(n, r, D)``.

    Introduced in :ref:`ch-allocation`.
    """

    residual: torch.Tensor
    B: torch.Tensor
    A: torch.Tensor


def stack_starts(starts: Sequence[Start]) -> Stack:
    """Stack :class:`~lora_theory.allocation.inits.Start` s of one shape (e.g. one init, many
    seeds) for :func:`train`.

    Introduced in :ref:`ch-allocation`.
    """
    if isinstance(starts, (str, bytes)) or not isinstance(starts, Sequence) or not starts:
        raise ValueError("starts must be a non-empty list of Start")
    checks.instances(starts, "starts", Start, "a Start (from initialise)")
    shapes = {(st.factors.B.shape, st.factors.A.shape, st.residual.shape) for st in starts}
    if len(shapes) != 1:
        raise ValueError(f"all starts must share one shape, got {sorted(map(str, shapes))}")
    return Stack(
        torch.stack([checks.tensor(st.residual, "residual") for st in starts]),
        torch.stack([checks.tensor(st.factors.B, "B") for st in starts]),
        torch.stack([checks.tensor(st.factors.A, "A") for st in starts]),
    )


def _check_stack(stack: Stack) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(stack, tuple) or len(stack) != 3:
        raise ValueError(
            f"stack must be a Stack (residual, B, A) from stack_starts, got {type(stack).__name__}"
        )
    e, b, a = (checks.tensor(x, n) for x, n in zip(stack, ("residual", "B", "A"), strict=True))
    if b.ndim != 3 or a.ndim != 3 or e.ndim not in (2, 3):
        raise ValueError(
            f"need residual (n, D, D) or (D, D), B (n, D, r), A (n, r, D); got {tuple(e.shape)}, "
            f"{tuple(b.shape)}, {tuple(a.shape)}"
        )
    n, width, r = b.shape
    e = e.expand(n, width, width) if e.ndim == 2 else e
    if a.shape != (n, r, width) or e.shape != (n, width, width):
        raise ValueError(
            f"shapes disagree: residual {tuple(e.shape)}, B {tuple(b.shape)}, A {tuple(a.shape)}"
        )
    return e, b, a


def _rates(lr: float | ArrayLike, n: int) -> torch.Tensor:
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        lr = torch.full((n,), checks.real(lr, "lr", positive=True), dtype=torch.float64)
    rates = checks.tensor(lr, "lr")
    if rates.shape != (n,) or not (rates > 0).all():
        raise ValueError(f"lr must be a positive number or a positive ({n},) tensor")
    return rates[:, None, None]


def train(
    stack: Stack,
    method: Method,
    lr: float | ArrayLike,
    steps: int,
    alpha: float | None = None,
) -> torch.Tensor:
    """Loss curves ``‖s B_t A_t − E‖_F²``, ``t = 0..steps``, shape ``(n, steps + 1)``.

    ``method="gd"``: ``θ ← θ − lr ∇θ``; ``"adam"``: ``torch.optim.Adam``'s update (betas
    ``(0.9, 0.999)``, ``eps = 1e-8``, bias-corrected) on ``B`` and ``A``. ``lr``: one step size or
    one per run ``(n,)``; ``s = α / r`` or ``1`` (``alpha=None``). Diverged runs read ``inf``.

    Introduced in :ref:`ch-allocation`.
    """
    e, b, a = _check_stack(stack)
    method = checks.choice(method, "method", METHODS)  # type: ignore[assignment]
    steps = checks.integer(steps, "steps", low=0)
    checks.elements((b.shape[0], steps + 1), "the loss curves")
    rates = _rates(lr, b.shape[0])
    s = lora_scale(max(b.shape[2], 1), alpha)
    b, a = b.clone(), a.clone()
    moments = [torch.zeros_like(b), torch.zeros_like(a), torch.zeros_like(b), torch.zeros_like(a)]
    curves = torch.empty(b.shape[0], steps + 1, dtype=torch.float64)
    for t in range(steps + 1):
        res = s * b @ a - e
        curves[:, t] = (res**2).sum(dim=(1, 2))
        if t == steps:
            break
        gb, ga = 2 * s * res @ a.mT, 2 * s * b.mT @ res
        if method == "gd":
            b, a = b - rates * gb, a - rates * ga
            continue
        beta1, beta2 = BETAS
        bc1, bc2 = 1 - beta1 ** (t + 1), math.sqrt(1 - beta2 ** (t + 1))
        new = []
        for k, (p, g) in enumerate(((b, gb), (a, ga))):
            moments[k] = moments[k].lerp(g, 1 - beta1)
            moments[k + 2] = beta2 * moments[k + 2] + (1 - beta2) * g * g
            new.append(p - rates / bc1 * moments[k] / (moments[k + 2].sqrt() / bc2 + EPS))
        b, a = new
    bad = ~torch.isfinite(curves)
    return curves.masked_fill(bad.cummax(dim=1).values, math.inf)


def loss_floor(stack: Stack) -> torch.Tensor:
    """The lowest loss any ``(B, A)`` of inner dimension ``r`` can reach on each run,
    ``Σ_{i>r} σ_i(E_n)²`` (Eckart–Young–Mirsky; the scale ``s`` does not change it), shape ``(n,)``.
    For PiSSA it is computed on its own residual ``E + LR_r(W₀)``, not on ``E``.

    Introduced in :ref:`ch-allocation`.
    """
    e, b, _ = _check_stack(stack)
    return (torch.linalg.svdvals(e)[:, b.shape[2] :] ** 2).sum(dim=1)


class Tuned(NamedTuple):
    """A step-size search: the chosen ``lr``, its curves ``(n, steps + 1)``, and the final losses
    of every grid point ``(len(grid), n)``.

    Introduced in :ref:`ch-allocation`.
    """

    lr: float
    curves: torch.Tensor
    finals: torch.Tensor


def tune_step_size(
    stack: Stack,
    method: Method,
    grid: Sequence[float],
    steps: int,
    alpha: float | None = None,
) -> Tuned:
    """Run :func:`train` for every step size of ``grid`` (all runs at once) and keep the one with
    the lowest **median final loss over the runs** (diverged runs count as ``inf``; ties: the
    earlier grid point).

    Introduced in :ref:`ch-allocation`.
    """
    e, b, a = _check_stack(stack)
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or not grid:
        raise ValueError(f"grid must be a non-empty list of step sizes, got {grid!r}")
    rates = [checks.real(g, f"grid[{k}]", positive=True) for k, g in enumerate(grid)]
    n, k = b.shape[0], len(rates)
    big = Stack(e.repeat(k, 1, 1), b.repeat(k, 1, 1), a.repeat(k, 1, 1))
    lr = torch.tensor(rates, dtype=torch.float64).repeat_interleave(n)
    curves = train(big, method, lr, steps, alpha).reshape(k, n, steps + 1)
    finals = curves[:, :, -1]
    medians = finals.median(dim=1).values  # lower median: inf only if over half diverged
    best = int(torch.argmin(medians))  # first minimum
    return Tuned(rates[best], curves[best], finals)


class Correlation(NamedTuple):
    """Pearson and Spearman correlation of two samples.

    Introduced in :ref:`ch-allocation`.
    """

    pearson: float
    spearman: float


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / torch.sqrt((x * x).sum() * (y * y).sum()))


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean of their positions)."""
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(x.numel(), dtype=torch.float64)
    _, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.bincount(inverse).to(torch.float64)
    return (sums / counts)[inverse]


def gradient_loss_correlation(
    grad_norms: ArrayLike, final_losses: ArrayLike, log_loss: bool = True
) -> Correlation:
    """Correlation between initial gradient norm and final loss over runs (seeds × inits), both
    ``(n,)`` with ``n ≥ 3``; ``log_loss`` correlates with ``log10`` of the final loss (losses must
    then be positive). A negative value means larger initial gradients went with lower losses.

    Introduced in :ref:`ch-allocation`.
    """
    g = checks.tensor(grad_norms, "grad_norms").flatten()
    loss = checks.tensor(final_losses, "final_losses").flatten()
    if g.numel() != loss.numel() or g.numel() < 3:
        raise ValueError(f"need ≥ 3 paired values, got {g.numel()} and {loss.numel()}")
    if log_loss:
        if not (loss > 0).all():
            raise ValueError("final_losses must be positive for log_loss=True")
        loss = torch.log10(loss)
    if float(g.std()) == 0 or float(loss.std()) == 0:
        raise ValueError("a constant sample has no correlation")
    return Correlation(_pearson(g, loss), _pearson(_ranks(g), _ranks(loss)))
