"""The paper's fully connected network and LoRA's exact representation of a smaller one.

The model ``z_l = σ(W_l z_{l-1} + b_l)`` with ReLU after every layer is introduced in the chapter
"One-layer FNN". Row-vector batches in code: ``x`` is ``(n, D)`` and a layer computes
``x @ W_lᵀ + b_l``, which is the column-vector map ``z ↦ W_l z + b_l`` of the paper. A network may
carry LoRA adapters; then every layer uses ``W_l + B_l A_l``.

Constructions (target ``f̄`` of depth ``L̄``, frozen ``f_0`` of depth ``L ≥ L̄``, same width ``D``):

* :func:`construct` — Lemma 2 (``L̄ = 1``, chapter "One-layer FNN"), Theorem 3 with the uniform
  partition and its general-partition version (chapter "Multi-layer FNN"), and, below the
  threshold, the construction behind Theorem 5 (chapter "Below the threshold").
* :func:`uniform_partition`, :func:`check_partition`, :func:`required_rank`,
  :func:`check_assumption` (Assumption 1), :func:`lemma3_margins` (Lemma 3),
  :func:`corollary4_threshold` and :func:`parameter_counts` (Corollary 4).
* Beyond the paper: :func:`optimal_partition` and :func:`example_partition_gap`.

Layers and blocks are **0-based** in code (``[[0, 1], [2, 3]]``); messages and names of matrices
use the paper's 1-based ``W_1, …, W_L``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from . import linear
from .adapters import LoRAFactors
from .linalg import (
    ArrayLike,
    AssumptionError,
    Conditioning,
    as_square_list,
    as_tensor,
    check_rank,
    numerical_rank,
    product,
)
from .linear import Ranks

ACTIVATIONS = ("relu", "identity")


class FNN:
    """``FNN_{L,D}(x) = z_L``, ``z_0 = x``, ``z_l = act(W_l z_{l-1} + b_l)`` for ``l = 1..L``.

    Parameters
    ----------
    weights
        ``[W_1, …, W_L]``, each ``(D, D)``, ordered from input to output.
    biases
        ``[b_1, …, b_L]``, each ``(D,)``; ``None`` means no biases (all zero).
    activation
        ``"relu"`` (the paper's FNN, applied after every layer including the last) or
        ``"identity"`` (the linear model of the chapter "Linear models").
    adapters
        Optional ``[(B_1, A_1), …]``; the layer then uses ``W_l + B_l A_l``.
    """

    def __init__(
        self,
        weights: Sequence[ArrayLike],
        biases: Sequence[ArrayLike] | None = None,
        activation: str = "relu",
        adapters: Sequence[LoRAFactors] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.weights = as_square_list(weights, "weights", dtype)
        width = self.weights[0].shape[0]
        if biases is None:
            biases = [torch.zeros(width, dtype=dtype) for _ in self.weights]
        self.biases = [as_tensor(b, f"biases[{i}]", dtype) for i, b in enumerate(biases)]
        if len(self.biases) != len(self.weights):
            raise ValueError(f"got {len(self.weights)} weights but {len(self.biases)} biases")
        for i, b in enumerate(self.biases):
            if b.shape != (width,):
                raise ValueError(f"biases[{i}] must have shape ({width},), got {tuple(b.shape)}")
        if adapters is not None and len(adapters) != len(self.weights):
            raise ValueError(f"got {len(self.weights)} layers but {len(adapters)} adapters")
        self.adapters = None if adapters is None else [LoRAFactors(*a) for a in adapters]
        self.activation = activation

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.weights)

    @property
    def width(self) -> int:
        """Width ``D``."""
        return self.weights[0].shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def effective_weights(self) -> list[torch.Tensor]:
        """``[W_l + B_l A_l]`` (or ``[W_l]`` without adapters)."""
        if self.adapters is None:
            return list(self.weights)
        return [a.merge(w) for w, a in zip(self.weights, self.adapters, strict=True)]

    def _input(self, x: ArrayLike) -> torch.Tensor:
        x = as_tensor(x, "x", self.dtype)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must have shape (n, {self.width}), got {tuple(x.shape)}")
        return x

    def hidden_states(self, x: ArrayLike) -> list[torch.Tensor]:
        """``[z_0, z_1, …, z_L]`` for a batch ``x`` of shape ``(n, D)``; each entry ``(n, D)``."""
        z = self._input(x)
        states = [z]
        for w, b in zip(self.effective_weights, self.biases, strict=True):
            z = z @ w.T + b
            if self.activation == "relu":
                z = torch.relu(z)
            states.append(z)
        return states

    def __call__(self, x: ArrayLike) -> torch.Tensor:
        """``f(x)`` for ``x`` of shape ``(n, D)``; returns ``(n, D)``."""
        return self.hidden_states(x)[-1]

    def roundoff_scale(self, x: ArrayLike) -> float:
        """``max_l max_j (|W_l| |z_{l-1}| + |b_l|)_j`` over a batch ``x``: the round-off yardstick.

        A floating-point layer ``W z + b`` is accurate to about ``D · eps`` times the magnitude of
        the terms it sums, so a forward pass cannot be trusted below ``~ D · eps ·`` this value.
        The large biases of :func:`construct` make it much larger than the output (chapter
        "Multi-layer FNN"): exactness is judged against it, not against ``|f(x)|``.
        """
        states = self.hidden_states(x)
        return max(
            float((z.abs() @ w.abs().T + b.abs()).max())
            for z, w, b in zip(states[:-1], self.effective_weights, self.biases, strict=True)
        )

    @classmethod
    def random(
        cls,
        width: int,
        depth: int,
        generator: torch.Generator,
        bias: bool = True,
        activation: str = "relu",
        dtype: torch.dtype = torch.float64,
    ) -> FNN:
        """A network initialised like ``torch.nn.Linear``: weights and biases ``U(−1/√D, 1/√D)``.

        This is the paper's random model (its code builds the FNN from ``nn.Linear`` layers).
        """
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be ≥ 1, got width={width}, depth={depth}")
        bound = 1.0 / math.sqrt(width)

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound

        weights = [uniform(width, width) for _ in range(depth)]
        biases = [uniform(width) for _ in range(depth)] if bias else None
        return cls(weights, biases, activation=activation, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Partitions of the frozen layers (chapter "Multi-layer FNN")
# ---------------------------------------------------------------------------------------------

Partition = list[list[int]]

#: Relative safety margin of the linearising biases: every linearised pre-activation stays at least
#: ``BIAS_MARGIN · (1 + |lo| + |hi|)`` above zero on the input box, far above float64 round-off.
BIAS_MARGIN = 1e-3


def _check_depths(depth: int, target_depth: int) -> None:
    for name, value in (("L", depth), ("L_bar", target_depth)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    if target_depth > depth:
        raise ValueError(
            f"target depth L_bar={target_depth} exceeds frozen depth L={depth}: each target layer "
            "needs at least one frozen layer"
        )


def uniform_partition(L: int, L_bar: int) -> Partition:
    """The uniform partition ``P^u`` of the ``L`` frozen layers into ``L̄`` blocks, 0-based.

    With ``M = ⌊L / L̄⌋``, block ``i`` (0-based) is ``[iM, …, (i+1)M − 1]`` for ``i < L̄ − 1`` and the
    last block ``[(L̄−1)M, …, L−1]`` absorbs the remainder. In the paper's 1-based notation
    ``P^u_i = {(i−1)M+1, …, iM}`` and ``P^u_{L̄} = {(L̄−1)M+1, …, L}``. (The seed writes the last
    block as ``{(L−1)M+1, …, L}``, which is empty for ``M ≥ 2``.) Chapter "Multi-layer FNN".

    >>> uniform_partition(7, 3)
    [[0, 1], [2, 3], [4, 5, 6]]
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
    """
    _check_depths(L, L_bar)
    blocks = [list(block) for block in partition]
    if len(blocks) != L_bar:
        raise ValueError(
            f"partition has {len(blocks)} blocks but the target has L_bar={L_bar} layers"
        )
    for i, block in enumerate(blocks):
        if not block:
            raise ValueError(f"partition block {i} is empty")
        if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in block):
            raise ValueError(f"partition block {i} must hold integer layer indices, got {block!r}")
    flat = [int(k) for block in blocks for k in block]
    if flat != list(range(L)):
        raise ValueError(
            f"partition must list the frozen layers 0..{L - 1} once each, in order, as consecutive "
            f"blocks; got {blocks!r}"
        )
    return [[int(k) for k in block] for block in blocks]


def layer_ranks(rank: Ranks, depth: int, width: int) -> list[int]:
    """Normalise ``rank`` to one rank per frozen layer.

    An integer ``R`` must satisfy ``1 ≤ R ≤ D`` and applies to every layer. A list
    ``[R_1, …, R_L]`` may contain ``0`` (the layer keeps its frozen weight, e.g. the extra layers of
    the last block in Theorem 5's construction); each entry must lie in ``[0, D]``.
    """
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        ranks = list(rank)
        if len(ranks) != depth:
            raise ValueError(f"got {len(ranks)} per-layer ranks for {depth} frozen layers")
        for i, r in enumerate(ranks):
            if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r <= width:
                raise ValueError(f"rank[{i}] must be an integer in [0, {width}], got {r!r}")
        return [int(r) for r in ranks]
    return [check_rank(rank, "rank", width)] * depth


def theorem5_ranks(L: int, L_bar: int, rank: int) -> list[int]:
    """Per-layer ranks of Theorem 5's construction: ``R`` on the first ``M`` layers of every block.

    The uniform partition's last block may hold more than ``M = ⌊L/L̄⌋`` layers; the proof adapts
    only ``M`` of them (rank ``0`` on the rest), so every block realises
    ``∏_{P_i} W + LR_{RM}(W̄_i − ∏_{P_i} W)`` and Assumption 1's range ``r ≤ R(M−1)`` covers every
    solve. Chapter "Below the threshold".
    """
    blocks = uniform_partition(L, L_bar)
    rank = check_rank(rank, "rank")
    return [rank if k < L // L_bar else 0 for block in blocks for k in range(len(block))]


class _Pair(NamedTuple):
    """Validated float64 parameters of a (target, frozen) pair."""

    target_weights: list[torch.Tensor]
    target_biases: list[torch.Tensor]
    frozen_weights: list[torch.Tensor]
    activation: str


def _pair(target: FNN, frozen: FNN) -> _Pair:
    """Check that ``target`` (depth ``L̄``) can be represented by adapting ``frozen`` (depth ``L``).

    Adapters already carried by either network are merged into its weights first.
    """
    for name, net in (("target", target), ("frozen", frozen)):
        if not isinstance(net, FNN):
            raise ValueError(f"{name} must be an FNN, got {type(net).__name__}")
    if target.width != frozen.width:
        raise ValueError(
            f"width mismatch: target has D={target.width}, frozen has D={frozen.width}"
        )
    if target.depth > frozen.depth:
        raise ValueError(
            f"target depth L_bar={target.depth} exceeds frozen depth L={frozen.depth}: LoRA adapts "
            "a deeper (or equally deep) frozen network"
        )
    if target.activation != frozen.activation:
        raise ValueError(
            f"activation mismatch: target uses {target.activation!r}, frozen {frozen.activation!r}"
        )

    def f64(ts: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.to(torch.float64) for t in ts]

    return _Pair(
        f64(target.effective_weights),
        f64(target.biases),
        f64(frozen.effective_weights),
        target.activation,
    )


def _blocks(pair: _Pair, partition: Sequence[Sequence[int]] | None) -> Partition:
    depth, target_depth = len(pair.frozen_weights), len(pair.target_weights)
    if partition is None:
        return uniform_partition(depth, target_depth)
    return check_partition(partition, depth, target_depth)


def discrepancies(
    target: FNN, frozen: FNN, partition: Sequence[Sequence[int]] | None = None
) -> list[torch.Tensor]:
    """The block discrepancies ``Ē_i = W̄_i − ∏_{l∈P_i} W_l``, one ``(D, D)`` per target layer.

    ``partition`` defaults to the uniform partition. Chapter "Multi-layer FNN".
    """
    pair = _pair(target, frozen)
    return _discrepancies(pair, _blocks(pair, partition))


def _discrepancies(pair: _Pair, blocks: Partition) -> list[torch.Tensor]:
    return [
        wbar - product([pair.frozen_weights[k] for k in block])
        for wbar, block in zip(pair.target_weights, blocks, strict=True)
    ]


def required_rank(
    target: FNN, frozen: FNN, partition: Sequence[Sequence[int]] | None = None
) -> int:
    """Theorem 3's threshold ``max_i ⌈rank(W̄_i − ∏_{P_i} W_l) / |P_i|⌉`` (numerical rank).

    With the default uniform partition this is Theorem 3 (Lemma 2 when ``L̄ = 1``); with a given
    ``partition`` it is the general-partition version for a common rank ``R``. Chapter
    "Multi-layer FNN".
    """
    pair = _pair(target, frozen)
    blocks = _blocks(pair, partition)
    return max(
        math.ceil(numerical_rank(e) / len(block))
        for e, block in zip(_discrepancies(pair, blocks), blocks, strict=True)
    )


def corollary4_threshold(D: int, L: int, L_bar: int) -> int:
    """Corollary 4's rank ``⌈D/M⌉``, ``M = ⌊L/L̄⌋``: exact for random models with probability 1."""
    _check_depths(L, L_bar)
    check_rank(D, "D")
    return math.ceil(D / (L // L_bar))


@dataclass(frozen=True)
class ParameterCounts:
    """Trainable parameters of rank-``R`` LoRA on ``L`` layers versus the target's own parameters.

    LoRA: ``2RDL`` adapter weights plus ``DL`` re-tuned biases; target: ``D²L̄`` weights plus
    ``DL̄`` biases. At Corollary 4's rank ``2⌈D/M⌉DL ≥ 2D²L̄`` (equality iff ``M | D`` and
    ``L̄ | L``): LoRA needs *at least* about twice the target's weight count (the seed's "at most
    about twice" is wrong).
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

    Chapter "Multi-layer FNN".
    """
    threshold = corollary4_threshold(D, L, L_bar)
    rank = threshold if rank is None else check_rank(rank, "rank", D)
    return ParameterCounts(rank, 2 * rank * D * L, D * L, D * D * L_bar, D * L_bar)


# ---------------------------------------------------------------------------------------------
# Lemma 1 on one block, allowing frozen (rank-0) layers
# ---------------------------------------------------------------------------------------------


class _Group(NamedTuple):
    """Layers ``start..stop−1`` of a block folded into one matrix, adapted through ``active``."""

    start: int
    active: int
    stop: int


def _groups(ranks: list[int]) -> list[_Group]:
    """Fold each rank-0 layer into the next adapted layer (the last one also takes the tail)."""
    active = [k for k, r in enumerate(ranks) if r > 0]
    if not active:
        return []
    starts = [0] + [k + 1 for k in active[:-1]]
    stops = [k + 1 for k in active[:-1]] + [len(ranks)]
    return [_Group(*g) for g in zip(starts, active, stops, strict=True)]


def _folded(
    ws: list[torch.Tensor], ranks: list[int]
) -> tuple[list[_Group], list[torch.Tensor], list[int]]:
    """Groups, their products ``W_{stop−1} ⋯ W_{start}`` and their ranks: Lemma 1's input."""
    groups = _groups(ranks)
    return (
        groups,
        [product(ws[g.start : g.stop]) for g in groups],
        [ranks[g.active] for g in groups],
    )


def _solve(w: torch.Tensor, rhs: torch.Tensor, name: str, left: bool = True) -> torch.Tensor:
    c = Conditioning.of(name, w)
    if c.singular:
        raise AssumptionError(f"Assumption 1 fails: {c} (frozen layer next to a rank-0 layer)")
    return torch.linalg.solve(w, rhs, left=left)


def _block_adapters(
    wbar: torch.Tensor, ws: list[torch.Tensor], ranks: list[int], first: int
) -> list[LoRAFactors]:
    """Lemma 1's adapters for one block ``ws = [W_a, …, W_b]`` (``a = first``) and target ``W̄``.

    The block product becomes ``∏ W + LR_{ΣR_l}(W̄ − ∏ W)``. A rank-0 layer keeps ``ΔW = 0``: it is
    folded into the adapted layer ``W_k`` of its group, ``G = T W_k S``; Lemma 1 adapts ``G`` by
    ``B' A'``, and ``T (W_k + T⁻¹ B' A' S⁻¹) S = G + B' A'`` gives ``B = T⁻¹ B'``, ``A = A' S⁻¹``.
    """
    width = wbar.shape[0]
    out = [LoRAFactors.zeros(width) for _ in ws]
    groups, merged, group_ranks = _folded(ws, ranks)
    if not groups:
        return out
    try:
        adapters = linear.construct(wbar, merged, group_ranks)
    except AssumptionError as exc:  # Lemma 1 names the block's layers W_1, W_2, …: say which block
        block = f"W_{first + 1}..W_{first + len(ws)}"
        raise AssumptionError(
            f"in the block of frozen layers {block} (numbered from 1 inside the block): {exc}"
        ) from exc
    for g, (b, a) in zip(groups, adapters, strict=True):
        for j in range(g.stop - 1, g.active, -1):  # T⁻¹ B = W_{k+1}⁻¹ ⋯ W_{stop−1}⁻¹ B
            b = _solve(ws[j], b, f"W_{first + j + 1}")
        for j in range(g.start, g.active):  # A S⁻¹ = A W_start⁻¹ ⋯ W_{k−1}⁻¹
            a = _solve(ws[j], a, f"W_{first + j + 1}", left=False)
        out[g.active] = LoRAFactors(b, a)
    return out


# ---------------------------------------------------------------------------------------------
# Assumption 1 (chapter "Multi-layer FNN") and Lemma 3
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assumption1Report(linear.AssumptionReport):
    """Assumption 1 (and its general-partition analogue), matrix by matrix.

    ``frozen``: the conditioning of every frozen ``W_l`` (1-based names); ``corrected``: for each
    block ``i`` the matrices ``∏_{P_i} W + LR_r(W̄_i − ∏_{P_i} W)`` that Lemma 1's construction
    inverts for the ranks in use (``r = 0, R_1, R_1 + R_2, …`` up to the block's rank budget minus
    its last adapted layer's share, capped at the discrepancy's rank), named by block;
    ``partition`` the 0-based blocks. ``holds`` and ``worst`` are inherited.
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
    :func:`construct`). Chapter "Multi-layer FNN".
    """
    pair = _pair(target, frozen)
    blocks = _blocks(pair, partition)
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
    """Per random draw: smallest ``σ_min`` and largest condition number (Assumption 1)."""

    sigma_min: torch.Tensor
    condition: torch.Tensor


def lemma3_margins(
    width: int, depth: int, target_depth: int, rank: int, n_draws: int, generator: torch.Generator
) -> AssumptionMargins:
    """Lemma 3 in numbers: how far from singular Assumption 1's matrices are for random models.

    Draws ``n_draws`` independent (target, frozen) pairs with :meth:`FNN.random` (continuous
    entries) and returns, for each, the worst ``σ_min`` and condition number reported by
    :func:`check_assumption`; both tensors have shape ``(n_draws,)``. Lemma 3 says the matrices are
    non-singular with probability 1, so ``sigma_min > 0`` for every draw. Chapter "Multi-layer FNN".
    """
    rows = []
    for _ in range(n_draws):
        target = FNN.random(width, target_depth, generator)
        frozen = FNN.random(width, depth, generator)
        report = check_assumption(target, frozen, rank)
        mats = report.frozen + report.corrected
        rows.append((min(c.sigma_min for c in mats), report.worst.condition))
    table = torch.tensor(rows, dtype=torch.float64).reshape(n_draws, 2)
    return AssumptionMargins(table[:, 0], table[:, 1])


# ---------------------------------------------------------------------------------------------
# Lemma 2 / Theorem 3 / general partitions / Theorem 5's construction
# ---------------------------------------------------------------------------------------------


def _box_image(
    g: torch.Tensor, h: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact coordinate-wise range of ``z ↦ G z + h`` over the box ``lo ≤ z ≤ hi``.

    With centre ``m = (lo+hi)/2`` and radius ``ρ = (hi−lo)/2``: ``G m + h ∓ |G| ρ``. For the cube
    ``‖x‖_∞ ≤ c`` this is ``h_j ± c ‖G_j‖_1``.
    """
    centre = g @ ((lo + hi) / 2) + h
    radius = g.abs() @ ((hi - lo) / 2)
    return centre - radius, centre + radius


def box_sample(width: int, input_bound: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Test inputs for the box ``‖x‖_∞ ≤ c``: ``n`` random corners, then ``n`` uniform points.

    Returns ``(2n, D)`` float64. Corners are where the linearisation of :func:`construct` is
    tightest (pre-activations are affine in ``x`` inside a block, so their minima sit at corners).
    """
    c = _check_bound(input_bound)
    signs = torch.randint(0, 2, (n, width), generator=generator) * 2 - 1
    inside = torch.rand(n, width, generator=generator, dtype=torch.float64) * 2 - 1
    return torch.cat([signs.to(torch.float64), inside]) * c


def truncated_normal_sample(
    width: int, input_bound: float, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` draws of ``N(0, I_D)`` conditioned on the box ``‖x‖_∞ ≤ c`` (rejection), ``(n, D)``.

    The paper's inputs are ``N(0, I)``; the constructions need a bounded domain, and this is the
    closest bounded distribution (acceptance ``(1 − 2Φ(−c))^D``, about 0.96 for ``c = 3``,
    ``D = 16``). Draws ``2n`` candidates at a time. Chapter "Below the threshold".
    """
    c = _check_bound(input_bound)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    accepted: list[torch.Tensor] = []
    while sum(len(a) for a in accepted) < n:
        x = torch.randn(2 * n, width, generator=generator, dtype=torch.float64)
        accepted.append(x[x.abs().amax(dim=1) <= c])
    return torch.cat(accepted)[:n]


def flat_spectrum_target(
    target: FNN, frozen: FNN, partition: Sequence[Sequence[int]] | None = None
) -> FNN:
    """The paper code's ``uniform_singular_values`` target: ``W̄_i ← ∏_{l∈P_i} W_l + c_i I``.

    ``c_i`` is the mean singular value of the original discrepancy ``W̄_i − ∏_{P_i} W_l``
    (``partition`` defaults to the uniform one), so the new discrepancy ``c_i I`` has ``D`` equal
    singular values: Theorem 5's block errors ``σ_{RM+1} = c_i`` stay constant for every ``R``
    below the threshold and drop to 0 at ``⌈D / M⌉``. Biases are kept. Chapter "Below the
    threshold".
    """
    eye = torch.eye(frozen.width, dtype=torch.float64)
    weights = [
        w - e + torch.linalg.svdvals(e).mean() * eye
        for w, e in zip(target.weights, discrepancies(target, frozen, partition), strict=True)
    ]
    return FNN(weights, target.biases, activation=target.activation)


def _check_bound(input_bound: float) -> float:
    try:
        c = float(input_bound)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"input_bound must be a positive number, got {input_bound!r}") from exc
    if not math.isfinite(c) or c <= 0:
        raise ValueError(f"input_bound must be positive and finite, got {input_bound!r}")
    return c


def construct(
    target: FNN,
    frozen: FNN,
    rank: Ranks,
    input_bound: float,
    partition: Sequence[Sequence[int]] | None = None,
) -> FNN:
    """Adapt ``frozen`` (depth ``L``) to ``target`` (depth ``L̄ ≤ L``, width ``D``) on ``‖x‖_∞ ≤ c``.

    Lemma 2 (chapter "One-layer FNN") when ``L̄ = 1``, Theorem 3 (chapter "Multi-layer FNN") with
    the uniform partition by default, its general-partition version when ``partition`` is given
    (0-based blocks, see :func:`check_partition`). ``rank`` is one ``R`` or per-layer ranks
    (``0`` allowed in a list, see :func:`layer_ranks`). Returns an :class:`FNN` with the frozen
    weights, ``adapters`` (one ``LoRAFactors`` per frozen layer) and re-tuned biases, in float64.

    Block ``i`` (layers ``P_i``, target layer ``(W̄_i, b̄_i)``):

    1. **Weights.** Lemma 1 on the block gives ``W'_i := ∏_{l∈P_i}(W_l + B_l A_l)
       = ∏_{P_i} W + LR_{r_i}(W̄_i − ∏_{P_i} W)`` with ``r_i = Σ_{l∈P_i} R_l``.
    2. **Linearising biases.** Inside the block every state is affine in the block input ``z``:
       before layer ``l`` it is ``G z + s``. The input ranges over a box (``[−c, c]^D`` for the
       first block, afterwards the box of the previous block's output), so each pre-activation
       coordinate's exact range ``[lo, hi]`` over that box is ``G_j m + s_j ± |G_j| ρ`` (centre
       ``m``, radius ``ρ``). Every non-final layer gets the per-coordinate bias
       ``b̂_l = μ − lo`` with margin ``μ = BIAS_MARGIN (1 + |lo| + |hi|)``, so all its
       pre-activations lie in ``[μ, μ + hi − lo]`` on the box: its ReLU is the identity there.
       Nothing is fitted to a sample: the bound is proved by interval arithmetic.
       The paper takes a constant ``c_l 1`` with ``c_l ≥ sup ‖W'_l z_{l−1}‖_∞`` ("large"
       biases); any bias with non-negative pre-activations works, and ours may be negative. This
       matters numerically: with non-negative biases the offsets of successive layers compound
       (``c_l ≈ ‖W'_l‖ c_{l−1}``), whereas ``μ − lo`` re-centres every state, so the states stay as
       small as the range of ``G z`` allows.
    3. **Calibrated bias.** The last layer gets ``b̂ = b̄_i − Σ_l (∏_{later k∈P_i} W'_k) b̂_l``, so
       the block computes ``z ↦ ReLU(W'_i z + b̄_i)`` for every ``z`` in its input box.
    4. The block's output box is ``ReLU`` of the range of ``W'_i z + b̄_i``, the next block's input.

    The boxes are those of the **adapted** network's own states, so the same construction is valid
    at every rank. At or above the threshold (``r_i ≥ rank(W̄_i − ∏_{P_i} W)`` for all ``i``, e.g.
    ``R ≥`` :func:`required_rank`) ``W'_i = W̄_i``, the adapted states are the target's and
    ``f(x) = f̄(x)`` for every ``‖x‖_∞ ≤ c``. Below it each block is the LR-truncated product
    (``‖W'_i − W̄_i‖₂ = σ_{r_i+1}``), the regime of Lemma 2's error bound and Theorem 5 (chapter
    "Below the threshold"). Outside the box the linearisation, and the guarantee, may fail.

    **Numerics.** Lemma 1's factors can be large when frozen products are ill-conditioned
    (``‖W'_l‖ ≈ ‖(W_L ⋯ W_{l+1})^{-1}‖``), and the states ``G z`` and the calibrated biases grow
    with them; the last layer of a block then cancels large terms. Float64 round-off is about
    ``D · eps ·`` :meth:`FNN.roundoff_scale`: ``≈ 1e-13`` for ``D = 16, L̄ = 2, L = 4``, but deep
    blocks of ``nn.Linear``-initialised layers (e.g. ``L̄ = 1, L = 8``) lose all digits.

    With ``activation="identity"`` no linearisation is needed: non-final biases are ``0`` and the
    equality holds for every ``x``.

    Raises ``ValueError`` for bad inputs and :class:`~lora_theory.linalg.AssumptionError` when a
    matrix the construction must solve with is singular (see :func:`check_assumption`).
    """
    pair = _pair(target, frozen)
    c = _check_bound(input_bound)
    blocks = _blocks(pair, partition)
    width = frozen.width
    ranks = layer_ranks(rank, len(pair.frozen_weights), width)

    adapters: list[LoRAFactors] = []
    biases: list[torch.Tensor] = []
    lo = torch.full((width,), -c, dtype=torch.float64)  # box of the block input
    hi = -lo
    for wbar, bbar, block in zip(pair.target_weights, pair.target_biases, blocks, strict=True):
        ws = [pair.frozen_weights[k] for k in block]
        block_adapters = _block_adapters(wbar, ws, [ranks[k] for k in block], block[0])
        adapted = [a.merge(w) for a, w in zip(block_adapters, ws, strict=True)]
        g = torch.eye(width, dtype=torch.float64)  # state before the next layer: g z + s
        s = torch.zeros(width, dtype=torch.float64)
        for w in adapted[:-1]:
            g, s = w @ g, w @ s
            if pair.activation == "relu":
                pre_lo, pre_hi = _box_image(g, s, lo, hi)
                margin = BIAS_MARGIN * (1 + pre_lo.abs() + pre_hi.abs())
                bias = margin - pre_lo
            else:
                bias = torch.zeros(width, dtype=torch.float64)
            s = s + bias
            biases.append(bias)
        g, s = adapted[-1] @ g, adapted[-1] @ s
        biases.append(bbar - s)
        lo, hi = _box_image(g, bbar, lo, hi)
        if pair.activation == "relu":
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        adapters += block_adapters
    return FNN(pair.frozen_weights, biases, pair.activation, adapters)


# ---------------------------------------------------------------------------------------------
# Beyond the paper: the best partition (chapter "Multi-layer FNN")
# ---------------------------------------------------------------------------------------------


class PartitionChoice(NamedTuple):
    """A partition (0-based blocks) and the common rank it needs for exact representation."""

    partition: Partition
    rank: int


def optimal_partition(target: FNN, frozen: FNN) -> PartitionChoice:
    """The ordered partition of the ``L`` frozen layers into ``L̄`` consecutive blocks that minimises
    the common rank ``max_i ⌈rank(W̄_i − ∏_{P_i} W) / |P_i|⌉`` needed for exact representation.

    Dynamic programming over (target layer ``i``, end of its block): ``best(i, e) = min_s
    max(best(i−1, s), ⌈rank(W̄_i − W_{e−1} ⋯ W_s) / (e − s)⌉)``, i.e. ``O(L² L̄)`` numerical ranks.
    Ties go to the earliest block boundaries. Not in the paper, which fixes ``P^u``; the
    general-partition theorem says any partition works once the common rank reaches its cost.
    """
    pair = _pair(target, frozen)
    ws, wbars = pair.frozen_weights, pair.target_weights
    depth, target_depth = len(ws), len(wbars)

    def cost(i: int, start: int, stop: int) -> int:
        e = wbars[i] - product(ws[start:stop])
        return math.ceil(numerical_rank(e) / (stop - start))

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


class PartitionExample(NamedTuple):
    """A target, a frozen network and the partition planted in them."""

    target: FNN
    frozen: FNN
    partition: Partition


def example_partition_gap(
    generator: torch.Generator,
    width: int = 12,
    block_sizes: Sequence[int] = (1, 3),
    discrepancy_ranks: Sequence[int] | None = None,
) -> PartitionExample:
    """A model where a non-uniform partition needs a lower rank than the uniform one.

    The frozen network (``L = Σ block_sizes`` layers) is :meth:`FNN.random`; target layer ``i`` is
    the product of the frozen layers of planted block ``P_i`` plus a random perturbation of rank
    ``discrepancy_ranks[i]`` (default: ``1`` for the first block, ``D`` for the others). So the
    planted partition needs ``max_i ⌈k_i / |P_i|⌉`` while other partitions see generic, full-rank
    discrepancies. Defaults (``D = 12``, blocks ``(1, 3)``): planted ``[[0], [1, 2, 3]]`` needs
    ``R = 4``, the uniform ``[[0, 1], [2, 3]]`` needs ``R = 6``. Deterministic given ``generator``.
    """
    sizes = [check_rank(k, "block size") for k in block_sizes]
    ranks = (
        [1] + [width] * (len(sizes) - 1) if discrepancy_ranks is None else list(discrepancy_ranks)
    )
    if len(ranks) != len(sizes):
        raise ValueError(f"got {len(ranks)} discrepancy ranks for {len(sizes)} blocks")
    ranks = layer_ranks(ranks, len(sizes), width)
    frozen = FNN.random(width, sum(sizes), generator)
    stops = list(itertools.accumulate(sizes))
    partition = [list(range(b - k, b)) for b, k in zip(stops, sizes, strict=True)]
    scale = 1.0 / math.sqrt(3 * width)  # the entry scale of nn.Linear's initialisation
    weights = []
    for block, k in zip(partition, ranks, strict=True):
        u = torch.randn(width, k, generator=generator, dtype=torch.float64)
        v = torch.randn(k, width, generator=generator, dtype=torch.float64)
        perturbation = u @ v * (scale / math.sqrt(max(k, 1)))
        weights.append(product([frozen.weights[k] for k in block]) + perturbation)
    biases = FNN.random(width, len(sizes), generator).biases
    return PartitionExample(FNN(weights, biases), frozen, partition)
