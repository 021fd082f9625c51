r"""Lemma 1: LoRA on a deep linear model, an Eckart–Young–Mirsky theorem for products.

Setting (chapter "Linear models"): a frozen model ``x ↦ W_L ⋯ W_1 x`` is adapted to a target
``x ↦ W̄ x`` by rank-``R`` updates ``ΔW_l = B_l A_l`` of every layer. With the error matrix
``E = W̄ − ∏_l W_l``, Lemma 1 states

    min_{rank ΔW_l ≤ R} ‖∏_l (W_l + ΔW_l) − W̄‖₂ = σ_{RL+1}(E),

provided every ``W_l`` and every ``∏_l W_l + LR_r(E)`` (``r ≤ R(L−1)``) is non-singular. The
construction (:func:`construct`) splits the top ``RL`` singular triplets of ``E`` into ``L``
consecutive blocks ``E_l`` and sets ``ΔW_l = P_l^{-1} E_l Q̃_{l-1}^{-1}`` with
``P_l = W_L ⋯ W_{l+1}`` and ``Q̃_{l-1} = (W_{l-1}+ΔW_{l-1}) ⋯ (W_1+ΔW_1)``; the telescoping identity
then makes the total change equal ``LR_{RL}(E)``.

``rank`` may be one integer ``R`` (every layer) or a list ``[R_1, …, R_L]`` of per-layer ranks;
only the sum ``Σ_l R_l`` matters (the error is ``σ_{ΣR_l + 1}(E)``).

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from . import checks, conditioned
from .adapters import LoRAFactors, Ranks, check_factors, layer_ranks
from .checks import ArrayLike
from .linalg import (
    AssumptionError,
    Conditioning,
    check_exact,
    difference_tol,
    exact_rtol,
    linear_pair,
    low_rank_approx,
    numerical_rank,
    product,
    sigma,
    singular_values,
)

#: ``method`` of :func:`construct`; ``"auto"`` stops at the first candidate whose Frobenius error
#: is within ``AUTO_RTOL`` times the scale ``‖W̄‖₂ + ‖∏W‖₂`` (four digits tighter than ``rtol``).
METHODS, AUTO_RTOL = ("auto", "sequential", "conditioned"), 1e-11


class ConditioningWarning(UserWarning):
    """A matrix the construction solves with is ill-conditioned (but not singular).

    Introduced in :ref:`ch-linear`.
    """


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


@dataclass(frozen=True)
class AssumptionReport:
    """Lemma 1's non-singularity hypothesis, matrix by matrix.

    ``frozen`` holds one :class:`~lora_theory.linalg.Conditioning` per ``W_l``; ``corrected`` one
    per ``∏_l W_l + LR_r(E)`` for the ranks ``r = R_1 + … + R_j`` (``j < L``) that the construction
    actually inverts (``r`` capped at ``rank(E)``: beyond it no inverse is needed).

    Introduced in :ref:`ch-linear`.
    """

    frozen: tuple[Conditioning, ...]
    corrected: tuple[Conditioning, ...]

    @property
    def holds(self) -> bool:
        """True when no listed matrix is numerically singular."""
        return not any(c.singular for c in self.frozen + self.corrected)

    @property
    def worst(self) -> Conditioning:
        """The listed matrix with the largest condition number."""
        return max(self.frozen + self.corrected, key=lambda c: c.condition)

    def __str__(self) -> str:
        lines = [str(c) for c in self.frozen + self.corrected]
        verdict = "holds" if self.holds else "FAILS"
        return "\n".join([f"Lemma 1 assumption {verdict}; worst {self.worst.name}", *lines])


def _cumulative_ranks(ranks: list[int], rank_e: int) -> list[int]:
    """Block boundaries ``0 = r_0 ≤ r_1 ≤ … ≤ r_L``, ``r_l = min(R_1 + … + R_l, rank(E))``."""
    out, total = [0], 0
    for r in ranks:
        total += r
        out.append(min(total, rank_e))
    return out


def diagnose(
    target: ArrayLike, frozen: Sequence[ArrayLike], rank: Ranks, dtype: torch.dtype = torch.float64
) -> AssumptionReport:
    """Check Lemma 1's hypothesis for these matrices and report the conditioning of each piece.

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    ranks = layer_ranks(rank, len(ws), ws[0].shape[0])
    prod = product(ws)
    e = wbar - prod
    bounds = _cumulative_ranks(ranks[:-1], numerical_rank(e, difference_tol(wbar, prod)))
    used = sorted(set(bounds))
    return AssumptionReport(
        frozen=tuple(Conditioning.of(f"W_{k + 1}", w) for k, w in enumerate(ws)),
        corrected=tuple(
            Conditioning.of(f"∏W + LR_{r}(E)", prod + low_rank_approx(e, r)) for r in used
        ),
    )


def _solve_with(
    name: str, a: torch.Tensor, record: dict[str, Conditioning], why: Callable[[], str]
) -> torch.Tensor:
    """Return ``a`` after checking (once per name) that it can be solved with; raise if singular."""
    if name not in record:
        record[name] = Conditioning.of(name, a)
        if record[name].singular:
            raise AssumptionError(f"{record[name]} is numerically singular: {why()}")
    return a


def _explain_adapted(
    wbar: torch.Tensor, ws: list[torch.Tensor], e: torch.Tensor, k: int, r: int
) -> str:
    """Why ``W'_k`` is singular: Lemma 1's assumption, or only the conditioning of ``P_k``."""
    corrected = Conditioning.of(f"∏W + LR_{r}(E)", product(ws) + low_rank_approx(e, r))
    if corrected.singular:
        return f"Lemma 1's non-singularity assumption fails ({corrected})"
    above = Conditioning.of(f"W_{len(ws)} ⋯ W_{k + 2}", product(ws[k + 1 :]))
    return (
        f"Lemma 1's assumption holds ({corrected}), but W'_{k + 1} = P^{{-1}}(∏W + LR_{r}(E)) "
        f"inherits the conditioning of the frozen product P = {above}: the construction is "
        "too ill-conditioned for float64 at this depth"
    )


def _construct(
    wbar: torch.Tensor, ws: list[torch.Tensor], ranks: list[int]
) -> tuple[list[LoRAFactors], dict[str, Conditioning]]:
    """Lemma 1's adapters and the conditioning of every matrix the construction solved with."""
    width, dtype = wbar.shape[0], wbar.dtype
    prod = product(ws)
    e = wbar - prod
    u, s, vh = torch.linalg.svd(e)
    rank_e = int((s > difference_tol(wbar, prod)).sum())
    bounds = _cumulative_ranks(ranks, rank_e)
    record: dict[str, Conditioning] = {}

    adapters: list[LoRAFactors] = []
    adapted: list[torch.Tensor] = []  # W'_k = W_k + ΔW_k for the layers below the current one
    for layer, w in enumerate(ws):
        lo, hi = bounds[layer], bounds[layer + 1]
        if hi == lo:
            adapters.append(LoRAFactors.zeros(width, dtype))
        else:
            # B = P_l^{-1} U_J S_J = W_{l+1}^{-1} ⋯ W_L^{-1} U_J S_J, one solve per frozen factor.
            b = u[:, lo:hi] * s[lo:hi]
            for k in range(len(ws) - 1, layer, -1):
                frozen_k = _solve_with(
                    f"W_{k + 1}",
                    ws[k],
                    record,
                    lambda: "Lemma 1 assumes every frozen W_l invertible",
                )
                b = torch.linalg.solve(frozen_k, b)
            # A = V_Jᵀ Q̃_{l-1}^{-1} = V_Jᵀ W'_1^{-1} ⋯ W'_{l-1}^{-1}, one solve per adapted factor.
            a = vh[lo:hi]
            for k, wk in enumerate(adapted):
                why = partial(_explain_adapted, wbar, ws, e, k, bounds[k + 1])
                adapted_k = _solve_with(f"W_{k + 1} + ΔW_{k + 1}", wk, record, why)
                a = torch.linalg.solve(adapted_k, a, left=False)
            adapters.append(LoRAFactors(b, a))
        adapted.append(adapters[-1].merge(w))
    return adapters, record


def _best(
    wbar: torch.Tensor, ws: list[torch.Tensor], ranks: list[int], method: str
) -> tuple[list[LoRAFactors], dict[str, Conditioning]]:
    """The adapters of ``method`` (see :func:`construct`); ``"auto"`` tries them in turn."""
    if method != "auto":
        step = _construct if method == "sequential" else conditioned.construct
        return step(wbar, ws, ranks)
    prod = product(ws)
    scale = torch.linalg.matrix_norm(wbar, 2) + torch.linalg.matrix_norm(prod, 2)
    target = prod + low_rank_approx(wbar - prod, sum(ranks))
    tried, failure = [], None
    for step in (_construct, partial(conditioned.construct, steps=0), conditioned.construct):
        try:
            adapters, record = step(wbar, ws, ranks)
        except AssumptionError as exc:  # auto stays within Lemma 1's hypothesis
            failure = failure or exc
            if step is _construct and not diagnose(wbar, ws, ranks).holds:
                raise
            continue
        err = float(torch.linalg.matrix_norm(adapted_product(ws, adapters) - target))
        tried.append((err if math.isfinite(err) else math.inf, adapters, record))
        if err <= AUTO_RTOL * float(scale):
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
    sequential, conditioned unrefined, conditioned, and keeps the first within ``AUTO_RTOL``.

    **Self-check.** Before returning, it measures ``‖∏_l (W_l + B_l A_l) − W̄‖₂`` and raises
    :class:`~lora_theory.linalg.ExactnessError` unless it is within ``rtol · (‖W̄‖₂ + ‖∏_l W_l‖₂)``
    of ``σ_{ΣR_l+1}(E)`` (``rtol`` defaults to :func:`~lora_theory.linalg.exact_rtol`: ``1e-7``
    in float64): a wrong answer never comes back with only a warning.

    Introduced in :ref:`pf-lemma1`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    ranks = layer_ranks(rank, len(ws), ws[0].shape[0])
    rtol = exact_rtol(dtype) if rtol is None else checks.real(rtol, "rtol", positive=True)
    checks.choice(method, "method", METHODS)
    adapters, record = _best(wbar, ws, ranks, method)
    for c in record.values():
        if c.ill_conditioned:
            warnings.warn(f"ill-conditioned solve: {c}", ConditioningWarning, stacklevel=2)
    prod = product(ws)
    achieved = float(torch.linalg.matrix_norm(adapted_product(ws, adapters) - wbar, 2))
    optimum = float(sigma(wbar - prod, sum(ranks) + 1))
    scale = float(torch.linalg.matrix_norm(wbar, 2) + torch.linalg.matrix_norm(prod, 2))
    worst = max(record.values(), key=lambda c: c.condition, default=None)
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
    wbar, ws = check_inputs(target, frozen, dtype)
    _, record = _construct(wbar, ws, layer_ranks(rank, len(ws), ws[0].shape[0]))
    return tuple(record.values())
