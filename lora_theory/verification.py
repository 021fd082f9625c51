r"""The FNN chapters' numerical verifications: exactness, sweeps over seeds, depths and ranks.

A construction is *exact* on a batch ``x`` when ``max |f(x) − f̄(x)| ≤ D ε s``, with ``ε`` the
float64 machine epsilon and ``s`` :meth:`~lora_theory.fnn.FNN.roundoff_scale`, the size of the
terms a forward pass sums: below that yardstick float64 cannot tell two networks apart.

* :func:`exactness` — the error and the yardstick of one adapted network on one batch;
  :func:`allocation_check` builds the construction for given ranks and partition and measures it;
* :func:`theorem3_check` — Theorem 3 at its threshold and one rank below, on a random instance;
* :func:`deep_block` and :func:`orthogonal_layers` — one block of ``L`` frozen layers at the
  threshold ``⌈D/L⌉``: what float64 makes of deep blocks;
* :func:`rank_sweep` — Theorem 5's bound against the measured error, for every rank below the
  threshold; :func:`state_bounds` lists the state bounds ``β_0, …, β_{L̄}``;
* :func:`deficit_in_block` — the realised amplification of an error left in one block;
* :func:`spectral_bound` — Theorem 5's proof with spectral norms and per-block state bounds.

Introduced in :ref:`sec-thm3-verification`.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch

from . import bounds, checks, fnn, linalg, linear
from .checks import ArrayLike
from .fnn import FNN
from .instances import box_sample

__all__ = [
    "DeepBlock",
    "Exactness",
    "SweepRow",
    "Theorem3Check",
    "allocation_check",
    "deep_block",
    "deficit_in_block",
    "exactness",
    "orthogonal_layers",
    "rank_sweep",
    "spectral_bound",
    "state_bounds",
    "theorem3_check",
]

EPS = torch.finfo(torch.float64).eps


class Exactness(NamedTuple):
    """``error = max |f(x) − f̄(x)|`` and ``tolerance = D ε s`` on one batch.

    Introduced in :ref:`sec-thm3-verification`.
    """

    error: float
    tolerance: float

    @property
    def exact(self) -> bool:
        """``error ≤ tolerance``: equal up to float64 round-off."""
        return self.error <= self.tolerance

    def matches(self, expected: bool, margin: float = 1e-3) -> bool:
        """Whether the verdict is ``expected`` *and* clear-cut: exact when exactness is expected,
        off by more than ``margin`` (far above round-off) when it is not."""
        margin = checks.real(margin, "margin", non_negative=True)
        return self.exact == bool(expected) and (self.exact or self.error > margin)


def exactness(adapted: FNN, target: FNN, x: ArrayLike) -> Exactness:
    """How far ``adapted`` is from ``target`` on the batch ``x`` ``(n, D)``, against round-off.

    Returns :class:`Exactness` with ``error = max_{k,j} |f(x_k) − f̄(x_k)|_j`` and
    ``tolerance = D ε s``, ``s = adapted.roundoff_scale(x)``.

    Introduced in :ref:`sec-thm3-verification`.
    """
    checks.instances([adapted, target], "networks", FNN)
    x = checks.tensor(x, "x")
    if x.ndim != 2 or not len(x):
        raise ValueError(f"x must be a non-empty (n, D) batch, got shape {tuple(x.shape)}")
    error = float((adapted(x) - target(x)).abs().max())
    return Exactness(error, target.width * EPS * adapted.roundoff_scale(x))


def allocation_check(
    target: FNN,
    frozen: FNN,
    ranks: object,
    x: ArrayLike,
    input_bound: float,
    partition: Sequence[Sequence[int]] | None = None,
) -> Exactness:
    """:func:`exactness` of :func:`~lora_theory.fnn.construct` with ``ranks`` (one ``R`` or one
    per layer) and ``partition`` (default: uniform) on the box ``‖x‖_∞ ≤ input_bound``.

    Introduced in :ref:`sec-general-verification`.
    """
    adapted = fnn.construct(target, frozen, ranks, input_bound=input_bound, partition=partition)
    return exactness(adapted, target, x)


def _quiet_construct(
    target: FNN, frozen: FNN, rank: object, input_bound: float, method: str = "auto"
) -> FNN:
    """:func:`~lora_theory.fnn.construct` without its conditioning warnings (the results are
    certified or refused, so the warning adds nothing to a sweep)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linear.ConditioningWarning)
        return fnn.construct(target, frozen, rank, input_bound=input_bound, method=method)


class Theorem3Check(NamedTuple):
    """Theorem 3 on one random instance: the threshold ``rank`` and the construction's
    :class:`Exactness` at ``rank`` (``at``) and at ``rank − 1`` (``below``).

    Introduced in :ref:`sec-thm3-verification`.
    """

    rank: int
    at: Exactness
    below: Exactness


def theorem3_check(
    depth: int, target_depth: int, seed: int, width: int = 16, n: int = 200
) -> Theorem3Check:
    """Theorem 3 at and one below its threshold for a random (target, frozen) pair of ``seed``.

    Draws the target (depth ``L̄``) and the frozen model (depth ``L``) with
    :meth:`~lora_theory.fnn.FNN.random` and ``n`` corners plus ``n`` interior points of the box
    ``[−1, 1]^D`` from ``torch.Generator().manual_seed(seed)``, then builds the construction at
    ``R = required_rank`` and at ``R − 1``. The threshold needs ``R ≥ 2`` (``width ≥ 2M``).

    Introduced in :ref:`sec-thm3-verification`.
    """
    seed = checks.integer(seed, "seed", low=0)
    g = torch.Generator().manual_seed(seed)
    target, frozen = FNN.random(width, target_depth, g), FNN.random(width, depth, g)
    x = box_sample(width, 1.0, n, g)
    rank = fnn.required_rank(target, frozen)
    if rank < 2:
        raise ValueError(f"the threshold rank is {rank}; expected at least 2 to test rank − 1")
    at, below = (_quiet_construct(target, frozen, r, 1.0) for r in (rank, rank - 1))
    return Theorem3Check(rank, exactness(at, target, x), exactness(below, target, x))


class DeepBlock(NamedTuple):
    """One block of deep frozen layers at the threshold: ``error`` (relative, see
    :func:`deep_block`; the certificate's error when the construction refused), ``condition``
    (the worst condition number of Assumption 1's matrices) and whether the construction
    ``refused``.

    Introduced in :ref:`sec-deep-caveat`.
    """

    error: float
    condition: float
    refused: bool


def deep_block(
    frozen_weights: Sequence[torch.Tensor], generator: torch.Generator, method: str = "auto"
) -> DeepBlock:
    """A one-layer random target adapted by one block of ``L = len(frozen_weights)`` layers.

    The frozen model has the given ``(D, D)`` weights and zero biases; the target is
    :meth:`~lora_theory.fnn.FNN.random` of depth 1 and the sample ``200`` corners plus ``200``
    interior points of ``[−1, 1]^D``, both drawn from ``generator``; the rank is Corollary 4's
    ``⌈D/L⌉`` and ``method`` the construction's (:func:`~lora_theory.fnn.construct`:
    ``"sequential"``, the paper's; ``"conditioned"``; ``"auto"``, the default). The construction
    certifies its result or refuses it (:class:`~lora_theory.linalg.ExactnessError`); a refusal is
    reported, not raised (its error is the certificate's, or NaN where a solve was too
    ill-conditioned to attempt). The reported error is relative: the larger of the certificate's
    bound on the box and the sample's ``max |f − f̄|``, divided by the sample's ``max |f̄|``.

    Introduced in :ref:`sec-deep-caveat`.
    """
    weights = checks.square_list(frozen_weights, "frozen_weights")
    checks.generator(generator)
    depth, width = len(weights), int(weights[0].shape[0])
    target = FNN.random(width, 1, generator)
    zeros = torch.zeros(width, dtype=torch.float64)
    frozen = FNN(weights, [zeros] * depth)
    x = box_sample(width, 1.0, 200, generator)
    rank = fnn.corollary4_threshold(width, depth, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linear.ConditioningWarning)
        condition = fnn.check_assumption(target, frozen, rank).worst.condition
    try:
        adapted = _quiet_construct(target, frozen, rank, 1.0, method)
    except linalg.ExactnessError as refused:
        return DeepBlock(refused.achieved, condition, True)
    except linalg.AssumptionError:  # a solve too ill-conditioned to attempt in float64
        return DeepBlock(math.nan, condition, True)
    # the bound itself, not a verdict: the construction has checked its tolerance already
    bound = fnn.certify(target, adapted, 1.0, rank, rtol=sys.float_info.max).bound
    error = max(bound, exactness(adapted, target, x).error)
    return DeepBlock(error / float(target(x).abs().max()), condition, False)


def orthogonal_layers(width: int, depth: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``depth`` random orthogonal ``(D, D)`` matrices: the Q factors of Gaussian matrices.

    Every product of orthogonal layers is orthogonal (condition number 1), the opposite extreme
    to ``nn.Linear``-initialised layers, whose products shrink and become ill-conditioned.

    Introduced in :ref:`sec-deep-caveat`.
    """
    width = checks.integer(width, "width", low=1)
    depth = checks.integer(depth, "depth", low=1)
    checks.elements((depth, width, width), "orthogonal_layers")
    checks.generator(generator)
    return [
        torch.linalg.qr(torch.randn(width, width, generator=generator, dtype=torch.float64))[0]
        for _ in range(depth)
    ]


def state_bounds(target: FNN, second_moment: ArrayLike) -> list[float]:
    """``[β_0, …, β_{L̄}]`` with ``β_0 = √tr Σ`` and ``β_i = ‖W̄_i‖_F β_{i−1} + ‖b̄_i‖₂``.

    ``β_i`` bounds ``E‖z̄_i‖₂`` for the target's hidden states; Theorem 5's ``β`` is the largest
    of ``β_0, …, β_{L̄−1}`` (:func:`~lora_theory.bounds.theorem5_beta`), the last entry is the
    output state's bound, which the proof does not need. ``second_moment`` is ``(D, D)``.

    Introduced in :ref:`sec-thm5-proof`.
    """
    checks.instance(target, "target", FNN, "an FNN")
    s = checks.shape(
        checks.square(second_moment, "second_moment"), (target.width,) * 2, "second_moment"
    )
    out = [math.sqrt(float(s.trace()))]
    for w, b in zip(target.effective_weights, target.biases, strict=True):
        out.append(float(torch.linalg.matrix_norm(w)) * out[-1] + float(b.norm()))
    return out


class SweepRow(NamedTuple):
    """One rank of :func:`rank_sweep`: the measured ``E‖f − f̄‖₂``, Theorem 5's ``bound`` and the
    round-off ``tolerance`` of the construction on the sample.

    Introduced in :ref:`sec-thm5-verification`.
    """

    rank: int
    measured: float
    bound: float
    tolerance: float


def rank_sweep(target: FNN, frozen: FNN, x: ArrayLike, input_bound: float) -> list[SweepRow]:
    """Theorem 5's construction for ``R = 1, …, ⌈D/M⌉``: measured error against the bound.

    For each rank the construction uses :func:`~lora_theory.fnn.theorem5_ranks` on the box
    ``‖x‖_∞ ≤ input_bound`` (``x`` ``(n, D)`` must lie in it); ``Σ`` is the sample's second
    moment, so the bound holds for the sample exactly. The last row is the threshold, where the
    bound is ``0`` and the measured error is at round-off level.

    Introduced in :ref:`sec-thm5-verification`.
    """
    checks.instances([target, frozen], "networks", FNN, "an FNN")
    depth, target_depth, width = frozen.depth, target.depth, frozen.width
    second_moment = bounds.empirical_second_moment(x)
    rows = []
    for rank in range(1, fnn.corollary4_threshold(width, depth, target_depth) + 1):
        ranks = fnn.theorem5_ranks(depth, target_depth, rank)
        adapted = fnn.construct(target, frozen, rank=ranks, input_bound=input_bound)
        bound = bounds.theorem5_bound(target, frozen, rank, second_moment).value
        error = bounds.measured_error(target, adapted, x)
        rows.append(SweepRow(rank, error, bound, exactness(adapted, target, x).tolerance))
    return rows


def deficit_in_block(
    target: FNN, frozen: FNN, x: ArrayLike, block: int, rank: int, input_bound: float
) -> tuple[float, float]:
    """``(after, final)``: mean ``‖z − z̄‖₂`` right after ``block`` (0-based) and at the output,
    when only that block's layers get ``rank`` and every other layer the threshold ``⌈D/M⌉``.

    The other blocks are then exact, so ``final / after`` is the amplification that the later
    blocks actually apply to an error made in ``block`` (Theorem 5 allows ``γ^{L̄−i}``).
    Uses the uniform partition with ``M = ⌊L/L̄⌋`` layers per block; the remainder layers of the
    last block get the threshold rank.

    Introduced in :ref:`sec-thm5-amplified`.
    """
    checks.instances([target, frozen], "networks", FNN, "an FNN")
    depth, target_depth, width = frozen.depth, target.depth, frozen.width
    m = depth // target_depth
    block = checks.integer(block, "block", low=0, high=target_depth - 1)
    full = fnn.corollary4_threshold(width, depth, target_depth)
    ranks = [rank if block * m <= k < (block + 1) * m else full for k in range(depth)]
    adapted = fnn.construct(target, frozen, rank=ranks, input_bound=input_bound)
    states, zbar = adapted.hidden_states(x), target.hidden_states(x)
    ends = [b[-1] + 1 for b in fnn.uniform_partition(depth, target_depth)]
    after = [
        float(torch.linalg.vector_norm(states[e] - zbar[i + 1], dim=1).mean())
        for i, e in enumerate(ends)
    ]
    return after[block], after[-1]


def spectral_bound(target: FNN, frozen: FNN, rank: int, x: ArrayLike) -> float:
    """Theorem 5's proof with spectral norms: ``Σ_i γ₂^{L̄−i} ε_i β'_{i−1}``.

    ``γ₂ = max_k(‖W̄_k‖₂ + ε_k)``, ``β'_0 = √tr Σ`` and ``β'_i = ‖W̄_i‖₂ β'_{i−1} + ‖b̄_i‖₂``
    (state bounds with spectral norms), ``ε_i`` Theorem 5's block errors and ``Σ`` the second
    moment of the sample ``x``. Steps 4–5 of the proof only use ``‖W̄_k‖₂``, and the ``i``-th
    term only the state entering block ``i``, so this is a valid and sharper bound.

    Introduced in :ref:`sec-thm5-loose`.
    """
    second_moment = bounds.empirical_second_moment(x)
    errors = bounds.theorem5_bound(target, frozen, rank, second_moment).block_errors
    s2 = [float(torch.linalg.matrix_norm(w, 2)) for w in target.effective_weights]
    growth = max(s + e for s, e in zip(s2, errors, strict=True))
    beta = [math.sqrt(float(second_moment.trace()))]
    for s, b in zip(s2, target.biases, strict=True):
        beta.append(s * beta[-1] + float(b.norm()))
    n = target.depth
    return sum(growth ** (n - 1 - i) * e * beta[i] for i, e in enumerate(errors))
