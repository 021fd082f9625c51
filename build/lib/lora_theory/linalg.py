"""Linear-algebra primitives used by every construction in the book.

Notation follows the paper: ``σ_i(A)`` is the i-th largest singular value (1-based, ``σ_i = 0`` for
``i > D``); ``LR_r(A)`` is the best rank-``r`` approximation (truncated SVD, Eckart–Young–Mirsky);
``∏_{l=1}^{L} W_l = W_L ⋯ W_1`` with the list ordered from input to output. Everything computes in
float64 by default. Introduced in the chapter "Linear models".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray

#: A matrix whose condition number reaches ``1 / eps`` of float64 is numerically singular: no
#: solve with it keeps a single correct digit, so constructions refuse it.
SINGULAR_CONDITION = 1.0 / float(torch.finfo(torch.float64).eps)
#: Above this condition number a construction still runs but warns: a float64 solve then keeps
#: fewer than ~8 correct digits.
ILL_CONDITIONED = 1e8


class AssumptionError(ValueError):
    """A theorem's hypothesis (typically a non-singularity assumption) fails for the given input."""


def as_tensor(x: ArrayLike, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Convert ``x`` (tensor or array) to a finite floating tensor of ``dtype``.

    Raises ``ValueError`` naming ``name`` if ``x`` is not numeric or holds NaN/inf entries.
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    try:
        t = torch.as_tensor(x).to(dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{name} must be a numeric tensor or array, got {type(x).__name__}"
        ) from exc
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    return t


def as_square(x: ArrayLike, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """:func:`as_tensor` plus a check that ``x`` is a square ``(D, D)`` matrix."""
    t = as_tensor(x, name, dtype)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty square (D, D) matrix, got shape {tuple(t.shape)}"
        )
    return t


def as_square_list(
    mats: Sequence[ArrayLike], name: str, dtype: torch.dtype = torch.float64
) -> list[torch.Tensor]:
    """Convert a non-empty sequence of ``(D, D)`` matrices with one common ``D``."""
    if isinstance(mats, (torch.Tensor, np.ndarray)) and np.ndim(mats) == 2:
        raise ValueError(f"{name} must be a list of (D, D) matrices, got a single matrix")
    mats = list(mats)
    if not mats:
        raise ValueError(f"{name} must contain at least one matrix")
    out = [as_square(m, f"{name}[{i}]", dtype) for i, m in enumerate(mats)]
    widths = {m.shape[0] for m in out}
    if len(widths) != 1:
        raise ValueError(
            f"all matrices in {name} must share one width D, got widths {sorted(widths)}"
        )
    return out


def check_rank(rank: object, name: str = "rank", upper: int | None = None) -> int:
    """Return ``rank`` as an ``int`` if it is an integer ``≥ 1`` (and ``≤ upper`` when given)."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {rank!r}")
    rank = int(rank)
    if rank < 1 or (upper is not None and rank > upper):
        bound = f"1 ≤ {name} ≤ {upper}" if upper is not None else f"{name} ≥ 1"
        raise ValueError(f"{name} out of range: need {bound}, got {rank}")
    return rank


def product(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``∏_{l=1}^{L} W_l = W_L ⋯ W_1`` for ``mats = [W_1, …, W_L]`` (at least one matrix)."""
    if not mats:
        raise ValueError("product of an empty list is undefined here; pass at least one matrix")
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """All singular values of ``a``, largest first, shape ``(min(a.shape),)``."""
    return torch.linalg.svdvals(a)


def sigma(a: torch.Tensor, i: int) -> torch.Tensor:
    """``σ_i(a)``: i-th largest singular value, 1-based; ``σ_i = 0`` for ``i > min(a.shape)``."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 1:
        raise ValueError(f"singular-value index must be an integer ≥ 1, got {i!r}")
    s = singular_values(a)
    return s[i - 1] if i <= s.numel() else torch.zeros((), dtype=a.dtype, device=a.device)


def default_tol(a: torch.Tensor) -> float:
    """Numerical-rank tolerance ``max(shape) · eps · σ_1(a)`` (NumPy's ``matrix_rank`` rule)."""
    s = singular_values(a)
    top = float(s[0]) if s.numel() else 0.0
    return max(a.shape) * torch.finfo(a.dtype).eps * top


def numerical_rank(a: torch.Tensor, tol: float | None = None) -> int:
    """Number of singular values of ``a`` above ``tol`` (default :func:`default_tol`)."""
    tol = default_tol(a) if tol is None else tol
    return int((singular_values(a) > tol).sum())


def low_rank_approx(a: torch.Tensor, r: int) -> torch.Tensor:
    """``LR_r(a) = Σ_{i≤r} σ_i u_i v_iᵀ``, the best rank-``r`` approximation (``LR_0 = 0``)."""
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
        raise ValueError(f"r must be a non-negative integer, got {r!r}")
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    r = min(int(r), s.numel())
    return (u[:, :r] * s[:r]) @ vh[:r]


def condition_number(a: torch.Tensor) -> float:
    """Spectral condition number ``σ_1 / σ_D`` (``inf`` for a singular matrix)."""
    s = singular_values(a)
    return math.inf if float(s[-1]) == 0.0 else float(s[0] / s[-1])


def is_singular(a: torch.Tensor) -> bool:
    """True when ``cond(a) ≥ SINGULAR_CONDITION``: no solve with ``a`` can be trusted."""
    return condition_number(a) >= SINGULAR_CONDITION


@dataclass(frozen=True)
class Conditioning:
    """Smallest singular value and condition number of one matrix a construction must solve with."""

    name: str
    sigma_min: float
    condition: float

    @classmethod
    def of(cls, name: str, a: torch.Tensor) -> Conditioning:
        s = singular_values(a)
        smin = float(s[-1])
        return cls(name, smin, math.inf if smin == 0.0 else float(s[0]) / smin)

    @property
    def singular(self) -> bool:
        """True when the condition number reaches :data:`SINGULAR_CONDITION`."""
        return self.condition >= SINGULAR_CONDITION

    @property
    def ill_conditioned(self) -> bool:
        """True when the condition number reaches :data:`ILL_CONDITIONED`."""
        return self.condition >= ILL_CONDITIONED

    def __str__(self) -> str:
        return f"{self.name}: σ_min = {self.sigma_min:.3e}, cond = {self.condition:.3e}"
