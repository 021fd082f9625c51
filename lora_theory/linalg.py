"""Linear-algebra primitives used by every construction in the book.

Notation follows the paper: ``σ_i(A)`` is the i-th largest singular value (1-based, ``σ_i = 0`` for
``i > D``); ``LR_r(A)`` is the best rank-``r`` approximation (truncated SVD, Eckart–Young–Mirsky);
``∏_{l=1}^{L} W_l = W_L ⋯ W_1`` with the list ordered from input to output. Everything computes in
float64 by default.

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import checks

#: A matrix whose condition number reaches ``1 / eps`` of float64 is numerically singular: no
#: solve with it keeps a single correct digit, so constructions refuse it.
SINGULAR_CONDITION = 1.0 / float(torch.finfo(torch.float64).eps)
#: Above this condition number a construction still runs but warns: a float64 solve then keeps
#: fewer than ~8 correct digits.
ILL_CONDITIONED = 1e8


#: Relative tolerance of a float64 construction that promises exactness: it must reach its
#: optimum to ``EXACT_RTOL`` times the scale of the matrices involved (7 correct digits), or raise.
EXACT_RTOL = 1e-7


#: Safety factor of :func:`difference_tol` over ``max(shape) · eps``: products of up to six
#: random ``D × D`` factors (``D ≤ 16``) evaluated in two orders differ by at most ``2.7`` times
#: ``max(shape) · eps · Σ‖t_k‖`` (measured over 300 draws).
DIFFERENCE_SAFETY = 8.0


class ExactnessError(ValueError):
    """A construction missed the tolerance it promises: the achieved error, the allowed error and
    the place (layer or block) are in the message and in the attributes ``achieved``,
    ``optimum`` and ``allowed``. The result is not returned.

    Introduced in :ref:`ch-linear`.
    """

    def __init__(
        self,
        message: str,
        achieved: float = float("nan"),
        optimum: float = float("nan"),
        allowed: float = float("nan"),
    ) -> None:
        super().__init__(message)
        self.achieved, self.optimum, self.allowed = achieved, optimum, allowed


def exact_rtol(dtype: torch.dtype) -> float:
    """The default tolerance of an exact construction in ``dtype``: ``EXACT_RTOL`` in float64,
    ``10⁴ · eps`` in float32.

    Introduced in :ref:`ch-linear`.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return max(EXACT_RTOL, 1e4 * torch.finfo(dtype).eps)


def check_exact(where: str, achieved: float, optimum: float, scale: float, rtol: float) -> None:
    """Raise :class:`ExactnessError` unless ``|achieved − optimum| ≤ rtol · scale``.

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(achieved, bool) or not isinstance(achieved, numbers.Real):
        raise ValueError(f"achieved must be a real number, got {achieved!r}")
    try:
        achieved = float(achieved)  # NaN or inf is a missed tolerance, raised below
    except OverflowError:  # an int beyond the float range: as missed as inf
        achieved = math.inf
    optimum = checks.real(optimum, "optimum", non_negative=True)
    scale = checks.real(scale, "scale", non_negative=True)
    rtol = checks.real(rtol, "rtol", positive=True)
    allowed = rtol * scale
    if not abs(achieved - optimum) <= allowed:  # also catches NaN
        raise ExactnessError(
            f"{where}: the construction reached error {achieved:.3e} where the optimum is "
            f"{optimum:.3e}; allowed deviation {allowed:.3e} (rtol {rtol:.0e} × scale "
            f"{scale:.3e}). The matrices it solves with are too ill-conditioned for this dtype.",
            achieved,
            optimum,
            allowed,
        )


class AssumptionError(ValueError):
    """A theorem's hypothesis (typically a non-singularity assumption) fails for the given input.

    Introduced in :ref:`ch-linear`.
    """


def product(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``∏_{l=1}^{L} W_l = W_L ⋯ W_1`` for ``mats = [W_1, …, W_L]`` (at least one matrix).

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(mats, (str, bytes)) or not isinstance(mats, (Sequence, torch.Tensor)):
        raise ValueError(f"mats must be a list of matrices, got {type(mats).__name__}")
    if len(mats) == 0:
        raise ValueError("product of an empty list is undefined here; pass at least one matrix")
    mats = [checks.matrix(m, f"mats[{i}]") for i, m in enumerate(mats)]
    for i in range(1, len(mats)):
        if mats[i].shape[1] != mats[i - 1].shape[0] or mats[i].dtype != mats[0].dtype:
            raise ValueError(
                f"mats[{i}] of shape {tuple(mats[i].shape)} ({mats[i].dtype}) cannot follow "
                f"mats[{i - 1}] of shape {tuple(mats[i - 1].shape)} ({mats[i - 1].dtype})"
            )
    return _chain(mats)


def _chain(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """``W_L ⋯ W_1`` of checked, conformable matrices (:func:`product` without its checks)."""
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def linear_pair(
    target: object,
    frozen: object,
    dtype: torch.dtype,
    names: tuple[str, str] = ("target", "frozen"),
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A linear problem's target ``W̄`` and frozen ``[W_1, …, W_L]`` as ``dtype`` tensors,
    validated: real, finite, square, one width ``D``, and ``W̄ − W_L ⋯ W_1`` finite (no
    overflow). ``names`` are the arguments' names in the messages.

    Introduced in :ref:`ch-linear`.
    """
    return linear_problem(target, frozen, dtype, names)[:2]


def linear_problem(
    target: object,
    frozen: object,
    dtype: torch.dtype,
    names: tuple[str, str] = ("target", "frozen"),
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """:func:`linear_pair` and the frozen product ``W_L ⋯ W_1`` (``(D, D)``) it computed on the
    way, for a caller that needs it too.

    Introduced in :ref:`pf-lemma1`.
    """
    if not (
        isinstance(names, tuple) and len(names) == 2 and all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"names must be a pair of argument names (str, str), got {names!r}")
    dtype = checks.dtype(dtype)
    ws = checks.square_list(frozen, names[1], dtype)  # type: ignore[arg-type]
    wbar = checks.square(target, names[0], dtype)
    if wbar.shape != ws[0].shape:
        raise ValueError(
            f"{names[0]} has shape {tuple(wbar.shape)} but the matrices of {names[1]} are "
            f"{tuple(ws[0].shape)}"
        )
    prod = _chain(ws)  # ws checked above
    if not checks.all_finite(wbar - prod):
        raise ValueError(
            f"the product of {names[1]} (or {names[0]} minus it) overflows {dtype}: the entries "
            "are too large for this dtype"
        )
    return wbar, ws, prod


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """All singular values of ``a``, largest first, shape ``(min(a.shape),)``.

    Introduced in :ref:`ch-linear`.
    """
    return torch.linalg.svdvals(checks.matrix(a, "a"))


def sigma(a: torch.Tensor, i: int) -> torch.Tensor:
    """``σ_i(a)``: i-th largest singular value, 1-based; ``σ_i = 0`` for ``i > min(a.shape)``.

    Introduced in :ref:`ch-linear`.
    """
    i = checks.integer(i, "singular-value index i", low=1)
    a = checks.matrix(a, "a")
    s = singular_values(a)
    return s[i - 1] if i <= s.numel() else torch.zeros((), dtype=a.dtype, device=a.device)


def difference_tol(*terms: torch.Tensor, scale: float | None = None) -> float:
    """Rank tolerance for a difference ``a = t_1 − t_2 − …``:
    ``DIFFERENCE_SAFETY · max(shape) · eps · Σ_k ‖t_k‖₂``.

    Round-off in forming ``a`` is relative to the terms, not to ``a`` itself: when the target
    equals the frozen product up to round-off, ``E`` is pure noise and must have rank 0, which a
    tolerance relative to ``σ_1(E)`` would never give. The safety factor covers terms that differ
    by a few ``eps`` in relative terms (e.g. ``∏W · (1 + 1e-15)`` for ``D = 1, 2``, where
    ``max(shape) · eps`` alone is below ``1e-15``) and products evaluated in another order.
    ``scale``, when given, replaces ``Σ_k ‖t_k‖₂`` (a construction that has it already, or a
    close lower bound of it from :func:`~lora_theory.solves.norm2_lower`).

    Introduced in :ref:`ch-linear`.
    """
    if not terms:
        raise ValueError("difference_tol needs at least one term")
    terms = tuple(checks.matrix(t, f"terms[{k}]") for k, t in enumerate(terms))
    a = terms[0]
    if scale is None:
        scale = sum(float(torch.linalg.matrix_norm(t, 2)) for t in terms)
    scale = checks.real(scale, "scale", non_negative=True)
    return DIFFERENCE_SAFETY * max(a.shape) * torch.finfo(a.dtype).eps * scale


def numerical_rank(a: torch.Tensor, tol: float | None = None) -> int:
    """Number of singular values of ``a`` above ``tol``.

    The default ``tol = max(shape) · eps · σ_1(a)`` is NumPy's and ``torch.linalg.matrix_rank``'s
    rule; pass :func:`difference_tol` when ``a`` is a difference of larger terms.

    Introduced in :ref:`ch-linear`.
    """
    a = checks.matrix(a, "a")
    if tol is None:
        return int(torch.linalg.matrix_rank(a)) if a.numel() else 0
    tol = checks.real(tol, "tol", non_negative=True)
    return int((singular_values(a) > tol).sum())


def low_rank_approx(a: torch.Tensor, r: int) -> torch.Tensor:
    """``LR_r(a) = Σ_{i≤r} σ_i u_i v_iᵀ``, the best rank-``r`` approximation (``LR_0 = 0``).

    Introduced in :ref:`ch-linear`.
    """
    r = checks.integer(r, "r", low=0)
    a = checks.matrix(a, "a")
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    r = min(r, s.numel())
    return (u[:, :r] * s[:r]) @ vh[:r]


def condition_number(a: torch.Tensor) -> float:
    """Spectral condition number ``σ_1 / σ_D`` (``inf`` for a singular matrix).

    Introduced in :ref:`ch-linear`.
    """
    return Conditioning.of("a", a).condition


@dataclass(frozen=True)
class Conditioning:
    """Smallest singular value and condition number of one matrix a construction must solve with.

    Introduced in :ref:`ch-linear`.
    """

    name: str
    sigma_min: float
    condition: float
    #: ``True`` for the estimates of :func:`~lora_theory.solves.conditioning`: ``condition`` is
    #: then a lower estimate of ``κ₁ = ‖A‖₁ ‖A⁻¹‖₁`` (within a factor ``D`` of the spectral
    #: ``κ₂``) and ``sigma_min`` is ``1 / ‖A⁻¹‖₁``, the 1-norm analogue of ``σ_min``.
    estimated: bool = False

    @classmethod
    def of(cls, name: str, a: torch.Tensor) -> Conditioning:
        if not isinstance(name, str):
            raise ValueError(f"name must be a string, got {type(name).__name__}")
        a = checks.matrix(a, name)
        if a.shape[0] != a.shape[1] or a.numel() == 0:
            raise ValueError(f"{name} must be a non-empty square matrix, got {tuple(a.shape)}")
        s = singular_values(a)
        smin = float(s[-1])
        return cls(name, smin, math.inf if smin == 0.0 else float(s[0]) / smin)

    @property
    def singular(self) -> bool:
        """True when the condition number reaches ``SINGULAR_CONDITION``."""
        return self.condition >= SINGULAR_CONDITION

    @property
    def ill_conditioned(self) -> bool:
        """True when the condition number reaches ``ILL_CONDITIONED``."""
        return self.condition >= ILL_CONDITIONED

    def __str__(self) -> str:
        if self.estimated:
            return f"{self.name}: cond₁ ≈ {self.condition:.3e} (estimate)"
        return f"{self.name}: σ_min = {self.sigma_min:.3e}, cond = {self.condition:.3e}"
