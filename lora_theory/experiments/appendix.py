"""The paper's appendix experiments on ReLU FNNs beyond the main figures, registered in
``settings.EXPERIMENTS`` (``reproduce <name>``):

* ``curves`` (E6): training loss against iteration for the ranks ``1, 4, 8, 13, 16``,
  ``(L̄, L) ∈ {(1, 2), (2, 4)}``, random frozen model; the run of each (rank, seed) is the one
  with the best validation loss on the lr × wd grid. Rows with a ``step`` are the curve (the
  loss of every ``curve_every``-th training batch); the row without one is the run's summary.
* ``generalization`` (E7): a fixed training set of ``n_train = 400 L̄`` Gaussian points,
  full-batch Adam (20 000 steps in full mode), the **final** iterate reported (the paper's
  ``best_epoch=0``), chosen on the grid by its validation loss; rows carry ``train_loss`` (on
  the training set) beside ``test_mse``, for the construction too.
* ``classification`` (E8): the multi-class, binary and regression tasks built from the teacher's
  output (``Panel.task``), ranks ``0–16``, the gradient runs chosen by validation accuracy for
  classification; every row also has the MSE, accuracy on the shifted test set ``5 · N(0, I)``
  (``shift_mse``, ``shift_accuracy``). The construction is exact on ``‖x‖_∞ ≤ INPUT_BOUND``
  only (see :func:`~lora_theory.experiments.families.fnn.fnn_construction` for what happens
  outside it).
* ``rank-schedule`` (E10): ``L̄ = 2``, ``L = 4``, base rank 8, per-layer ranks of
  :func:`~lora_theory.experiments.schedules.rank_schedule` with steps ``s ∈ {−2, −1, 1, 2}``
  (and ``s = 0``, the uniform reference) for the ``"paper"`` schedule, ``s ∈ {−2, −1}`` for the
  official code's schedule (labelled ``code`` in the panel name), and ``s ∈ {−2, −1, 1, 2}``
  for the ``"balanced"`` schedule (the same block sums, spread evenly); random and pretrained
  frozen models. Panels are named ``{random,pretrained}-{schedule}-step{s:+d}``; the ``rank``
  column is the base rank, ``n_params`` counts the per-layer ranks.

Quick mode keeps the settings (widths, depths, ranks swept or their thresholds, the training
set sizes, the tasks) and shrinks the work (steps, seeds, grid, test points).

Introduced in :ref:`ch-partitions-depth`.
"""

from __future__ import annotations

from dataclasses import replace

from ..training.objectives import TASKS
from .budgets import FULL, QUICK, QUICK_RELU
from .settings import EXPERIMENTS, Experiment, Panel

#: The depth pairs ``(L̄, L)`` of E6–E8.
DEPTHS = ((1, 2), (2, 4))
#: The steps ``s`` of E10 for each schedule (``0``: the uniform rank-8 reference).
RANK_STEPS = {"paper": (-2, -1, 0, 1, 2), "code": (-2, -1), "balanced": (-2, -1, 1, 2)}
CHAPTER = "Partitions, biases and depth"


def _random(prefix: str = "", **kw: object) -> tuple[Panel, ...]:
    return tuple(
        Panel(f"{prefix}Lbar{lb}-L{depth}-random", lb, depth, **kw)  # type: ignore[arg-type]
        for lb, depth in DEPTHS
    )


def _schedule_panels() -> tuple[Panel, ...]:
    return tuple(
        Panel(
            f"{kind}-{schedule}-step{s:+d}",
            target_depth=2,
            depth=4,
            pretrained=kind == "pretrained",
            rank_step=s,
            schedule=schedule,
        )
        for kind in ("random", "pretrained")
        for schedule, steps in RANK_STEPS.items()
        for s in steps
    )


APPENDIX: dict[str, Experiment] = {
    "curves": Experiment(
        name="curves",
        title="Training curves (E6)",
        chapter=CHAPTER,
        panels=_random(methods=("gradient",)),
        ranks=(1, 4, 8, 13, 16),
        curve_every=10,
        quick=QUICK,
    ),
    "generalization": Experiment(
        name="generalization",
        title="A finite training set (E7)",
        chapter=CHAPTER,
        panels=tuple(replace(p, n_train=400 * p.target_depth) for p in _random()),  # 400 L̄ points
        keep="final",
        full=replace(FULL, steps=20_000),
        # Full-batch steps on 400 or 800 points, one learning rate, 7 of the 16 ranks.
        quick=replace(QUICK_RELU, steps=2000, eval_every=20),
        quick_ranks=(1, 2, 4, 6, 8, 12, 16),
    ),
    "classification": Experiment(
        name="classification",
        title="Classification tasks and distribution shift (E8)",
        chapter=CHAPTER,
        panels=tuple(p for task in TASKS for p in _random(f"{task}-", task=task)),
        ranks=tuple(range(17)),
        test_shift=5.0,
        quick=QUICK_RELU,
        quick_ranks=(0, 1, 2, 4, 6, 8, 12, 16),
    ),
    "rank-schedule": Experiment(
        name="rank-schedule",
        title="Per-layer rank schedules (E10)",
        chapter=CHAPTER,
        panels=_schedule_panels(),
        ranks=(8,),
        quick=QUICK_RELU,
    ),
}
EXPERIMENTS.update(APPENDIX)
