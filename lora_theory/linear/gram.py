"""The Gram-matrix route to ``E``'s right singular vectors (``_gram_route``), which
:func:`~lora_theory.linear.construct` takes instead of an SVD where it can vouch for the result.

Introduced in :ref:`pf-lemma1`.
"""

from __future__ import annotations

import math

import torch

#: Lemma 1 needs ``E``'s right singular vectors ``V`` in order, not ``U`` or an SVD: they come
#: from the eigendecomposition of the Gram matrix ``EᵀE`` (``torch.linalg.eigh``, 2–2.5× faster
#: than an SVD at ``D = 64 … 1024``) when it is safe. **At the threshold** (``Σ_l R_l ≥ D``) any
#: orthonormal ``V`` gives ``∏W + E V Vᵀ = W̄``; the route is taken when
#: ``λ_min(EᵀE) ≥ GRAM_FLOOR · λ_max(EᵀE)``, which makes ``σ_D(E) > 0`` certain (the
#: eigenvalues' absolute error is about ``D eps λ_max``, ``≤ 2.3e-13 λ_max`` at ``D = 1024``)
#: so that ``rank(E) = D`` as the SVD would find it.
GRAM_FLOOR = 1e-10
#: **Below the threshold** (``k = Σ_l R_l < D``) the optimum ``σ_{k+1}(E)`` must be known too.
#: With ``Y = E V`` and ``C = YᵀY = diag(d) + O``: ``‖E − Y_k V_kᵀ‖₂² = λ_max(C_{⊥⊥})`` lies in
#: ``[m, m + ‖O‖_F]``, ``m = max_{i>k} d_i``, and (Weyl) ``σ_{k+1}(E)²`` within ``‖O‖_F + δ`` of
#: the ``(k+1)``-th largest ``d_i``, which is ``m`` when ``d`` keeps the order of the blocks;
#: ``δ = GRAM_SAFETY · D · eps · max d`` is the first-order error of forming ``EᵀE``, ``Y`` and
#: ``C`` (as the SVD's backward error is, a model, not a bound). That gives
#: ``|‖E − Y_k V_kᵀ‖₂ − σ_{k+1}(E)| ≤ gap``, and the route is taken when
#: ``gap ≤ GRAM_SHARE · rtol · scale`` and ``σ_k(E) > 0`` is certain; the self-check then
#: spends ``gap`` of its tolerance on it. Otherwise the SVD is computed.
GRAM_SAFETY, GRAM_SHARE = 10.0, 1e-2
#: The Gram route is tried only above ``D = GRAM_WIDTH``: up to it the SVD costs no more than
#: ``eigh`` and the route's own checks (``_problem`` on two cores: ``D = 16`` 114 µs by the SVD
#: against 127 µs by the route at the threshold and 181 µs below it, ``D = 64`` equal,
#: ``D = 128`` 3.0 ms against 1.8 ms).
GRAM_WIDTH = 64


def _gram_route(
    e: torch.Tensor, gram: torch.Tensor, total: int, tol: float, allowed: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, float] | None:
    """``(E V, S, Vᵀ, rank(E) or Σ_l R_l, gap)`` from ``eigh(EᵀE)`` (``gram``), or ``None`` where
    :data:`GRAM_FLOOR` (at the threshold) or :data:`GRAM_SHARE` (below it, ``allowed`` being its
    share of the tolerance) rules the route out."""
    width = e.shape[0]
    lam, v = torch.linalg.eigh(gram)
    v = v.flip(-1)
    if total >= width:
        low, high = float(lam[0]), float(lam[-1])
        if low >= GRAM_FLOOR * high and math.sqrt(max(low, 0.0)) > 2 * tol:
            return e @ v, lam.flip(0).sqrt(), v.mT, width, 0.0
        return None
    y = e @ v
    c = y.mT @ y
    d = c.diagonal()
    rho = float(torch.linalg.matrix_norm(c - torch.diag(d)))
    delta = GRAM_SAFETY * width * torch.finfo(e.dtype).eps * float(d.max())
    kept, rest = float(d[:total].min()), float(d[total:].max())
    if kept < rest or math.sqrt(max(kept - rho - delta, 0.0)) <= tol:  # order? σ_k(E) = 0?
        return None
    spread = 2 * (rho + delta)
    floor = max(rest - rho - delta, 0.0)
    gap = spread / (math.sqrt(rest) + math.sqrt(floor)) if rest > 0 else math.sqrt(spread)
    if gap > allowed:
        return None
    # S: the sorted √d_i, so that S[k] = √m, the value the gap is about
    return y, d.sort(descending=True).values.clamp_min(0).sqrt(), v.mT, total, gap
