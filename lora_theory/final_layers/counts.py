"""Trainable parameters of LoRA against tuning the final layers, counted correctly.

Introduced in :ref:`ch-final-layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..fnn import parameter_counts


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
