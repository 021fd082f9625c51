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

from .counts import FinalLayerCounts, parameter_comparison
from .region import Region, RegionNotFoundError, certify_region, find_region

__all__ = [
    "FinalLayerCounts",
    "Region",
    "RegionNotFoundError",
    "certify_region",
    "find_region",
    "parameter_comparison",
]
