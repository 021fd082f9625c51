"""The paper's fully connected networks and LoRA's exact representation of a smaller one.

* ``.model`` — :class:`FNN` (``z_l = ReLU(W_l z_{l−1} + b_l)``) and the (target, frozen) check;
* ``.partitions`` — partitions of the frozen layers, discrepancies, thresholds (Theorem 3,
  Corollary 4) and, beyond the paper, :func:`optimal_partition`;
* ``.construction`` — Lemma 2, Theorem 3 and its general-partition version, and the
  construction behind Theorem 5;
* ``.certificate`` — :func:`certify`: an interval-arithmetic bound on ``|f − f̄|`` over the box,
  which every construction passes before it is returned;
* ``.assumptions`` — Assumption 1 and Lemma 3;
* ``.bias_rules`` — the paper's bias rules (its proof's constant biases, its code's
  sample-calibrated ones), for comparison with the construction's.

The random instances (:func:`~lora_theory.instances.box_sample`,
:func:`~lora_theory.instances.truncated_normal_sample`,
:func:`~lora_theory.instances.flat_spectrum_target`,
:func:`~lora_theory.instances.example_partition_gap`) live in ``lora_theory.instances``
and are re-exported here on first use (``instances`` builds networks, so it imports this package).

Introduced in :ref:`ch-fnn-one-layer`.
"""

from __future__ import annotations

from importlib import import_module

from ..adapters import layer_ranks
from .assumptions import (
    MAX_WIDTH,
    Assumption1Report,
    AssumptionMargins,
    check_assumption,
    lemma3_margins,
)
from .bias_rules import constant_biases, sample_calibrated_biases
from .certificate import Certificate, box_image, certify
from .construction import BIAS_MARGIN, construct
from .model import ACTIVATIONS, FNN, Pair, check_pair
from .partitions import (
    ParameterCounts,
    Partition,
    PartitionChoice,
    blocks_of,
    check_partition,
    corollary4_threshold,
    discrepancies,
    optimal_partition,
    parameter_counts,
    required_rank,
    theorem5_ranks,
    uniform_partition,
)

#: Names served from ``lora_theory.instances``.
_INSTANCES = (
    "PartitionExample",
    "box_corners",
    "box_sample",
    "example_partition_gap",
    "flat_spectrum_target",
    "truncated_normal_sample",
)


def __getattr__(name: str) -> object:
    """``fnn.box_sample`` and the other instance generators, imported on first use."""
    if name in _INSTANCES:
        return getattr(import_module("..instances", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "MAX_WIDTH",
    "BIAS_MARGIN",
    "FNN",
    "Assumption1Report",
    "Certificate",
    "AssumptionMargins",
    "Pair",
    "ParameterCounts",
    "Partition",
    "PartitionChoice",
    "blocks_of",
    "box_image",
    "certify",
    "check_assumption",
    "check_pair",
    "check_partition",
    "constant_biases",
    "construct",
    "corollary4_threshold",
    "discrepancies",
    "layer_ranks",
    "lemma3_margins",
    "optimal_partition",
    "parameter_counts",
    "required_rank",
    "sample_calibrated_biases",
    "theorem5_ranks",
    "uniform_partition",
    *_INSTANCES,
]
