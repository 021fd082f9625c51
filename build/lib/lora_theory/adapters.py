"""LoRA factors ``ΔW = B A`` of one ``D × D`` weight matrix.

Orientation follows PEFT (``lora_B``: ``(D, R)``, ``lora_A``: ``(R, D)``), so analytic adapters load
into PEFT without transposes. No ``α / r`` scaling, as in the paper's code. Introduced in the
chapter "Linear models".
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .linalg import numerical_rank


class LoRAFactors(NamedTuple):
    """One adapter: ``B`` of shape ``(D, r)`` and ``A`` of shape ``(r, D)``; ``ΔW = B @ A``.

    A ``NamedTuple``, so ``B, A = factors`` works and a list of adapters reads like the paper's
    ``[(B_1, A_1), …, (B_L, A_L)]``.
    """

    B: torch.Tensor
    A: torch.Tensor

    @classmethod
    def zeros(cls, width: int, dtype: torch.dtype = torch.float64) -> LoRAFactors:
        """The empty adapter (inner dimension 0): ``ΔW = 0``."""
        return cls(torch.zeros(width, 0, dtype=dtype), torch.zeros(0, width, dtype=dtype))

    @property
    def inner_dim(self) -> int:
        """Inner dimension ``r`` of the factorisation (an upper bound on ``rank(ΔW)``)."""
        return self.B.shape[1]

    def delta(self) -> torch.Tensor:
        """The update ``ΔW = B A``, shape ``(D, D)``."""
        return self.B @ self.A

    def rank(self, tol: float | None = None) -> int:
        """Numerical rank of ``ΔW``."""
        return numerical_rank(self.delta(), tol) if self.inner_dim else 0

    def merge(self, weight: torch.Tensor) -> torch.Tensor:
        """The adapted weight ``W + B A``."""
        return weight + self.delta().to(weight.dtype)

    def n_params(self) -> int:
        """Trainable parameters of a rank-``r`` adapter on a ``D × D`` matrix: ``2 r D``."""
        return self.B.numel() + self.A.numel()


def merge_all(weights: list[torch.Tensor], adapters: list[LoRAFactors]) -> list[torch.Tensor]:
    """``[W_l + B_l A_l]`` for matching lists of weights and adapters."""
    if len(weights) != len(adapters):
        raise ValueError(f"got {len(weights)} weights but {len(adapters)} adapters")
    return [a.merge(w) for w, a in zip(weights, adapters, strict=True)]
