"""The constructions of Lemma 2, Theorem 3 and its general-partition version (and, below the
threshold, the one behind Theorem 5): frozen weights plus LoRA adapters plus re-tuned biases that
make an ``FNN_{L,D}`` equal to a smaller ``FNN_{L̄,D}`` on a box of inputs.

Introduced in :ref:`ch-fnn-one-layer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .. import checks, linear
from ..adapters import LoRAFactors, Ranks, layer_ranks
from ..linalg import AssumptionError, Conditioning, ExactnessError, product
from .certificate import box_image, certify
from .model import FNN, check_pair
from .partitions import blocks_of

#: Relative safety margin of the linearising biases: every linearised pre-activation stays at least
#: ``BIAS_MARGIN · (1 + |lo| + |hi|)`` above zero on the input box, far above float64 round-off.
BIAS_MARGIN = 1e-3


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
    return torch.linalg.solve(w, rhs, left=left).contiguous()  # one layout: bitwise-stable products


def _block_adapters(
    wbar: torch.Tensor, ws: list[torch.Tensor], ranks: list[int], first: int, method: str
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
        adapters = linear.construct(wbar, merged, group_ranks, method=method)
    except (AssumptionError, ExactnessError) as exc:  # Lemma 1 numbers W_1, W_2, … in the block
        block = f"W_{first + 1}..W_{first + len(ws)}"
        message = f"in the block of frozen layers {block} (numbered from 1 inside the block): {exc}"
        if isinstance(exc, ExactnessError):
            raise ExactnessError(message, exc.achieved, exc.optimum, exc.allowed) from exc
        raise AssumptionError(message) from exc
    for g, (b, a) in zip(groups, adapters, strict=True):
        for j in range(g.stop - 1, g.active, -1):  # T⁻¹ B = W_{k+1}⁻¹ ⋯ W_{stop−1}⁻¹ B
            b = _solve(ws[j], b, f"W_{first + j + 1}")
        for j in range(g.start, g.active):  # A S⁻¹ = A W_start⁻¹ ⋯ W_{k−1}⁻¹
            a = _solve(ws[j], a, f"W_{first + j + 1}", left=False)
        out[g.active] = LoRAFactors(b, a)
    return out


def construct(
    target: FNN,
    frozen: FNN,
    rank: Ranks,
    input_bound: float,
    partition: Sequence[Sequence[int]] | None = None,
    rtol: float | None = None,
    method: str = "sequential",
) -> FNN:
    """Adapt ``frozen`` (depth ``L``) to ``target`` (depth ``L̄ ≤ L``, width ``D``) on ``‖x‖_∞ ≤ c``.

    Lemma 2 (:ref:`ch-fnn-one-layer`) when ``L̄ = 1``, Theorem 3 (:ref:`ch-multilayer`) with
    the uniform partition by default, its general-partition version when ``partition`` is given
    (0-based blocks, see :func:`check_partition`). ``rank`` is one ``R`` or per-layer ranks
    (``0`` allowed in a list, see :func:`~lora_theory.adapters.layer_ranks`). Returns an
    :class:`FNN` with the frozen
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
    blocks of ``nn.Linear``-initialised layers (e.g. ``L̄ = 1, L = 8``) lose all digits with
    Lemma 1's own factors. ``method`` goes to :func:`lora_theory.linear.construct` for every
    block: the default ``"sequential"`` is Lemma 1's construction (the proofs' adapters);
    ``"auto"`` switches to the conditioned exact solution where Lemma 1's factors miss by more
    than ``AUTO_RTOL``, which keeps ``L̄ = 1, L = 8`` exact.

    With ``activation="identity"`` no linearisation is needed: non-final biases are ``0`` and the
    equality holds for every ``x``.

    **Self-check.** The returned network is certified by :func:`~lora_theory.fnn.certify` on its
    own parameters: every hidden ReLU provably active on the box, every block's product within
    ``rtol`` (``1e-7`` in float64) of Lemma 1's optimum and its offset within ``rtol`` of ``b̄_i``,
    each relative to the block's scale. Otherwise it raises
    :class:`~lora_theory.linalg.ExactnessError` naming the block and the achieved and allowed
    errors: a network off by more than the tolerance is never returned.

    Raises ``ValueError`` for bad inputs and :class:`~lora_theory.linalg.AssumptionError` when a
    matrix the construction must solve with is singular (see :func:`check_assumption`).

    Introduced in :ref:`ch-fnn-one-layer`.
    """
    pair = check_pair(target, frozen)
    c = checks.real(input_bound, "input_bound", positive=True)
    checks.choice(method, "method", linear.METHODS)
    blocks = blocks_of(pair, partition)
    width = frozen.width
    ranks = layer_ranks(rank, len(pair.frozen_weights), width)

    adapters: list[LoRAFactors] = []
    biases: list[torch.Tensor] = []
    lo = torch.full((width,), -c, dtype=torch.float64)  # box of the block input
    hi = -lo
    for wbar, bbar, block in zip(pair.target_weights, pair.target_biases, blocks, strict=True):
        ws = [pair.frozen_weights[k] for k in block]
        block_adapters = _block_adapters(wbar, ws, [ranks[k] for k in block], block[0], method)
        adapted = [a.merge(w) for a, w in zip(block_adapters, ws, strict=True)]
        g = torch.eye(width, dtype=torch.float64)  # state before the next layer: g z + s
        s = torch.zeros(width, dtype=torch.float64)
        for w in adapted[:-1]:
            g, s = w @ g, w @ s
            if pair.activation == "relu":
                pre_lo, pre_hi = box_image(g, s, lo, hi)
                margin = BIAS_MARGIN * (1 + pre_lo.abs() + pre_hi.abs())
                bias = margin - pre_lo
            else:
                bias = torch.zeros(width, dtype=torch.float64)
            s = s + bias
            biases.append(bias)
        g, s = adapted[-1] @ g, adapted[-1] @ s
        biases.append(bbar - s)
        lo, hi = box_image(g, bbar, lo, hi)
        if pair.activation == "relu":
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        adapters += block_adapters
    adapted = FNN(pair.frozen_weights, biases, pair.activation, adapters)
    certify(target, adapted, c, ranks, blocks, rtol)
    return adapted
