r"""The losses the engine can minimise besides the MSE, and the accuracy of a classifier.

The paper's classification tasks (its appendix on classification and distribution shift) turn the
teacher's output ``y = f̄(x) ∈ R^d`` into soft class targets and train with PyTorch's
``CrossEntropyLoss(pred, y)`` and probability targets:

    ℓ(θ) = −(1/n) Σ_{i=1}^{n} Σ_{k=1}^{K} y_{ik} log softmax(p_i)_k,    p_i = f_θ(x_i),

with the targets used as they are: non-negative (ReLU outputs) but not normalised to sum to one.
The prediction of point ``i`` is class ``argmax_k p_{ik}``, its label ``argmax_k y_{ik}``, and the
accuracy is the fraction of points where they agree (``torch.argmax``: the first index on ties).

``groups = K > 0`` sums the ``d`` outputs (of the model and of the teacher) over ``K``
contiguous groups of ``d / K`` coordinates first, i.e. multiplies both by
``blockdiag(1ᵀ_{d/K}, …, 1ᵀ_{d/K})``: the paper's binary task is ``K = 2`` (the sums of the first
and the second half of the coordinates are the two logits). ``groups = 0`` uses the outputs as
they are (the multi-class task has ``K = d = 16`` classes).

The MSE itself stays in ``lora_theory.training.stacked`` (its one-multiply backward is the
engine's fast path): an :class:`Objective` with ``loss="mse"`` and no groups is never used there.

Introduced in :ref:`ch-partitions-depth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import checks

#: The losses :class:`Objective` knows: the paper's MSE and its soft-target cross-entropy.
LOSSES = ("mse", "cross_entropy")
#: The paper's tasks built from the teacher's output, as ``(loss, output_groups)``: regression,
#: multi-class (the ``d`` outputs are the logits) and binary classification (two logits, the
#: sums of the two halves of the outputs).
TASKS: dict[str, tuple[str, int]] = {
    "regression": ("mse", 0),
    "multiclass": ("cross_entropy", 0),
    "binary": ("cross_entropy", 2),
}


@dataclass(frozen=True)
class Objective:
    """A training loss ``loss`` (one of ``LOSSES``) on the outputs summed over ``groups``
    contiguous groups (``0``: no summing).

    Introduced in :ref:`ch-partitions-depth`.
    """

    loss: str = "mse"
    groups: int = 0

    def __post_init__(self) -> None:
        checks.choice(self.loss, "loss", LOSSES)
        checks.integer(self.groups, "output_groups", low=0)

    @property
    def plain(self) -> bool:
        """``True`` for the MSE on the outputs as they are (the engine's default path)."""
        return self.loss == "mse" and self.groups == 0

    @property
    def classifies(self) -> bool:
        """``True`` when the outputs are logits (accuracy is measured, selection uses it)."""
        return self.loss == "cross_entropy"

    def pool(self, t: torch.Tensor) -> torch.Tensor:
        """``(C, n, …)`` outputs flattened to ``(C, n, d)``, then summed to ``(C, n, K)``."""
        t = t.flatten(2)
        if not self.groups:
            return t
        d = t.shape[-1]
        if d % self.groups:
            raise ValueError(
                f"output_groups={self.groups} must divide the number of outputs, got {d} outputs"
            )
        return t.unflatten(-1, (self.groups, d // self.groups)).sum(-1)

    def value(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of every config, ``(C,)``, for outputs and targets ``(C, n, …)``
        (differentiable in ``pred``)."""
        p, t = self.pool(pred), self.pool(y)
        if self.loss == "mse":
            return (p - t).square().flatten(1).mean(1)
        return -(t * torch.log_softmax(p, -1)).sum(-1).mean(1)

    def accuracy(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fraction of points, per config ``(C,)``, whose predicted class ``argmax_k p_k`` is
        the teacher's ``argmax_k y_k``; NaN for a config whose outputs are not all finite."""
        p, t = self.pool(pred), self.pool(y)
        agree = (p.argmax(-1) == t.argmax(-1)).to(pred.dtype).mean(1)
        finite = torch.isfinite(p).flatten(1).all(1)
        return agree.masked_fill(~finite, torch.nan)
