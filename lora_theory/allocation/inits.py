r"""Initialisations of ``(B, A)`` and the initial gradient norm of the LoRA loss under several
readings, for the seed's claim "total gradient norm 43.02 → 87.03".

The matrix problem: a frozen weight ``W₀`` is adapted towards ``W̄`` by ``W₀ + s B A`` with
``B: (D, r)``, ``A: (r, D)`` (PEFT orientation) and scale ``s = α / r`` (or ``s = 1``, the
paper's code, when no ``α`` is given). With the residual ``E = W̄ − W₀`` and ``Res = s B A − E``,

    loss  c ‖Res‖_F²   with  c = 1/2 ("half"), 1 ("sum") or 1/D² ("mean"),
    ∇_B = 2 c s Res Aᵀ,   ∇_A = 2 c s Bᵀ Res,   ∇_W = 2 c Res (gradient w.r.t. the merged weight).

The seed does not say which loss, which parameters, which ``R_total`` or which scaling its
numbers use; every reading is offered and none is tuned to its numbers.

Introduced in :ref:`ch-allocation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import torch

from .. import checks
from ..adapters import LoRAFactors, check_factors
from ..checks import ArrayLike
from .seed import SEED_SPLIT, SEED_TAIL_SCALE, seed_proposal

Loss = Literal["half", "sum", "mean"]
LOSSES: tuple[str, ...] = ("half", "sum", "mean")
Wrt = Literal["joint", "B", "A"]
WRTS: tuple[str, ...] = ("joint", "B", "A")
DirectionKind = Literal["weight", "update"]
DIRECTION_KINDS: tuple[str, ...] = ("weight", "update")
INIT_NAMES: tuple[str, ...] = ("standard", "gaussian", "seed", "seed_v", "seed_uniform", "pissa")


def _width_rank(width: int, rank: int) -> tuple[int, int]:
    width = checks.integer(width, "width", low=1)
    rank = checks.rank(rank, "rank", upper=width)
    checks.elements((width, rank), "the LoRA factors")
    return width, rank


def standard_init(width: int, rank: int, generator: torch.Generator, std: float) -> LoRAFactors:
    """Standard LoRA: ``B = 0`` ``(D, r)``, ``A`` ``(r, D)`` with i.i.d. ``N(0, std²)`` entries, so
    ``ΔW = 0`` at initialisation.

    Introduced in :ref:`ch-allocation`.
    """
    width, rank = _width_rank(width, rank)
    std = checks.real(std, "std", positive=True)
    checks.generator(generator)
    a = torch.randn(rank, width, generator=generator, dtype=torch.float64) * std
    return LoRAFactors(torch.zeros(width, rank, dtype=torch.float64), a)


def gaussian_init(width: int, rank: int, generator: torch.Generator, std: float) -> LoRAFactors:
    """Both factors Gaussian: ``B`` ``(D, r)`` then ``A`` ``(r, D)``, i.i.d. ``N(0, std²)``
    (``ΔW ≠ 0`` at initialisation).

    Introduced in :ref:`ch-allocation`.
    """
    width, rank = _width_rank(width, rank)
    std = checks.real(std, "std", positive=True)
    checks.generator(generator)
    b = torch.randn(width, rank, generator=generator, dtype=torch.float64) * std
    a = torch.randn(rank, width, generator=generator, dtype=torch.float64) * std
    return LoRAFactors(b, a)


def _svd(E: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(checks.square(E, "E"))
    return u, s, vh.T


def seed_init(E: ArrayLike, rank: int) -> LoRAFactors:
    """The seed's initialisation: :func:`seed_proposal` on the SVD ``E = U diag(S) Vᵀ`` of the
    residual ``(D, D)``, ``R_total = rank``. ``ΔW = Σ_{i<r} c_i² S_i u_i u_iᵀ``.

    Introduced in :ref:`ch-allocation`.
    """
    u, s, _ = _svd(E)
    return seed_proposal(u, s, checks.rank(rank, "rank", upper=u.shape[0]))


def seed_init_v(E: ArrayLike, rank: int) -> LoRAFactors:
    """The seed's initialisation with ``A`` built from ``V``: ``B`` as in :func:`seed_init` and
    ``A[i, :] = c_i √S_i v_iᵀ``, so ``ΔW = Σ_{i<r} c_i² S_i u_i v_iᵀ`` (``S_i`` on the first
    ``int(0.7 r)`` directions, ``S_i / 4`` on the rest): a down-weighted ``LR_r(E)``.

    Introduced in :ref:`ch-allocation`.
    """
    u, s, v = _svd(E)
    rank = checks.rank(rank, "rank", upper=u.shape[0])
    b = seed_proposal(u, s, rank).B
    c = torch.ones(rank, dtype=torch.float64)
    c[int(rank * SEED_SPLIT) :] = SEED_TAIL_SCALE
    return LoRAFactors(b, (v[:, :rank] * (c * torch.sqrt(s[:rank]))).T.contiguous())


def seed_uniform_init(E: ArrayLike, rank: int) -> LoRAFactors:
    """The seed's code without its 70 % / 30 % split (every ``c_i = 1``): ``B = A_seed =
    U_r diag(√S_r)``, ``ΔW = Σ_{i<r} S_i u_i u_iᵀ``. One reading of the seed's "uniform" baseline.

    Introduced in :ref:`ch-allocation`.
    """
    u, s, _ = _svd(E)
    rank = checks.rank(rank, "rank", upper=u.shape[0])
    b = u[:, :rank] * torch.sqrt(s[:rank])
    return LoRAFactors(b, b.T.clone())


class PiSSAInit(NamedTuple):
    """PiSSA's start: ``B = U_r Σ_r^{1/2}`` ``(D, r)``, ``A = Σ_r^{1/2} V_rᵀ`` ``(r, D)`` from the
    SVD of the pre-trained weight ``W₀``, and ``residual = W₀ − B A = W₀ − LR_r(W₀)``, the weight
    that is frozen in place of ``W₀``.

    Introduced in :ref:`ch-allocation`.
    """

    B: torch.Tensor
    A: torch.Tensor
    residual: torch.Tensor


def pissa_init(weight: ArrayLike, rank: int) -> PiSSAInit:
    """PiSSA (principal singular values and vectors adaptation) of the frozen weight ``W₀``
    ``(D, D)``: the adapter starts at ``LR_r(W₀)`` and the frozen weight becomes the residual
    ``W₀ − LR_r(W₀)``, so ``residual + B A = W₀`` and the model is unchanged at initialisation.
    For the matrix problem the adapter must then fit ``W̄ − residual = E + LR_r(W₀)``.

    Introduced in :ref:`ch-allocation`.
    """
    w = checks.square(weight, "weight")
    rank = checks.rank(rank, "rank", upper=w.shape[0])
    u, s, vh = torch.linalg.svd(w)
    root = torch.sqrt(s[:rank])
    b, a = u[:, :rank] * root, root[:, None] * vh[:rank]
    return PiSSAInit(b, a, w - b @ a)


class Start(NamedTuple):
    """An initialisation for the matrix problem: the factors and the residual ``E' = W̄ − W_frozen``
    they must fit (``E`` itself, except for PiSSA).

    Introduced in :ref:`ch-allocation`.
    """

    factors: LoRAFactors
    residual: torch.Tensor


def initialise(
    name: str,
    frozen: ArrayLike,
    target: ArrayLike,
    rank: int,
    generator: torch.Generator,
    std: float | None = None,
) -> Start:
    """The named initialisation (one of ``INIT_NAMES``) for adapting ``frozen`` ``W₀`` towards
    ``target`` ``W̄`` (both ``(D, D)``) with rank ``rank``: ``"standard"``, ``"gaussian"`` (draw
    from ``generator`` with ``std``, default ``1/√D``), ``"seed"``, ``"seed_v"``,
    ``"seed_uniform"`` (from the SVD of ``E = W̄ − W₀``; ``generator`` unused), ``"pissa"`` (from
    the SVD of ``W₀``; the residual becomes ``E + LR_r(W₀)``).

    Introduced in :ref:`ch-allocation`.
    """
    name = checks.choice(name, "name", INIT_NAMES)  # type: ignore[assignment]
    w0, wbar = checks.square(frozen, "frozen"), checks.square(target, "target")
    if w0.shape != wbar.shape:
        raise ValueError(f"frozen {tuple(w0.shape)} and target {tuple(wbar.shape)} differ")
    e, width = wbar - w0, w0.shape[0]
    sd = 1.0 / math.sqrt(width) if std is None else std
    if name == "pissa":
        p = pissa_init(w0, rank)
        return Start(LoRAFactors(p.B, p.A), wbar - p.residual)
    makers = {
        "standard": lambda: standard_init(width, rank, generator, sd),
        "gaussian": lambda: gaussian_init(width, rank, generator, sd),
        "seed": lambda: seed_init(e, rank),
        "seed_v": lambda: seed_init_v(e, rank),
        "seed_uniform": lambda: seed_uniform_init(e, rank),
    }
    return Start(makers[name](), e)


def lora_scale(rank: int, alpha: float | None = None) -> float:
    """LoRA's scale ``s = α / r``; ``1`` (no scaling, the paper's code) when ``alpha`` is None.

    Introduced in :ref:`ch-allocation`.
    """
    rank = checks.rank(rank, "rank")
    return 1.0 if alpha is None else checks.real(alpha, "alpha", positive=True) / rank


def _setup(
    E: ArrayLike, factors: object, loss: str, alpha: float | None
) -> tuple[torch.Tensor, LoRAFactors, float, float]:
    e = checks.square(E, "E")
    f = check_factors(factors, e.shape[0], "factors")
    loss = checks.choice(loss, "loss", LOSSES)  # type: ignore[assignment]
    c = {"half": 0.5, "sum": 1.0, "mean": 1.0 / e.numel()}[loss]
    return e, f, c, lora_scale(max(f.inner_dim, 1), alpha)


def loss_value(
    E: ArrayLike, factors: object, loss: Loss = "half", alpha: float | None = None
) -> float:
    """``c ‖s B A − E‖_F²`` (``E = W̄ − W₀``; ``c``, ``s`` as in the module docstring).

    Introduced in :ref:`ch-allocation`.
    """
    e, f, c, s = _setup(E, factors, loss, alpha)
    return c * float(torch.linalg.matrix_norm(s * f.delta() - e) ** 2)


def gradients(
    E: ArrayLike, factors: object, loss: Loss = "half", alpha: float | None = None
) -> LoRAFactors:
    """``(∇_B, ∇_A) = (2cs Res Aᵀ, 2cs Bᵀ Res)`` with ``Res = s B A − E``; shapes of ``B``, ``A``.

    Introduced in :ref:`ch-allocation`.
    """
    e, f, c, s = _setup(E, factors, loss, alpha)
    res = s * f.delta() - e
    return LoRAFactors(2 * c * s * res @ f.A.T, 2 * c * s * f.B.T @ res)


def gradient_norm(
    E: ArrayLike,
    factors: object,
    loss: Loss = "half",
    wrt: Wrt = "joint",
    alpha: float | None = None,
) -> float:
    """Initial gradient norm: ``√(‖∇_B‖_F² + ‖∇_A‖_F²)`` (``"joint"``), ``‖∇_B‖_F`` or
    ``‖∇_A‖_F``, under the ``loss`` reading and scale of the module docstring.

    Introduced in :ref:`ch-allocation`.
    """
    wrt = checks.choice(wrt, "wrt", WRTS)  # type: ignore[assignment]
    g = gradients(E, factors, loss, alpha)
    nb, na = torch.linalg.matrix_norm(g.B), torch.linalg.matrix_norm(g.A)
    return float({"joint": torch.hypot(nb, na), "B": nb, "A": na}[wrt])


def direction_gradients(
    E: ArrayLike,
    factors: object,
    U: ArrayLike,
    V: ArrayLike,
    loss: Loss = "half",
    kind: DirectionKind = "weight",
    alpha: float | None = None,
) -> torch.Tensor:
    """``u_iᵀ G v_i`` for every singular direction, shape ``(k,)`` (``U``, ``V``: ``(D, k)``).

    ``kind="weight"``: ``G = ∇_W = 2c Res``, the gradient w.r.t. the merged weight;
    ``kind="update"``: ``G = s (∇_B A + B ∇_A)``, the first-order change of ``s B A`` per unit
    step of gradient descent on ``(B, A)`` (what the factors actually pass to direction ``i``).

    Introduced in :ref:`ch-allocation`.
    """
    e, f, c, s = _setup(E, factors, loss, alpha)
    kind = checks.choice(kind, "kind", DIRECTION_KINDS)  # type: ignore[assignment]
    u, v = checks.tensor(U, "U"), checks.tensor(V, "V")
    if u.ndim != 2 or u.shape != v.shape or u.shape[0] != e.shape[0]:
        raise ValueError(f"U and V must both be ({e.shape[0]}, k), got {u.shape}, {v.shape}")
    if kind == "weight":
        g = 2 * c * (s * f.delta() - e)
    else:
        grad = gradients(e, f, loss, alpha)
        g = s * (grad.B @ f.A + f.B @ grad.A)
    return ((u.T @ g) * v.T).sum(dim=1)


class Reading(NamedTuple):
    """One initial-gradient-norm reading: the init's name, ``loss``, ``wrt``, ``alpha`` (None: no
    scaling) and the value.

    Introduced in :ref:`ch-allocation`.
    """

    init: str
    loss: str
    wrt: str
    alpha: float | None
    value: float


def gradient_norm_table(
    starts: Mapping[str, Start], alphas: Sequence[float | None] = (None,)
) -> list[Reading]:
    """Every reading (``loss`` × ``wrt`` × ``alpha``) of the initial gradient norm for each named
    :class:`Start`, in that nesting order.

    Introduced in :ref:`ch-allocation`.
    """
    if not isinstance(starts, Mapping):
        raise ValueError(f"starts must be a mapping name → Start, got {type(starts).__name__}")
    checks.instances(list(starts.values()), "starts values", Start, "a Start (from initialise)")
    alphas = checks.sequence(alphas, "alphas", "LoRA alphas (or None)")
    return [
        Reading(name, loss, wrt, alpha, gradient_norm(st.residual, st.factors, loss, wrt, alpha))
        for name, st in starts.items()
        for loss in LOSSES
        for wrt in WRTS
        for alpha in alphas
    ]
