r"""Lemma 4: tuning the final layers cannot replace LoRA, and what each method pays in parameters.

**Lemma 4.** Let ``D ≥ 2``, let the target ``f̄(x) = ReLU(W̄ x + b̄)`` be a **one-layer** ReLU
``FNN_{1,D}``, and let the frozen model be a ReLU ``FNN_{L,D}`` whose weights ``W_1, …, W_L`` and
``W̄`` have entries drawn independently from continuous distributions. Final-layer tuning keeps the
first layer ``z_1(x) = ReLU(W_1 x + b_1)`` frozen and changes *all* weights and biases of layers
``2, …, L``. Then, with probability 1, no final-layer tuning gives ``f = f̄`` (on ``ℝ^D``). The
statement is about **exact representation**: it says ``f ≠ f̄``, not how far apart they are —
the quantitative version below supplies a distance. LoRA of rank ``⌈D/L⌉`` on every layer does
represent ``f̄`` exactly (Lemma 2, with ``rank(W̄ − W_L ⋯ W_1) = D`` with probability 1), on any
bounded domain.

**Why.** Every final-layer tuning is ``f = g ∘ z_1`` for some function ``g`` (layers ``2..L``
with any parameters; fewer tuned layers are a special case). Write ``p = W_1 x + b_1`` for the
frozen first layer's pre-activation (``W_1`` is invertible with probability 1, so ``p`` is an
affine coordinate system on ``ℝ^D``). Where unit ``j`` is off (``p_j ≤ 0``), ``z_1 = ReLU(p)``
does not depend on ``p_j``: moving ``x`` along ``v_j = W_1^{-1} e_j`` (which changes ``p_j`` only)
leaves ``f`` unchanged. In ``p``-coordinates the target is ``f̄ = ReLU(M p + c)`` with
``M = W̄ W_1^{-1}`` and ``c = b̄ − M b_1``; where its unit ``i`` is active it changes at rate
``M_ij ≠ 0`` (with probability 1) along ``v_j``. For ``D ≥ 2`` the half-space ``{p_j < 0}`` and the
half-space ``{(M p + c)_i > 0}`` have non-parallel boundaries (with probability 1), so they meet
in an open set, where ``f̄`` varies along ``v_j`` and ``f`` does not: ``f ≠ f̄``. For ``D = 1`` the
two half-lines can be disjoint with positive probability, and then final-layer tuning *can* be
exact (the first layer is an injective map on the target's active half-line).

**The domain matters** (the paper's exact domain assumption could not be re-read). On a bounded
box the open set above may miss the box: if, say, ``b_1`` is so large that every frozen first-layer
unit is active on the whole box, ``z_1`` is an affine bijection there and tuning layer 2 alone
reproduces ``f̄`` exactly on the box. :func:`find_region` therefore works on a given box
``‖x‖_∞ ≤ c`` and says so when it finds no region in it.

**Quantitative version (a certified lower bound).** :func:`find_region` returns a region

    S = {x : lo ≤ W_1 x + b_1 ≤ hi} ⊂ [−c, c]^D      (a box P = [lo, hi] in p-coordinates)

with ``hi_j ≤ 0`` (frozen unit ``j`` off on all of ``S``) and a set ``A`` of target units that are
active (``(M p + c)_i > 0``) on all of ``S``, both proved by interval arithmetic
(:func:`~lora_theory.fnn.box_image`, exact ranges of affine maps over boxes) and not by sampling.
Let ``x`` be **uniform on** ``S``. The map ``x ↦ p`` is affine and bijective, so ``p`` is
uniform on the box ``P``: ``p_j`` is uniform on ``[lo_j, hi_j]`` (length ``ℓ = hi_j − lo_j``) and
independent of ``p_{−j}`` (the other coordinates). On ``S``, ``z_1 = ReLU(p)`` has
``z_{1,j} = 0``, so every final-layer tuning ``f = g(z_1)`` is a function of ``p_{−j}`` alone,
and for each output ``i``

    E[(f_i − f̄_i)² | p_{−j}] ≥ Var(f̄_i | p_{−j})           (the conditional mean is optimal).

For ``i ∈ A``, ``f̄_i = (M p + c)_i = M_ij p_j + (terms in p_{−j})`` on ``S``, so
``Var(f̄_i | p_{−j}) = M_ij² ℓ² / 12`` (the variance of a uniform variable on an interval of length
``ℓ`` is ``ℓ²/12``). Dropping the other outputs (their terms are ``≥ 0``) and averaging over the
``D`` outputs as the book's MSE does,

    MSE_S(f) = E_{x ~ U(S)} (1/D) ‖f(x) − f̄(x)‖²  ≥  B := (ℓ² / (12 D)) Σ_{i∈A} M_ij²  >  0

for **every** final-layer tuning (any parameters of layers ``2..L``, any number of them), while
LoRA at rank ``⌈D/L⌉`` reaches ``0`` on the whole box. :func:`find_region` searches for the region
with the largest ``B`` it can certify: along lines ``x* + t v_j`` through candidate points ``x*``
of the box, the target units switch at known ``t``, so the best segment between switching points is
found exactly; the segment is then shrunk by a relative margin and thickened into the box ``P``
as far as the certificate allows (half of the largest admissible thickness).

**Parameters** (:func:`parameter_comparison`). LoRA at the threshold rank ``R = ⌈D/L⌉`` trains
``2RDL = 2⌈D/L⌉DL`` adapter weights (plus ``DL`` biases); tuning the final ``k`` layers trains
``kD²`` weights (plus ``kD`` biases), ``(L−1)D²`` for the lemma's ``k = L − 1``. Always

    2D² ≤ 2⌈D/L⌉DL < 2D² + 2DL        (equality on the left iff L | D),

so LoRA needs **at least** ``2D²`` weights, not at most: the Korean-language analysis's
"``2RDL ≤ 2D²``" has the inequality reversed (it holds only as the equality ``L | D``).
Final-layer tuning uses ``(L−1)D² ≥ 2D²`` weights once ``L ≥ 3`` — about LoRA's budget or more
(``D = 16, L = 3``: LoRA 576 vs 512, the rounding of ``⌈16/3⌉``; ``D = 16, L = 8``: LoRA 512 vs
1792) — and still fails with probability 1.

Introduced in :ref:`ch-final-layers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import checks
from .fnn import FNN, box_image, check_pair, parameter_counts
from .linalg import AssumptionError, Conditioning

#: Relative margin by which a best segment is shrunk at both ends before it is thickened, so
#: that every certified inequality holds with room to spare (not only up to round-off).
SEGMENT_MARGIN = 0.05


class RegionNotFoundError(ValueError):
    """No certified Lemma 4 region exists among the searched candidates in the input box
    (e.g. every frozen first-layer unit is active on the whole box, where final-layer tuning can
    be exact).

    Introduced in :ref:`ch-final-layers`.
    """


@dataclass(frozen=True)
class Region:
    r"""A certified region ``S = {x : lo ≤ W_1 x + b_1 ≤ hi}`` of Lemma 4 and its error bound.

    ``unit``: the frozen first-layer unit ``j`` (0-based) that is off on ``S`` (``hi[j] ≤ 0``);
    ``lo``, ``hi``: ``(D,)``, the box ``P`` in the frozen pre-activation coordinates
    ``p = W_1 x + b_1``; ``first_weight`` ``W_1`` ``(D, D)`` and ``first_bias`` ``b_1`` ``(D,)``;
    ``active``: the target units ``A`` (0-based) certified active on ``S``; ``slopes``: ``(D,)``,
    ``M_{:,j} = (W̄ W_1^{-1})_{:,j}``, the rate at which each target pre-activation changes along
    ``v_j = W_1^{-1} e_j``; ``target_margin``: the smallest target pre-activation over ``S`` of
    each unit in ``A`` (each ``> 0``); ``x_lo``, ``x_hi``: ``(D,)``, the exact coordinate ranges
    of ``S`` (inside ``[−c, c]``); ``input_bound``: ``c``; ``bound``:
    ``B = ℓ² Σ_{i∈A} M_ij² / (12 D)`` with ``ℓ = hi_j − lo_j``, a lower bound on the MSE (mean
    over the ``D`` outputs) over ``x ~ U(S)`` of every final-layer tuning (module docstring).

    Introduced in :ref:`ch-final-layers`.
    """

    unit: int
    lo: torch.Tensor
    hi: torch.Tensor
    first_weight: torch.Tensor
    first_bias: torch.Tensor
    active: tuple[int, ...]
    slopes: torch.Tensor
    target_margin: tuple[float, ...]
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    input_bound: float
    bound: float

    @property
    def width(self) -> int:
        """``D``."""
        return self.lo.numel()

    @property
    def length(self) -> float:
        """``ℓ = hi_j − lo_j``: how far ``p_j`` ranges while unit ``j`` stays off."""
        return float(self.hi[self.unit] - self.lo[self.unit])

    @property
    def direction(self) -> torch.Tensor:
        """``v_j = W_1^{-1} e_j`` ``(D,)``: along it only ``p_j`` changes, so ``z_1`` does not."""
        e = torch.zeros(self.width, dtype=torch.float64)
        e[self.unit] = 1.0
        return torch.linalg.solve(self.first_weight, e)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """``p = W_1 x + b_1`` for ``x`` of shape ``(n, D)``; returns ``(n, D)``."""
        x = checks.shape(checks.tensor(x, "x"), (None, self.width), "x")
        return x @ self.first_weight.T + self.first_bias

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean ``(n,)``: which rows of ``x`` lie in ``S`` (``lo ≤ W_1 x + b_1 ≤ hi``)."""
        p = self.pre_activation(x)
        return ((p >= self.lo) & (p <= self.hi)).all(dim=1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` points uniform on ``S``, ``(n, D)`` float64: ``p`` uniform on ``P``, then
        ``x = W_1^{-1} (p − b_1)`` (an affine bijection, so uniform stays uniform)."""
        n = checks.integer(n, "n", low=1)
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        u = torch.rand(n, self.width, generator=generator, dtype=torch.float64)
        p = self.lo + (self.hi - self.lo) * u
        return torch.linalg.solve(self.first_weight, (p - self.first_bias).T).T


def _check_instance(target: FNN, frozen: FNN) -> tuple[torch.Tensor, ...]:
    """Lemma 4's hypotheses that can be checked: ``(W̄, b̄, W_1, b_1)`` in float64."""
    pair = check_pair(target, frozen)
    if target.depth != 1:
        raise ValueError(
            f"Lemma 4 is stated for a one-layer target, got target depth {target.depth}"
        )
    if frozen.depth < 2:
        raise ValueError(
            f"Lemma 4 compares LoRA with tuning layers 2..L of the frozen model: need frozen "
            f"depth L ≥ 2, got {frozen.depth}"
        )
    if frozen.width < 2:
        raise ValueError(
            "Lemma 4 needs D ≥ 2 (for D = 1 final-layer tuning can be exact with positive "
            f"probability), got D = {frozen.width}"
        )
    if pair.activation != "relu":
        raise ValueError(
            "Lemma 4 is about ReLU networks: with the identity activation the frozen first layer "
            "is an invertible affine map and tuning layer 2 represents any linear target"
        )
    w1 = pair.frozen_weights[0]
    cond = Conditioning.of("W_1", w1)
    if cond.singular:
        raise AssumptionError(f"Lemma 4 needs an invertible first layer: {cond}")
    return pair.target_weights[0], pair.target_biases[0], w1, frozen.biases[0].to(torch.float64)


def _best_segment(
    q: torch.Tensor, slope: torch.Tensor, t_lo: float, t_hi: float
) -> tuple[float, float, float]:
    """The segment ``[t_0, t_1] ⊂ [t_lo, t_hi]`` maximising ``(t_1 − t_0)² Σ_{i active} slope_i²``,
    where unit ``i`` is active on the segment when ``q_i + t slope_i > 0`` throughout it.

    The optimum has its ends at switching points ``t = −q_i / slope_i`` or at ``t_lo, t_hi``, so all
    pairs of those points are tried. Returns ``(value, t_0, t_1)``.
    """
    switch = -q / slope.where(slope != 0, torch.ones_like(slope))
    inside = (slope != 0) & (switch > t_lo) & (switch < t_hi)
    ends = torch.cat([q.new_tensor([t_lo, t_hi]), switch[inside]]).sort().values
    pre = q[None, :] + ends[:, None] * slope[None, :]  # (K, D): pre-activations at the ends
    nonneg = pre >= 0
    # unit i active on (ends[a], ends[b]) iff non-negative at both ends and not zero at both
    active = nonneg[:, None, :] & nonneg[None, :, :] & ((pre[:, None, :] + pre[None, :, :]) > 0)
    gain = (active * slope.square()).sum(-1)
    length = (ends[None, :] - ends[:, None]).clamp(min=0)
    value = length.square() * gain
    best = int(value.argmax())
    a, b = divmod(best, len(ends))
    return float(value.flatten()[best]), float(ends[a]), float(ends[b])


def find_region(
    target: FNN,
    frozen: FNN,
    input_bound: float,
    n_candidates: int = 64,
    generator: torch.Generator | None = None,
) -> Region:
    r"""A certified Lemma 4 region in the box ``‖x‖_∞ ≤ c`` and its lower bound ``B`` on the error
    of every final-layer tuning (the derivation is in the module docstring).

    ``target``: a one-layer ReLU ``FNN_{1,D}``; ``frozen``: a ReLU ``FNN_{L,D}``, ``L ≥ 2``,
    ``D ≥ 2``, with an invertible first layer (adapters already on either are merged). The search
    tries every frozen unit ``j`` along the lines ``x* + t v_j`` through the box centre and
    ``n_candidates`` points ``x*`` drawn uniformly from the box (``generator``; default seed 0).
    Sampling only proposes lines: the returned region is certified by :func:`certify_region`.

    Raises ``ValueError`` for bad input or an unmet hypothesis,
    :class:`~lora_theory.linalg.AssumptionError` for a singular ``W_1`` and
    :class:`RegionNotFoundError` when no candidate line gives a region (see the module docstring
    on why the domain matters).

    Introduced in :ref:`ch-final-layers`.
    """
    wbar, bbar, w1, b1 = _check_instance(target, frozen)
    c = checks.real(input_bound, "input_bound", positive=True)
    n_candidates = checks.integer(n_candidates, "n_candidates", low=0)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    width = w1.shape[0]
    inv = torch.linalg.solve(w1, torch.eye(width, dtype=torch.float64))  # columns v_j
    m = wbar @ inv  # target pre-activation = M p + c_vec
    centres = torch.cat(
        [
            torch.zeros(1, width, dtype=torch.float64),
            (torch.rand(n_candidates, width, generator=generator, dtype=torch.float64) * 2 - 1) * c,
        ]
    )
    best: tuple[float, int, torch.Tensor, float, float] | None = None
    for x0 in centres:
        p0, q0 = w1 @ x0 + b1, wbar @ x0 + bbar
        for j in range(width):
            v = inv[:, j]
            # x0 + t v stays in the box for t in [t_lo, t_hi]; p_j = p0_j + t ≤ 0 for t ≤ −p0_j
            safe = v.where(v != 0, torch.ones_like(v))
            ta, tb = (-c - x0) / safe, (c - x0) / safe
            lo_t = torch.minimum(ta, tb).where(v != 0, torch.full_like(v, -math.inf))
            hi_t = torch.maximum(ta, tb).where(v != 0, torch.full_like(v, math.inf))
            t_lo, t_hi = float(lo_t.max()), min(float(hi_t.min()), float(-p0[j]))
            if not t_lo < t_hi:
                continue
            value, t0, t1 = _best_segment(q0, m[:, j], t_lo, t_hi)
            if value > 0 and (best is None or value > best[0]):
                best = (value, j, x0, t0, t1)
    if best is None:
        raise RegionNotFoundError(
            f"no region in the box ‖x‖_∞ ≤ {c:g} where a frozen first-layer unit is off while a "
            f"target unit is active (searched the centre and {n_candidates} candidate points): on "
            "this box final-layer tuning may be exact"
        )
    _, j, x0, t0, t1 = best
    lo, hi = _thicken(w1, b1, m, bbar - m @ b1, inv, x0, j, t0, t1, c)
    return _certify(j, lo, hi, c, wbar, bbar, w1, b1)


def _per_unit(slack: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """``slack / spread`` with ``+inf`` where ``spread = 0`` (the constraint does not bind)."""
    return (slack / spread.where(spread > 0, torch.ones_like(spread))).where(
        spread > 0, torch.full_like(slack, math.inf)
    )


def _thicken(
    w1: torch.Tensor,
    b1: torch.Tensor,
    m: torch.Tensor,
    offset: torch.Tensor,
    inv: torch.Tensor,
    x0: torch.Tensor,
    j: int,
    t0: float,
    t1: float,
    c: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box ``P = [lo, hi]``: ``p_j`` on the segment ``[t_0, t_1]`` (shifted by ``p*_j``) shrunk
    by :data:`SEGMENT_MARGIN` at both ends, the other coordinates ``p*_k ± r`` with ``r`` half the
    largest value that keeps ``S`` in the box and every target unit that is active on the shrunk
    segment active on ``P`` (each constraint is linear in ``r``)."""
    shrink = SEGMENT_MARGIN * (t1 - t0)
    p0 = w1 @ x0 + b1
    seg_lo, seg_hi = p0.clone(), p0.clone()
    seg_lo[j], seg_hi[j] = p0[j] + t0 + shrink, p0[j] + t1 - shrink
    q_lo, _ = box_image(m, offset, seg_lo, seg_hi)  # target pre-activations on the segment
    others = torch.ones_like(p0, dtype=torch.bool)
    others[j] = False
    spread_q = (m.abs() * others).sum(1)  # growth of each range per unit of r
    spread_x = (inv.abs() * others).sum(1)
    x_lo, x_hi = box_image(inv, -inv @ b1, seg_lo, seg_hi)
    limits = torch.cat(
        [
            _per_unit(c - x_hi, spread_x),
            _per_unit(x_lo + c, spread_x),
            _per_unit(q_lo, spread_q)[q_lo > 0],
        ]
    )
    r = 0.5 * float(limits.min())
    return torch.where(others, p0 - r, seg_lo), torch.where(others, p0 + r, seg_hi)


def _certify(
    j: int,
    lo: torch.Tensor,
    hi: torch.Tensor,
    c: float,
    wbar: torch.Tensor,
    bbar: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
) -> Region:
    """The certificate of :func:`certify_region` on validated float64 parameters."""
    width = w1.shape[0]
    if not bool((lo < hi).all()):
        raise ValueError("region is empty or flat: need lo < hi in every coordinate")
    if not float(hi[j]) <= 0:
        raise ValueError(
            f"frozen unit {j} is not off on the region: hi[{j}] = {float(hi[j]):.3e} > 0"
        )
    inv = torch.linalg.solve(w1, torch.eye(width, dtype=torch.float64))
    m = wbar @ inv
    q_lo, _ = box_image(m, bbar - m @ b1, lo, hi)
    active = tuple(int(i) for i in torch.nonzero(q_lo > 0).flatten())
    if not active:
        raise ValueError("no target unit is provably active on the region: the bound would be 0")
    x_lo, x_hi = box_image(inv, -inv @ b1, lo, hi)
    if not (bool((x_lo >= -c).all()) and bool((x_hi <= c).all())):
        worst = float(torch.maximum(x_hi, -x_lo).max())
        raise ValueError(f"region leaves the box ‖x‖_∞ ≤ {c:g} (reaches {worst:.3e})")
    slopes = m[:, j]
    length = float(hi[j] - lo[j])
    bound = length**2 * float(slopes[list(active)].square().sum()) / (12 * width)
    margins = tuple(float(q_lo[i]) for i in active)
    return Region(j, lo, hi, w1, b1, active, slopes, margins, x_lo, x_hi, c, bound)


def certify_region(region: Region, target: FNN, frozen: FNN) -> Region:
    r"""Check ``region`` against the instance by interval arithmetic and return it with its
    certified active set, margins, coordinate ranges and bound ``B`` recomputed.

    Proves, over the whole of ``S = {x : lo ≤ W_1 x + b_1 ≤ hi}``: (1) ``hi_j ≤ 0``, so frozen unit
    ``j`` is off; (2) the target units ``A = {i : min_S (W̄ x + b̄)_i > 0}`` — computed as the exact
    range of ``M p + c`` over the box ``P`` (:func:`~lora_theory.fnn.box_image`) — and ``A ≠ ∅``;
    (3) ``S ⊂ [−c, c]^D`` (the exact range of ``x = W_1^{-1}(p − b_1)`` over ``P``); then
    ``B = (hi_j − lo_j)² Σ_{i∈A} M_ij² / (12 D)``. The interval arithmetic is exact for the
    float64 matrices ``W_1^{-1}``, ``M``; their round-off (about ``D · eps · cond(W_1)``
    relative) is far below the margins :func:`find_region` leaves. Raises ``ValueError`` naming
    the failed condition.

    Introduced in :ref:`ch-final-layers`.
    """
    if not isinstance(region, Region):
        raise ValueError(f"region must be a Region, got {type(region).__name__}")
    wbar, bbar, w1, b1 = _check_instance(target, frozen)
    if region.width != w1.shape[0]:
        raise ValueError(f"region is for D = {region.width}, the instance has D = {w1.shape[0]}")
    if not (torch.equal(region.first_weight, w1) and torch.equal(region.first_bias, b1)):
        raise ValueError("region was found for a different frozen first layer (W_1, b_1)")
    lo = checks.shape(checks.tensor(region.lo, "region.lo"), (w1.shape[0],), "region.lo")
    hi = checks.shape(checks.tensor(region.hi, "region.hi"), (w1.shape[0],), "region.hi")
    j = checks.integer(region.unit, "region.unit", 0, w1.shape[0] - 1)
    c = checks.real(region.input_bound, "region.input_bound", positive=True)
    return _certify(j, lo, hi, c, wbar, bbar, w1, b1)


@dataclass(frozen=True)
class FinalLayerCounts:
    r"""Trainable parameters of LoRA at Lemma 4's threshold versus tuning the final ``k`` layers.

    ``width`` ``D``, ``depth`` ``L``, ``layers`` ``k``; LoRA: rank ``⌈D/L⌉``, ``2⌈D/L⌉DL``
    adapter weights and ``DL`` biases; final layers: ``kD²`` weights and ``kD`` biases. Biases are
    counted separately (the paper's figure counts weights only). :meth:`row` is one table row.

    Introduced in :ref:`ch-final-layers`.
    """

    width: int
    depth: int
    layers: int
    lora_rank: int
    lora_weights: int
    lora_biases: int
    flt_weights: int
    flt_biases: int

    @property
    def lora_floor(self) -> int:
        """``2D²``: LoRA's weight count at the threshold is at least this (equal iff ``L | D``)."""
        return 2 * self.width**2

    @property
    def lora_excess(self) -> int:
        """``2⌈D/L⌉DL − 2D² ∈ [0, 2DL)``: what the rounding of ``⌈D/L⌉`` costs."""
        return self.lora_weights - self.lora_floor

    @property
    def seed_claim_holds(self) -> bool:
        """Whether the Korean-language analysis's "``2RDL ≤ 2D²``" holds: only when ``L | D``."""
        return self.lora_weights <= self.lora_floor

    @property
    def flt_minus_lora(self) -> int:
        """``kD² − 2⌈D/L⌉DL``: positive when final-layer tuning trains more weights than LoRA."""
        return self.flt_weights - self.lora_weights

    def row(self) -> dict[str, int | bool]:
        """The counts and the comparison as one table row (column name → value)."""
        return {
            "D": self.width,
            "L": self.depth,
            "k": self.layers,
            "R = ⌈D/L⌉": self.lora_rank,
            "LoRA weights 2RDL": self.lora_weights,
            "2D²": self.lora_floor,
            "LoRA − 2D²": self.lora_excess,
            "LoRA biases DL": self.lora_biases,
            "final-layer weights kD²": self.flt_weights,
            "final-layer biases kD": self.flt_biases,
            "kD² − 2RDL": self.flt_minus_lora,
            "2RDL ≤ 2D² (seed)": self.seed_claim_holds,
        }


def parameter_comparison(D: int, L: int, k: int | None = None) -> FinalLayerCounts:
    r""":class:`FinalLayerCounts` for width ``D``, frozen depth ``L ≥ 2`` and ``k`` tuned final
    layers (default ``L − 1``, Lemma 4's setting; ``1 ≤ k ≤ L − 1``: the first layer stays frozen).

    LoRA's side is Corollary 4's count with a one-layer target
    (:func:`~lora_theory.fnn.parameter_counts`): ``2⌈D/L⌉DL`` with
    ``2D² ≤ 2⌈D/L⌉DL < 2D² + 2DL``.

    Introduced in :ref:`ch-final-layers`.
    """
    D = checks.integer(D, "D", low=1)
    L = checks.integer(L, "L", low=2)
    k = L - 1 if k is None else checks.integer(k, "k", 1, L - 1)
    lora = parameter_counts(D, L, 1)
    return FinalLayerCounts(
        D, L, k, lora.rank, lora.lora_weights, lora.lora_biases, k * D * D, k * D
    )
