r"""Optimal allocation of a rank budget across several error matrices ``E_1, …, E_M``.

Adapting matrix ``m`` with rank ``r_m`` leaves, at best (Eckart–Young–Mirsky), the residual
``Σ_{i>r_m} σ_i(E_m)²`` in squared Frobenius norm and ``σ_{r_m+1}(E_m)`` in spectral norm. Under
``Σ_m r_m = budget`` and ``0 ≤ r_m ≤ n_m`` (``n_m`` singular values of ``E_m``):

* **Frobenius** ``min Σ_m Σ_{i>r_m} σ_i(E_m)²``: the marginal gain of the ``(r+1)``-th rank of
  matrix ``m`` is ``σ_{r+1}(E_m)²``, non-increasing in ``r``, so taking the ``budget`` largest
  values of the pooled spectrum is exact (greedy on a separable concave gain).
* **Spectral max** ``min max_m σ_{r_m+1}(E_m)``: any allocation covers exactly ``budget`` pooled
  values, as per-matrix prefixes, so one of the ``budget + 1`` largest stays uncovered; the same
  greedy leaves exactly the ``(budget+1)``-th largest pooled value, the lower bound. Exact.
* **Spectral sum** ``min Σ_m σ_{r_m+1}(E_m)``: the gains ``σ_{r+1} − σ_{r+2}`` need not decrease,
  so greedy can fail; an exact dynamic programme over matrices (``O(M · budget · max n_m)``).

Ties are broken deterministically: among equal singular values the earlier matrix (then the
earlier index) is taken first; the dynamic programme gives the earliest matrix the largest rank
that stays optimal. A budget larger than ``Σ_m n_m`` is infeasible and raises ``ValueError``.

Introduced in :ref:`ch-allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch

from .. import checks
from ..checks import ArrayLike

Objective = Literal["frobenius", "spectral_max", "spectral_sum"]
OBJECTIVES: tuple[str, ...] = ("frobenius", "spectral_max", "spectral_sum")


def spectrum(x: ArrayLike, name: str = "spectrum") -> torch.Tensor:
    """Singular values, largest first: a 1-D non-negative vector is sorted, a 2-D matrix ``E_m``
    is replaced by ``σ(E_m)``. Float64, shape ``(n_m,)``.

    Introduced in :ref:`ch-allocation`.
    """
    t = checks.tensor(x, name)
    if t.ndim == 2:
        return torch.linalg.svdvals(t)
    if t.ndim != 1:
        raise ValueError(f"{name} must be a 1-D spectrum or a 2-D matrix, got {tuple(t.shape)}")
    if (t < 0).any():
        raise ValueError(f"{name} must be non-negative (singular values), min {float(t.min())}")
    return torch.sort(t, descending=True).values


def _spectra(spectra: Sequence[ArrayLike]) -> list[torch.Tensor]:
    if isinstance(spectra, (str, bytes, torch.Tensor)) or not isinstance(spectra, Sequence):
        raise ValueError(
            f"spectra must be a list of spectra or matrices, got {type(spectra).__name__}"
        )
    if not spectra:
        raise ValueError("spectra must contain at least one spectrum")
    return [spectrum(s, f"spectra[{m}]") for m, s in enumerate(spectra)]


def _budget(budget: object, sizes: list[int]) -> int:
    total = sum(sizes)
    b = checks.integer(budget, "budget", low=0)
    if b > total:
        raise ValueError(
            f"budget={b} exceeds the total size Σ n_m = {total} (sizes {sizes}): ranks are "
            f"capped by each matrix's size, so at most {total} ranks can be spent (all residuals "
            "are then 0)"
        )
    return b


def _greedy(spectra: list[torch.Tensor], budget: int) -> list[int]:
    pooled = sorted(
        ((-float(v), m, i) for m, s in enumerate(spectra) for i, v in enumerate(s.tolist())),
    )
    ranks = [0] * len(spectra)
    for _, m, _ in pooled[:budget]:
        ranks[m] += 1
    return ranks


def _tail(s: torch.Tensor, r: int) -> float:
    return float(s[r]) if r < s.numel() else 0.0


def _spectral_sum(spectra: list[torch.Tensor], budget: int) -> list[int]:
    # best[m][b]: minimum of Σ_{k≥m} σ_{r_k+1}(E_k) over r_m + … = b (inf if infeasible)
    n_mats = len(spectra)
    best = [[math.inf] * (budget + 1) for _ in range(n_mats + 1)]
    best[n_mats][0] = 0.0
    for m in range(n_mats - 1, -1, -1):
        for b in range(budget + 1):
            best[m][b] = min(
                _tail(spectra[m], r) + best[m + 1][b - r]
                for r in range(min(b, spectra[m].numel()) + 1)
            )
    ranks, left = [], budget
    for m in range(n_mats):
        r = max(
            r
            for r in range(min(left, spectra[m].numel()) + 1)
            if _tail(spectra[m], r) + best[m + 1][left - r] == best[m][left]
        )
        ranks.append(r)
        left -= r
    return ranks


def optimal_ranks(
    spectra: Sequence[ArrayLike], budget: int, objective: Objective = "frobenius"
) -> list[int]:
    """Per-matrix ranks ``[r_1, …, r_M]`` with ``Σ_m r_m = budget`` that minimise the total
    squared residual ``Σ_m Σ_{i>r_m} σ_i(E_m)²`` (default), or ``max_m σ_{r_m+1}(E_m)``
    (``"spectral_max"``) or ``Σ_m σ_{r_m+1}(E_m)`` (``"spectral_sum"``); ``σ_{n_m+1} = 0``.

    ``spectra``: one entry per matrix, its singular values (1-D, any order) or the matrix itself
    (2-D). ``0 ≤ r_m ≤ n_m``. ``"frobenius"`` and ``"spectral_max"``: the ``budget`` largest
    pooled singular values (ties: earlier matrix, then earlier index); ``"spectral_sum"``: exact
    dynamic programme (ties: the earliest matrix gets the largest optimal rank). See the module
    docstring for why each is exact. ``budget > Σ_m n_m`` raises ``ValueError``.

    Introduced in :ref:`ch-allocation`.
    """
    objective = checks.choice(objective, "objective", OBJECTIVES)  # type: ignore[assignment]
    specs = _spectra(spectra)
    b = _budget(budget, [s.numel() for s in specs])
    return _spectral_sum(specs, b) if objective == "spectral_sum" else _greedy(specs, b)


def uniform_ranks(spectra: Sequence[ArrayLike], budget: int) -> list[int]:
    """The uniform allocation: ranks handed out one at a time, round-robin over the matrices in
    order, skipping any matrix already at its size ``n_m``. Equal ranks ``budget / M`` when ``M``
    divides the budget and no cap binds; otherwise the earlier matrices get the extra one.

    Introduced in :ref:`ch-allocation`.
    """
    sizes = [s.numel() for s in _spectra(spectra)]
    left = _budget(budget, sizes)
    ranks = [0] * len(sizes)
    while left:
        for m, n in enumerate(sizes):
            if left and ranks[m] < n:
                ranks[m] += 1
                left -= 1
    return ranks


def residuals(
    spectra: Sequence[ArrayLike], ranks: Sequence[int], objective: Objective = "frobenius"
) -> torch.Tensor:
    """Per-matrix residuals of an allocation, shape ``(M,)``: ``Σ_{i>r_m} σ_i(E_m)²`` for
    ``"frobenius"``, ``σ_{r_m+1}(E_m)`` for either spectral objective.

    Introduced in :ref:`ch-allocation`.
    """
    objective = checks.choice(objective, "objective", OBJECTIVES)  # type: ignore[assignment]
    specs = _spectra(spectra)
    ranks = checks.sequence(ranks, "ranks", "ranks, one per matrix", empty=True)
    if len(ranks) != len(specs):
        raise ValueError(f"ranks must list one rank per matrix ({len(specs)}), got {ranks!r}")
    rs = [
        checks.integer(r, f"ranks[{m}]", 0, s.numel())
        for m, (r, s) in enumerate(zip(ranks, specs, strict=True))
    ]
    if objective == "frobenius":
        return torch.stack([(s[r:] ** 2).sum() for s, r in zip(specs, rs, strict=True)])
    return torch.tensor([_tail(s, r) for s, r in zip(specs, rs, strict=True)], dtype=torch.float64)


def total_residual(
    spectra: Sequence[ArrayLike], ranks: Sequence[int], objective: Objective = "frobenius"
) -> float:
    """The objective of an allocation: the sum of :func:`residuals` (``"frobenius"``,
    ``"spectral_sum"``) or their maximum (``"spectral_max"``).

    Introduced in :ref:`ch-allocation`.
    """
    res = residuals(spectra, ranks, objective)
    return float(res.max() if objective == "spectral_max" else res.sum())


class Comparison(NamedTuple):
    """Uniform vs optimal allocation of one budget: the ranks and the objective of each.

    Introduced in :ref:`ch-allocation`.
    """

    uniform_ranks: list[int]
    optimal_ranks: list[int]
    uniform: float
    optimal: float

    @property
    def gain(self) -> float:
        """``uniform / optimal`` (``inf`` when the optimum is 0 and uniform is not, 1 if both 0)."""
        if self.optimal == 0:
            return 1.0 if self.uniform == 0 else math.inf
        return self.uniform / self.optimal


def compare_allocations(
    spectra: Sequence[ArrayLike], budget: int, objective: Objective = "frobenius"
) -> Comparison:
    """:func:`uniform_ranks` against :func:`optimal_ranks` under ``objective``.

    Introduced in :ref:`ch-allocation`.
    """
    uni, opt = uniform_ranks(spectra, budget), optimal_ranks(spectra, budget, objective)
    return Comparison(
        uni, opt, total_residual(spectra, uni, objective), total_residual(spectra, opt, objective)
    )
