r"""Lemma 1's construction for a whole sweep in one call: problems × ranks at once.

:func:`construct_batch` builds the adapters of :func:`~lora_theory.linear.construct` (its
sequential method) for ``n`` problems of one shape ``(L, D)`` and ``m`` rank settings each — the
seeds × ranks of a sweep — with batched SVDs, LU factorizations and solves. What does not depend
on the rank is computed once per problem: the SVD ``E_i = U_i S_i V_iᵀ``, the frozen
factorizations and the solves ``X_{il} = W_{i,l+1}^{-1} ⋯ W_{iL}^{-1} U_i S_i`` of every column
through the frozen layers above layer ``l``. Rank setting ``q`` then only picks columns:
``B_{iql}`` is the block ``J_{ql}`` of columns of ``X_{il}``. Only the solves with the adapted
layers ``W'_{iql}``, which differ per rank, run ``n·m`` times. A problem that repeats the
construction per rank (the paper's code) pays for the SVD and the frozen solves ``m`` times.

Every (problem, rank) passes the residual check of :func:`~lora_theory.linear.construct` before
the batch is returned. Ragged blocks are padded with zeros to the widest. With ``method="auto"``
an entry the batched sequential solution does not certify to ``AUTO_RTOL`` is built again, alone,
by :func:`~lora_theory.linear.construct` with ``method="auto"`` (for deep frozen models: the
conditioned exact solution, see :mod:`lora_theory.conditioned`).

Introduced in :ref:`pf-lemma1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .. import checks
from ..adapters import LoRAFactors, layer_ranks
from ..checks import ArrayLike
from ..linalg import (
    DIFFERENCE_SAFETY,
    SINGULAR_CONDITION,
    AssumptionError,
    ExactnessError,
    exact_rtol,
)
from ..solves import norm2_lower
from .construction import AUTO_RTOL, construct

#: The values of ``method`` that :func:`construct_batch` accepts.
BATCH_METHODS = ("sequential", "auto")


class BatchedAdapters(NamedTuple):
    """The adapters of ``n`` problems × ``m`` rank settings: ``B`` ``(n, m, L, D, r)`` and ``A``
    ``(n, m, L, r, D)``, zero beyond each block's inner dimension ``inner[i, q, l]``
    (``r = max inner``).

    Introduced in :ref:`pf-lemma1`.
    """

    B: torch.Tensor
    A: torch.Tensor
    inner: torch.Tensor

    def problem(self, i: int, q: int = 0) -> list[LoRAFactors]:
        """Problem ``i``'s adapters for rank setting ``q``, ``[(B_1, A_1), …, (B_L, A_L)]``,
        padding removed."""
        i = checks.integer(i, "i", low=0, high=self.B.shape[0] - 1)
        q = checks.integer(q, "q", low=0, high=self.B.shape[1] - 1)
        return [
            LoRAFactors(self.B[i, q, k, :, :r].clone(), self.A[i, q, k, :r].clone())
            for k, r in enumerate(self.inner[i, q].tolist())
        ]

    def deltas(self) -> torch.Tensor:
        """``ΔW = B A`` of every layer, rank setting and problem, ``(n, m, L, D, D)``.

        Introduced in :ref:`pf-lemma1`."""
        return self.B @ self.A


def _inputs(
    targets: ArrayLike, frozen: ArrayLike, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    wbar = checks.tensor(targets, "targets", dtype)
    ws = checks.tensor(frozen, "frozen", dtype)
    if wbar.ndim != 3 or wbar.shape[-1] != wbar.shape[-2] or 0 in wbar.shape:
        raise ValueError(f"targets must be (n, D, D) with n, D ≥ 1, got {tuple(wbar.shape)}")
    n, width = wbar.shape[0], wbar.shape[-1]
    if ws.ndim != 4 or ws.shape[0] != n or ws.shape[1] == 0 or ws.shape[2:] != (width, width):
        raise ValueError(
            f"frozen must be (n, L, D, D) = ({n}, L, {width}, {width}) with L ≥ 1, got "
            f"{tuple(ws.shape)}"
        )
    return wbar, ws


def _chain(ws: torch.Tensor) -> torch.Tensor:
    """``W_L ⋯ W_1`` over the layer axis ``-3``: ``(..., L, D, D)`` → ``(..., D, D)``."""
    out = ws[..., 0, :, :]
    for k in range(1, ws.shape[-3]):
        out = ws[..., k, :, :] @ out
    return out


def construct_batch(
    targets: ArrayLike,
    frozen: ArrayLike,
    ranks: Sequence[object],
    dtype: torch.dtype = torch.float64,
    rtol: float | None = None,
    method: str = "sequential",
) -> BatchedAdapters:
    """Lemma 1's adapters for ``n`` problems of one shape, each at every rank of ``ranks``.

    Shapes: ``targets`` ``(n, D, D)``; ``frozen`` ``(n, L, D, D)`` (layers input first);
    ``ranks`` ``m`` rank settings, each one ``R`` or one list ``[R_1, …, R_L]`` (see
    :func:`~lora_theory.adapters.layer_ranks`). Entry ``(i, q)`` of the result equals
    :func:`~lora_theory.linear.construct` (``method="sequential"``) on problem ``i`` at rank
    ``ranks[q]`` up to round-off, and satisfies ``‖∏_l (W_{il} + B A) − W̄_i‖₂ = σ_{ΣR_l+1}(E_i)``.

    **Self-check.** Raises :class:`~lora_theory.linalg.ExactnessError` (or
    :class:`~lora_theory.linalg.AssumptionError` when a matrix the failing entry solved with is
    numerically singular), naming the first failing (problem, rank), when any entry misses the
    tolerance of :func:`~lora_theory.linear.construct`; nothing is returned then.

    ``method="auto"``: an entry whose batched solution is not certified to ``AUTO_RTOL`` (of
    ``linear.construction``) is replaced by :func:`~lora_theory.linear.construct` with
    ``method="auto"`` on that problem and rank, which checks itself (its errors name the entry).

    Introduced in :ref:`pf-lemma1`.
    """
    dtype = checks.dtype(dtype)
    checks.choice(method, "method", BATCH_METHODS)
    wbar, ws = _inputs(targets, frozen, dtype)
    n, depth, width = ws.shape[0], ws.shape[1], ws.shape[-1]
    settings = checks.sequence(ranks, "ranks", "rank settings")
    per_layer = torch.tensor([layer_ranks(r, depth, width) for r in settings])  # (m, L)
    m = len(settings)
    checks.elements((n, m, depth + 2, width, width), "construct_batch")
    rtol = exact_rtol(dtype) if rtol is None else checks.real(rtol, "rtol", positive=True)
    prod = _chain(ws)
    if not checks.all_finite(wbar - prod):
        raise ValueError(f"the frozen products overflow {dtype}: the entries are too large")
    u, s, vh = torch.linalg.svd(wbar - prod)
    scale = norm2_lower(torch.stack([wbar, prod], 1)).sum(1)  # (n,)
    rank_e = (s > DIFFERENCE_SAFETY * width * torch.finfo(dtype).eps * scale[:, None]).sum(1)
    cum = torch.cat([per_layer.new_zeros(m, 1), per_layer.cumsum(1)], 1)  # (m, L + 1)
    bounds = torch.minimum(cum[None], rank_e[:, None, None])  # (n, m, L + 1)
    # Rank-independent: X_l = W_{l+1}^{-1} ⋯ W_L^{-1} U S for every layer l, all D columns.
    xs = [u * s[:, None, :]]
    for k in range(depth - 1, 0, -1):
        lu, piv, info = torch.linalg.lu_factor_ex(ws[:, k])
        _refuse_zero_pivot(info > 0, f"W_{k + 1}", (bounds[..., k] > 0))
        xs.insert(0, torch.linalg.lu_solve(lu, piv, xs[0]))
    top = bounds[:, :, -1]  # (n, m): columns used at all
    inner = bounds[..., 1:] - bounds[..., :-1]  # (n, m, L)
    pos, valid = _positions(bounds, inner, width)  # (n, m, L, r)
    i = torch.arange(n)[:, None, None, None]
    # B_l: the columns J_l of X_l; A_l starts as the rows J_l of Vᵀ. Padding is zero.
    x = torch.stack(xs, 1)  # (n, L, D, D)
    big_b = x[i, torch.arange(depth)[:, None], :, pos].movedim(-1, -2).mul_(valid[..., None, :])
    big_a = list(vh[i, pos].mul_(valid[..., None]).unbind(2))  # L × (n, m, r, D)
    merged, adapted = [], None
    for layer in range(depth):
        # A_l is final: it was solved with W'_1 … W'_{l−1}
        merged.append((big_b[:, :, layer] @ big_a[layer]).add_(ws[:, None, layer]))
        adapted = merged[-1] if adapted is None else merged[-1] @ adapted
        hi = bounds[:, :, layer + 1]
        if layer < depth - 1 and bool((hi < top).any()):  # the layers above: A ← A W'_l^{-1}
            needed = hi < top  # (n, m): entries with rows above this layer
            lu, piv, info = torch.linalg.lu_factor_ex(merged[-1])
            if method == "sequential":  # auto: such an entry fails its check and is rebuilt
                _refuse_zero_pivot(info > 0, f"W_{layer + 1} + ΔW_{layer + 1}", needed)
            above = torch.cat(big_a[layer + 1 :], -2)
            solved = torch.linalg.lu_solve(lu, piv, above.mT, adjoint=True).mT
            # an entry with nothing above keeps its zero rows (W'_l may be singular there)
            solved = torch.where(needed[..., None, None], solved, above)
            big_a[layer + 1 :] = solved.split(pos.shape[-1], -2)
    if method == "auto":
        tol = min(rtol, AUTO_RTOL) * scale[:, None]
        redo = ~(_deviations(adapted, prod, (u, s, vh), per_layer.sum(1)) <= tol)  # NaN: redo
        if redo.any():
            rebuilt = {
                (i, q): _alone(wbar[i], ws[i], per_layer[q].tolist(), dtype, rtol, (i, q))
                for i, q in redo.nonzero().tolist()
            }
            return _replace(BatchedAdapters(big_b, torch.stack(big_a, 2), inner), rebuilt)
        return BatchedAdapters(big_b, torch.stack(big_a, 2), inner)
    _check_residuals(adapted, merged, prod, (u, s, vh), wbar, per_layer.sum(1), scale, rtol)
    return BatchedAdapters(big_b, torch.stack(big_a, 2), inner)


def _alone(
    wbar: torch.Tensor,
    ws: torch.Tensor,
    ranks: list[int],
    dtype: torch.dtype,
    rtol: float,
    entry: tuple[int, int],
) -> list[LoRAFactors]:
    """:func:`~lora_theory.linear.construct` (``method="auto"``) on one entry; its refusal
    names the entry."""
    where = f"problem {entry[0]}, rank setting {entry[1]}"
    try:
        return construct(wbar, list(ws), ranks, dtype, rtol, method="auto")
    except ExactnessError as exc:
        raise ExactnessError(f"{where}: {exc}", exc.achieved, exc.optimum, exc.allowed) from exc
    except AssumptionError as exc:
        raise AssumptionError(f"{where}: {exc}") from exc
    except ValueError as exc:  # e.g. an overflowing adapted product
        raise ValueError(f"{where}: {exc}") from exc


def _replace(
    batch: BatchedAdapters, rebuilt: dict[tuple[int, int], list[LoRAFactors]]
) -> BatchedAdapters:
    """``batch`` with the entries ``(i, q)`` of ``rebuilt`` replaced, padding widened if one of
    them has a wider block."""
    r = max([batch.B.shape[-1]] + [f.inner_dim for fs in rebuilt.values() for f in fs])
    big_b = F.pad(batch.B, (0, r - batch.B.shape[-1])).clone()
    big_a = F.pad(batch.A, (0, 0, 0, r - batch.A.shape[-2])).clone()
    inner = batch.inner.clone()
    for (i, q), factors in rebuilt.items():
        big_b[i, q], big_a[i, q] = 0, 0
        for k, f in enumerate(factors):
            big_b[i, q, k, :, : f.inner_dim] = f.B
            big_a[i, q, k, : f.inner_dim] = f.A
            inner[i, q, k] = f.inner_dim
    return BatchedAdapters(big_b, big_a, inner)


def _positions(
    bounds: torch.Tensor, inner: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``r_{l−1} + t`` (``t < r = max inner``) of each block's ``t``-th column, clamped
    into range, ``(n, m, L, r)``, and whether ``t < inner``."""
    r = int(inner.max())
    pos = (bounds[..., :-1, None] + torch.arange(r)).clamp(max=width - 1)
    return pos, torch.arange(r) < inner[..., None]


def _refuse_zero_pivot(zero: torch.Tensor, name: str, needed: torch.Tensor) -> None:
    """Refuse where a needed matrix (``needed`` ``(n, m)``) has a zero pivot (``zero`` ``(n,)``
    for a frozen layer, ``(n, m)`` for an adapted one)."""
    bad = (zero[:, None] if zero.ndim == 1 else zero) & needed
    if bad.any():
        i, q = (int(t) for t in bad.nonzero()[0])
        raise AssumptionError(
            f"problem {i}, rank setting {q}: {name} is numerically singular (a zero pivot); "
            "Lemma 1 assumes it invertible"
        )


def _deviations(
    adapted: torch.Tensor,
    prod: torch.Tensor,
    svd: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    total: torch.Tensor,
) -> torch.Tensor:
    """``‖adapted_{iq} − (∏W_i + LR_{k_q}(E_i))‖_F``, ``(n, m)``, ``k_q = min(total_q, D)``: the
    low-rank parts subtracted by one fused ``(m D × D) @ (D × D)`` product per problem."""
    u, s, vh = svd
    n, m, width = adapted.shape[0], adapted.shape[1], adapted.shape[-1]
    keep = (torch.arange(width) < total.clamp(max=width)[:, None]).to(s.dtype)  # (m, D)
    us = (u[:, None] * (s[:, None] * keep)[:, :, None, :]).reshape(n, m * width, width)
    residual = (adapted - prod[:, None]).reshape(n, m * width, width)
    return torch.linalg.matrix_norm(residual.baddbmm_(us, vh, alpha=-1).view(n, m, width, width))


def _check_residuals(
    adapted: torch.Tensor,
    merged: list[torch.Tensor],
    prod: torch.Tensor,
    svd: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    wbar: torch.Tensor,
    total: torch.Tensor,
    scale: torch.Tensor,
    rtol: float,
) -> None:
    """Every entry's self-check, as in :func:`~lora_theory.linear.construct`: the Frobenius
    distance to ``∏W + LR_k(E)`` first, the spectral error only where that leaves it open.
    ``adapted`` ``(n, m, D, D)`` is the product of the adapted layers ``merged`` (``L ×
    (n, m, D, D)``)."""
    s = svd[1]
    width = wbar.shape[-1]
    k = total.clamp(max=width)  # (m,)
    if not checks.all_finite(adapted):
        overflow = ~torch.isfinite(adapted).flatten(-2).all(-1)
        i, q = (int(t) for t in overflow.nonzero()[0])
        raise ValueError(
            f"problem {i}, rank setting {q}: the adapted product overflows {adapted.dtype}: the "
            "entries of targets and frozen are too large for this dtype"
        )
    open_ = ~(_deviations(adapted, prod, svd, total) <= rtol * scale[:, None])
    if not open_.any():
        return
    i, q = open_.nonzero().unbind(1)
    achieved = torch.linalg.matrix_norm(adapted[i, q] - wbar[i], 2)
    padded = torch.cat([s, s.new_zeros(s.shape[0], 1)], 1)
    optimum = padded[i, k[q]]
    exact = torch.linalg.matrix_norm(wbar[i], 2) + torch.linalg.matrix_norm(prod[i], 2)
    missed = ~((achieved - optimum).abs() <= rtol * exact)
    if not missed.any():
        return
    f = int(missed.nonzero()[0, 0])
    mats = torch.stack([w[i[f], q[f]] for w in merged])
    cond = torch.linalg.cond(mats).max()
    where = f"problem {int(i[f])}, rank setting {int(q[f])} (and {int(missed.sum()) - 1} more)"
    if cond >= SINGULAR_CONDITION:
        raise AssumptionError(
            f"{where}: an adapted layer is numerically singular (cond {float(cond):.3e}); "
            "Lemma 1's construction cannot solve with it"
        )
    raise ExactnessError(
        f"{where}: Lemma 1's construction reached error {float(achieved[f]):.3e} where the "
        f"optimum is {float(optimum[f]):.3e}; allowed deviation {rtol * float(exact[f]):.3e} "
        f"(worst adapted layer cond {float(cond):.3e}). The matrices it solves with are too "
        "ill-conditioned for this dtype.",
        float(achieved[f]),
        float(optimum[f]),
        rtol * float(exact[f]),
    )
