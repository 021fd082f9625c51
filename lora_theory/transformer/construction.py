r"""Theorem 7: LoRA adapts a Transformer to any target Transformer of the same size, exactly, for
every input, once ``R ≥ max_i ⌈G_i / 2⌉``.

Introduced in :ref:`ch-transformer`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from .. import checks, linear
from ..adapters import LoRAFactors
from ..linalg import (
    AssumptionError,
    ExactnessError,
    check_exact,
    exact_rtol,
    sigma,
)
from .gaps import SubProblem, calibration, subproblems
from .model import ATTENTION, TFN, TFNAdapters, check_tfn_pair

#: Spot-check inputs of :func:`certify`: ``X ~ N(0, I)`` of this many sequences and tokens,
#: at the scales ``1`` and ``SPOT_SCALE``.
SPOT_INPUTS = (4, 8)
SPOT_SCALE = 1e3
#: Safety factor on the forward pass's round-off level ``D · eps · (1 + max |logit|)``.
ROUNDOFF_SAFETY = 100.0


@dataclass(frozen=True)
class Certificate:
    """What :func:`certify` checked on the adapted model's own parameters.

    ``problems``: per sub-problem ``(name, achieved, optimum, scale)``, the spectral error of the
    adapted product against the sub-problem's target, Lemma 1's optimum ``σ_{2R+1}`` and the
    scale ``‖target‖₂ + ‖frozen product‖₂``; ``biases``: per bias condition ``(name, error,
    scale)``; ``spot_error`` / ``spot_allowed``: the largest relative output error
    ``‖f(X) − f̄(X)‖_F / ‖f̄(X)‖_F`` on the spot-check inputs and what was allowed (NaN below the
    threshold, where nothing is promised: some sub-problem's optimum exceeds ``rtol · scale``).

    Introduced in :ref:`ch-transformer`.
    """

    problems: tuple[tuple[str, float, float, float], ...]
    biases: tuple[tuple[str, float, float], ...]
    spot_error: float
    spot_allowed: float

    def __str__(self) -> str:
        """The worst product and bias errors (relative to their scales) and the spot check."""
        name, achieved, optimum, scale = max(self.problems, key=lambda p: p[1] / p[3])
        where, err, b_scale = max(self.biases, key=lambda b: b[1] / b[2])
        spot = (
            "not run (below the threshold)"
            if math.isnan(self.spot_error)
            else f"relative error {self.spot_error:.1e} <= allowed {self.spot_allowed:.1e}"
        )
        return (
            f"adapted products ({len(self.problems)}): worst error / scale "
            f"{achieved / scale:.1e}, Lemma 1 optimum {optimum / scale:.1e}\n"
            f"  at {name}\n"
            f"bias conditions ({len(self.biases)}): worst error / scale {err / b_scale:.1e} "
            f"at {where}\n"
            f"spot check on X and {SPOT_SCALE:g} X: {spot}"
        )


def _adapted_product(s: SubProblem, p: dict[str, torch.Tensor]) -> torch.Tensor:
    blk, h = s.block - 1, s.head - 1
    if s.kind == "query-key":
        return p["w_k"][blk, h].T @ p["w_q"][blk, h]
    if s.kind == "value-output":
        return p["w_o"][blk, h] @ p["w_v"][blk, h]
    return p["w_out"] @ p["w_2"][-1]


def relative_error(a: TFN, b: TFN, x: torch.Tensor) -> float:
    """``‖a(X) − b(X)‖_F / ‖b(X)‖_F`` on the batch ``X: (n, D, N)``.

    Introduced in :ref:`ch-transformer`.
    """
    checks.instance(a, "a", TFN, "a TFN")
    checks.instance(b, "b", TFN, "a TFN")
    want = b(x)
    return float(torch.linalg.vector_norm(a(x) - want) / torch.linalg.vector_norm(want))


def certify(
    target: TFN, frozen: TFN, adapted: TFN, rank: int, rtol: float | None = None
) -> Certificate:
    """Check an adapted ``TFN`` against Theorem 7's invariants; raise ``ExactnessError`` if not met.

    Parameter level, from ``adapted``'s own parameters (with ``C_l`` and the sub-problems of
    :func:`~lora_theory.transformer.subproblems` computed from ``target`` and ``frozen``):

    * every adapted product ``(W_K + ΔW_K)ᵀ(W_Q + ΔW_Q)``, ``(W_O + ΔW_O)(W_V + ΔW_V)`` and
      ``(W_o + ΔW_o)(W_{2L} + ΔW_{2L})`` is within ``rtol · scale`` of Lemma 1's optimum
      ``σ_{2R+1}`` (``0`` at or above the threshold) from its sub-problem's target;
    * ``b̂_{1l} = b̄_{1l}``; ``C_l b̂_{2l} = b̄_{2l}`` for ``l < L`` (so ``Z̄_l = C_l Z_l``);
      ``(W_o + ΔW_o) b̂_{2L} = W̄_o b̄_{2L}``; each within ``rtol`` times its terms' magnitude.

    Together these make ``f = f̄`` for every input at or above the threshold (the invariant of the
    module ``lora_theory.transformer``). Functional spot-check there: on ``X ~ N(0, I)`` of
    shape ``(4, D, 8)`` (fixed seed) and on ``10³ X``, the relative output error must not exceed
    ``rtol + 100 · D · eps · (1 + max |logit|)``, where the logits are the target's
    (:meth:`TFN.scores`): a float64 logit carries an absolute error of about ``D · eps · |logit|``,
    which moves the softmax weights by as much, so the second term is the forward pass's own
    round-off level (times a safety factor ``ROUNDOFF_SAFETY = 100``). Logits grow like the
    square of the input scale.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, adapted)
    rank = checks.rank(rank, "rank", target.width)
    rtol = exact_rtol(torch.float64) if rtol is None else checks.real(rtol, "rtol", positive=True)
    p = {k: v.double() for k, v in adapted.effective().items()}
    t = {k: v.double() for k, v in target.effective().items()}
    problems = []
    for s in subproblems(target, frozen):
        achieved = float(torch.linalg.matrix_norm(_adapted_product(s, p) - s.target, 2))
        optimum = float(sigma(s.target - s.frozen_product, 2 * rank + 1))
        scale = float(
            torch.linalg.matrix_norm(s.target, 2) + torch.linalg.matrix_norm(s.frozen_product, 2)
        )
        check_exact(f"{s.name}, adapted product", achieved, optimum, scale, rtol)
        problems.append((s.name, achieved, optimum, scale))

    def bias(name: str, m: torch.Tensor, b: torch.Tensor, want: torch.Tensor) -> tuple:
        err = float((m @ b - want).abs().max())
        scale = 1 + float((m.abs() @ b.abs()).max() + want.abs().max())
        check_exact(name, err, 0.0, scale, rtol)
        return name, err, scale

    eye = torch.eye(adapted.width, dtype=torch.float64)
    cs = calibration(target, frozen)[1:]
    biases = []
    for blk in range(adapted.depth):
        biases.append(bias(f"block {blk + 1}, b_1", eye, p["b_1"][blk], t["b_1"][blk]))
        if blk < adapted.depth - 1:
            biases.append(bias(f"block {blk + 1}, b_2", cs[blk], p["b_2"][blk], t["b_2"][blk]))
    last = t["w_out"] @ t["b_2"][-1]
    biases.append(bias(f"block {adapted.depth}, b_2", p["w_out"], p["b_2"][-1], last))

    spot_error = spot_allowed = float("nan")
    if all(opt <= rtol * scale for _, _, opt, scale in problems):  # at/above the threshold
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(SPOT_INPUTS[0], adapted.width, SPOT_INPUTS[1], generator=gen)
        x = x.to(torch.float64)
        spot_error, spot_allowed = 0.0, 0.0
        for xs in (x, SPOT_SCALE * x):
            logit = max(float(s.abs().max()) for s in target.scores(xs))
            roundoff = ROUNDOFF_SAFETY * adapted.width * torch.finfo(torch.float64).eps
            err, allowed = relative_error(adapted, target, xs), rtol + roundoff * (1 + logit)
            if not err <= allowed:
                raise ExactnessError(
                    f"Theorem 7's construction: relative output error {err:.3e} on the "
                    f"spot-check inputs (scale {float(xs.abs().max()):.1e}) exceeds the allowed "
                    f"{allowed:.3e} (rtol {rtol:.0e} + round-off at max |logit| {logit:.2e})"
                )
            spot_error, spot_allowed = max(spot_error, err), max(spot_allowed, allowed)
    return Certificate(tuple(problems), tuple(biases), spot_error, spot_allowed)


def _lemma1(s: SubProblem, rank: int, rtol: float) -> tuple[LoRAFactors, LoRAFactors]:
    """Lemma 1 with ``L = 2`` on one sub-problem, failures named by the sub-problem.

    Lemma 1's conditioning warnings are silenced: :func:`certify` judges the result, and
    :func:`~lora_theory.transformer.check_assumption` reports the conditioning.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linear.ConditioningWarning)
            first, second = linear.construct(s.target, [s.first, s.second], rank, rtol=rtol)
    except (AssumptionError, ExactnessError) as exc:
        raise type(exc)(f"{s.name}: {exc}") from exc
    return first, second


def construct(target: TFN, frozen: TFN, rank: int, rtol: float | None = None) -> TFN:
    """Theorem 7's adapted ``TFN``: ``frozen`` with rank-``≤ R`` adapters on every ``W_Q, W_K,
    W_V, W_O``, on the last ``W_{2L}`` and on ``W_o``, and re-tuned feed-forward biases.

    With ``C_0 = I``, ``C_{l−1} = W̄_{2,l−1} W_{2,l−1}^{-1}``, for ``l = 1..L`` and every head:

    1. **query–key:** Lemma 1 (``L = 2``) with first factor ``W_Q``, second ``W_Kᵀ`` and target
       ``C_{l−1}ᵀ W̄_Kᵀ W̄_Q C_{l−1}``; its second adapter ``B A`` is ``ΔW_Kᵀ``, so
       ``ΔW_K = Aᵀ Bᵀ`` (factors ``(Aᵀ, Bᵀ)``);
    2. **value–output:** first ``W_V``, second ``W_O``, target
       ``W_{1l}^{-1} W̄_{1l} W̄_O W̄_V C_{l−1}``;
    3. ``b̂_{1l} = b̄_{1l}``;
    4. ``l < L``: ``b̂_{2l} = W_{2l} W̄_{2l}^{-1} b̄_{2l}``; ``l = L``: first ``W_{2L}``, second
       ``W_o``, target ``W̄_o W̄_{2L}``, and ``b̂_{2L} = (W_o + ΔW_o)^{-1} W̄_o b̄_{2L}``.

    **Why it is exact.** If ``Z_{l−1} = C_{l−1}^{-1} Z̄_{l−1}``, the logits of every head coincide
    (``Z_{l−1}ᵀ (W_K + ΔW_K)ᵀ (W_Q + ΔW_Q) Z_{l−1} = Z̄ᵀ W̄_Kᵀ W̄_Q Z̄``), hence the softmax weights;
    ``W_{1l} H_l = W̄_{1l} H̄_l``, so the ReLU outputs coincide; then ``Z_l = C_l^{-1} Z̄_l`` and at
    the end ``(W_o + ΔW_o) Z_L = W̄_o Z̄_L``. Nothing depends on the input's size: ``f(X) = f̄(X)``
    for **every** ``X ∈ R^{D×N}`` and every ``N`` once ``R ≥`` :func:`required_rank`.

    **Below the threshold** the truncated construction is returned: each sub-problem gets
    ``LR_{2R}`` of its discrepancy (Lemma 1's optimum), but the invariant breaks at the first
    inexact block, and Theorem 7 gives no error bound; the experiments plot its error.

    **Self-check.** The result passes :func:`certify` (every adapted product at Lemma 1's optimum
    and every bias condition within ``rtol``, default ``1e-8`` relative, plus a functional
    spot-check at the threshold) or :class:`~lora_theory.linalg.ExactnessError` is raised naming
    the sub-problem. :class:`~lora_theory.linalg.AssumptionError` if a matrix it solves with is
    numerically singular (Assumption 4, see :func:`check_assumption`). float64 throughout; the
    returned model has the frozen weights (adapters already on ``frozen`` merged), ``adapters``
    (:class:`TFNAdapters`) and the new biases.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, frozen)
    rank = checks.rank(rank, "rank", frozen.width)
    rtol = exact_rtol(torch.float64) if rtol is None else checks.real(rtol, "rtol", positive=True)
    f = {k: v.double() for k, v in frozen.effective().items()}
    t = {k: v.double() for k, v in target.effective().items()}
    grid: dict[str, list[list[LoRAFactors]]] = {n: [] for n in ATTENTION}
    output: tuple[LoRAFactors, LoRAFactors] | None = None
    for s in subproblems(target, frozen):
        first, second = _lemma1(s, rank, rtol)
        if s.kind == "output":
            output = first, second
            continue
        if s.head == 1 and s.kind == "query-key":
            for n in ATTENTION:
                grid[n].append([])
        blk = s.block - 1
        if s.kind == "query-key":
            grid["w_q"][blk].append(first)
            grid["w_k"][blk].append(LoRAFactors(second.A.T, second.B.T))
        else:
            grid["w_v"][blk].append(first)
            grid["w_o"][blk].append(second)
    assert output is not None
    adapters = TFNAdapters(
        **{n: tuple(tuple(row) for row in grid[n]) for n in ATTENTION},
        w_2=output[0],
        w_out=output[1],
    )
    b_2 = [
        f["w_2"][blk] @ torch.linalg.solve(t["w_2"][blk], t["b_2"][blk])
        for blk in range(frozen.depth - 1)
    ]
    w_out = output[1].merge(f["w_out"])
    b_2.append(torch.linalg.solve(w_out, t["w_out"] @ t["b_2"][-1]))
    params = {**f, "b_1": t["b_1"], "b_2": torch.stack(b_2)}
    adapted = TFN(**params, adapters=adapters)
    certify(target, frozen, adapted, rank, rtol)
    return adapted
