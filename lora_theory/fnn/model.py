"""The paper's fully connected network ``FNN_{L,D}`` and the check of a (target, frozen) pair.

``z_0 = x``, ``z_l = act(W_l z_{l-1} + b_l)`` for ``l = 1..L`` with ReLU after every layer
(including the last), the paper's convention. Row-vector batches in code: ``x`` is ``(n, D)`` and a
layer computes ``x @ W_lᵀ + b_l``, which is the column-vector map ``z ↦ W_l z + b_l`` of the paper.
A network may carry LoRA adapters; then every layer uses ``W_l + B_l A_l``.

Introduced in :ref:`ch-fnn-one-layer`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .. import checks
from ..adapters import LoRAFactors, check_factors
from ..checks import ArrayLike

ACTIVATIONS = ("relu", "identity")


class FNN:
    """``FNN_{L,D}(x) = z_L``, ``z_0 = x``, ``z_l = act(W_l z_{l-1} + b_l)`` for ``l = 1..L``.

    ``weights``
        ``[W_1, …, W_L]``, each ``(D, D)``, ordered from input to output.
    ``biases``
        ``[b_1, …, b_L]``, each ``(D,)``; ``None`` means a model without biases (all zero,
        ``has_bias`` is ``False``).
    ``activation``
        ``"relu"`` (the paper's FNN, applied after every layer including the last) or
        ``"identity"`` (the linear model of Lemma 1).
    ``adapters``
        Optional ``[(B_1, A_1), …]`` with ``B_l: (D, r_l)``, ``A_l: (r_l, D)``; the layer then
        uses ``W_l + B_l A_l``.

    Introduced in :ref:`ch-fnn-one-layer`.
    """

    def __init__(
        self,
        weights: Sequence[ArrayLike],
        biases: Sequence[ArrayLike] | None = None,
        activation: str = "relu",
        adapters: Sequence[LoRAFactors] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        checks.choice(activation, "activation", ACTIVATIONS)
        dtype = checks.dtype(dtype)
        self.weights = checks.square_list(weights, "weights", dtype)
        width = self.weights[0].shape[0]
        self.has_bias = biases is not None
        if biases is None:
            biases = [torch.zeros(width, dtype=dtype) for _ in self.weights]
        elif isinstance(biases, (str, bytes)) or not isinstance(biases, Sequence):
            raise ValueError(f"biases must be a list of (D,) vectors, got {type(biases).__name__}")
        self.biases = [checks.tensor(b, f"biases[{i}]", dtype) for i, b in enumerate(biases)]
        if len(self.biases) != len(self.weights):
            raise ValueError(f"got {len(self.weights)} weights but {len(self.biases)} biases")
        for i, b in enumerate(self.biases):
            checks.shape(b, (width,), f"biases[{i}]")
        if adapters is not None:
            adapters = checks.sequence(adapters, "adapters", "(B, A) pairs")
            if len(adapters) != len(self.weights):
                raise ValueError(f"got {len(self.weights)} layers but {len(adapters)} adapters")
            adapters = [
                LoRAFactors(*(t.to(dtype) for t in check_factors(a, width, f"adapters[{i}]")))
                for i, a in enumerate(adapters)
            ]
        self.adapters: list[LoRAFactors] | None = None if adapters is None else list(adapters)
        self.activation = activation

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.weights)

    @property
    def width(self) -> int:
        """Width ``D``."""
        return self.weights[0].shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters (float64 unless asked otherwise)."""
        return self.weights[0].dtype

    @property
    def effective_weights(self) -> list[torch.Tensor]:
        """``[W_l + B_l A_l]`` (or ``[W_l]`` without adapters)."""
        if self.adapters is None:
            return list(self.weights)
        return [a.merge(w) for w, a in zip(self.weights, self.adapters, strict=True)]

    def merged(self) -> FNN:
        """The same function without adapters: weights ``W_l + B_l A_l``, the same biases."""
        biases = self.biases if self.has_bias else None
        return FNN(self.effective_weights, biases, self.activation, dtype=self.dtype)

    def _input(self, x: ArrayLike) -> torch.Tensor:
        return checks.shape(checks.tensor(x, "x", self.dtype), (None, self.width), "x")

    def hidden_states(self, x: ArrayLike) -> list[torch.Tensor]:
        """``[z_0, z_1, …, z_L]`` for a batch ``x`` of shape ``(n, D)``; each entry ``(n, D)``."""
        z = self._input(x)
        states = [z]
        for w, b in zip(self.effective_weights, self.biases, strict=True):
            z = z @ w.T + b
            if self.activation == "relu":
                z = torch.relu(z)
            states.append(z)
        return states

    def __call__(self, x: ArrayLike) -> torch.Tensor:
        """``f(x)`` for ``x`` of shape ``(n, D)``; returns ``(n, D)``."""
        return self.hidden_states(x)[-1]

    def roundoff_scale(self, x: ArrayLike) -> float:
        """``max_l max_j (|W_l| |z_{l-1}| + |b_l|)_j`` over a batch ``x``: the round-off yardstick.

        A floating-point layer ``W z + b`` is accurate to about ``D · eps`` times the magnitude of
        the terms it sums, so a forward pass cannot be trusted below ``~ D · eps ·`` this value.
        The large biases of :func:`~lora_theory.fnn.construct` make it much larger than the
        output: exactness is judged against it, not against ``|f(x)|``.
        """
        states = self.hidden_states(x)
        if not len(states[0]):
            raise ValueError("x must contain at least one point to measure round-off on")
        return max(
            float((z.abs() @ w.abs().T + b.abs()).max())
            for z, w, b in zip(states[:-1], self.effective_weights, self.biases, strict=True)
        )

    @classmethod
    def random(
        cls,
        width: int,
        depth: int,
        generator: torch.Generator,
        bias: bool = True,
        activation: str = "relu",
        dtype: torch.dtype = torch.float64,
    ) -> FNN:
        """A network initialised like ``torch.nn.Linear``: weights and biases ``U(−1/√D, 1/√D)``.

        This is the paper's random model (its code builds the FNN from ``nn.Linear`` layers).
        """
        width = checks.integer(width, "width", low=1)
        depth = checks.integer(depth, "depth", low=1)
        checks.elements((depth, width, width), "FNN.random")
        checks.generator(generator)
        dtype = checks.dtype(dtype)
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be a bool, got {bias!r}")
        checks.choice(activation, "activation", ACTIVATIONS)
        bound = 1.0 / math.sqrt(width)

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound

        weights = [uniform(width, width) for _ in range(depth)]
        biases = [uniform(width) for _ in range(depth)] if bias else None
        return cls(weights, biases, activation=activation, dtype=dtype)


class Pair(NamedTuple):
    """Validated float64 parameters of a (target, frozen) pair, adapters merged.

    Introduced in :ref:`ch-fnn-one-layer`.
    """

    target_weights: list[torch.Tensor]
    target_biases: list[torch.Tensor]
    frozen_weights: list[torch.Tensor]
    activation: str


def check_pair(target: FNN, frozen: FNN) -> Pair:
    """Check that ``target`` (depth ``L̄``) can be represented by adapting ``frozen`` (depth
    ``L ≥ L̄``): both :class:`FNN`, one width ``D``, one activation. Adapters already carried by
    either network are merged into its weights. The one home of this check.

    Introduced in :ref:`ch-fnn-one-layer`.
    """
    for name, net in (("target", target), ("frozen", frozen)):
        if not isinstance(net, FNN):
            raise ValueError(f"{name} must be an FNN, got {type(net).__name__}")
    if target.width != frozen.width:
        raise ValueError(
            f"width mismatch: target has D={target.width}, frozen has D={frozen.width}"
        )
    if target.depth > frozen.depth:
        raise ValueError(
            f"target depth L_bar={target.depth} exceeds frozen depth L={frozen.depth}: LoRA adapts "
            "a deeper (or equally deep) frozen network"
        )
    if target.activation != frozen.activation:
        raise ValueError(
            f"activation mismatch: target uses {target.activation!r}, frozen {frozen.activation!r}"
        )

    def f64(ts: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.to(torch.float64) for t in ts]

    return Pair(
        f64(target.effective_weights),
        f64(target.biases),
        f64(frozen.effective_weights),
        target.activation,
    )
