r"""A proof, computed in interval arithmetic, of how far an adapted FNN is from its target on a box.

For an adapted network ``f`` (the output of :func:`~lora_theory.fnn.construct`) and its target
``f̄`` on ``‖x‖_∞ ≤ c``, :func:`certify` works block by block on the **returned parameters** (not on
the construction's intermediate values), so it checks the construction independently:

1. **Linearisation.** Inside block ``i`` every state is affine in the block input ``z``:
   ``G z + s``. Over the box of ``z`` each hidden pre-activation coordinate ranges over
   ``G_j m + s_j ± |G_j| ρ`` (centre ``m``, radius ``ρ``); if every lower end is positive, every
   hidden ReLU of the block is the identity on the box and the block computes
   ``z ↦ ReLU(G_i z + s_i)`` exactly there.
2. **Block error.** Then ``|f_i − f̄_i| ≤ |W̄_i| e_{i−1} + |G_i − W̄_i| z_max + |s_i − b̄_i|``
   entrywise (ReLU is 1-Lipschitz), with ``e_0 = 0`` and ``z_max`` the largest ``|z|`` on the
   block's input box, which is the ``ReLU`` of the previous block's output range.
3. **Optimality.** ``‖G_i − W̄_i‖₂`` must equal Lemma 1's optimum ``σ_{r_i+1}(Ē_i)`` (``0`` at or
   above the threshold) and ``s_i`` must equal ``b̄_i``, both within ``rtol`` times the scale of
   the block.

The result bounds ``sup_{‖x‖_∞ ≤ c} ‖f(x) − f̄(x)‖_∞`` for the network as a function (exact
arithmetic on its float64 parameters); evaluating it in floating point adds about
``D · eps ·`` :meth:`~lora_theory.fnn.FNN.roundoff_scale`.

Introduced in :ref:`ch-multilayer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import checks
from ..adapters import Ranks, layer_ranks
from ..linalg import ExactnessError, check_exact, exact_rtol, product, sigma
from .model import FNN, check_pair
from .partitions import blocks_of


def box_image(
    g: torch.Tensor, h: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact coordinate-wise range of ``z ↦ G z + h`` over the box ``lo ≤ z ≤ hi``.

    With centre ``m = (lo+hi)/2`` and radius ``ρ = (hi−lo)/2``: ``G m + h ∓ |G| ρ``. For the cube
    ``‖x‖_∞ ≤ c`` this is ``h_j ± c ‖G_j‖_1``.

    Introduced in :ref:`ch-fnn-one-layer`.
    """
    g = checks.matrix(g, "g")
    h = checks.shape(checks.tensor(h, "h", g.dtype), (g.shape[0],), "h")
    lo = checks.shape(checks.tensor(lo, "lo", g.dtype), (g.shape[1],), "lo")
    hi = checks.shape(checks.tensor(hi, "hi", g.dtype), (g.shape[1],), "hi")
    if not bool((lo <= hi).all()):
        raise ValueError("the box needs lo ≤ hi in every coordinate")
    centre = g @ ((lo + hi) / 2) + h
    radius = g.abs() @ ((hi - lo) / 2)
    return centre - radius, centre + radius


@dataclass(frozen=True)
class Certificate:
    """What :func:`certify` proved: ``bound`` on ``sup ‖f − f̄‖_∞`` over the box, and per block
    the weight deviation ``‖G_i − W̄_i‖₂``, its Lemma 1 optimum, the offset deviation
    ``‖s_i − b̄_i‖_∞`` and the smallest hidden pre-activation on the box (``inf`` if none).

    Introduced in :ref:`ch-multilayer`.
    """

    bound: float
    weight_error: tuple[float, ...]
    weight_optimum: tuple[float, ...]
    offset_error: tuple[float, ...]
    min_preactivation: tuple[float, ...]


def certify(
    target: FNN,
    adapted: FNN,
    input_bound: float,
    rank: Ranks,
    partition: Sequence[Sequence[int]] | None = None,
    rtol: float | None = None,
) -> Certificate:
    """Check an adapted network against its target on ``‖x‖_∞ ≤ c`` (see the module docstring).

    ``rank`` (one ``R`` or per-layer ranks) and ``partition`` (default: uniform) say which
    Lemma 1 optimum each block must reach. Raises :class:`~lora_theory.linalg.ExactnessError`
    naming the block, the achieved and the allowed error when a hidden ReLU is not provably
    active on the box, or a block misses its optimum by more than ``rtol`` (default
    :func:`~lora_theory.linalg.exact_rtol`, ``1e-7`` in float64) times its scale.

    Introduced in :ref:`ch-multilayer`.
    """
    pair = check_pair(target, adapted)
    c = checks.real(input_bound, "input_bound", positive=True)
    rtol = exact_rtol(torch.float64) if rtol is None else checks.real(rtol, "rtol", positive=True)
    blocks = blocks_of(pair, partition)
    ranks = layer_ranks(rank, adapted.depth, adapted.width)
    frozen_weights = [w.to(torch.float64) for w in adapted.weights]
    weights = pair.frozen_weights  # the adapted network's effective weights
    biases = [b.to(torch.float64) for b in adapted.biases]
    relu = pair.activation == "relu"
    width = adapted.width
    lo = torch.full((width,), -c, dtype=torch.float64)
    hi = -lo
    err = torch.zeros(width, dtype=torch.float64)
    found: dict[str, list[float]] = {k: [] for k in ("dw", "opt", "db", "pre")}
    for i, (wbar, bbar, block) in enumerate(
        zip(pair.target_weights, pair.target_biases, blocks, strict=True)
    ):
        where = f"block {i + 1} (W_{block[0] + 1}..W_{block[-1] + 1})"
        g = torch.eye(width, dtype=torch.float64)
        s = torch.zeros(width, dtype=torch.float64)
        lowest = float("inf")
        for k in block:
            g, s = weights[k] @ g, weights[k] @ s + biases[k]
            if k != block[-1] and relu:
                pre_lo, _ = box_image(g, s, lo, hi)
                lowest = min(lowest, float(pre_lo.min()))
        if lowest <= 0:
            raise ExactnessError(
                f"{where}: a hidden ReLU is not provably active on the box ‖x‖_∞ ≤ {c:g} "
                f"(smallest pre-activation {lowest:.3e} ≤ 0): the linearising biases failed"
            )
        frozen_product = product([frozen_weights[k] for k in block])
        optimum = float(sigma(wbar - frozen_product, sum(ranks[k] for k in block) + 1))
        dw = float(torch.linalg.matrix_norm(g - wbar, 2))
        zmax = torch.maximum(lo.abs(), hi.abs())
        scale = float(
            torch.linalg.matrix_norm(wbar, 2) + torch.linalg.matrix_norm(frozen_product, 2)
        )
        check_exact(f"{where}, weights", dw, optimum, scale, rtol)
        db = float((s - bbar).abs().max())
        offset_scale = 1 + float((wbar.abs() @ zmax + bbar.abs()).max())
        check_exact(f"{where}, biases", db, 0.0, offset_scale, rtol)
        err = wbar.abs() @ err + (g - wbar).abs() @ zmax + (s - bbar).abs()
        lo, hi = box_image(g, s, lo, hi)
        if relu:
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        for key, value in zip(found, (dw, optimum, db, lowest), strict=True):
            found[key].append(value)
    return Certificate(float(err.max()), *(tuple(v) for v in found.values()))
