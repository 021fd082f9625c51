r"""Theorem 7's rank-based functionality gaps ``G_i``, its ``2LH + 1`` two-factor sub-problems and
Assumption 4.

With ``C_0 = I`` and ``C_{l−1} = W̄_{2,l−1} W_{2,l−1}^{-1}`` (barred: target), the construction
solves, per block ``l`` and head ``h``, two instances of Lemma 1 with ``L = 2`` (frozen product →
target):

* query–key: ``W_Kᵀ · W_Q → C_{l−1}ᵀ W̄_Kᵀ W̄_Q C_{l−1}`` (first factor ``W_Q``, second ``W_Kᵀ``);
* value–output: ``W_O · W_V → W_{1l}^{-1} W̄_{1l} W̄_O W̄_V C_{l−1}`` (first ``W_V``, second
  ``W_O``);

and once the output problem ``W_o · W_{2L} → W̄_o W̄_{2L}``. Multiplying by the invertible
``W_{2,l−1}`` and ``W_{1l}`` turns the rank of each sub-problem's discrepancy into the paper's
terms, so ``G_l`` is the largest discrepancy rank of block ``l`` and ``G_{L+1}`` that of the output
problem; Lemma 1 makes a sub-problem exact iff ``2R ≥`` its rank.

Introduced in :ref:`ch-transformer`.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace

import torch

from .. import linear
from ..linalg import AssumptionError, Conditioning, difference_tol, numerical_rank
from .model import TFN, check_tfn_pair


@dataclass(frozen=True)
class SubProblem:
    """One two-factor Lemma 1 problem of Theorem 7: adapt ``second · first`` to ``target``.

    ``name`` e.g. ``"block 2, head 1, query-key"``; ``block`` 1-based (``L + 1`` for the output
    problem), ``head`` 1-based (``0`` for the output problem); ``kind`` ``"query-key"``,
    ``"value-output"`` or ``"output"``; ``first``, ``second``, ``target``: ``(D, D)``.

    Introduced in :ref:`ch-transformer`.
    """

    name: str
    block: int
    head: int
    kind: str
    first: torch.Tensor
    second: torch.Tensor
    target: torch.Tensor

    @property
    def frozen_product(self) -> torch.Tensor:
        """``second · first``, the product Lemma 1 adapts."""
        return self.second @ self.first

    def gap_rank(self) -> int:
        """``rank(target − second · first)``, tolerance relative to the two terms."""
        prod = self.frozen_product
        return numerical_rank(self.target - prod, difference_tol(self.target, prod))


def calibration(target: TFN, frozen: TFN) -> list[torch.Tensor]:
    """``[C_0, …, C_{L−1}]``: ``C_0 = I``, ``C_l = W̄_{2l} W_{2l}^{-1}`` (``(D, D)`` each), the map
    with ``Z̄_l = C_l Z_l`` between the target's and the adapted model's block outputs.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, frozen)
    t, f = target.effective(), frozen.effective()
    eye = torch.eye(frozen.width, dtype=torch.float64)
    return [eye] + [
        torch.linalg.solve(f["w_2"][blk].double(), t["w_2"][blk].double(), left=False)
        for blk in range(frozen.depth - 1)
    ]


def subproblems(target: TFN, frozen: TFN) -> list[SubProblem]:
    """The ``2LH + 1`` sub-problems (module docstring), block by block, query–key then
    value–output per head, the output problem last; float64. Raises
    :class:`~lora_theory.linalg.AssumptionError` when a matrix it solves with (``W_{1l}``,
    ``W_{2l}``) is numerically singular.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, frozen)
    for c in weight_conditioning(target, frozen):
        if c.singular:
            raise AssumptionError(f"Assumption 4 fails: {c} is numerically singular")
    t = {k: v.double() for k, v in target.effective().items()}
    f = {k: v.double() for k, v in frozen.effective().items()}
    out = []
    for blk, c in enumerate(calibration(target, frozen)):
        for h in range(frozen.heads):
            where = f"block {blk + 1}, head {h + 1}"
            kq = c.T @ t["w_k"][blk, h].T @ t["w_q"][blk, h] @ c
            ov = torch.linalg.solve(
                f["w_1"][blk], t["w_1"][blk] @ t["w_o"][blk, h] @ t["w_v"][blk, h] @ c
            )
            out.append(
                SubProblem(
                    f"{where}, query-key",
                    blk + 1,
                    h + 1,
                    "query-key",
                    f["w_q"][blk, h],
                    f["w_k"][blk, h].T,
                    kq,
                )
            )
            out.append(
                SubProblem(
                    f"{where}, value-output",
                    blk + 1,
                    h + 1,
                    "value-output",
                    f["w_v"][blk, h],
                    f["w_o"][blk, h],
                    ov,
                )
            )
    last = frozen.depth - 1
    out.append(
        SubProblem(
            "output layer",
            frozen.depth + 1,
            0,
            "output",
            f["w_2"][last],
            f["w_out"],
            t["w_out"] @ t["w_2"][last],
        )
    )
    return out


def _rank(a: torch.Tensor, b: torch.Tensor) -> int:
    return numerical_rank(a - b, difference_tol(a, b))


def gaps(target: TFN, frozen: TFN) -> list[int]:
    """``[G_1, …, G_{L+1}]``, the paper's rank-based functionality gaps.

    ``G_1 = max_h rank(W̄_Kᵀ W̄_Q − W_Kᵀ W_Q) ∨ max_h rank(W̄_1 W̄_O W̄_V − W_1 W_O W_V)`` (block 1);
    for ``2 ≤ i ≤ L`` the same with ``W̄_{2,i−1}`` / ``W_{2,i−1}`` multiplied in:
    ``rank(W̄_2ᵀ W̄_Kᵀ W̄_Q W̄_2 − W_2ᵀ W_Kᵀ W_Q W_2)`` and ``rank(W̄_1 W̄_O W̄_V W̄_2 − W_1 W_O W_V W_2)``;
    ``G_{L+1} = rank(W̄_o W̄_{2L} − W_o W_{2L})``. Numerical ranks with the tolerance
    ``D · eps · (‖first term‖₂ + ‖second term‖₂)`` (:func:`~lora_theory.linalg.difference_tol`),
    so a frozen model equal to the target up to round-off has gap 0. Always ``G_i ≤ D``; ``= D``
    for random models with probability 1. float64.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, frozen)
    t = {k: v.double() for k, v in target.effective().items()}
    f = {k: v.double() for k, v in frozen.effective().items()}
    eye = torch.eye(frozen.width, dtype=torch.float64)
    out = []
    for blk in range(frozen.depth):
        tc, fc = (eye, eye) if blk == 0 else (t["w_2"][blk - 1], f["w_2"][blk - 1])
        ranks = []
        for h in range(frozen.heads):
            tkq = tc.T @ t["w_k"][blk, h].T @ t["w_q"][blk, h] @ tc
            fkq = fc.T @ f["w_k"][blk, h].T @ f["w_q"][blk, h] @ fc
            tov = t["w_1"][blk] @ t["w_o"][blk, h] @ t["w_v"][blk, h] @ tc
            fov = f["w_1"][blk] @ f["w_o"][blk, h] @ f["w_v"][blk, h] @ fc
            ranks += [_rank(tkq, fkq), _rank(tov, fov)]
        out.append(max(ranks))
    out.append(_rank(t["w_out"] @ t["w_2"][-1], f["w_out"] @ f["w_2"][-1]))
    return out


def required_rank(target: TFN, frozen: TFN) -> int:
    """Theorem 7's threshold ``max_{i ∈ [L+1]} ⌈G_i / 2⌉`` (at most ``⌈D / 2⌉``).

    Introduced in :ref:`ch-transformer`.
    """
    return max(math.ceil(g / 2) for g in gaps(target, frozen))


def weight_conditioning(target: TFN, frozen: TFN) -> tuple[Conditioning, ...]:
    """Conditioning of the feed-forward and output matrices of both models (``W_{1l}``,
    ``W_{2l}``, ``W_o``, then the target's), which Assumption 4 requires non-singular.

    Introduced in :ref:`ch-transformer`.
    """
    check_tfn_pair(target, frozen)
    out = []
    for net, bar in ((frozen, ""), (target, "̄")):
        p = net.effective()
        for blk in range(net.depth):
            out += [
                Conditioning.of(f"W{bar}_1{blk + 1}", p["w_1"][blk].double()),
                Conditioning.of(f"W{bar}_2{blk + 1}", p["w_2"][blk].double()),
            ]
        out.append(Conditioning.of(f"W{bar}_o", p["w_out"].double()))
    return tuple(out)


def _pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` columns; combining marks (the bar of ``W̄``) take none."""
    return text.ljust(width + sum(unicodedata.combining(ch) > 0 for ch in text))


@dataclass(frozen=True)
class Assumption4Report:
    """Assumption 4, matrix by matrix.

    ``weights``: the conditioning of every feed-forward and output matrix the construction
    inverts or multiplies through (frozen ``W_{1l}``, ``W_{2l}``, ``W_o`` and the target's
    ``W̄_{1l}``, ``W̄_{2l}``, ``W̄_o``); ``problems``: per sub-problem (named as in
    :func:`subproblems`) Lemma 1's report (:func:`lora_theory.linear.diagnose` with ``L = 2``:
    both frozen factors, named as in the model, and ``second · first + LR_r(target − second ·
    first)`` for the one rank the construction uses, ``r = min(R, rank(target − second ·
    first))``, none when that is 0; the frozen product ``second · first`` is non-singular when its
    factors are and is not listed).

    Introduced in :ref:`ch-transformer`.
    """

    weights: tuple[Conditioning, ...]
    problems: tuple[tuple[str, linear.AssumptionReport], ...]

    @property
    def holds(self) -> bool:
        """True when no listed matrix is numerically singular."""
        return not any(c.singular for c in self.weights) and all(r.holds for _, r in self.problems)

    @property
    def closest(self) -> tuple[str, Conditioning]:
        """The sub-problem closest to singular and its worst matrix (largest condition number);
        when a weight matrix is singular the sub-problems are undefined (``problems`` is empty)
        and this is that matrix."""
        named = [(n, r.worst) for n, r in self.problems] or [(c.name, c) for c in self.weights]
        return max(named, key=lambda p: p[1].condition)

    @property
    def worst(self) -> Conditioning:
        """The listed matrix with the largest condition number, sub-problems and weights alike."""
        return max([*self.weights, self.closest[1]], key=lambda c: c.condition)

    def __str__(self) -> str:
        """A table, one row per weight matrix and per sub-problem (its worst matrix), under a line
        naming the sub-problem closest to singular; rows fit 79 columns."""
        verdict = "holds" if self.holds else "FAILS"
        rows = [(w.name, w) for w in self.weights] + [(n, r.worst) for n, r in self.problems]
        lines = [
            f"Assumption 4 {verdict}; closest to singular: {self.closest[0]}",
            f"{'matrix or sub-problem':30} {'worst matrix':13} {'σ_min':>9} {'cond':>9}",
        ]
        lines += [
            f"{_pad(n, 30)} {w.name if w.name != n else '':13} {w.sigma_min:9.2e} "
            f"{w.condition:9.2e}"
            for n, w in rows
        ]
        return "\n".join(lines)


def _factors_named(s: SubProblem, report: linear.AssumptionReport) -> linear.AssumptionReport:
    """``report`` with its frozen factors named as in the model (``W_Q``, ``W_Kᵀ``; ``W_V``,
    ``W_O``; ``W_{2L}``, ``W_o``) instead of Lemma 1's ``W_1``, ``W_2``."""
    names = {"query-key": ("W_Q", "W_Kᵀ"), "value-output": ("W_V", "W_O")}
    first, second = names.get(s.kind, (f"W_2{s.block - 1}", "W_o"))
    frozen = (replace(report.frozen[0], name=first), replace(report.frozen[1], name=second))
    return replace(report, frozen=frozen)


def check_assumption(target: TFN, frozen: TFN, rank: int) -> Assumption4Report:
    """Check Assumption 4 for LoRA-rank ``rank``: every weight matrix non-singular and each of the
    ``2LH + 1`` sub-problems satisfying Lemma 1's hypothesis with ``L = 2``.

    Introduced in :ref:`ch-transformer`.
    """
    weights = weight_conditioning(target, frozen)
    if any(c.singular for c in weights):
        return Assumption4Report(weights, ())
    reports = tuple(
        (s.name, _factors_named(s, linear.diagnose(s.target, [s.first, s.second], rank)))
        for s in subproblems(target, frozen)
    )
    return Assumption4Report(weights, reports)
