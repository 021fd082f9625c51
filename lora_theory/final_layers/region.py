"""The certified region of Lemma 4's proof: a frozen first-layer unit is off, the target still
varies, so every final-layer tuning misses it by a computable amount.

Introduced in :ref:`ch-final-layers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import checks
from ..fnn import FNN, box_image, check_pair
from ..linalg import AssumptionError, Conditioning

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
        checks.elements((n, self.width), "Region.sample")
        checks.generator(generator)
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
    checks.elements((n_candidates, width), "find_region candidates")
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
    bound = length * length * float(slopes[list(active)].square().sum()) / (12 * width)
    if not math.isfinite(bound):
        raise ValueError(
            f"input_bound={c:g} is too large: the region's error bound overflows float64"
        )
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
