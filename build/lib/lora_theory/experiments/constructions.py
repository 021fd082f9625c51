"""The analytic adapters behind the ``construction`` rows of the figures.

Linear models (chapter "Linear models") use Lemma 1 (:func:`lora_theory.linear.construct`) on the
target matrix ``W̄ = W̄_{L̄} ⋯ W̄_1``; ReLU FNNs use Theorem 3 (Lemma 2 when ``L̄ = 1``) through
:func:`fnn_construction`.
"""

from __future__ import annotations

import torch

from .. import fnn, linear
from ..fnn import FNN
from ..linalg import product
from ..training import Task


def linear_construction(task: Task, rank: int) -> FNN:
    """Lemma 1's adapted linear model: the frozen weights plus adapters ``B_l A_l`` per layer."""
    if task.bias:
        raise ValueError("Lemma 1 is stated for linear models without biases")
    adapters = linear.construct(product(task.target.weights), task.frozen.weights, rank)
    return FNN(task.frozen.weights, None, activation="identity", adapters=adapters)


# ------------------------------------------------------------------------------------------------
# HOOK (lead): Theorem 3's construction lives in ``lora_theory/fnn.py`` (written concurrently);
# every FNN ``construction`` row goes through this one call. Check it when fnn.py is committed.
# ------------------------------------------------------------------------------------------------
def fnn_construction(task: Task, rank: int, input_bound: float) -> FNN:
    """Theorem 3's adapted ReLU FNN (Lemma 2 when ``L̄ = 1``), exact on ``‖x‖_∞ ≤ input_bound``.

    ``fnn.construct(target, frozen, rank=R, input_bound=c)``: an FNN of the frozen depth with
    ``.adapters`` and recalibrated biases.
    """
    return fnn.construct(task.target, task.frozen, rank=rank, input_bound=input_bound)


#: Half-width ``c`` of the input box ``‖x‖_∞ ≤ c`` for which the ReLU constructions are built. It is
#: fixed before any data are drawn (never read off the test set): a standard Gaussian coordinate
#: exceeds 6 in absolute value with probability about 2e-9, so a test set of 5000 inputs in
#: ``R^16`` leaves the box with probability below 2e-4. Points outside it are not covered.
INPUT_BOUND = 6.0


def construct(task: Task, rank: int, x_test: torch.Tensor | None = None) -> FNN:
    """The analytic rank-``rank`` adaptation of ``task``'s frozen model to its target.

    ReLU models get biases that make the construction exact on the box ``‖x‖_∞ ≤ INPUT_BOUND``,
    chosen in advance (Gaussian inputs are unbounded). ``x_test`` is accepted for compatibility
    and not used: the box never depends on the inputs it is evaluated on.
    """
    if task.frozen.activation == "identity":
        return linear_construction(task, rank)
    return fnn_construction(task, rank, INPUT_BOUND)
