"""Evidence for optimality claims that no random search could fake: rivals and local optimisers.

An optimality theorem says that no competitor does better. A random competitor is a weak test
(random rank-``r`` matrices are far from optimal); these functions build strong ones:

* :func:`perturbation_rivals` — the Eckart–Young minimiser ``LR_r(A) = X Y`` against
  perturbations ``(X + t N)(Y + t M)`` of its own factors, at several scales ``t``: a local
  optimality test in the spectral norm;
* :func:`local_low_rank_fit` — L-BFGS on ``‖A − X Y‖_F²`` over the factors of a rank-``r``
  matrix from seeded random starts: the Frobenius minimum a local optimiser reaches;
* :func:`unit_off_fit`, :func:`best_unit_off` and :func:`unit_off_network` — on Lemma 2's
  counterexample (:func:`lora_theory.bounds.seed_constant_counterexample`), adapted networks
  with one hidden unit switched off on the whole box: still affine there, with weight
  ``W'_2 P_j W'_1`` (``P_j = I − e_j e_jᵀ``), a free rank-one change of the product.

Introduced in :ref:`sec-eym`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from . import checks
from .adapters import LoRAFactors, check_factors
from .fnn import FNN

#: L-BFGS options of the local optimisers: strong-Wolfe line search, tight tolerances.
LBFGS_OPTIONS = {
    "line_search_fn": "strong_wolfe",
    "tolerance_grad": 1e-12,
    "tolerance_change": 1e-14,
}


def _lbfgs(
    params: list[torch.Tensor],
    loss: Callable[[], torch.Tensor],
    max_iter: int,
    steps: int = 1,
    **options: object,
) -> float:
    """Minimise ``loss()`` over ``params`` (leaf tensors) in place; return its final value.
    ``ValueError`` when the starting loss squared overflows float64 (L-BFGS's inner products
    reach that size), before any step."""
    with torch.no_grad():
        start = float(loss())
    if not math.isfinite(start * start):
        raise ValueError(
            f"the starting loss {start:.3e} is too large for L-BFGS in float64 (its square "
            "overflows): the matrices' entries are too large"
        )
    opt = torch.optim.LBFGS(params, max_iter=max_iter, **options)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    for _ in range(steps):
        opt.step(closure)
    with torch.no_grad():
        return float(loss())


class Rivals(NamedTuple):
    """``best = ‖A − LR_r(A)‖₂`` and, per perturbation scale ``t``, how far the best rival's error
    exceeds it (``excess[t] > 0``: no rival did better).

    Introduced in :ref:`sec-eym`.
    """

    best: float
    excess: dict[float, float]


def perturbation_rivals(
    a: torch.Tensor,
    rank: int,
    scales: Sequence[float],
    trials: int,
    generator: torch.Generator,
) -> Rivals:
    """``LR_r(A) = X Y`` (``X = U_r S_r``: ``(D, r)``, ``Y = V_rᵀ``: ``(r, D)``) against ``trials``
    rivals ``(X + t N)(Y + t M)`` per scale ``t``, with ``N, M`` standard normal from
    ``generator`` (drawn ``N`` then ``M``, scale after scale), in the spectral norm.

    Introduced in :ref:`sec-eym`.
    """
    a = checks.square(a, "a")
    d = a.shape[0]
    rank = checks.rank(rank, upper=d)
    scales = checks.reals(scales, "scales", positive=True)
    trials = checks.integer(trials, "trials", low=1, high=checks.MAX_LENGTH)
    checks.generator(generator)
    u, s, vh = torch.linalg.svd(a)
    x, y = u[:, :rank] * s[:rank], vh[:rank]
    best = float(torch.linalg.matrix_norm(a - x @ y, 2))

    def rival(t: float) -> float:
        n = torch.randn(d, rank, generator=generator, dtype=a.dtype)
        m = torch.randn(rank, d, generator=generator, dtype=a.dtype)
        return float(torch.linalg.matrix_norm(a - (x + t * n) @ (y + t * m), 2))

    excess = {t: min(rival(t) for _ in range(trials)) - best for t in scales}
    return Rivals(best, excess)


def local_low_rank_fit(a: torch.Tensor, rank: int, starts: Sequence[int]) -> list[float]:
    """``‖A − X Y‖_F²`` at the end of L-BFGS (500 iterations, strong-Wolfe line search) over
    ``X: (D, r)``, ``Y: (r, D)``, one run per seed in ``starts`` (standard normal start); an ``A``
    whose starting loss squared overflows float64 is refused (``ValueError``).

    Introduced in :ref:`sec-eym`.
    """
    a = checks.square(a, "a")
    d = a.shape[0]
    rank = checks.rank(rank, upper=d)
    starts = checks.integers(starts, "starts", low=0)
    values = []
    for start in starts:
        g = torch.Generator().manual_seed(start)
        xy = [
            torch.randn(*shape, generator=g, dtype=a.dtype).requires_grad_()
            for shape in ((d, rank), (rank, d))
        ]
        values.append(
            _lbfgs(
                xy,
                lambda xy=xy: (a - xy[0] @ xy[1]).square().sum(),
                500,
                line_search_fn="strong_wolfe",
            )
        )
    return values


def _unit_projector(width: int, unit: int, dtype: torch.dtype) -> torch.Tensor:
    p = torch.eye(width, dtype=dtype)
    p[unit, unit] = 0
    return p


class UnitOff(NamedTuple):
    """Rank-one adapters with hidden unit ``unit`` switched off, and ``loss`` =
    ``‖W̄_1 − W'_2 P_j W'_1‖_F²`` they reach.

    Introduced in :ref:`sec-lemma2-bound`.
    """

    unit: int
    loss: float
    adapters: tuple[LoRAFactors, LoRAFactors]


def _unit_off_pair(frozen: FNN, target: FNN) -> int:
    """The common width ``D`` of a two-layer ``frozen`` network and a one-layer ``target``."""
    checks.instances([frozen, target], "networks", FNN, "an FNN")
    if frozen.depth != 2 or target.depth != 1 or frozen.width != target.width:
        raise ValueError(
            "need a two-layer frozen network and a one-layer target of the same width, got "
            f"depths {frozen.depth}, {target.depth} and widths {frozen.width}, {target.width}"
        )
    return frozen.width


def unit_off_fit(frozen: FNN, target: FNN, unit: int, steps: int = 5) -> UnitOff:
    """Minimise ``‖W̄_1 − (W_2 + b_2 a_2ᵀ) P_j (W_1 + b_1 a_1ᵀ)‖_F²`` over rank-one adapters with
    L-BFGS (``steps`` restarts of 300 iterations), from a start seeded by ``unit`` (entries
    ``0.1 · N(0, 1)``). ``frozen`` has two layers, ``target`` one; weights whose starting loss
    squared overflows float64 are refused (``ValueError``, as by :func:`local_low_rank_fit`).

    Introduced in :ref:`sec-lemma2-bound`.
    """
    d = _unit_off_pair(frozen, target)
    unit = checks.integer(unit, "unit", low=0, high=d - 1)
    steps = checks.integer(steps, "steps", low=1, high=checks.MAX_LENGTH)
    (w1, w2), wbar = frozen.effective_weights, target.weights[0]
    p = _unit_projector(d, unit, w1.dtype)
    init = torch.Generator().manual_seed(unit)
    vs = [0.1 * torch.randn(d, 1, generator=init, dtype=w1.dtype) for _ in range(4)]
    vs = [v.requires_grad_() for v in vs]

    def loss() -> torch.Tensor:
        b1, a1, b2, a2 = vs
        return ((w2 + b2 @ a2.T) @ p @ (w1 + b1 @ a1.T) - wbar).square().sum()

    value = _lbfgs(vs, loss, 300, steps, **LBFGS_OPTIONS)
    b1, a1, b2, a2 = (v.detach() for v in vs)
    return UnitOff(unit, value, (LoRAFactors(b1, a1.T), LoRAFactors(b2, a2.T)))


def best_unit_off(frozen: FNN, target: FNN) -> UnitOff:
    """:func:`unit_off_fit` for every hidden unit; the one with the smallest loss.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    fits = [unit_off_fit(frozen, target, j) for j in range(_unit_off_pair(frozen, target))]
    return min(fits, key=lambda fit: fit.loss)


def unit_off_network(frozen: FNN, target: FNN, fit: UnitOff, input_bound: float = 1.0) -> FNN:
    """The adapted network of ``fit`` on the box ``‖x‖_∞ ≤ c``: hidden unit ``j`` off everywhere
    (bias ``−(reach_j + 1)``), the others on (bias ``reach_k + 1``, with
    ``reach = c ‖(W'_1)_{k,:}‖_1``), and the last bias calibrated,
    ``b̂_2 = b̄_1 − W'_2 P_j b̂_1``, so ``f(x) = ReLU(W'_2 P_j W'_1 x + b̄_1)`` on the box.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    width = _unit_off_pair(frozen, target)
    if not isinstance(fit, UnitOff):
        raise ValueError(f"fit must be a UnitOff, got {type(fit).__name__}")
    checks.integer(fit.unit, "fit.unit", low=0, high=width - 1)
    c = checks.real(input_bound, "input_bound", positive=True)
    adapters = [check_factors(a, width, f"fit.adapters[{i}]") for i, a in enumerate(fit.adapters)]
    v1, v2 = (a.merge(w) for w, a in zip(frozen.weights, adapters, strict=True))
    reach = c * v1.abs().sum(dim=1)
    h1 = reach + 1.0
    h1[fit.unit] = -(reach[fit.unit] + 1.0)
    p = _unit_projector(frozen.width, fit.unit, v1.dtype)
    last = target.biases[0] - v2 @ p @ h1
    return FNN(list(frozen.weights), [h1, last], adapters=adapters)
