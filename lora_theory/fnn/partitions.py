"""Partitions of the frozen layers into blocks, block discrepancies and rank thresholds.

Theorem 3 assigns target layer ``i`` to the block ``P_i`` of consecutive frozen layers (the uniform
partition ``P^u`` by default; any ordered partition in the general-partition version) and needs
the common rank ``max_i ⌈rank(W̄_i − ∏_{l∈P_i} W_l) / |P_i|⌉``. Corollary 4 gives its value
``⌈D/M⌉``, ``M = ⌊L/L̄⌋``, for random models. Beyond the paper: :func:`optimal_partition`.

Layers and blocks are **0-based** in code (``[[0, 1], [2, 3]]``); messages and names of matrices
use the paper's 1-based ``W_1, …, W_L``.

Introduced in :ref:`ch-multilayer`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import checks
from ..adapters import n_lora_params
from ..linalg import difference_tol, numerical_rank, product
from .model import FNN, Pair, check_pair

Partition = list[list[int]]


def _check_depths(depth: int, target_depth: int) -> None:
    depth = checks.integer(depth, "L", 1, checks.MAX_LENGTH)
    target_depth = checks.integer(target_depth, "L_bar", low=1)
    if target_depth > depth:
        raise ValueError(
            f"target depth L_bar={target_depth} exceeds frozen depth L={depth}: each target layer "
            "needs at least one frozen layer"
        )


def uniform_partition(L: int, L_bar: int) -> Partition:
    """The uniform partition ``P^u`` of the ``L`` frozen layers into ``L̄`` blocks, 0-based.

    With ``M = ⌊L / L̄⌋``, block ``i`` (0-based) is ``[iM, …, (i+1)M − 1]`` for ``i < L̄ − 1`` and the
    last block ``[(L̄−1)M, …, L−1]`` absorbs the remainder. In the paper's 1-based notation
    ``P^u_i = {(i−1)M+1, …, iM}`` and ``P^u_{L̄} = {(L̄−1)M+1, …, L}``. (The Korean-language
    analysis writes the last block as ``{(L−1)M+1, …, L}``, which is empty for ``M ≥ 2``.)

    >>> uniform_partition(7, 3)
    [[0, 1], [2, 3], [4, 5, 6]]

    Introduced in :ref:`ch-multilayer`.
    """
    _check_depths(L, L_bar)
    m = L // L_bar
    starts = [i * m for i in range(L_bar)]
    stops = [*starts[1:], L]
    return [list(range(a, b)) for a, b in zip(starts, stops, strict=True)]


def check_partition(partition: Sequence[Sequence[int]], L: int, L_bar: int) -> Partition:
    """Validate an ordered partition of ``0..L−1`` into ``L̄`` non-empty consecutive blocks.

    Returns it as a list of lists of 0-based layer indices; raises ``ValueError`` naming the
    problem otherwise (wrong number of blocks, an empty block, a gap, an overlap or a wrong order).

    Introduced in :ref:`ch-multilayer`.
    """
    _check_depths(L, L_bar)
    outer = checks.sequence(partition, "partition", "blocks of layer indices")
    blocks = [
        checks.sequence(block, f"partition block {i}", "layer indices", empty=True)
        for i, block in enumerate(outer)
    ]
    if len(blocks) != L_bar:
        raise ValueError(
            f"partition has {len(blocks)} blocks but the target has L_bar={L_bar} layers"
        )
    for i, block in enumerate(blocks):
        if not block:
            raise ValueError(f"partition block {i} is empty")
        for k in block:
            checks.integer(k, f"partition block {i} entry", low=0)
    flat = [int(k) for block in blocks for k in block]
    if flat != list(range(L)):
        raise ValueError(
            f"partition must list the frozen layers 0..{L - 1} once each, in order, as consecutive "
            f"blocks; got {blocks!r}"
        )
    return [[int(k) for k in block] for block in blocks]


def theorem5_ranks(L: int, L_bar: int, rank: int) -> list[int]:
    """Per-layer ranks of Theorem 5's construction: ``R`` on the first ``M`` layers of every block.

    The uniform partition's last block may hold more than ``M = ⌊L/L̄⌋`` layers; the proof adapts
    only ``M`` of them (rank ``0`` on the rest), so every block realises
    ``∏_{P_i} W + LR_{RM}(W̄_i − ∏_{P_i} W)`` and Assumption 1's range ``r ≤ R(M−1)`` covers every
    solve.

    Introduced in :ref:`pf-thm5`.
    """
    blocks = uniform_partition(L, L_bar)
    rank = checks.rank(rank, "rank")
    return [rank if k < L // L_bar else 0 for block in blocks for k in range(len(block))]


def blocks_of(pair: Pair, partition: Sequence[Sequence[int]] | None) -> Partition:
    """The validated partition of ``pair`` (``None``: the uniform one).

    Introduced in :ref:`ch-multilayer`.
    """
    checks.instance(pair, "pair", Pair, "an fnn.Pair (from check_pair)")
    depth, target_depth = len(pair.frozen_weights), len(pair.target_weights)
    if partition is None:
        return uniform_partition(depth, target_depth)
    return check_partition(partition, depth, target_depth)


def discrepancies(
    target: FNN, frozen: FNN, partition: Sequence[Sequence[int]] | None = None
) -> list[torch.Tensor]:
    """The block discrepancies ``Ē_i = W̄_i − ∏_{l∈P_i} W_l``, one ``(D, D)`` per target layer.

    ``partition`` defaults to the uniform partition.

    Introduced in :ref:`ch-multilayer`.
    """
    pair = check_pair(target, frozen)
    return _discrepancies(pair, blocks_of(pair, partition))


def _discrepancies(pair: Pair, blocks: Partition) -> list[torch.Tensor]:
    return [
        wbar - product([pair.frozen_weights[k] for k in block])
        for wbar, block in zip(pair.target_weights, blocks, strict=True)
    ]


def required_rank(
    target: FNN, frozen: FNN, partition: Sequence[Sequence[int]] | None = None
) -> int:
    """Theorem 3's threshold ``max_i ⌈rank(W̄_i − ∏_{P_i} W_l) / |P_i|⌉`` (numerical rank).

    With the default uniform partition this is Theorem 3 (Lemma 2 when ``L̄ = 1``); with a given
    ``partition`` it is the general-partition version for a common rank ``R``.

    Introduced in :ref:`ch-multilayer`.
    """
    pair = check_pair(target, frozen)
    blocks = blocks_of(pair, partition)
    return max(
        math.ceil(numerical_rank(e, _tol(pair, i, block)) / len(block))
        for i, (e, block) in enumerate(zip(_discrepancies(pair, blocks), blocks, strict=True))
    )


def corollary4_threshold(D: int, L: int, L_bar: int) -> int:
    """Corollary 4's rank ``⌈D/M⌉``, ``M = ⌊L/L̄⌋``: exact for random models with probability 1.

    Introduced in :ref:`ch-multilayer`.
    """
    _check_depths(L, L_bar)
    D = checks.integer(D, "D", low=1)
    return math.ceil(D / (L // L_bar))


@dataclass(frozen=True)
class ParameterCounts:
    """Trainable parameters of rank-``R`` LoRA on ``L`` layers versus the target's own parameters.

    LoRA: ``2RDL`` adapter weights plus ``DL`` re-tuned biases; target: ``D²L̄`` weights plus
    ``DL̄`` biases. At Corollary 4's rank ``2⌈D/M⌉DL ≥ 2D²L̄`` (equality iff ``M | D`` and
    ``L̄ | L``): LoRA needs *at least* about twice the target's weight count (the
    Korean-language analysis's "at most about twice" is wrong).

    Introduced in :ref:`ch-multilayer`.
    """

    rank: int
    lora_weights: int
    lora_biases: int
    target_weights: int
    target_biases: int

    @property
    def ratio(self) -> float:
        """``2RDL / (D²L̄)``: LoRA's weight count relative to the target's."""
        return self.lora_weights / self.target_weights


def parameter_counts(D: int, L: int, L_bar: int, rank: int | None = None) -> ParameterCounts:
    """:class:`ParameterCounts` at ``rank`` (default :func:`corollary4_threshold`).

    Introduced in :ref:`ch-multilayer`.
    """
    threshold = corollary4_threshold(D, L, L_bar)
    D, L, L_bar = int(D), int(L), int(L_bar)
    rank = threshold if rank is None else checks.rank(rank, "rank", D)
    return ParameterCounts(rank, n_lora_params(D, [rank] * L), D * L, D * D * L_bar, D * L_bar)


def _tol(pair: Pair, i: int, block: list[int]) -> float:
    """Rank tolerance of block ``i``'s discrepancy, relative to ``‖W̄_i‖`` and ``‖∏_{P_i} W‖``."""
    return difference_tol(pair.target_weights[i], product([pair.frozen_weights[k] for k in block]))


class PartitionChoice(NamedTuple):
    """A partition (0-based blocks) and the common rank it needs for exact representation.

    Introduced in :ref:`ch-multilayer`.
    """

    partition: Partition
    rank: int


def optimal_partition(target: FNN, frozen: FNN) -> PartitionChoice:
    """The ordered partition of the ``L`` frozen layers into ``L̄`` consecutive blocks that minimises
    the common rank ``max_i ⌈rank(W̄_i − ∏_{P_i} W) / |P_i|⌉`` needed for exact representation.

    Dynamic programming over (target layer ``i``, end of its block): ``best(i, e) = min_s
    max(best(i−1, s), ⌈rank(W̄_i − W_{e−1} ⋯ W_s) / (e − s)⌉)``, i.e. ``O(L² L̄)`` numerical ranks.
    Ties go to the earliest block boundaries. Not in the paper, which fixes ``P^u``; the
    general-partition theorem says any partition works once the common rank reaches its cost.

    Introduced in :ref:`ch-multilayer`.
    """
    pair = check_pair(target, frozen)
    ws, wbars = pair.frozen_weights, pair.target_weights
    depth, target_depth = len(ws), len(wbars)

    def cost(i: int, start: int, stop: int) -> int:
        prod = product(ws[start:stop])
        tol = difference_tol(wbars[i], prod)
        return math.ceil(numerical_rank(wbars[i] - prod, tol) / (stop - start))

    best: dict[tuple[int, int], tuple[int, int]] = {}  # (i, stop) → (value, start of block i)
    for i in range(target_depth):
        for stop in range(i + 1, depth - target_depth + i + 2):
            starts = range(i, stop) if i else range(1)
            best[i, stop] = min(
                (max(best[i - 1, a][0] if i else 0, cost(i, a, stop)), a) for a in starts
            )
    partition: Partition = []
    stop = depth
    for i in reversed(range(target_depth)):
        start = best[i, stop][1]
        partition.insert(0, list(range(start, stop)))
        stop = start
    return PartitionChoice(partition, best[target_depth - 1, depth][0])
