"""Lemma 1's non-singularity hypothesis, matrix by matrix (:func:`diagnose`).

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..adapters import Ranks, layer_ranks
from ..checks import ArrayLike
from ..linalg import Conditioning, difference_tol, low_rank_approx, numerical_rank, product
from .model import check_inputs


@dataclass(frozen=True)
class AssumptionReport:
    """Lemma 1's non-singularity hypothesis, matrix by matrix.

    ``frozen`` holds one :class:`~lora_theory.linalg.Conditioning` per ``W_l``; ``corrected`` one
    per ``∏_l W_l + LR_r(E)`` for the ranks ``r = min(R_1 + … + R_j, rank(E))``,
    ``j = 1, …, L − 1``, each ``r ≥ 1`` once (none when ``L = 1``), formed in the dtype of the
    check: Lemma 1's hypothesis at the construction's block boundaries. There
    ``∏W + LR_r(E) = P_j W'_j ⋯ W'_1`` with ``P_j = W_L ⋯ W_{j+1}``, so given the frozen factors
    it is non-singular exactly when the adapted ``W'_j = W_j + ΔW_j`` is, which the construction
    inverts whenever a later layer still receives singular triplets. ``r = 0``, the frozen
    product ``∏W``, is not listed: the construction never inverts it, it is non-singular when its
    factors are, and its float64 condition number can exceed ``1/ε`` although every factor is
    well-conditioned.

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

    Shapes: ``target`` ``(D, D)``, ``frozen`` ``L`` matrices ``(D, D)`` from input to output. The
    report lists every ``W_l`` and ``∏W + LR_r(E)`` (``E = W̄ − ∏W``) for the ranks ``r ≥ 1`` the
    construction uses (see :class:`AssumptionReport`); ``∏W`` itself is left to its factors.

    Introduced in :ref:`ch-linear`.
    """
    wbar, ws = check_inputs(target, frozen, dtype)
    ranks = layer_ranks(rank, len(ws), ws[0].shape[0])
    prod = product(ws)
    e = wbar - prod
    bounds = _cumulative_ranks(ranks[:-1], numerical_rank(e, difference_tol(wbar, prod)))
    used = sorted(set(bounds) - {0})
    return AssumptionReport(
        frozen=tuple(Conditioning.of(f"W_{k + 1}", w) for k, w in enumerate(ws)),
        corrected=tuple(
            Conditioning.of(f"∏W + LR_{r}(E)", prod + low_rank_approx(e, r)) for r in used
        ),
    )
