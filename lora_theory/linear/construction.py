"""Lemma 1's construction (:func:`construct`) and the conditioning of what it solves with.

Introduced in :ref:`pf-lemma1`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import NamedTuple

import torch

from .. import checks, conditioned
from ..adapters import LoRAFactors, Ranks, layer_ranks
from ..checks import ArrayLike
from ..linalg import (
    AssumptionError,
    Conditioning,
    check_exact,
    difference_tol,
    exact_rtol,
    linear_problem,
    product,
)
from ..solves import LUFactorization, conditioning, norm2_lower
from .assumptions import _cumulative_ranks, diagnose
from .gram import GRAM_SHARE, GRAM_WIDTH, _gram_route

#: ``method`` of :func:`construct`; ``"auto"`` stops at the first candidate whose Frobenius error
#: is within ``AUTO_RTOL`` times the scale ``‖W̄‖₂ + ‖∏W‖₂`` (four digits tighter than ``rtol``).
METHODS, AUTO_RTOL = ("auto", "sequential", "conditioned"), 1e-11
#: Where ``"auto"`` stops refining the conditioned solution: a tenth of ``AUTO_RTOL``, so that a
#: refinement stopped early is still well inside the tolerance at which ``"auto"`` accepts a
#: candidate (the FNN construction composes several blocks, each within it).
AUTO_REFINE_RTOL = AUTO_RTOL / 10
#: Above ``conditioned.REFINE_MAX_WIDTH`` an L-BFGS iteration costs ``O(L D³)`` (about 2.4 s at
#: ``D = 1024``, ``L = 8``, two cores), so ``"auto"`` refines only until the spectral error
#: ``‖∏_l(W_l + B_l A_l) − W̄‖₂`` is within ``WIDE_REFINE_RTOL · ‖W̄‖₂`` (checked every
#: ``CHECK_EVERY`` iterations), for at most ``WIDE_REFINE_STEPS``. ``D = 1024``, Gaussian
#: ``N(0, 1/D)`` factors, ``L = 4``, seeds 0–2: ``3.3e-10``, ``4.0e-10``, ``2.3e-10`` after 40, 20,
#: 20 iterations (the whole ``construct``: 85, 49, 53 s; with the former objective of
#: ``conditioned``); ``L = 8``, seed 0: ``6.4e-8``, ``1.1e-8``, ``4.6e-9``, ``2.3e-9``, ``1.4e-9``
#: after 20, 40, …, 100 iterations (319 s), and ``4.8e-10`` within 200; seeds 1–4 within 200:
#: ``4.5e-10``, ``2.8e-10``, ``2.3e-10``, ``4.5e-10`` (alone on the machine 209–349 s). The cap
#: keeps a call to about ten minutes on two cores.
WIDE_REFINE_RTOL, WIDE_REFINE_STEPS = 5e-10, 200


class ConditioningWarning(UserWarning):
    """A matrix the construction solves with is ill-conditioned (but not singular).

    Introduced in :ref:`ch-linear`.
    """


class _Problem(NamedTuple):
    """One validated problem with what every step needs, computed once: the frozen product, the
    right singular vectors ``V`` of ``E = U S Vᵀ`` (as ``vh = Vᵀ``) with ``us = E V = U S`` and
    ``S``, the scale ``‖W̄‖₂ + ‖∏W‖₂`` (a lower bound, see
    :func:`~lora_theory.solves.norm2_lower`), ``rank(E)`` (from the Gram route below the
    threshold: ``Σ_l R_l``, a lower bound of it, which is all the block boundaries need) and
    ``gap``, the Gram route's bound on its optimum's error (``0`` otherwise; see
    :data:`GRAM_SHARE`)."""

    wbar: torch.Tensor
    ws: list[torch.Tensor]
    prod: torch.Tensor
    us: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    scale: float
    rank_e: int
    gap: float = 0.0

    def intended(self, total: int) -> torch.Tensor:
        """``∏W + LR_k(E)``, ``k = min(total, D)``: what the adapted product must equal (``W̄``
        itself from ``k = D`` on)."""
        if total >= self.s.numel():
            return self.wbar
        return self.prod + self.us[:, :total] @ self.vh[:total]


def _problem(
    wbar: torch.Tensor, ws: list[torch.Tensor], prod: torch.Tensor, total: int, rtol: float
) -> _Problem:
    """The :class:`_Problem` of ``(W̄, W_1 … W_L)`` for ``total = Σ_l R_l``: from the Gram
    matrix where ``D > GRAM_WIDTH`` and :data:`GRAM_FLOOR` or :data:`GRAM_SHARE` allows, else
    from the SVD of ``E``."""
    e = wbar - prod
    scale = float(norm2_lower(torch.stack([wbar, prod])).sum())
    tol = difference_tol(wbar, prod, scale=scale)
    gram = e.mT @ e if total > 0 and e.shape[0] > GRAM_WIDTH else None
    if gram is not None and checks.all_finite(gram):  # EᵀE may overflow where E does not
        found = _gram_route(e, gram, total, tol, GRAM_SHARE * rtol * scale)
        if found is not None:
            us, s, vh, rank_e, gap = found
            return _Problem(wbar, ws, prod, us, s, vh, scale, rank_e, gap)
    u, s, vh = torch.linalg.svd(e)
    return _Problem(wbar, ws, prod, u * s, s, vh, scale, int((s > tol).sum()))


def _norm2(a: torch.Tensor) -> float:
    """``‖a‖₂ = √λ_max(aᵀa)`` (``eigvalsh``: 1.4× cheaper than an SVD at ``D = 256``, 1.9× at
    ``1024``; relative error about ``D eps``, as the largest eigenvalue is well-conditioned), or
    the SVD's where ``aᵀa`` overflows."""
    gram = a.mT @ a
    if not checks.all_finite(gram):
        return float(torch.linalg.matrix_norm(a, 2))
    return math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0))


def _adapted(ws: list[torch.Tensor], adapters: list[LoRAFactors]) -> torch.Tensor:
    """``∏_l (W_l + B_l A_l)`` of the construction's own (already checked) factors."""
    out = ws[0] + adapters[0].B @ adapters[0].A
    for w, a in zip(ws[1:], adapters[1:], strict=True):
        out = (w + a.B @ a.A) @ out
    return out


def _explain_adapted(p: _Problem, k: int, r: int) -> str:
    """Why ``W'_k`` is singular: Lemma 1's assumption, or only the conditioning of ``P_k``."""
    corrected = Conditioning.of(f"∏W + LR_{r}(E)", p.intended(r))
    if corrected.singular:
        return f"Lemma 1's non-singularity assumption fails ({corrected})"
    above = Conditioning.of(f"W_{len(p.ws)} ⋯ W_{k + 2}", product(p.ws[k + 1 :]))
    return (
        f"Lemma 1's assumption holds ({corrected}), but W'_{k + 1} = P^{{-1}}(∏W + LR_{r}(E)) "
        f"inherits the conditioning of the frozen product P = {above}: the construction is "
        "too ill-conditioned for float64 at this depth"
    )


_FROZEN_WHY = "Lemma 1 assumes every frozen W_l invertible"


def _factor(
    solved: dict[str, tuple[LUFactorization, Callable[[], str]]],
    name: str,
    a: torch.Tensor,
    why: Callable[[], str],
) -> LUFactorization:
    """The factorization of ``a`` (once per name, kept with the reason it may not be singular);
    an exactly singular one raises."""
    if name not in solved:
        solved[name] = (LUFactorization.unchecked(name, a), why)
        if bool(solved[name][0].zero_pivot):
            raise AssumptionError(f"{name} is numerically singular (a zero pivot): {why()}")
    return solved[name][0]


def _construct(
    p: _Problem, ranks: list[int]
) -> tuple[list[LoRAFactors], dict[str, LUFactorization], list[Conditioning]]:
    """Lemma 1's adapters, the factorization of every matrix the construction solved with and
    their conditioning.

    ``B_l = W_{l+1}^{-1} ⋯ W_L^{-1} U_J S_J`` for all layers at once: the columns of every layer
    below ``k`` are solved with ``W_k`` together (``L − 1`` solves, each matrix LU-factorized
    once). ``A_l = V_Jᵀ W'_1^{-1} ⋯ W'_{l-1}^{-1}`` likewise: once ``W'_k = W_k + B_k A_k`` is
    known, the rows of every layer above ``k`` are solved with it together."""
    ws, bounds = p.ws, _cumulative_ranks(ranks, p.rank_e)
    solved: dict[str, tuple[LUFactorization, Callable[[], str]]] = {}
    top = bounds[-1]
    b, a = p.us[:, :top], p.vh[:top]
    for k in range(len(ws) - 1, 0, -1):  # frozen W_{k+1}: the columns of layers ≤ k
        if bounds[k]:
            lu = _factor(solved, f"W_{k + 1}", ws[k], lambda: _FROZEN_WHY)
            b = torch.cat([lu.solve_unchecked(b[:, : bounds[k]]), b[:, bounds[k] :]], 1)
    adapters: list[LoRAFactors] = []
    for layer, w in enumerate(ws):
        lo, hi = bounds[layer], bounds[layer + 1]
        adapters.append(LoRAFactors(b[:, lo:hi].contiguous(), a[lo:hi].contiguous()))
        if hi < top:  # rows of the layers above: A ← A W'_l^{-1}
            why = partial(_explain_adapted, p, layer, hi)
            merged = w + adapters[-1].B @ adapters[-1].A
            if not checks.all_finite(merged):
                raise ValueError(
                    f"W'_{layer + 1} = W_{layer + 1} + ΔW_{layer + 1} overflows {w.dtype}"
                )
            lu = _factor(solved, f"W_{layer + 1} + ΔW_{layer + 1}", merged, why)
            a = torch.cat([a[:hi], lu.solve_unchecked(a[hi:], left=False)])
    record = conditioning([f for f, _ in solved.values()])
    for c in record:
        if c.singular:
            raise AssumptionError(f"{c} is numerically singular: {solved[c.name][1]()}")
    return adapters, {name: f for name, (f, _) in solved.items()}, record


def _deviation(p: _Problem, ranks: list[int], adapted: torch.Tensor) -> float:
    """``‖adapted − (∏W + LR_{ΣR_l}(E))‖_F``, ``inf`` when not finite."""
    err = float(torch.linalg.matrix_norm(adapted - p.intended(sum(ranks))))
    return err if math.isfinite(err) else math.inf


def _hypothesis_fails(p: _Problem, ranks: list[int]) -> bool:
    """Whether :func:`diagnose` finds Lemma 1's hypothesis violated: a frozen ``W_l``, or a
    ``∏W + LR_r(E)`` with ``r ≥ 1`` that the construction needs, numerically singular (``∏W``
    itself is left to its factors, so the float64 product of many well-conditioned layers, whose
    condition number can pass ``1/ε``, does not count)."""
    return not diagnose(p.wbar, p.ws, ranks).holds


def _best(
    p: _Problem, ranks: list[int], method: str
) -> tuple[list[LoRAFactors], list[Conditioning]]:
    """The adapters of ``method`` (see :func:`construct`) and the conditioning of what it solved
    with; ``"auto"`` tries the methods in turn."""

    def accept(adapters: list[LoRAFactors]) -> bool:
        return _deviation(p, ranks, _adapted(p.ws, adapters)) <= AUTO_REFINE_RTOL * p.scale

    wide_limit = cache(lambda: WIDE_REFINE_RTOL * _norm2(p.wbar))  # at the first check only

    def within_wide(adapted: torch.Tensor) -> bool:
        return _norm2(adapted - p.wbar) <= wide_limit()

    def accept_wide(adapters: list[LoRAFactors]) -> bool:
        return within_wide(_adapted(p.ws, adapters))

    narrow = p.wbar.shape[0] <= conditioned.REFINE_MAX_WIDTH
    if narrow:
        refine = partial(conditioned.construct, steps=conditioned.REFINE_STEPS, accept=accept)
    else:
        refine = partial(conditioned.construct, steps=WIDE_REFINE_STEPS, accept=accept_wide)
    steps = {
        "sequential": [_construct],
        "conditioned": [conditioned.construct],
        "auto": [_construct, partial(conditioned.construct, steps=0), refine],
    }[method]
    tried, failure = [], None
    for step in steps:
        try:
            if step is _construct:
                adapters, _, record = _construct(p, ranks)
            else:
                adapters, found = step(p.wbar, p.ws, ranks)
                record = list(found.values())
        except AssumptionError as exc:  # auto stays within Lemma 1's hypothesis
            if len(steps) == 1 or (step is _construct and _hypothesis_fails(p, ranks)):
                raise
            failure = failure or exc
            continue
        if len(steps) == 1:
            return adapters, record
        adapted = _adapted(p.ws, adapters)
        tried.append((_deviation(p, ranks, adapted), adapters, record))
        # wide: a candidate already within the refinement's own target ends the search too
        if tried[-1][0] <= AUTO_RTOL * p.scale or (not narrow and within_wide(adapted)):
            break
    if not tried:
        raise failure  # type: ignore[misc]
    return min(tried, key=lambda t: t[0])[1:]


def construct(
    target: ArrayLike,
    frozen: Sequence[ArrayLike],
    rank: Ranks,
    dtype: torch.dtype = torch.float64,
    rtol: float | None = None,
    method: str = "sequential",
) -> list[LoRAFactors]:
    """Lemma 1's adapters ``[(B_1, A_1), …, (B_L, A_L)]`` with ``rank(B_l A_l) ≤ R_l``.

    Shapes: ``target`` ``(D, D)``; ``frozen`` a list of ``L`` matrices ``(D, D)`` ordered from
    input to output; each ``B_l`` is ``(D, r_l)`` and ``A_l`` is ``(r_l, D)`` with ``r_l ≤ R_l``.
    The result satisfies ``‖∏_l (W_l + B_l A_l) − W̄‖₂ = σ_{ΣR_l+1}(E)`` (= :func:`min_error`)
    up to round-off, and equality ``∏_l (W_l + B_l A_l) = W̄`` once ``Σ_l R_l ≥ rank(E)``.

    With ``E = U S Vᵀ`` and the block ``J_l`` of singular triplets assigned to layer ``l``:
    ``B_l = P_l^{-1} U_J S_J`` and ``A_l = V_Jᵀ Q̃_{l-1}^{-1}``, each computed by solves through
    one factor at a time. Raises :class:`~lora_theory.linalg.AssumptionError` (a ``ValueError``)
    if a matrix it must solve with is singular, and warns with :class:`ConditioningWarning` if
    one is ill-conditioned (see :func:`construction_conditioning`). Blocks beyond ``rank(E)`` get
    empty adapters and need no solve.

    ``method="sequential"`` (default) is this construction. At the threshold (``Σ_l R_l ≥ D``,
    ``rank(E) = D``, ``W̄`` non-singular) ``"conditioned"`` is another exact solution with the
    same ranks that stays exact in deep models (:mod:`lora_theory.conditioned`); ``"auto"`` tries
    sequential, conditioned unrefined, and conditioned refined, and keeps the first within
    ``AUTO_RTOL`` (above ``D = 256`` also the first within ``WIDE_REFINE_RTOL``; else the best).
    The refinement stops, checked every ``CHECK_EVERY`` L-BFGS iterations, up to ``D = 256`` once
    the certificate is within ``AUTO_REFINE_RTOL``; above it (about a minute at ``D = 1024``,
    ``L = 4``) once the spectral error is within ``WIDE_REFINE_RTOL · ‖W̄‖₂``, or after
    ``WIDE_REFINE_STEPS`` iterations.

    **Cost.** One eigendecomposition of ``EᵀE`` (2–2.5× cheaper than an SVD of ``E``), or the
    SVD where that route cannot vouch for its result (``GRAM_FLOOR``, ``GRAM_SHARE`` of
    ``linear.gram``), one LU factorization per matrix it solves with (``2L − 1``), and
    ``2(L − 1)`` batched triangular solves; above ``D =`` :data:`~lora_theory.solves.EXACT_WIDTH`
    the conditioning is the ``O(D²)`` estimate of :func:`~lora_theory.solves.conditioning`, and
    above :data:`~lora_theory.solves.NORM_EXACT_WIDTH` the scale of the tolerance a lower bound
    (:func:`~lora_theory.solves.norm2_lower`), so no further SVD is needed unless the self-check
    below is inconclusive.

    **Self-check.** Before returning, it measures ``‖∏_l (W_l + B_l A_l) − W̄‖₂`` and raises
    :class:`~lora_theory.linalg.ExactnessError` unless it is within ``rtol · (‖W̄‖₂ + ‖∏_l W_l‖₂)``
    of ``σ_{ΣR_l+1}(E)`` (``rtol`` defaults to :func:`~lora_theory.linalg.exact_rtol`: ``1e-7``
    in float64): a wrong answer never comes back with only a warning. It first tries the
    certificate ``‖∏_l (W_l + B_l A_l) − (∏_l W_l + LR_k(E))‖_F ≤ rtol · scale`` (which bounds
    the deviation by the triangle inequality, with the scale's lower bound; from the Gram route
    below the threshold, ``LR_k(E) = E V_k V_kᵀ`` and its ``gap`` is added to the left side),
    and computes the spectral error only when that is inconclusive.

    Introduced in :ref:`pf-lemma1`.
    """
    wbar, ws, prod = linear_problem(target, frozen, checks.dtype(dtype))
    ranks = layer_ranks(rank, len(ws), ws[0].shape[0])
    rtol = exact_rtol(dtype) if rtol is None else checks.real(rtol, "rtol", positive=True)
    checks.choice(method, "method", METHODS)
    p = _problem(wbar, ws, prod, sum(ranks), rtol)
    adapters, record = _best(p, ranks, method)
    for c in record:
        if c.ill_conditioned:
            warnings.warn(f"ill-conditioned solve: {c}", ConditioningWarning, stacklevel=2)
    # Cheap certificate: |‖∏W' − W̄‖₂ − σ_{k+1}(E)| ≤ ‖∏W' − (∏W + LR_k(E))‖_F (triangle
    # inequality), and p.scale never exceeds the exact scale. If it is inconclusive, the spectral
    # error is computed (one SVD), and the exact scale only if the lower bound does not suffice.
    adapted = _adapted(ws, adapters)
    if not checks.all_finite(adapted):
        raise ValueError(
            f"the adapted product overflows {adapted.dtype}: the entries of target and frozen "
            "are too large for this dtype"
        )
    if _deviation(p, ranks, adapted) + p.gap <= rtol * p.scale:
        return adapters
    achieved = _norm2(adapted - wbar)
    optimum = float(p.s[sum(ranks)]) if sum(ranks) < p.s.numel() else 0.0
    if abs(achieved - optimum) + p.gap <= rtol * p.scale:
        return adapters
    if p.gap:  # the Gram route's optimum was not enough: the SVD's
        optimum = float(torch.linalg.svdvals(wbar - prod)[sum(ranks)])
    scale = _norm2(wbar) + _norm2(prod)
    worst = max(record, key=lambda c: c.condition, default=None)
    where = "Lemma 1's construction" + (f" (worst solve {worst})" if worst else "")
    check_exact(where, achieved, optimum, scale, rtol)
    return adapters


def construction_conditioning(
    target: ArrayLike, frozen: Sequence[ArrayLike], rank: Ranks, dtype: torch.dtype = torch.float64
) -> tuple[Conditioning, ...]:
    """Conditioning of every matrix :func:`construct` solves with, in the order it meets them.

    The frozen factors ``W_k`` enter through ``P_l^{-1}`` and the adapted factors
    ``W'_k = W_k + ΔW_k`` through ``Q̃_{l-1}^{-1}``; round-off in the construction grows with their
    condition numbers, which is what limits its accuracy for deep frozen models.

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws, prod = linear_problem(target, frozen, checks.dtype(dtype))
    ranks = layer_ranks(rank, len(ws), ws[0].shape[0])
    p = _problem(wbar, ws, prod, sum(ranks), exact_rtol(wbar.dtype))
    _, solved, _ = _construct(p, ranks)
    return tuple(Conditioning.of(name, f.matrix) for name, f in solved.items())
