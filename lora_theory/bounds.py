r"""Error bounds below the exactness threshold: Lemma 2, Theorem 5 (chapter "Below the threshold").

All quantities refer to an input distribution through its **uncentred** second moment
``Σ = E[x xᵀ]`` (``(D, D)``; the Korean-language analysis calls it a covariance, which it is only
for zero-mean inputs). Pass ``empirical_second_moment(x)`` of a sample to get bounds for that
sample's empirical distribution: they then hold deterministically, so a Monte-Carlo check is an
exact test.

* **Lemma 2** (one-layer target, chapter "One-layer FNN"): with ``E = W̄_1 − ∏_l W_l`` and the
  construction of :func:`lora_theory.fnn.construct`, ``f(x) = ReLU(W' x + b̄_1)`` on the input box
  with ``W' − W̄_1 = −(E − LR_{RL}(E))``. ReLU is 1-Lipschitz, so

      E‖f(x) − f̄(x)‖² ≤ E‖(E − LR_{RL}E) x‖² = ‖(E − LR_{RL}E) Σ^{1/2}‖_F² ≤ tr(Σ) σ²_{RL+1}(E),

  with equality in the middle when every ReLU is active. The Korean-language analysis states the
  constant ``‖Σ‖_F`` instead of ``tr Σ``;
  :func:`seed_constant_counterexample` shows the construction violates it.
* **Theorem 5** (uniform partition ``P^u``, ``M = ⌊L/L̄⌋``): with
  ``E_i = σ_{RM+1}(W̄_i − ∏_{l∈P^u_i} W_l)``,

      E‖f(x) − f̄(x)‖₂ ≤ β Σ_{i=1}^{L̄} (max_k (‖W̄_k‖_F + E_k))^{L̄−i} E_i,

  with ``β`` as in :func:`theorem5_beta` (a form that provably bounds the hidden states).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import checks, fnn
from .adapters import Ranks, layer_ranks
from .checks import ArrayLike
from .fnn import FNN
from .linalg import low_rank_approx, product, sigma, singular_values


def empirical_second_moment(x: ArrayLike) -> torch.Tensor:
    """``Σ̂ = (1/n) Σ_k x_k x_kᵀ = xᵀx / n`` for a batch ``x`` of shape ``(n, D)``; ``(D, D)``.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    x = checks.tensor(x, "x")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch of shape (n, D), got {tuple(x.shape)}")
    return x.T @ x / x.shape[0]


def _second_moment_matrix(sigma_x: ArrayLike, width: int) -> torch.Tensor:
    s = checks.tensor(sigma_x, "second_moment")
    if s.shape != (width, width):
        raise ValueError(f"second_moment must have shape ({width}, {width}), got {tuple(s.shape)}")
    if not torch.allclose(s, s.T) or float(torch.linalg.eigvalsh(s)[0]) < -1e-12 * float(s.trace()):
        raise ValueError("second_moment must be symmetric positive semi-definite (E[x xᵀ])")
    return s


def _lemma2_residual(target: FNN, frozen: FNN, rank: Ranks) -> torch.Tensor:
    """``E − LR_{ΣR_l}(E)`` with ``E = W̄_1 − ∏_l W_l`` (one-layer target only)."""
    checks.instance(target, "target", FNN, "an fnn.FNN")
    if target.depth != 1:
        raise ValueError(f"Lemma 2 needs a one-layer target, got depth L_bar={target.depth}")
    (e,) = fnn.discrepancies(target, frozen)
    total = sum(layer_ranks(rank, frozen.depth, frozen.width))
    return e - low_rank_approx(e, total)


def lemma2_bound(target: FNN, frozen: FNN, rank: Ranks, second_moment: ArrayLike) -> float:
    """Lemma 2's bound as the proof yields it: ``tr(Σ) σ²_{RL+1}(E)``, ``E = W̄_1 − ∏_l W_l``.

    Bounds ``E‖f(x) − f̄(x)‖₂²`` for the adapted network of :func:`lora_theory.fnn.construct` on
    inputs in its box (``σ_{ΣR_l+1}`` for per-layer ranks). Zero at or above the threshold.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    resid = _lemma2_residual(target, frozen, rank)
    s = _second_moment_matrix(second_moment, frozen.width)
    return float(s.trace() * torch.linalg.matrix_norm(resid, 2) ** 2)


def lemma2_construction_bound(
    target: FNN, frozen: FNN, rank: Ranks, second_moment: ArrayLike
) -> float:
    """The sharper ``‖(E − LR_{RL}E) Σ^{1/2}‖_F² = tr((E − LR_{RL}E) Σ (E − LR_{RL}E)ᵀ)``.

    An upper bound on ``E‖f(x) − f̄(x)‖₂²`` for the construction, attained when every ReLU of the
    target and of the adapted network is active on the support.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    resid = _lemma2_residual(target, frozen, rank)
    s = _second_moment_matrix(second_moment, frozen.width)
    return float((resid @ s @ resid.T).trace())


@dataclass(frozen=True)
class SeedCounterexample:
    """Measured ``E‖f − f̄‖²`` against the Korean-language analysis's claim and the correct bounds.

    Introduced in :ref:`sec-lemma2-bound`.
    """

    measured: float
    seed_claim: float
    trace_bound: float
    construction_bound: float
    #: The valid Frobenius form ``‖Σ‖_F (Σ_{i>RL} σ_i⁴(E))^{1/2}`` (Cauchy–Schwarz).
    frobenius_bound: float
    #: The instance: the target (one layer) and the frozen network (two layers).
    target: FNN
    frozen: FNN

    @property
    def violates_seed_claim(self) -> bool:
        """True when the measured error exceeds ``‖Σ‖_F σ²_{RL+1}(E)``."""
        return self.measured > self.seed_claim


def seed_constant_counterexample(generator: torch.Generator | None = None) -> SeedCounterexample:
    """An instance where Lemma 2's construction violates the ``‖Σ‖_F σ²_{RL+1}(E)`` bound.

    ``D = 16``, frozen depth ``L = 2``, rank ``R = 1`` (so ``RL = 2``); the target weight is
    ``W̄ = W_2 W_1 + Q`` with ``Q`` orthogonal, so ``E = Q`` has ``σ_i(E) = 1`` for all ``i``; the
    input is uniform on the ``2^16`` corners of ``[−1, 1]^16`` (``Σ = I`` exactly, and the average
    over all corners *is* the expectation). The target bias
    ``b̄ = (1 + √D + max_j ‖W̄_j‖_1) 1`` keeps every ReLU of the target and of the adapted network
    active on the box (``‖(E − LR_2E)_j‖_1 ≤ √D``), so ``f − f̄ = −(E − LR_2E) x`` and

        E‖f − f̄‖² = ‖E − LR_2 E‖_F² = 14  >  ‖Σ‖_F σ_3²(E) = 4,

    while the ``tr Σ`` bound gives 16 and the valid Frobenius form
    ``‖Σ‖_F (Σ_{i>RL} σ_i⁴(E))^{1/2} = 4√14 ≈ 14.97``. Among adapted networks whose ReLUs are *all
    active* on the box, 14 is optimal: such a network is affine, its weight change has rank
    ``≤ RL``, and EYM in Frobenius norm bounds ``E‖f − f̄‖² ≥ Σ_{i>2} σ_i² = 14``. Affine is not
    enough: a hidden unit switched off on the whole box keeps ``f`` affine and adds a free
    rank-one change, and rank-1 adapters with one unit off reach about 13.65 on this instance
    (:ref:`sec-lemma2-bound`). Whether other adapters meet ``‖Σ‖_F σ²`` is open.

    Introduced in :ref:`sec-lemma2-bound`.
    """
    g = torch.Generator().manual_seed(0) if generator is None else generator
    width = 16
    frozen = FNN.random(width, 2, g)
    q, _ = torch.linalg.qr(torch.randn(width, width, generator=g, dtype=torch.float64))
    wbar = product(frozen.weights) + q
    level = 1 + math.sqrt(width) + float(wbar.abs().sum(dim=1).max())
    target = FNN([wbar], [torch.full((width,), level, dtype=torch.float64)])
    adapted = fnn.construct(target, frozen, rank=1, input_bound=1.0)
    bits = (torch.arange(2**width)[:, None] >> torch.arange(width)) & 1
    x = (2 * bits - 1).to(torch.float64)
    s = empirical_second_moment(x)
    return SeedCounterexample(
        measured=measured_error(target, adapted, x, squared=True),
        seed_claim=float(torch.linalg.matrix_norm(s) * sigma(q, 3) ** 2),
        trace_bound=lemma2_bound(target, frozen, 1, s),
        construction_bound=lemma2_construction_bound(target, frozen, 1, s),
        frobenius_bound=float(
            torch.linalg.matrix_norm(s) * singular_values(q)[2:].pow(4).sum().sqrt()
        ),
        target=target,
        frozen=frozen,
    )


def theorem5_beta(target: FNN, second_moment: ArrayLike) -> float:
    """Theorem 5's input/parameter-magnitude constant, in its safe form.

    ``β = max_{0 ≤ i ≤ L̄−1} B_i`` with ``B_0 = √tr Σ`` and ``B_i = ‖W̄_i‖_F B_{i−1} + ‖b̄_i‖₂``,
    i.e.

        B_i = √tr Σ ∏_{j=1}^{i} ‖W̄_j‖_F + Σ_{j=1}^{i} (∏_{k=j+1}^{i} ‖W̄_k‖_F) ‖b̄_j‖₂.

    ``B_i`` bounds ``E‖z̄_i‖₂`` for the target's hidden states (``E‖x‖ ≤ √tr Σ`` by Jensen, and
    ``‖ReLU(W̄z + b̄)‖ ≤ ‖W̄‖_F ‖z‖ + ‖b̄‖``). The proof multiplies each block's error by the size
    of the state entering the block, so it needs only the states ``z̄_0, …, z̄_{L̄−1}``; the
    paper's maximum also runs over the output state ``z̄_{L̄}``, which only loosens the bound.

    Introduced in :ref:`ch-error-bound`.
    """
    checks.instance(target, "target", FNN, "an fnn.FNN")
    s = _second_moment_matrix(second_moment, target.width)
    b = math.sqrt(float(s.trace()))
    best = b
    for w, bias in zip(target.effective_weights[:-1], target.biases[:-1], strict=True):
        b = float(torch.linalg.matrix_norm(w)) * b + float(torch.linalg.vector_norm(bias))
        best = max(best, b)
    return best


@dataclass(frozen=True)
class Theorem5Bound:
    """The pieces of Theorem 5's bound ``β Σ_i growth^{L̄−i} E_i``.

    Introduced in :ref:`ch-error-bound`.
    """

    beta: float
    block_errors: tuple[float, ...]
    growth: float

    @property
    def value(self) -> float:
        """``β Σ_{i=1}^{L̄} growth^{L̄−i} E_i`` (``0`` at or above the threshold)."""
        n = len(self.block_errors)
        return self.beta * sum(
            self.growth ** (n - 1 - i) * e for i, e in enumerate(self.block_errors)
        )


def theorem5_bound(target: FNN, frozen: FNN, rank: int, second_moment: ArrayLike) -> Theorem5Bound:
    """Theorem 5: a bound on ``E‖f(x) − f̄(x)‖₂`` for rank-``R`` LoRA with the uniform partition.

    ``block_errors[i−1] = E_i = σ_{RM+1}(W̄_i − ∏_{l∈P^u_i} W_l)``, ``growth = max_k(‖W̄_k‖_F + E_k)``
    (the max of the *sum*; the Korean-language analysis mis-brackets
    it) and ``beta`` from :func:`theorem5_beta`.

    It holds for :func:`lora_theory.fnn.construct` with ``rank=R`` or with
    :func:`lora_theory.fnn.theorem5_ranks` (the proof's version, adapters on ``M`` layers per
    block), on inputs in the box it was built for: block ``i`` computes ``ReLU(W'_i z + b̄_i)`` with
    ``‖W'_i − W̄_i‖₂ ≤ E_i``, so ``‖z_i − z̄_i‖ ≤ ‖W'_i‖₂ ‖z_{i−1} − z̄_{i−1}‖ + E_i ‖z̄_{i−1}‖`` with
    ``‖W'_i‖₂ ≤ ‖W̄_i‖_F + E_i``; unroll and take expectations.

    Introduced in :ref:`ch-error-bound`.
    """
    discrepancies = fnn.discrepancies(target, frozen)
    rank = checks.rank(rank, "rank", frozen.width)
    m = frozen.depth // target.depth
    errors = tuple(float(sigma(e, rank * m + 1)) for e in discrepancies)
    growth = max(
        float(torch.linalg.matrix_norm(w)) + e
        for w, e in zip(target.effective_weights, errors, strict=True)
    )
    return Theorem5Bound(theorem5_beta(target, second_moment), errors, growth)


def measured_error(target: FNN, adapted: FNN, x: ArrayLike, squared: bool = False) -> float:
    """Monte-Carlo ``mean_k ‖f(x_k) − f̄(x_k)‖₂`` (or of its square) over a batch ``x`` ``(n, D)``.

    ``adapted`` plays ``f``, ``target`` plays ``f̄``. Theorem 5 bounds the unsquared mean,
    Lemma 2 the squared one.

    Introduced in :ref:`ch-error-bound`.
    """
    checks.instance(target, "target", FNN, "an fnn.FNN")
    checks.instance(adapted, "adapted", FNN, "an fnn.FNN")
    if target.width != adapted.width:
        raise ValueError(
            f"target and adapted must have one width, got {target.width} and {adapted.width}"
        )
    if not isinstance(squared, bool):
        raise ValueError(f"squared must be a bool, got {squared!r}")
    diff = torch.linalg.vector_norm(adapted(x) - target(x), dim=1)
    return float((diff**2 if squared else diff).mean())


class Theorem5Chain(NamedTuple):
    """The inequalities of Theorem 5's proof, evaluated on a sample; each entry bounds the previous.

    ``measured``: ``mean ‖f − f̄‖₂``. ``lipschitz``: ``mean Σ_i A_i ‖(W'_i − W̄_i) z̄_{i−1}‖`` (ReLU
    is 1-Lipschitz, errors add up), with ``A_i = ∏_{k>i} ‖W'_k‖₂`` the spectral amplification by
    the later adapted blocks. ``worst_direction``: ``Σ_i A_i E_i mean‖z̄_{i−1}‖``.
    ``frobenius``: ``Σ_i γ^{L̄−i} E_i mean‖z̄_{i−1}‖`` with ``γ = max_k(‖W̄_k‖_F + E_k)``.
    ``theorem5``: the theorem's bound, ``mean‖z̄_{i−1}‖`` replaced by ``β``.

    Introduced in :ref:`ch-error-bound`.
    """

    measured: float
    lipschitz: float
    worst_direction: float
    frobenius: float
    theorem5: float


def theorem5_chain(
    target: FNN, frozen: FNN, rank: int, x: ArrayLike, input_bound: float
) -> Theorem5Chain:
    """Evaluate every step of Theorem 5's proof for the theorem's construction on the sample ``x``.

    The construction is :func:`lora_theory.fnn.construct` with
    :func:`lora_theory.fnn.theorem5_ranks` on the box ``‖x‖_∞ ≤ input_bound`` (``x`` must lie in
    it); ``Σ`` is the sample's second moment. Chapter "Below the threshold" uses it to show how much
    each inequality of the proof costs.

    Introduced in :ref:`ch-error-bound`.
    """
    x = checks.tensor(x, "x")
    fnn.check_pair(target, frozen)
    c = checks.real(input_bound, "input_bound", positive=True)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != frozen.width:
        raise ValueError(f"x must be a batch (n, {frozen.width}), got shape {tuple(x.shape)}")
    if float(x.abs().max()) > c:
        raise ValueError(
            f"x must lie in the box ‖x‖_∞ ≤ input_bound = {c:g} the construction is built for; "
            f"it reaches {float(x.abs().max()):.3e}"
        )
    depth, target_depth = frozen.depth, target.depth
    ranks = fnn.theorem5_ranks(depth, target_depth, rank)
    adapted = fnn.construct(target, frozen, rank=ranks, input_bound=input_bound)
    thm5 = theorem5_bound(target, frozen, rank, empirical_second_moment(x))
    weights = adapted.effective_weights
    blocks = [product([weights[k] for k in b]) for b in fnn.uniform_partition(depth, target_depth)]
    spectral = [float(torch.linalg.matrix_norm(w, 2)) for w in blocks]
    amplification = [math.prod(spectral[i + 1 :]) for i in range(target_depth)]
    states = [z.double() for z in target.hidden_states(x)[:-1]]  # z̄_0, …, z̄_{L̄−1}
    mean_norms = [float(torch.linalg.vector_norm(z, dim=1).mean()) for z in states]
    lipschitz = sum(
        a * torch.linalg.vector_norm(z @ (w - wbar.double()).T, dim=1)
        for a, z, w, wbar in zip(
            amplification, states, blocks, target.effective_weights, strict=True
        )
    )
    errors = thm5.block_errors
    return Theorem5Chain(
        measured=measured_error(target, adapted, x),
        lipschitz=float(lipschitz.mean()),
        worst_direction=sum(
            a * e * n for a, e, n in zip(amplification, errors, mean_norms, strict=True)
        ),
        frobenius=sum(
            thm5.growth ** (target_depth - 1 - i) * e * n
            for i, (e, n) in enumerate(zip(errors, mean_norms, strict=True))
        ),
        theorem5=thm5.value,
    )
