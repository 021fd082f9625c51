r"""Lemma 1's sequential solution computed in extended precision, then stored in float64.

A float64 construction that misses the target in a deep model can lose accuracy in three places:
while it computes the factors (solves with ill-conditioned partial products), when the factors are
stored in float64, and when the adapted model is evaluated in float64, where the large updates
``ΔW_l`` of the sequential solution must cancel. :func:`precision_check` separates them: it
computes the same solution (Lemma 1's formulas, the singular vectors of ``E``) in ``digits``-digit
arithmetic (mpmath), rounds the factors to float64 and forms the adapted product both in float64
and in ``digits`` digits. If the rounded factors, evaluated in float64, miss the target as much as
the float64 construction does, no precision spent on the design step can help; only another
exact solution can (``method="conditioned"`` of :func:`~lora_theory.linear.construct`).

Introduced in :ref:`sec-deep-caveat`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import mpmath
import torch

from .. import checks
from ..adapters import LoRAFactors, Ranks, layer_ranks
from ..checks import ArrayLike
from ..linalg import AssumptionError, ExactnessError
from .construction import construct
from .model import adapted_product, check_inputs

#: Widest ``D`` ``precision_check`` accepts: its arithmetic runs in Python, ``O(L D³)``
#: operations on ``digits``-digit numbers (about a second at ``D = 16``, ``L = 8``).
MAX_WIDTH = 32


class PrecisionCheck(NamedTuple):
    """Relative errors ``‖∏_l (W_l + B_l A_l) − W̄‖₂ / ‖W̄‖₂`` of one problem at the threshold
    (``inf`` where a construction refused).

    Introduced in :ref:`sec-deep-caveat`.
    """

    #: the float64 sequential construction (:func:`construct`, ``method="sequential"``)
    float64: float
    #: the extended-precision factors rounded to float64, the adapted product formed in float64
    #: (what a float64 forward pass of the adapted model computes)
    rounded: float
    #: the same rounded factors, the adapted product formed in extended precision (what storing
    #: the factors in float64 costs)
    rounded_exact_product: float
    #: :func:`construct` with ``method="auto"`` (float64)
    conditioned: float
    #: ``max_l ‖B_l A_l‖₂ / ‖W̄‖₂`` of the sequential solution: the cancellation it relies on
    update_size: float


def _to_mp(t: torch.Tensor) -> mpmath.matrix:
    return mpmath.matrix(t.tolist())


def _to_torch(m: mpmath.matrix) -> torch.Tensor:
    rows = [[float(m[i, j]) for j in range(m.cols)] for i in range(m.rows)]
    return torch.tensor(rows, dtype=torch.float64).reshape(m.rows, m.cols)


def _chain(mats: Sequence[mpmath.matrix], width: int) -> mpmath.matrix:
    """``M_k ⋯ M_1`` of ``mats = [M_1, …, M_k]`` (the identity for none)."""
    out = mpmath.eye(width)
    for m in mats:
        out = m * out
    return out


def _sequential(wbar: mpmath.matrix, ws: list[mpmath.matrix], bounds: list[int]) -> list[tuple]:
    """Lemma 1's ``(B_l, A_l) = (P_l^{-1} U_J S_J, V_Jᵀ Q̃_{l-1}^{-1})`` at the working precision;
    ``bounds`` are the block boundaries of the singular triplets, ``0 = r_0 ≤ … ≤ r_L``."""
    width = wbar.rows
    above = [mpmath.eye(width)]  # P_L = I, then P_l = P_{l+1} W_{l+1}, each product once
    for w in ws[:0:-1]:
        above.insert(0, above[0] * w)
    u, s, vh = mpmath.svd_r(wbar - above[0] * ws[0])  # E = U diag(S) Vᵀ, vh = Vᵀ
    factors, below = [], mpmath.eye(width)
    for layer, w in enumerate(ws):
        lo, hi = bounds[layer], bounds[layer + 1]
        if hi == lo:
            factors.append((mpmath.zeros(width, 1), mpmath.zeros(1, width)))  # ΔW = 0
            below = w * below
            continue
        us = u[:, lo:hi] * mpmath.diag([s[i] for i in range(lo, hi)])
        b = mpmath.inverse(above[layer]) * us
        a = vh[lo:hi, :] * mpmath.inverse(below)
        factors.append((b, a))
        below = (w + b * a) * below
    return factors


def _relative(gap: torch.Tensor, wbar: torch.Tensor) -> float:
    err = float(torch.linalg.matrix_norm(gap, 2))
    return err / float(torch.linalg.matrix_norm(wbar, 2)) if math.isfinite(err) else math.inf


def _float64(wbar: torch.Tensor, ws: list[torch.Tensor], ranks: list[int], method: str) -> float:
    """The relative error of :func:`construct` (returning what it found), ``inf`` if it refuses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapters = construct(wbar, ws, ranks, rtol=1e300, method=method)
    except (AssumptionError, ExactnessError):
        return math.inf
    return _relative(adapted_product(ws, adapters) - wbar, wbar)


def precision_check(
    target: ArrayLike, frozen: Sequence[ArrayLike], rank: Ranks, digits: int = 50
) -> PrecisionCheck:
    """Lemma 1's sequential solution in float64 and in ``digits`` digits, compared (module
    docstring).

    Shapes: ``target`` ``(D, D)``, ``frozen`` ``L`` matrices ``(D, D)`` (input first),
    ``D ≤ MAX_WIDTH = 32`` (of ``linear.precision``); ``rank`` one ``R`` or ``[R_1, …, R_L]``
    with ``Σ_l R_l ≥ D`` (the threshold, where the solution is exact in exact arithmetic).
    Cost: ``O(L D³)`` operations in Python arithmetic, about a second at ``D = 16``, ``L = 8``
    and five seconds at ``D = 32``, ``L = 6``. The extended-precision solution is checked:
    its own product must equal ``W̄`` to ``10^{-digits/2}`` relative, else
    :class:`~lora_theory.linalg.ExactnessError`; a matrix it must invert that is exactly singular
    raises :class:`~lora_theory.linalg.AssumptionError`.

    Introduced in :ref:`sec-deep-caveat`.
    """
    wbar, ws = check_inputs(target, frozen)
    width = wbar.shape[0]
    if width > MAX_WIDTH:
        raise ValueError(f"precision_check runs in Python arithmetic: D ≤ {MAX_WIDTH}, got {width}")
    ranks = layer_ranks(rank, len(ws), width)
    if sum(ranks) < width:
        raise ValueError(f"precision_check needs the threshold Σ_l R_l ≥ D = {width}, got {ranks}")
    digits = checks.integer(digits, "digits", low=20, high=200)
    bounds = [min(sum(ranks[:k]), width) for k in range(len(ranks) + 1)]
    with mpmath.workdps(digits):
        wbar_mp, ws_mp = _to_mp(wbar), [_to_mp(w) for w in ws]
        try:
            exact = _sequential(wbar_mp, ws_mp, bounds)
        except ZeroDivisionError as exc:
            raise AssumptionError(
                "a matrix Lemma 1's construction inverts is exactly singular"
            ) from exc
        adapted = _chain([w + b * a for w, (b, a) in zip(ws_mp, exact, strict=True)], width)
        residual = mpmath.mnorm(adapted - wbar_mp, 1) / mpmath.mnorm(wbar_mp, 1)
        if residual > mpmath.mpf(10) ** (-digits // 2):
            raise ExactnessError(
                f"the {digits}-digit sequential solution misses W̄ by {float(residual):.1e} "
                "(relative): the frozen products are too ill-conditioned even at this precision",
                float(residual),
                0.0,
                10.0 ** (-digits // 2),
            )
        rounded = [LoRAFactors(_to_torch(b), _to_torch(a)) for b, a in exact]
        deltas = [_to_mp(f.B) * _to_mp(f.A) for f in rounded]
        stored = _chain([w + d for w, d in zip(ws_mp, deltas, strict=True)], width)
        stored_gap = _to_torch(stored - wbar_mp)
    return PrecisionCheck(
        float64=_float64(wbar, ws, ranks, "sequential"),
        rounded=_relative(adapted_product(ws, rounded) - wbar, wbar),
        rounded_exact_product=_relative(stored_gap, wbar),
        conditioned=_float64(wbar, ws, ranks, "auto"),
        update_size=max(_relative(f.delta(), wbar) for f in rounded),
    )
