"""Assumption 1 (the non-singularity hypothesis of Theorem 3) and Lemma 3 (it holds with
probability 1 for random models), checked matrix by matrix.

Introduced in :ref:`ch-multilayer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from .. import checks, linear
from ..adapters import Ranks, layer_ranks
from ..linalg import Conditioning
from .construction import _folded
from .model import FNN, check_pair
from .partitions import _check_depths, blocks_of

#: Limits of :func:`lemma3_margins`, whose cost is ``n_draws`` pairs of ``D × D`` SVDs per layer.
MAX_DRAWS = 100_000
MAX_WIDTH = 4096


@dataclass(frozen=True)
class Assumption1Report(linear.AssumptionReport):
    """Assumption 1 (and its general-partition analogue), matrix by matrix.

    ``frozen``: the conditioning of every frozen ``W_l`` (1-based names); ``corrected``: for each
    block ``i`` the matrices ``∏_{P_i} W + LR_r(W̄_i − ∏_{P_i} W)`` at the block boundaries of
    Lemma 1's construction for the ranks in use (``r = R_1, R_1 + R_2, …`` up to the block's rank
    budget minus its last adapted layer's share, capped at the discrepancy's rank), named by
    block: :func:`lora_theory.linear.diagnose`'s ``corrected``. The block's frozen product
    (``r = 0``) is not listed: it is never inverted and is non-singular when its factors, listed
    in ``frozen``, are. ``partition`` the 0-based blocks. ``holds`` and ``worst`` are inherited.

    Introduced in :ref:`ch-multilayer`.
    """

    partition: tuple[tuple[int, ...], ...]

    def __str__(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        lines = [str(c) for c in self.frozen + self.corrected]
        return "\n".join([f"Assumption 1 {verdict}; worst {self.worst.name}", *lines])


def check_assumption(
    target: FNN, frozen: FNN, rank: Ranks, partition: Sequence[Sequence[int]] | None = None
) -> Assumption1Report:
    """Check Assumption 1 for ``rank`` (``R`` or per-layer ranks), matrix by matrix.

    Reuses :func:`lora_theory.linear.diagnose` on each block (with rank-0 layers folded as in
    :func:`construct`): every frozen ``W_l`` and each block's partial corrections for the ranks
    ``r ≥ 1`` the construction uses (see :class:`Assumption1Report`).

    Introduced in :ref:`ch-multilayer`.
    """
    pair = check_pair(target, frozen)
    blocks = blocks_of(pair, partition)
    ranks = layer_ranks(rank, len(pair.frozen_weights), frozen.width)
    corrected: list[Conditioning] = []
    for i, (wbar, block) in enumerate(zip(pair.target_weights, blocks, strict=True)):
        _, merged, group_ranks = _folded(
            [pair.frozen_weights[k] for k in block], [ranks[k] for k in block]
        )
        if merged:
            label = f"block {i + 1} (W_{block[0] + 1}..W_{block[-1] + 1})"
            report = linear.diagnose(wbar, merged, group_ranks)
            corrected += [replace(c, name=f"{label}: {c.name}") for c in report.corrected]
    return Assumption1Report(
        frozen=tuple(Conditioning.of(f"W_{k + 1}", w) for k, w in enumerate(pair.frozen_weights)),
        corrected=tuple(corrected),
        partition=tuple(tuple(block) for block in blocks),
    )


@dataclass(frozen=True)
class AssumptionMargins:
    """Per random draw: smallest ``σ_min`` and largest condition number (Assumption 1).

    Introduced in :ref:`ch-multilayer`.
    """

    sigma_min: torch.Tensor
    condition: torch.Tensor


def lemma3_margins(
    width: int, depth: int, target_depth: int, rank: int, n_draws: int, generator: torch.Generator
) -> AssumptionMargins:
    """Lemma 3 in numbers: how far from singular Assumption 1's matrices are for random models.

    Draws ``n_draws`` independent (target, frozen) pairs with :meth:`~lora_theory.fnn.FNN.random`
    (continuous
    entries) and returns, for each, the worst ``σ_min`` and condition number reported by
    :func:`check_assumption`; both tensors have shape ``(n_draws,)``. Lemma 3 says the matrices are
    non-singular with probability 1, so ``sigma_min > 0`` for every draw.

    Introduced in :ref:`sec-assumption1`.
    """
    width = checks.integer(width, "width", low=1, high=MAX_WIDTH)
    n_draws = checks.integer(n_draws, "n_draws", low=1, high=MAX_DRAWS)
    checks.rank(rank, "rank", width)
    _check_depths(depth, target_depth)
    checks.integer(depth, "depth", high=MAX_WIDTH)
    checks.generator(generator)
    rows = []
    for _ in range(n_draws):
        target = FNN.random(width, target_depth, generator)
        frozen = FNN.random(width, depth, generator)
        report = check_assumption(target, frozen, rank)
        mats = report.frozen + report.corrected
        rows.append((min(c.sigma_min for c in mats), report.worst.condition))
    table = torch.tensor(rows, dtype=torch.float64).reshape(n_draws, 2)
    return AssumptionMargins(table[:, 0], table[:, 1])
