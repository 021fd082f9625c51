r"""Gauss–Newton refinement of LoRA factors: can Newton's method repair a float64 construction?

For adapters ``(B_l, A_l)`` (``B_l`` ``(D, r_l)``, ``A_l`` ``(r_l, D)``) the residual of a linear
model is ``F(B, A) = ∏_l (W_l + B_l A_l) − W̄``. Its derivative in the direction
``δ = (δB_l, δA_l)`` is

    ``J δ = Σ_m N_m (δB_m A_m + B_m δA_m) M_{m−1}``,

``N_m = W'_L ⋯ W'_{m+1}`` and ``M_{m−1} = W'_{m−1} ⋯ W'_1`` the adapted partial products
(``W'_l = W_l + B_l A_l``), and the adjoint maps a ``(D, D)`` matrix ``G`` to
``δB_m = N_mᵀ G (A_m M_{m−1})ᵀ``, ``δA_m = (N_m B_m)ᵀ G M_{m−1}ᵀ``. A Gauss–Newton step moves the
factors by the least-squares solution of ``J δ = −F`` (minimum norm, LSQR: each iteration one
product with ``J`` and one with ``Jᵀ``, ``O(D² Σ_l r_l)`` operations). The factors keep their
shapes, so every ``rank(B_l A_l) ≤ r_l`` holds exactly at every step: this is the
rank-constrained Newton refinement that the float64 failure of Lemma 1's construction in deep
models invites. :ref:`sec-deep-caveat` measures that it does not help there, and why.

Introduced in :ref:`sec-deep-caveat`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .. import checks
from ..adapters import LoRAFactors, check_factors
from ..checks import ArrayLike
from .model import check_inputs, relative_error

#: LSQR iterations per Gauss–Newton step by default: at ``D = 16`` the residual has 256 entries,
#: so 512 iterations solve each step's least-squares problem to round-off in well-conditioned
#: cases (a perturbed exact solution returns to ``1e-14``, see the tests).
LSQR_ITERATIONS = 512


class Refinement(NamedTuple):
    """The result of :func:`gauss_newton`.

    Introduced in :ref:`sec-deep-caveat`.
    """

    #: the iterate with the smallest relative error, the starting factors included
    adapters: list[LoRAFactors]
    #: ``‖∏_l (W_l + B_l A_l) − W̄‖₂ / ‖W̄‖₂`` at the start and after each step, in float64
    errors: tuple[float, ...]


def _sizes(factors: list[LoRAFactors]) -> list[int]:
    """The lengths of ``δB_1, δA_1, …, δB_L, δA_L`` in the flat vector ``δ``."""
    return [n for f in factors for n in (f.B.numel(), f.A.numel())]


def _jacobian(
    ws: list[torch.Tensor], factors: list[LoRAFactors]
) -> tuple[
    torch.Tensor, Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]
]:
    """The adapted product and the maps ``δ ↦ J δ``, ``G ↦ Jᵀ G`` at ``factors`` (``δ`` one flat
    vector, the ``(δB_l, δA_l)`` in layer order, each row-major)."""
    merged = [f.merge(w) for w, f in zip(ws, factors, strict=True)]
    below = [torch.eye(ws[0].shape[0], dtype=ws[0].dtype)]  # M_0, …, M_L
    for w in merged:
        below.append(w @ below[-1])
    above = [below[0]] * (len(merged) + 1)  # above[m] = W'_L ⋯ W'_{m+1}
    for m in range(len(merged), 0, -1):
        above[m - 1] = above[m] @ merged[m - 1]
    nb = [above[m + 1] @ f.B for m, f in enumerate(factors)]  # N_m B_m
    am = [f.A @ below[m] for m, f in enumerate(factors)]  # A_m M_{m−1}
    sizes = _sizes(factors)

    def forward(delta: torch.Tensor) -> torch.Tensor:
        parts = delta.split(sizes)
        out = torch.zeros_like(below[-1])
        for m, f in enumerate(factors):
            db, da = parts[2 * m].view(f.B.shape), parts[2 * m + 1].view(f.A.shape)
            out += (above[m + 1] @ db) @ am[m] + nb[m] @ (da @ below[m])
        return out

    def adjoint(g: torch.Tensor) -> torch.Tensor:
        parts = []
        for m in range(len(factors)):
            parts.append((above[m + 1].T @ (g @ am[m].T)).reshape(-1))
            parts.append(((nb[m].T @ g) @ below[m].T).reshape(-1))
        return torch.cat(parts)

    return below[-1], forward, adjoint


def _lsqr(
    forward: Callable[[torch.Tensor], torch.Tensor],
    adjoint: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    size: int,
    iterations: int,
) -> torch.Tensor:
    """LSQR (Paige and Saunders) for ``min ‖J x − rhs‖_F`` over ``x`` of length ``size``, from
    ``x = 0``: the minimum-norm solution once it has converged. Stops after ``iterations``, or
    once its estimate of ``‖Jᵀ r‖ / (‖J‖_F ‖r‖)`` (``r`` the residual) falls to ``eps``."""
    eps = torch.finfo(rhs.dtype).eps
    x = rhs.new_zeros(size)
    beta = rhs.norm()
    u = rhs / beta
    v = adjoint(u)
    alpha = v.norm()
    if not (beta > 0 and alpha > 0):  # rhs = 0 or Jᵀ rhs = 0: x = 0 is optimal
        return x
    v = v / alpha
    w, phi_bar, rho_bar, norm2 = v.clone(), beta, alpha, alpha**2
    for _ in range(iterations):
        u = forward(v) - alpha * u
        beta = u.norm()
        u = u / beta if beta > 0 else u
        v = adjoint(u) - beta * v
        alpha = v.norm()
        v = v / alpha if alpha > 0 else v
        norm2 = norm2 + alpha**2 + beta**2
        rho = torch.hypot(rho_bar, beta)
        c, s = rho_bar / rho, beta / rho
        theta, rho_bar = s * alpha, -c * alpha
        phi, phi_bar = c * phi_bar, s * phi_bar
        x = x + (phi / rho) * w
        w = v - (theta / rho) * w
        # ‖Jᵀ r‖ / (‖J‖_F ‖r‖) = α |c| / ‖J‖_F, with ‖r‖ = φ̄ (estimates); r = 0: solved
        if not (alpha * c.abs() > eps * norm2.sqrt() and phi_bar > 0):
            break
    return x


def gauss_newton(
    target: ArrayLike,
    frozen: Sequence[ArrayLike],
    adapters: Sequence[object],
    steps: int = 3,
    iterations: int = LSQR_ITERATIONS,
) -> Refinement:
    """``steps`` Gauss–Newton steps on the factors of ``adapters`` (module docstring), float64.

    Shapes: ``target`` ``(D, D)``; ``frozen`` ``L`` matrices ``(D, D)``, input first;
    ``adapters`` ``L`` pairs ``(B_l, A_l)`` with ``B_l`` ``(D, r_l)``, ``A_l`` ``(r_l, D)``
    (e.g. the output of :func:`~lora_theory.linear.construct`). Each step runs ``iterations``
    LSQR iterations. Returns the iterate with the smallest relative error (start included) and
    the error history; the ranks ``r_l`` never change. Malformed input raises ``ValueError``.

    Introduced in :ref:`sec-deep-caveat`.
    """
    wbar, ws = check_inputs(target, frozen)
    width = wbar.shape[0]
    pairs = checks.sequence(adapters, "adapters", "(B, A) pairs")
    if len(pairs) != len(ws):
        raise ValueError(f"got {len(ws)} frozen layers but {len(pairs)} adapters")
    factors = [check_factors(a, width, f"adapters[{i}]") for i, a in enumerate(pairs)]
    steps = checks.integer(steps, "steps", low=0, high=checks.MAX_LENGTH)
    iterations = checks.integer(iterations, "iterations", low=1, high=checks.MAX_ELEMENTS)
    best, errors = factors, [relative_error(wbar, ws, factors)]
    for _ in range(steps):
        prod, forward, adjoint = _jacobian(ws, factors)
        sizes = _sizes(factors)
        delta = _lsqr(forward, adjoint, wbar - prod, sum(sizes), iterations).split(sizes)
        factors = [
            LoRAFactors(f.B + delta[2 * m].view(f.B.shape), f.A + delta[2 * m + 1].view(f.A.shape))
            for m, f in enumerate(factors)
        ]
        errors.append(relative_error(wbar, ws, factors))
        if errors[-1] < min(errors[:-1]):
            best = factors
    return Refinement(best, tuple(errors))
