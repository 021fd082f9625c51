"""Transformer instances with prescribed functionality gaps.

Introduced in :ref:`ch-transformer`.
"""

from __future__ import annotations

import torch

from .. import checks
from .model import TFN


def planted_pair(
    width: int, heads: int, depth: int, gap: int, generator: torch.Generator
) -> tuple[TFN, TFN]:
    """``(target, frozen)`` with every gap ``G_i = gap`` (with probability 1).

    ``frozen`` is :meth:`TFN.random`; the target changes, in every block and head, ``W_Q`` and
    ``W_V`` by random rank-``gap`` matrices, ``W_o`` likewise, and draws fresh feed-forward biases;
    ``W_K``, ``W_O``, ``W_1``, ``W_2`` are shared, so ``C_l = I`` and each discrepancy
    (``W_Kᵀ ΔW_Q``, ``W_1 W_O ΔW_V``, ``ΔW_o W_{2L}``, multiplied by ``W_2`` in later blocks) has
    rank ``gap``. Theorem 7 then needs only ``R = ⌈gap / 2⌉``.

    Introduced in :ref:`ch-transformer`.
    """
    frozen = TFN.random(width, heads, depth, generator)
    gap = checks.integer(gap, "gap", 0, frozen.width)

    def low_rank(*lead: int) -> torch.Tensor:
        u = torch.randn(*lead, width, gap, generator=generator, dtype=torch.float64)
        v = torch.randn(*lead, gap, width, generator=generator, dtype=torch.float64)
        return u @ v

    p = frozen.effective()
    p["w_q"] = p["w_q"] + low_rank(depth, heads)
    p["w_v"] = p["w_v"] + low_rank(depth, heads)
    p["w_out"] = p["w_out"] + low_rank() / width
    p["b_1"] = torch.randn(depth, width, generator=generator, dtype=torch.float64) / width**0.5
    p["b_2"] = torch.randn(depth, width, generator=generator, dtype=torch.float64) / width**0.5
    return TFN(**p), frozen
