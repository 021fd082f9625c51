"""LoRA factors ``ΔW = B A`` of one ``D × D`` weight matrix.

Orientation follows PEFT (``lora_B``: ``(D, R)``, ``lora_A``: ``(R, D)``), so analytic adapters load
into PEFT without transposes. No ``α / r`` scaling, as in the paper's code. This module is also the
one home of per-layer ranks (:func:`~lora_theory.adapters.layer_ranks`) and of LoRA's parameter
count
(:func:`n_lora_params`).

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from . import checks
from .linalg import numerical_rank

#: One rank ``R`` for every layer, or per-layer ranks ``[R_1, …, R_L]``.
Ranks = int | Sequence[int]


class LoRAFactors(NamedTuple):
    """One adapter: ``B`` of shape ``(D, r)`` and ``A`` of shape ``(r, D)``; ``ΔW = B @ A``.

    A ``NamedTuple``, so ``B, A = factors`` works and a list of adapters reads like the paper's
    ``[(B_1, A_1), …, (B_L, A_L)]``.

    Introduced in :ref:`ch-linear`.
    """

    B: torch.Tensor
    A: torch.Tensor

    @classmethod
    def zeros(cls, width: int, dtype: torch.dtype = torch.float64) -> LoRAFactors:
        """The empty adapter (inner dimension 0): ``ΔW = 0``."""
        width = checks.integer(width, "width", 1, checks.MAX_ELEMENTS)
        dtype = checks.dtype(dtype)
        return cls(torch.zeros(width, 0, dtype=dtype), torch.zeros(0, width, dtype=dtype))

    @property
    def inner_dim(self) -> int:
        """Inner dimension ``r`` of the factorisation (an upper bound on ``rank(ΔW)``)."""
        return self.B.shape[1]

    def delta(self) -> torch.Tensor:
        """The update ``ΔW = B A``, shape ``(D, D)``."""
        b, a = self.B, self.A
        if not (isinstance(b, torch.Tensor) and isinstance(a, torch.Tensor)):
            raise ValueError(
                f"LoRAFactors needs tensors B and A, got {type(b).__name__}, {type(a).__name__}"
            )
        if b.ndim != 2 or a.ndim != 2 or b.shape[1] != a.shape[0] or b.shape[0] != a.shape[1]:
            raise ValueError(
                f"LoRAFactors needs B: (D, r) and A: (r, D), got B: {tuple(b.shape)}, "
                f"A: {tuple(a.shape)}"
            )
        return b @ a.to(b.dtype)

    def rank(self, tol: float | None = None) -> int:
        """Numerical rank of ``ΔW``."""
        return numerical_rank(self.delta(), tol) if self.inner_dim else 0

    def merge(self, weight: torch.Tensor) -> torch.Tensor:
        """The adapted weight ``W + B A``."""
        if not isinstance(weight, torch.Tensor) or weight.shape != (self.B.shape[0],) * 2:
            got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
            raise ValueError(
                f"weight must be a ({self.B.shape[0]}, {self.B.shape[0]}) tensor, got {got}"
            )
        return weight + self.delta().to(weight.dtype)

    def balanced(self) -> LoRAFactors:
        """The same ``ΔW = B A`` with the gauge ``(B G, G^{-1} A)`` (``G`` diagonal, positive)
        chosen so that column ``j`` of ``B`` and row ``j`` of ``A`` have one norm; a column or
        row that is zero is left as it is.

        Introduced in :ref:`sec-deep-caveat`.
        """
        self.delta()  # validates the shapes
        b_norm, a_norm = self.B.norm(dim=0), self.A.norm(dim=1)
        nonzero = (b_norm > 0) & (a_norm > 0)
        ratio = a_norm / torch.where(nonzero, b_norm, torch.ones_like(b_norm))
        gauge = torch.where(nonzero, ratio.sqrt(), torch.ones_like(ratio))
        return LoRAFactors(self.B * gauge, self.A / gauge[:, None])

    def n_params(self) -> int:
        """Trainable parameters of a rank-``r`` adapter on a ``D × D`` matrix: ``2 r D``."""
        return self.B.numel() + self.A.numel()


def check_factors(adapter: object, width: int, name: str) -> LoRAFactors:
    """``adapter`` as float64 :class:`~lora_theory.adapters.LoRAFactors` of a ``(D, D)`` weight:
    ``B: (D, r)``,
    ``A: (r, D)`` with one ``r``, finite real entries.

    Introduced in :ref:`ch-linear`.
    """
    width = checks.integer(width, "width", low=1)
    if isinstance(adapter, (str, bytes, torch.Tensor)):
        raise ValueError(f"{name} must be a pair (B, A), got {type(adapter).__name__}")
    try:
        b, a = adapter  # type: ignore[misc]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (B, A), got {type(adapter).__name__}") from exc
    b, a = checks.tensor(b, f"{name}.B"), checks.tensor(a, f"{name}.A")
    if b.ndim != 2 or a.ndim != 2 or b.shape[0] != width or a.shape[1] != width:
        raise ValueError(
            f"{name} must have B: ({width}, r) and A: (r, {width}), got B: {tuple(b.shape)}, "
            f"A: {tuple(a.shape)}"
        )
    if b.shape[1] != a.shape[0]:
        raise ValueError(
            f"{name}: inner dimensions differ, B has {b.shape[1]} columns, A has {a.shape[0]} rows"
        )
    return LoRAFactors(b, a)


def layer_ranks(rank: Ranks, depth: int, width: int) -> list[int]:
    """Normalise ``rank`` to one rank per layer: ``[R_1, …, R_L]``.

    An integer ``R`` must satisfy ``1 ≤ R ≤ D`` and applies to every layer. A list may contain
    ``0`` (the layer keeps its frozen weight, e.g. the extra layers of the last block in Theorem 5's
    construction) and must have one entry in ``[0, D]`` per layer. Only the sums over blocks matter
    for the constructions (Lemma 1's error is ``σ_{ΣR_l+1}(E)``).

    Introduced in :ref:`ch-linear`.
    """
    depth = checks.integer(depth, "depth", 1, checks.MAX_LENGTH)
    width = checks.integer(width, "width", low=1)
    if isinstance(rank, torch.Tensor) and rank.ndim == 1:
        rank = rank.tolist()
    if isinstance(rank, (Sequence, Mapping, set)) and not isinstance(rank, str):
        rank = checks.sequence(rank, "rank", "per-layer ranks")
        ranks = [checks.rank(r, f"rank[{i}]", width, low=0) for i, r in enumerate(rank)]
        if len(ranks) != depth:
            raise ValueError(f"got {len(ranks)} per-layer ranks for {depth} layers")
        return ranks
    if isinstance(rank, torch.Tensor) and rank.ndim == 0:
        rank = rank.item()
    return [checks.rank(rank, "rank", width)] * depth


def n_lora_params(width: int, ranks: Sequence[int]) -> int:
    """Trainable weights of rank-``R_l`` LoRA on ``D × D`` layers: ``Σ_l 2 R_l D`` (``2RDL``).

    Introduced in :ref:`ch-linear`.
    """
    width = checks.integer(width, "width", low=1)
    ranks = checks.integers(ranks, "ranks", low=0, high=width, empty=True)
    return sum(2 * r * width for r in ranks)
