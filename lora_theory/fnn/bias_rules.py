"""The paper's two bias rules for Lemma 2, next to the package's re-centred biases.

:func:`~lora_theory.fnn.construct` chooses every linearising bias by interval arithmetic over the
box, per coordinate, re-centring each state. The paper does it differently in its proof and in its
code; both rules are implemented here for one-layer targets, keeping the adapters of a given
adapted network and replacing only its biases:

* :func:`constant_biases` — the proof's rule: ``b̂_l = c_l 1`` with the smallest constant
  ``c_l = max_{‖x‖_∞ ≤ c} ‖W'_l z_{l−1}(x)‖_∞`` (computed exactly over the box by interval
  arithmetic), and the last bias calibrated, ``b̂_L = b̄_1 − W'_L s_{L−1}``;
* :func:`sample_calibrated_biases` — the official code's rule: ``b̂_l = 2 max(0, −min h) 1``,
  twice the most negative pre-activation entry ``h`` seen on a sample, the last bias calibrated
  the same way. It guarantees nothing for inputs outside the sample's range.

With ``s_l = W'_l s_{l−1} + b̂_l`` (``s_0 = 0``) the offset of the linearised state
``z_l = (∏_{k≤l} W'_k) x + s_l``, the calibrated last layer computes ``ReLU(W' x + b̄_1)``
wherever every hidden ReLU is on.

Introduced in :ref:`sec-fnn-biases`.
"""

from __future__ import annotations

import torch

from .. import checks
from ..checks import ArrayLike
from .model import FNN


def _one_layer_target(adapted: FNN, target: FNN) -> list[torch.Tensor]:
    checks.instances([adapted, target], "networks", FNN, "an FNN")
    if target.depth != 1:
        raise ValueError(f"target must have one layer (L̄ = 1), got depth {target.depth}")
    if adapted.width != target.width:
        raise ValueError(
            f"adapted width {adapted.width} differs from the target's width {target.width}"
        )
    if adapted.depth < 2:
        raise ValueError(f"adapted must have at least two layers, got depth {adapted.depth}")
    return adapted.effective_weights


def _with_biases(adapted: FNN, target: FNN, hidden: list[torch.Tensor], s: torch.Tensor) -> FNN:
    last = target.biases[0].to(s.dtype) - adapted.effective_weights[-1] @ s
    return FNN(adapted.weights, [*hidden, last], adapters=adapted.adapters, dtype=adapted.dtype)


def constant_biases(adapted: FNN, target: FNN, input_bound: float) -> FNN:
    """``adapted`` with the paper's proof biases ``c_l 1`` for the box ``‖x‖_∞ ≤ c``.

    The state ``z_{l−1} = G x + s`` is tracked exactly; coordinate ``j`` of ``W'_l z_{l−1}`` ranges
    over ``(W'_l s)_j ± c ‖(W'_l G)_{j,:}‖_1``, so ``c_l`` is the largest ``|·|`` of these ends.
    Returns an :class:`FNN` with the same weights and adapters and the new biases.

    Introduced in :ref:`sec-fnn-biases`.
    """
    ws = _one_layer_target(adapted, target)
    c = checks.real(input_bound, "input_bound", positive=True)
    n, dtype = adapted.width, ws[0].dtype
    g, s, hidden = torch.eye(n, dtype=dtype), torch.zeros(n, dtype=dtype), []
    for w in ws[:-1]:
        g, s = w @ g, w @ s
        level = float((s.abs() + c * g.abs().sum(dim=1)).max())
        hidden.append(level * torch.ones(n, dtype=dtype))
        s = s + hidden[-1]
    return _with_biases(adapted, target, hidden, s)


def sample_calibrated_biases(adapted: FNN, target: FNN, sample: ArrayLike) -> FNN:
    """``adapted`` with the official code's biases, calibrated on ``sample`` (``(n, D)``):
    ``b̂_l = 2 max(0, −min h_l) 1`` with ``h_l`` the pre-activations ``W'_l z_{l−1}`` of the
    sample's linearised states, and the last bias calibrated.

    Introduced in :ref:`sec-fnn-biases`.
    """
    ws = _one_layer_target(adapted, target)
    x = checks.shape(checks.tensor(sample, "sample", ws[0].dtype), (None, adapted.width), "sample")
    if not len(x):
        raise ValueError("sample must contain at least one point")
    n, dtype = adapted.width, ws[0].dtype
    z, s, hidden = x, torch.zeros(n, dtype=dtype), []
    for w in ws[:-1]:
        h = z @ w.T
        hidden.append(-2 * min(float(h.min()), 0.0) * torch.ones(n, dtype=dtype))
        z, s = h + hidden[-1], w @ s + hidden[-1]
    return _with_biases(adapted, target, hidden, s)
