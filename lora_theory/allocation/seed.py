r"""The seed's "singular-value-based adaptive rank allocation", exactly as written, and the
measurements that show what it computes.

The proposal's code, ``adaptive_rank_allocation(U, S, R_total)``, sets ``R_1 = int(0.7 R_total)``
and, for column ``i`` (0-based), ``B[:, i] = A[:, i] = c_i √S_i U[:, i]`` with ``c_i = 1`` for
``i < R_1`` and ``c_i = 0.5`` for ``R_1 ≤ i < min(R_total, D)``; columns ``i ≥ D`` stay zero. Its
``A`` is ``(D, R_total)`` and the text's update is ``ΔW = B Aᵀ``. So

    ΔW = Σ_{i < min(R, D)} c_i² S_i u_i u_iᵀ,

a symmetric positive-semidefinite matrix built from ``U`` alone (``V`` never enters), on exactly
the directions of the rank-``R`` truncation, one column per direction: nothing is re-allocated,
the tail is only down-weighted by ``c_i² = 1/4``. The text's formula
``ΔW = Σ_{i≤R_1} σ_i u_i v_iᵀ + Σ_{R_1<i≤R_1+R_2} σ_i u_i v_iᵀ`` is ``LR_{R_1+R_2}(E)`` for every
split, and its objective ``σ_{R_total+1}(E)`` does not depend on the split.

Introduced in :ref:`ch-allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from .. import checks
from ..adapters import LoRAFactors
from ..checks import ArrayLike
from ..linalg import low_rank_approx, numerical_rank, sigma

#: Fraction of ``R_total`` the seed's code gives weight 1 (``R1 = int(R_total * 0.7)``).
SEED_SPLIT = 0.7
#: Factor the seed's code applies to both factors' remaining columns (so ``ΔW`` gets ``1/4``).
SEED_TAIL_SCALE = 0.5

Norm = Literal["fro", "spectral"]
NORMS: tuple[str, ...] = ("fro", "spectral")


def _matrix(x: ArrayLike, name: str) -> torch.Tensor:
    """A 2-D float64 matrix with at least one row (it may have no columns)."""
    t = checks.tensor(x, name)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D matrix with rows, got shape {tuple(t.shape)}")
    return t


def _singular_values(x: ArrayLike, name: str) -> torch.Tensor:
    s = checks.tensor(x, name)
    if s.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of singular values, got {tuple(s.shape)}")
    if (s < 0).any():
        raise ValueError(f"{name} must be non-negative (singular values), min {float(s.min())}")
    return s


def seed_proposal(U: ArrayLike, S: ArrayLike, R_total: int) -> LoRAFactors:
    r"""``(B, A)`` exactly as the seed's ``adaptive_rank_allocation(U, S, R_total)`` computes them.

    ``U``: ``(D, k)`` (the seed passes the left singular vectors of ``E``; ``D = U.shape[0]``
    replaces the code's undefined global ``D``), ``S``: ``(k',)`` non-negative (used in the given
    order, never sorted), ``R_total ≥ 0``. With ``R_1 = int(R_total * 0.7)`` (Python's float
    product, as written) and ``c_i = 1`` for ``i < R_1``, ``c_i = 0.5`` for
    ``R_1 ≤ i < min(R_total, D)``:

        B[:, i] = c_i √S_i U[:, i],   A_seed[:, i] = B[:, i],
        columns i ≥ max(R_1, min(R_total, D)) stay zero.

    Returned in PEFT orientation: ``B`` is the seed's ``B`` ``(D, R_total)`` and ``A`` is the
    seed's ``A`` transposed, ``(R_total, D)``, so ``B @ A`` is the seed's ``ΔW = B A_seedᵀ =
    Σ_i c_i² S_i u_i u_iᵀ``. Nothing is corrected. Where the seed's code would stop with an
    ``IndexError`` (it indexes ``U[:, i]`` and ``S[i]`` for ``i < max(R_1, min(R_total, D))``) this
    raises ``ValueError`` saying so. Inputs are converted to float64 first (for float64 input the
    result is bit-for-bit the code's; for float32 input the code would form its products in
    float32 before storing them in its float64 arrays).

    Introduced in :ref:`ch-allocation`.
    """
    u = _matrix(U, "U")
    s = _singular_values(S, "S")
    r_total = checks.integer(R_total, "R_total", low=0)
    width = u.shape[0]
    r1 = int(r_total * SEED_SPLIT)
    tail_end = min(r_total, width)  # the second loop's `if i < D`
    used = max(r1, tail_end)
    if used > u.shape[1] or used > s.numel():
        raise ValueError(
            f"R_total={r_total}: the seed's code reads U[:, i] and S[i] for i < {used}, but U has "
            f"{u.shape[1]} columns and S has {s.numel()} entries (the code raises IndexError)"
        )
    # math.sqrt is correctly rounded like np.sqrt; torch's vectorised sqrt can differ by 1 ulp.
    root = torch.tensor([math.sqrt(x) for x in s[:used].tolist()], dtype=torch.float64)
    b = torch.zeros(width, r_total, dtype=torch.float64)
    b[:, :r1] = u[:, :r1] * root[:r1]
    if tail_end > r1:
        b[:, r1:tail_end] = u[:, r1:tail_end] * root[r1:tail_end] * SEED_TAIL_SCALE
    return LoRAFactors(b, b.T.clone())


class SeedSetting(NamedTuple):
    """The seed's experiment: ``E = U diag(S) Vᵀ`` (``(D, D)``), plus a frozen weight ``W₀`` and the
    target ``W̄ = W₀ + E`` for the matrix problem ``min ‖W₀ + BA − W̄‖_F²``.

    Introduced in :ref:`ch-allocation`.
    """

    E: torch.Tensor
    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor
    frozen: torch.Tensor
    target: torch.Tensor


def random_orthogonal(width: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-distributed orthogonal ``(D, D)`` matrix: ``Q`` of a Gaussian matrix's QR with the
    signs of ``diag(R)`` moved into ``Q``.

    Introduced in :ref:`ch-allocation`.
    """
    width = checks.integer(width, "width", low=1)
    checks.elements((width, width), "random_orthogonal")
    checks.generator(generator)
    q, r = torch.linalg.qr(torch.randn(width, width, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def seed_setting(
    generator: torch.Generator, width: int = 64, sigma_1: float = 10.0, decay: float = 0.7
) -> SeedSetting:
    """The seed's setting: ``D = 64``, ``σ_i = 10 · 0.7^{i−1}``, ``E = U Σ Vᵀ`` with independent
    Haar-random orthogonal ``U`` and ``V`` (so ``E`` is not symmetric).

    Draws, in this order from ``generator``: ``U``, ``V``, and ``W₀`` with ``N(0, 1/D)`` entries
    (the seed specifies no frozen weight; ``W₀`` only matters for PiSSA's initialisation, which
    factorises it). ``target = W₀ + E``. Float64.

    Introduced in :ref:`ch-allocation`.
    """
    width = checks.integer(width, "width", low=1)
    sigma_1 = checks.real(sigma_1, "sigma_1", positive=True)
    decay = checks.real(decay, "decay", positive=True)
    if decay > 1:
        raise ValueError(f"decay must lie in (0, 1] so that σ_i decreases, got {decay}")
    u, v = random_orthogonal(width, generator), random_orthogonal(width, generator)
    s = sigma_1 * decay ** torch.arange(width, dtype=torch.float64)
    e = (u * s) @ v.T
    frozen = torch.randn(width, width, generator=generator, dtype=torch.float64) / math.sqrt(width)
    return SeedSetting(e, u, s, v, frozen, frozen + e)


def seed_formula_delta(E: ArrayLike, R1: int, R2: int) -> torch.Tensor:
    """The seed's displayed update ``Σ_{i≤R_1} σ_i u_i v_iᵀ + Σ_{R_1<i≤R_1+R_2} σ_i u_i v_iᵀ`` for
    ``E = U Σ Vᵀ`` (``(D, D)``), summed term by term as written. It equals ``LR_{R_1+R_2}(E)``.

    Introduced in :ref:`ch-allocation`.
    """
    e = _matrix(E, "E")
    r1 = checks.integer(R1, "R1", low=0)
    r2 = checks.integer(R2, "R2", low=0)
    u, s, vh = torch.linalg.svd(e, full_matrices=False)
    n = s.numel()
    first = (u[:, : min(r1, n)] * s[: min(r1, n)]) @ vh[: min(r1, n)]
    lo, hi = min(r1, n), min(r1 + r2, n)
    return first + (u[:, lo:hi] * s[lo:hi]) @ vh[lo:hi]


def seed_objective(E: ArrayLike, ranks: Sequence[int]) -> float:
    """The seed's objective ``σ_{R_total+1}(E)`` for an allocation ``(R_1, R_2, …)``,
    ``R_total = Σ_i R_i``.

    Introduced in :ref:`ch-allocation`.
    """
    e = _matrix(E, "E")
    total = sum(checks.integers(ranks, "ranks", low=0))
    return float(sigma(e, total + 1))


def seed_objective_values(E: ArrayLike, R_total: int) -> torch.Tensor:
    """The seed's objective over every two-part split ``R_1 + R_2 = R_total``
    (``R_1 = 0..R_total``), shape ``(R_total + 1,)``. All entries are equal: the objective
    ignores the allocation.

    Introduced in :ref:`ch-allocation`.
    """
    rows = _matrix(E, "E").shape[0]  # a budget beyond the rank of E changes nothing
    r_total = checks.integer(R_total, "R_total", 0, rows)
    return torch.tensor(
        [seed_objective(E, (r1, r_total - r1)) for r1 in range(r_total + 1)], dtype=torch.float64
    )


def _parallel(x: torch.Tensor, y: torch.Tensor, tol: float) -> bool:
    """``x`` is a multiple of the unit vector ``y`` (relative to ``‖x‖``)."""
    return float(torch.linalg.vector_norm(x - (y @ x) * y)) <= tol * float(
        torch.linalg.vector_norm(x)
    )


def factor_basis(columns: ArrayLike, U: ArrayLike, V: ArrayLike, tol: float = 1e-10) -> str:
    """Which singular vectors the columns of a factor are built from: ``"U"`` if every non-zero
    column ``k`` is a multiple of ``U[:, k]``, ``"V"`` if of ``V[:, k]``, ``"zero"`` if all
    columns vanish, else ``"other"`` (``"U"`` wins when ``U = V``).

    ``columns``: ``(D, r)`` (pass ``B``, or ``A.T`` for a PEFT ``A``); ``U``, ``V``: ``(D, ≥r)``.

    Introduced in :ref:`ch-allocation`.
    """
    c, u, v = _matrix(columns, "columns"), _matrix(U, "U"), _matrix(V, "V")
    tol = checks.real(tol, "tol", positive=True)
    if u.shape[0] != c.shape[0] or v.shape[0] != c.shape[0]:
        raise ValueError(f"U, V and columns need {c.shape[0]} rows, got {u.shape}, {v.shape}")
    live = [k for k in range(c.shape[1]) if float(torch.linalg.vector_norm(c[:, k])) > 0]
    if not live:
        return "zero"
    for label, basis in (("U", u), ("V", v)):
        if all(k < basis.shape[1] and _parallel(c[:, k], basis[:, k], tol) for k in live):
            return label
    return "other"


def is_symmetric(M: ArrayLike, tol: float = 1e-12) -> bool:
    """``‖M − Mᵀ‖_F ≤ tol · ‖M‖_F`` for a square ``M``.

    Introduced in :ref:`ch-allocation`.
    """
    m = checks.square(M, "M")
    tol = checks.real(tol, "tol", non_negative=True)
    return float(torch.linalg.matrix_norm(m - m.T)) <= tol * float(torch.linalg.matrix_norm(m))


def definiteness(M: ArrayLike, tol: float = 1e-12) -> str:
    """Definiteness of the symmetric part ``(M + Mᵀ)/2`` from its eigenvalues ``λ`` (zero means
    ``|λ| ≤ tol · max|λ|``): ``"positive definite"``, ``"positive semidefinite"``,
    ``"negative definite"``, ``"negative semidefinite"``, ``"indefinite"`` or ``"zero"``.

    Introduced in :ref:`ch-allocation`.
    """
    m = checks.square(M, "M")
    tol = checks.real(tol, "tol", non_negative=True)
    lam = torch.linalg.eigvalsh((m + m.T) / 2)
    cut = tol * float(lam.abs().max())
    pos, neg = bool((lam > cut).any()), bool((lam < -cut).any())
    zero = bool((lam.abs() <= cut).any())
    if not pos and not neg:
        return "zero"
    if pos and neg:
        return "indefinite"
    sign = "positive" if pos else "negative"
    return f"{sign} {'semidefinite' if zero else 'definite'}"


def columns_per_direction(B: ArrayLike, U: ArrayLike, tol: float = 1e-10) -> torch.Tensor:
    """How many columns of ``B`` (``(D, r)``) have a component along each ``u_i``:
    ``n_i = #{k : |u_iᵀ b_k| > tol · ‖b_k‖}``, shape ``(U.shape[1],)`` int64. This is the "rank"
    a factor spends on direction ``i``; the seed's factors give ``n_i = 1`` for ``i < R``, like
    ``LR_R``.

    Introduced in :ref:`ch-allocation`.
    """
    b, u = _matrix(B, "B"), _matrix(U, "U")
    tol = checks.real(tol, "tol", positive=True)
    if u.shape[0] != b.shape[0]:
        raise ValueError(f"U needs {b.shape[0]} rows like B (D, r), got shape {tuple(u.shape)}")
    coef = (u.T @ b).abs()
    return (coef > tol * torch.linalg.vector_norm(b, dim=0)).sum(dim=1)


class Errors(NamedTuple):
    """``‖E − ΔW‖`` for the seed's ``ΔW``, for ``ΔW = 0`` and for ``LR_R(E)`` (Eckart–Young).

    Introduced in :ref:`ch-allocation`.
    """

    seed: float
    zero: float
    eckart_young: float


def _norm(m: torch.Tensor, norm: str) -> float:
    return float(torch.linalg.matrix_norm(m, "fro" if norm == "fro" else 2))


def approximation_errors(E: ArrayLike, R_total: int, norm: Norm = "fro") -> Errors:
    """The seed's ``ΔW = seed_proposal(U, S, R_total)`` (``E = U diag(S) Vᵀ`` by SVD) against doing
    nothing and against ``LR_R(E)``, in Frobenius (``"fro"``) or spectral norm.

    Introduced in :ref:`ch-allocation`.
    """
    e = checks.square(E, "E")
    norm = checks.choice(norm, "norm", NORMS)  # type: ignore[assignment]
    u, s, _ = torch.linalg.svd(e)
    delta = seed_proposal(u, s, R_total).delta()
    return Errors(
        _norm(e - delta, norm), _norm(e, norm), _norm(e - low_rank_approx(e, R_total), norm)
    )


@dataclass(frozen=True)
class SeedReport:
    """What the seed's code computes for one ``E`` and ``R_total``, property by property.

    ``b_basis``/``a_basis``: :func:`factor_basis` of ``B`` and of ``Aᵀ``; ``uses_v``: either is
    built from ``V``; ``symmetric`` and ``definiteness`` of ``ΔW``; ``rank`` of ``ΔW`` and of
    ``LR_R(E)``; ``columns_per_direction`` (first ``D`` entries); ``reallocated``: the directions
    (or the number of columns per direction) differ from the rank-``R`` truncation's;
    ``weights``: ``u_iᵀ ΔW u_i / σ_i`` (``1``, ``1/4``, then ``0``); ``objective_depends``: the
    seed's objective varies over the splits; ``fro`` and ``spectral``: :class:`Errors`.

    Introduced in :ref:`ch-allocation`.
    """

    b_basis: str
    a_basis: str
    uses_v: bool
    symmetric: bool
    definiteness: str
    rank: int
    truncation_rank: int
    columns_per_direction: torch.Tensor
    reallocated: bool
    weights: torch.Tensor
    objective_depends: bool
    fro: Errors
    spectral: Errors


def analyse_seed_proposal(E: ArrayLike, R_total: int) -> SeedReport:
    """Run the seed's code on ``E`` (``(D, D)``, ``E = U diag(S) Vᵀ`` by SVD) and measure each
    property listed in :class:`SeedReport`.

    Introduced in :ref:`ch-allocation`.
    """
    e = checks.square(E, "E")
    u, s, vh = torch.linalg.svd(e)
    factors = seed_proposal(u, s, R_total)
    delta = factors.delta()
    truncation = low_rank_approx(e, R_total)
    cols = columns_per_direction(factors.B, u)
    reference = columns_per_direction(u[:, : min(R_total, e.shape[0])], u)
    values = seed_objective_values(e, R_total)
    bases = factor_basis(factors.B, u, vh.T), factor_basis(factors.A.T, u, vh.T)
    diag = torch.diagonal(u.T @ delta @ u)
    weights = torch.where(s > 0, diag / torch.where(s > 0, s, 1.0), 0.0)
    return SeedReport(
        b_basis=bases[0],
        a_basis=bases[1],
        uses_v="V" in bases,
        symmetric=is_symmetric(delta),
        definiteness=definiteness(delta),
        rank=numerical_rank(delta),
        truncation_rank=numerical_rank(truncation),
        columns_per_direction=cols,
        reallocated=not torch.equal(cols, reference),
        weights=weights,
        objective_depends=bool(values.max() > values.min()),
        fro=approximation_errors(e, R_total, "fro"),
        spectral=approximation_errors(e, R_total, "spectral"),
    )
