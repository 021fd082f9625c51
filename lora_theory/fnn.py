"""The paper's fully connected network: ``z_l = σ(W_l z_{l-1} + b_l)`` with ReLU after every layer.

Introduced in the chapter "One-layer FNN". Row-vector batches in code: ``x`` is ``(n, D)`` and a
layer computes ``x @ W_lᵀ + b_l``, which is the column-vector map ``z ↦ W_l z + b_l`` of the paper.
A network may carry LoRA adapters; then every layer uses ``W_l + B_l A_l``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .adapters import LoRAFactors
from .linalg import ArrayLike, as_square_list, as_tensor

ACTIVATIONS = ("relu", "identity")


class FNN:
    """``FNN_{L,D}(x) = z_L``, ``z_0 = x``, ``z_l = act(W_l z_{l-1} + b_l)`` for ``l = 1..L``.

    Parameters
    ----------
    weights
        ``[W_1, …, W_L]``, each ``(D, D)``, ordered from input to output.
    biases
        ``[b_1, …, b_L]``, each ``(D,)``; ``None`` means no biases (all zero).
    activation
        ``"relu"`` (the paper's FNN, applied after every layer including the last) or
        ``"identity"`` (the linear model of the chapter "Linear models").
    adapters
        Optional ``[(B_1, A_1), …]``; the layer then uses ``W_l + B_l A_l``.
    """

    def __init__(
        self,
        weights: Sequence[ArrayLike],
        biases: Sequence[ArrayLike] | None = None,
        activation: str = "relu",
        adapters: Sequence[LoRAFactors] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.weights = as_square_list(weights, "weights", dtype)
        width = self.weights[0].shape[0]
        if biases is None:
            biases = [torch.zeros(width, dtype=dtype) for _ in self.weights]
        self.biases = [as_tensor(b, f"biases[{i}]", dtype) for i, b in enumerate(biases)]
        if len(self.biases) != len(self.weights):
            raise ValueError(f"got {len(self.weights)} weights but {len(self.biases)} biases")
        for i, b in enumerate(self.biases):
            if b.shape != (width,):
                raise ValueError(f"biases[{i}] must have shape ({width},), got {tuple(b.shape)}")
        if adapters is not None and len(adapters) != len(self.weights):
            raise ValueError(f"got {len(self.weights)} layers but {len(adapters)} adapters")
        self.adapters = None if adapters is None else [LoRAFactors(*a) for a in adapters]
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
        return self.weights[0].dtype

    @property
    def effective_weights(self) -> list[torch.Tensor]:
        """``[W_l + B_l A_l]`` (or ``[W_l]`` without adapters)."""
        if self.adapters is None:
            return list(self.weights)
        return [a.merge(w) for w, a in zip(self.weights, self.adapters, strict=True)]

    def _input(self, x: ArrayLike) -> torch.Tensor:
        x = as_tensor(x, "x", self.dtype)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must have shape (n, {self.width}), got {tuple(x.shape)}")
        return x

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
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be ≥ 1, got width={width}, depth={depth}")
        bound = 1.0 / math.sqrt(width)

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound

        weights = [uniform(width, width) for _ in range(depth)]
        biases = [uniform(width) for _ in range(depth)] if bias else None
        return cls(weights, biases, activation=activation, dtype=dtype)
