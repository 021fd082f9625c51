"""Random and planted instances: the inputs and (target, frozen) pairs the chapters test on.

* :func:`box_sample` — corners and interior points of the box ``‖x‖_∞ ≤ c``, where the FNN
  constructions are exact;
* :func:`truncated_normal_sample` — ``N(0, I)`` conditioned on that box;
* :func:`flat_spectrum_target` — a target whose block discrepancies have equal singular values;
* :func:`example_partition_gap` — a planted partition that beats the uniform one.

Introduced in :ref:`ch-fnn-one-layer`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from . import checks, fnn
from .adapters import layer_ranks
from .linalg import product


def box_sample(width: int, input_bound: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Test inputs for the box ``‖x‖_∞ ≤ c``: ``n`` random corners, then ``n`` uniform points.

    Returns ``(2n, D)`` float64. Corners are where the linearisation of
    :func:`~lora_theory.fnn.construct` is tightest (pre-activations are affine in ``x`` inside a
    block, so their minima sit at corners).

    Introduced in :ref:`ch-fnn-one-layer`.
    """
    width = checks.integer(width, "width", low=1)
    n = checks.integer(n, "n", low=1)
    c = checks.real(input_bound, "input_bound", positive=True)
    checks.elements((2 * n, width), "box_sample")
    checks.generator(generator)
    signs = torch.randint(0, 2, (n, width), generator=generator) * 2 - 1
    inside = torch.rand(n, width, generator=generator, dtype=torch.float64) * 2 - 1
    return torch.cat([signs.to(torch.float64), inside]) * c


def truncated_normal_sample(
    width: int, input_bound: float, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` draws of ``N(0, I_D)`` conditioned on the box ``‖x‖_∞ ≤ c``, shape ``(n, D)``.

    The paper's inputs are ``N(0, I)``; the constructions need a bounded domain, and this is the
    closest bounded distribution. The coordinates are independent, so each is drawn directly
    from the one-dimensional normal truncated to ``[−c, c]`` (inverse-CDF sampling,
    ``torch.nn.init.trunc_normal_``): the cost does not depend on ``c``, however small.

    Introduced in :ref:`ch-error-bound`.
    """
    width = checks.integer(width, "width", low=1)
    n = checks.integer(n, "n", low=1)
    c = checks.real(input_bound, "input_bound", positive=True)
    checks.elements((n, width), "truncated_normal_sample")
    checks.generator(generator)
    x = torch.empty(n, width, dtype=torch.float64)
    return torch.nn.init.trunc_normal_(x, mean=0.0, std=1.0, a=-c, b=c, generator=generator)


def flat_spectrum_target(
    target: fnn.FNN, frozen: fnn.FNN, partition: Sequence[Sequence[int]] | None = None
) -> fnn.FNN:
    """The paper code's ``uniform_singular_values`` target: ``W̄_i ← ∏_{l∈P_i} W_l + c_i I``.

    ``c_i`` is the mean singular value of the original discrepancy ``W̄_i − ∏_{P_i} W_l``
    (``partition`` defaults to the uniform one), so the new discrepancy ``c_i I`` has ``D`` equal
    singular values: Theorem 5's block errors ``σ_{RM+1} = c_i`` stay constant for every ``R``
    below the threshold and drop to 0 at ``⌈D / M⌉``. Biases are kept.

    Introduced in :ref:`sec-flat-spectrum`.
    """
    fnn.check_pair(target, frozen)
    eye = torch.eye(frozen.width, dtype=torch.float64)
    weights = [
        w - e + torch.linalg.svdvals(e).mean() * eye
        for w, e in zip(target.weights, fnn.discrepancies(target, frozen, partition), strict=True)
    ]
    return fnn.FNN(weights, target.biases, activation=target.activation)


class PartitionExample(NamedTuple):
    """A target, a frozen network and the partition planted in them.

    Introduced in :ref:`ch-multilayer`.
    """

    target: fnn.FNN
    frozen: fnn.FNN
    partition: fnn.Partition


def example_partition_gap(
    generator: torch.Generator,
    width: int = 12,
    block_sizes: Sequence[int] = (1, 3),
    discrepancy_ranks: Sequence[int] | None = None,
) -> PartitionExample:
    """A model where a non-uniform partition needs a lower rank than the uniform one.

    The frozen network (``L = Σ block_sizes`` layers) is :meth:`~lora_theory.fnn.FNN.random`;
    target layer ``i`` is
    the product of the frozen layers of planted block ``P_i`` plus a random perturbation of rank
    ``discrepancy_ranks[i]`` (default: ``1`` for the first block, ``D`` for the others). So the
    planted partition needs ``max_i ⌈k_i / |P_i|⌉`` while other partitions see generic, full-rank
    discrepancies. Defaults (``D = 12``, blocks ``(1, 3)``): planted ``[[0], [1, 2, 3]]`` needs
    ``R = 4``, the uniform ``[[0, 1], [2, 3]]`` needs ``R = 6``. Deterministic given ``generator``.

    Introduced in :ref:`ch-multilayer`.
    """
    checks.generator(generator)
    width = checks.integer(width, "width", low=1, high=fnn.MAX_WIDTH)
    sizes = list(checks.integers(block_sizes, "block_sizes", low=1, high=fnn.MAX_WIDTH))
    ranks = (
        [1] + [width] * (len(sizes) - 1)
        if discrepancy_ranks is None
        else checks.sequence(discrepancy_ranks, "discrepancy_ranks", "ranks")
    )
    if len(ranks) != len(sizes):
        raise ValueError(f"got {len(ranks)} discrepancy ranks for {len(sizes)} blocks")
    ranks = layer_ranks(ranks, len(sizes), width)
    frozen = fnn.FNN.random(width, sum(sizes), generator)
    stops = list(itertools.accumulate(sizes))
    partition = [list(range(b - k, b)) for b, k in zip(stops, sizes, strict=True)]
    scale = 1.0 / math.sqrt(3 * width)  # the entry scale of nn.Linear's initialisation
    weights = []
    for block, k in zip(partition, ranks, strict=True):
        u = torch.randn(width, k, generator=generator, dtype=torch.float64)
        v = torch.randn(k, width, generator=generator, dtype=torch.float64)
        perturbation = u @ v * (scale / math.sqrt(max(k, 1)))
        weights.append(product([frozen.weights[k] for k in block]) + perturbation)
    biases = fnn.FNN.random(width, len(sizes), generator).biases
    return PartitionExample(fnn.FNN(weights, biases), frozen, partition)


#: Widest box whose corners :func:`box_corners` lists (``2^20`` corners).
MAX_CORNER_WIDTH = 20


def box_corners(width: int, input_bound: float = 1.0) -> torch.Tensor:
    """All ``2^D`` corners of the box ``‖x‖_∞ ≤ c``, shape ``(2^D, D)``, float64.

    The uniform distribution on them has mean zero and second moment ``Σ = c² I`` exactly, so an
    average over all corners *is* an expectation (no Monte-Carlo error). Row ``k`` has
    coordinate ``j`` equal to ``+c`` when bit ``j`` of ``k`` is set and ``−c`` otherwise.

    Introduced in :ref:`ch-fnn-one-layer`.
    """
    width = checks.integer(width, "width", low=1, high=MAX_CORNER_WIDTH)
    c = checks.real(input_bound, "input_bound", positive=True)
    bits = (torch.arange(2**width)[:, None] >> torch.arange(width)) & 1
    return (2 * bits - 1).to(torch.float64) * c
