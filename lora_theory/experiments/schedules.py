r"""Per-layer LoRA ranks that change from layer to layer: the paper's ``rank_step`` experiment.

The paper's configuration files (no figure of it is published) train LoRA on an ``FNN_{4,16}``
frozen model towards an ``FNN_{2,16}`` target with a base rank ``R = 8`` and a rank step
``s ∈ {−2, −1, 1, 2}``. Three schedules of the ranks ``R_1, …, R_L`` of the frozen layers
(``l = 1`` is the layer next to the input):

* ``"paper"`` — the intended one: ``R_l = max(0, min(R + s(l − 1), D))``;
* ``"code"`` — what the official code computes for ``s < 0``: ``max(rank − rank_step·l, 0)``
  with a negative ``rank_step``, i.e. ``R_l = R + |s|(l − 1)``, the *increasing* schedule of
  ``+|s|``, without the cap at ``D``. A rank above the width cannot be realised on a ``D × D``
  matrix, so it is clamped at ``D`` here (at the paper's settings, ``R = 8``, ``|s| ≤ 2``,
  ``L = 4``, the largest rank is 14 and no clamping happens);
* ``"balanced"`` — not in the paper: the ``"paper"`` schedule's rank **sums over the blocks of
  the uniform partition** ``P^u``, spread as evenly as possible inside each block (a block of
  ``m`` layers with sum ``S`` gets ``⌊S/m⌋ + 1`` on its first ``S mod m`` layers and ``⌊S/m⌋``
  on the others). The general-partition theorem (:ref:`sec-general-partitions`) says the
  construction depends on the per-layer ranks only through these sums, so a ``"balanced"``
  schedule and its ``"paper"`` schedule give the same constructed function on the box; whether
  gradient training sees a difference is an experiment.

Introduced in :ref:`sec-general-partitions`.
"""

from __future__ import annotations

from .. import checks
from ..fnn import uniform_partition

#: The per-layer rank schedules :func:`rank_schedule` knows.
SCHEDULES = ("paper", "code", "balanced")


def rank_schedule(
    rank: int, step: int, depth: int, width: int, kind: str = "paper", target_depth: int = 1
) -> tuple[int, ...]:
    """``(R_1, …, R_L)`` of schedule ``kind`` (one of ``SCHEDULES``) for base rank ``rank`` and
    step ``step`` on ``depth`` frozen layers of width ``width``; ``target_depth`` ``L̄`` fixes the
    blocks of the ``"balanced"`` schedule.

    ``"code"`` is defined for ``step < 0`` only (for ``step ≥ 0`` the official code's schedule
    is the intended one); ``ValueError`` otherwise.

    >>> rank_schedule(8, -2, 4, 16), rank_schedule(8, -2, 4, 16, "code")
    ((8, 6, 4, 2), (8, 10, 12, 14))
    >>> rank_schedule(8, 2, 4, 16, "balanced", target_depth=2)
    (9, 9, 13, 13)

    Introduced in :ref:`sec-general-partitions`.
    """
    width = checks.integer(width, "width", low=1)
    rank = checks.integer(rank, "rank", 0, width)
    step = checks.integer(step, "rank_step")
    depth = checks.integer(depth, "depth", low=1)
    checks.choice(kind, "schedule", SCHEDULES)
    if kind == "code":
        if step >= 0:
            raise ValueError(
                f"schedule 'code' is the official code's schedule for rank_step < 0, got "
                f"rank_step={step} (for rank_step ≥ 0 use 'paper')"
            )
        return tuple(min(rank - step * layer, width) for layer in range(depth))
    paper = tuple(max(0, min(rank + step * layer, width)) for layer in range(depth))
    if kind == "paper":
        return paper
    out: list[int] = []
    for block in uniform_partition(depth, target_depth):
        total, m = sum(paper[k] for k in block), len(block)
        out += [total // m + (i < total % m) for i in range(m)]
    return tuple(out)
