"""The work of an experiment: :class:`Budget` (Adam steps, seeds, the learning-rate ×
weight-decay grid, evaluation sizes) and :class:`Pretraining` (the paper's proxy for a frozen model
closer to the target), with the paper's full budget and the CPU quick budgets.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import checks
from ..runtime import Mode, check_mode

#: Most Adam steps a budget accepts (the paper's protocol runs 5000).
MAX_STEPS = 10**8


@dataclass(frozen=True)
class Budget:
    """The work of a run: Adam ``steps`` per configuration, ``seeds``, the ``lrs × weight_decays``
    grid searched by validation, batch/validation/test sizes and the evaluation period.

    Introduced in :ref:`sec-fig1`.
    """

    steps: int
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    batch_size: int = 256
    n_val: int = 256
    n_test: int = 5000
    eval_every: int = 1

    def __post_init__(self) -> None:
        checks.integer(self.steps, "budget steps", 1, MAX_STEPS)
        seeds = checks.integers(self.seeds, "budget seeds", low=0)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"budget seeds repeat a seed: {seeds}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "lrs", checks.reals(self.lrs, "budget lrs", positive=True))
        wds = checks.reals(self.weight_decays, "budget weight_decays", non_negative=True)
        object.__setattr__(self, "weight_decays", wds)
        checks.integer(self.batch_size, "budget batch_size", 1, checks.MAX_ELEMENTS)
        checks.integer(self.n_val, "budget n_val", 0, checks.MAX_ELEMENTS)
        checks.integer(self.n_test, "budget n_test", 1, checks.MAX_ELEMENTS)
        checks.integer(self.eval_every, "budget eval_every", 1, MAX_STEPS)

    def describe(self, mode: Mode | str, *, trained: bool = True) -> str:
        """The run's mode and budget in words, for a figure caption: seeds, Adam steps, the
        learning-rate and weight-decay grid (left out with ``trained=False``, a construction-only
        run), test points, and the precision (float64, where the paper's code uses float32).

        Introduced in :ref:`sec-fig1`.
        """
        if not isinstance(trained, bool):
            raise ValueError(f"trained must be a bool, got {trained!r}")
        rates, decays = (", ".join(f"{v:g}" for v in g) for g in (self.lrs, self.weight_decays))
        grid = f"{self.steps} Adam steps, learning rates {rates}, weight decays {decays}, "
        return (
            f"{check_mode(mode)} mode: {len(self.seeds)} seeds, {grid if trained else ''}"
            f"{self.n_test} test points; {'training and ' if trained else ''}evaluation in "
            "float64 (the paper's code uses float32)"
        )


@dataclass(frozen=True)
class Pretraining:
    """The paper's "pretrained" frozen model (§7.1): Adam on all parameters, fresh batches, stop
    once the training MSE is below (initial MSE) / ``ratio`` or after ``max_steps``.

    Introduced in :ref:`sec-fig1`.
    """

    lr: float = 1e-3
    max_steps: int = 1000
    ratio: float = 3.0
    batch_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", checks.real(self.lr, "pretraining lr", positive=True))
        checks.integer(self.max_steps, "pretraining max_steps", 1, MAX_STEPS)
        ratio = checks.real(self.ratio, "pretraining ratio")
        if not ratio > 1:
            raise ValueError(f"pretraining ratio must be > 1, got {ratio}")
        object.__setattr__(self, "ratio", ratio)
        checks.integer(self.batch_size, "pretraining batch_size", 1, checks.MAX_ELEMENTS)


PRETRAINING = Pretraining()

#: The paper's protocol (§7.1): 5 seeds, 12-point grid, 5000 Adam steps, validation every step.
FULL = Budget(
    steps=5000,
    seeds=(0, 1, 2, 3, 4),
    lrs=(1e-2, 1e-3, 1e-4),
    weight_decays=(0.0, 1e-4, 1e-3, 1e-2),
)
#: CPU budget: fewer steps, seeds, grid points and test samples; same settings.
QUICK = Budget(
    steps=1000,
    seeds=(0, 1, 2),
    lrs=(1e-2, 1e-3),
    weight_decays=(0.0,),
    n_test=1000,
    eval_every=5,
)
#: Quick budget of the ReLU figures: only the learning rate 1e-2, which validation picks almost
#: always at 1000 steps, so that each figure runs in well under a minute on two CPU cores.
QUICK_RELU = replace(QUICK, lrs=(1e-2,))
BUDGETS: dict[str, Budget] = {"full": FULL, "quick": QUICK}


def budget(mode: Mode | str) -> Budget:
    """The default :class:`Budget` of ``mode`` (``"quick"`` or ``"full"``).

    Introduced in :ref:`sec-fig1`.
    """
    return BUDGETS[check_mode(mode)]
