"""Lemma 1's objects: the error matrix ``E = W̄ − ∏_l W_l``, its optimum ``σ_{RL+1}(E)``, the
threshold rank, the adapted product and the telescoping identity of the proof.

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .. import checks
from ..adapters import LoRAFactors, Ranks, check_factors, layer_ranks
from ..checks import ArrayLike
from ..linalg import (
    difference_tol,
    linear_pair,
    numerical_rank,
    product,
    sigma,
    singular_values,
)


def check_inputs(
    target: ArrayLike, frozen: Sequence[ArrayLike], dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The (target ``W̄``, frozen ``[W_1, …, W_L]``) pair of a linear problem, validated: square,
    finite, real, one width ``D``; returned as tensors of ``dtype``.

    Introduced in :ref:`ch-linear`.
    """
    return linear_pair(target, frozen, checks.dtype(dtype))


def error_matrix(
    target: ArrayLike, frozen: Sequence[ArrayLike], dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``E = W̄ − W_L ⋯ W_1``, shape ``(D, D)``.

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    return wbar - product(ws)


def min_error(
    target: ArrayLike, frozen: Sequence[ArrayLike], rank: Ranks, dtype: torch.dtype = torch.float64
) -> float:
    """Lemma 1's optimum ``σ_{RL+1}(E)`` in spectral norm (``σ_{ΣR_l+1}`` for per-layer ranks).

    It is ``0`` once ``RL ≥ D``. Requires only shapes; the lemma's non-singularity assumption is
    what makes the value attainable (see :func:`construct` and :func:`diagnose`).

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    total = sum(layer_ranks(rank, len(ws), ws[0].shape[0]))
    return float(sigma(wbar - product(ws), total + 1))


def population_mse(
    target: ArrayLike, frozen: Sequence[ArrayLike], rank: Ranks, dtype: torch.dtype = torch.float64
) -> float:
    """Minimum over rank-``R`` adapters of ``E‖(∏(W_l+ΔW_l) − W̄)x‖² / D`` for ``x ~ N(0, I_D)``.

    Equals ``(1/D) Σ_{i > RL} σ_i(E)²`` (Eckart–Young–Mirsky in Frobenius norm), and the
    construction attains it. This is the quantity the paper's linear experiment (Figure 1) plots.

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    total = sum(layer_ranks(rank, len(ws), ws[0].shape[0]))
    s = singular_values(wbar - product(ws))
    return float((s[total:] ** 2).sum() / s.numel())


def required_rank(
    target: ArrayLike, frozen: Sequence[ArrayLike], dtype: torch.dtype = torch.float64
) -> int:
    """The exactness threshold ``⌈rank(E) / L⌉`` (``0`` when the frozen model equals the target).

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    prod = product(ws)
    return math.ceil(numerical_rank(wbar - prod, difference_tol(wbar, prod)) / len(ws))


def adapted_product(frozen: Sequence[ArrayLike], adapters: Sequence[LoRAFactors]) -> torch.Tensor:
    """``∏_l (W_l + B_l A_l) = (W_L + B_L A_L) ⋯ (W_1 + B_1 A_1)``.

    Introduced in :ref:`ch-linear`.
    """
    adapters = checks.sequence(adapters, "adapters", "(B, A) pairs")
    first = getattr(adapters[0], "B", None)
    keep = isinstance(first, torch.Tensor) and first.dtype in checks.COMPUTE_DTYPES
    dtype = first.dtype if keep else torch.float64  # type: ignore[union-attr]
    ws = checks.square_list(frozen, "frozen", dtype)
    if len(ws) != len(adapters):
        raise ValueError(f"got {len(ws)} frozen layers but {len(adapters)} adapters")
    width = ws[0].shape[0]
    factors = [
        LoRAFactors(*(t.to(dtype) for t in check_factors(a, width, f"adapters[{i}]")))
        for i, a in enumerate(adapters)
    ]
    return product([a.merge(w) for w, a in zip(ws, factors, strict=True)])


def relative_error(
    target: ArrayLike, frozen: Sequence[ArrayLike], adapters: Sequence[LoRAFactors]
) -> float:
    """``‖∏_l (W_l + B_l A_l) − W̄‖₂ / ‖W̄‖₂``, the product formed in the adapters' dtype as a
    forward pass would; ``inf`` if it overflows. ``target`` ``(D, D)`` non-zero.

    Introduced in :ref:`sec-deep-caveat`.
    """
    prod = adapted_product(frozen, adapters)
    wbar = checks.tensor(target, "target", prod.dtype)
    if wbar.shape != prod.shape:
        raise ValueError(f"target must be {tuple(prod.shape)}, got {tuple(wbar.shape)}")
    scale = float(torch.linalg.matrix_norm(wbar.double(), 2))
    if not scale > 0:
        raise ValueError("target must be non-zero: the error is relative to ‖W̄‖₂")
    err = float(torch.linalg.matrix_norm((prod - wbar).double(), 2))
    return err / scale if math.isfinite(err) else math.inf


def telescoping_terms(
    frozen: Sequence[ArrayLike], deltas: Sequence[ArrayLike], dtype: torch.dtype = torch.float64
) -> list[torch.Tensor]:
    """The terms ``P_l ΔW_l Q̃_{l-1}`` of the telescoping identity, ``l = 1..L``.

    ``∏_l (W_l + ΔW_l) − ∏_l W_l = Σ_l P_l ΔW_l Q̃_{l-1}`` with ``P_l = W_L ⋯ W_{l+1}`` and
    ``Q̃_{l-1} = (W_{l-1} + ΔW_{l-1}) ⋯ (W_1 + ΔW_1)``; each term has rank ``≤ rank(ΔW_l)``.
    This is Step 1 of the proof of Lemma 1; it holds for any updates ``ΔW_l``.

    Introduced in :ref:`pf-lemma1`.
    """
    dtype = checks.dtype(dtype)
    ws = checks.square_list(frozen, "frozen", dtype)
    ds = checks.square_list(deltas, "deltas", dtype)
    if len(ws) != len(ds) or ws[0].shape != ds[0].shape:
        raise ValueError(f"need one ({ws[0].shape[0]}, {ws[0].shape[0]}) update per frozen layer")
    eye = torch.eye(ws[0].shape[0], dtype=dtype)
    terms, below = [], eye
    for layer, (w, d) in enumerate(zip(ws, ds, strict=True)):
        above = product(ws[layer + 1 :]) if layer + 1 < len(ws) else eye
        terms.append(above @ d @ below)
        below = (w + d) @ below
    return terms
