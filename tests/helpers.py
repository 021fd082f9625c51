"""Random FNN instances and box inputs shared by the FNN and bounds tests."""

from __future__ import annotations

import torch

from lora_theory import fnn
from lora_theory.linalg import ExactnessError


def box_inputs(width: int, c: float, n: int, seed: int) -> torch.Tensor:
    """``2n`` inputs of the box ``‖x‖_∞ ≤ c``: ``n`` random corners and ``n`` uniform points."""
    return fnn.box_sample(width, c, n, torch.Generator().manual_seed(seed))


def random_pair(seed: int, width: int, target_depth: int, depth: int) -> tuple[fnn.FNN, fnn.FNN]:
    """A random target ``FNN_{L̄,D}`` and frozen ``FNN_{L,D}`` (``nn.Linear`` initialisation)."""
    g = torch.Generator().manual_seed(seed)
    return fnn.FNN.random(width, target_depth, g), fnn.FNN.random(width, depth, g)


def construct_or_refuse(construct, *args, **kwargs):
    """``construct(*args, **kwargs)``, or ``None`` when it refuses with ``ExactnessError``.

    The contract of every construction: it meets its tolerance or raises; property tests call
    this and check the result only when one comes back.
    """
    try:
        return construct(*args, **kwargs)
    except ExactnessError:
        return None
