"""The paper's Transformer networks and Theorem 7: LoRA on every attention matrix, the last
feed-forward matrix and the output layer (plus re-tuned feed-forward biases) represents any target
Transformer of the same size exactly, for every input, once ``R ≥ max_i ⌈G_i / 2⌉`` (at most
``⌈D / 2⌉``).

* ``.model`` — :class:`TFN` (``X: (n, D, N) → (n, D, N)``), :class:`TFNAdapters`;
* ``.gaps`` — the gaps ``G_i``, :func:`required_rank`, the ``2LH + 1`` sub-problems and
  Assumption 4 (:func:`check_assumption`);
* ``.construction`` — :func:`construct` and its self-check :func:`certify`;
* ``.instances`` — :func:`planted_pair`, a pair with small gaps.

Introduced in :ref:`ch-transformer`.
"""

from .construction import Certificate, certify, construct, relative_error
from .gaps import (
    Assumption4Report,
    SubProblem,
    calibration,
    check_assumption,
    gaps,
    required_rank,
    subproblems,
    weight_conditioning,
)
from .instances import planted_pair
from .model import ATTENTION, TFN, TFNAdapters, check_tfn_pair, forward

__all__ = [
    "ATTENTION",
    "TFN",
    "Assumption4Report",
    "Certificate",
    "SubProblem",
    "TFNAdapters",
    "calibration",
    "certify",
    "check_assumption",
    "check_tfn_pair",
    "construct",
    "forward",
    "gaps",
    "planted_pair",
    "relative_error",
    "required_rank",
    "subproblems",
    "weight_conditioning",
]
