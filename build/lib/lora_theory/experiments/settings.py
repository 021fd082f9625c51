"""The paper's synthetic experiments as data (PAPER_SPEC §7.1–7.2).

A :class:`Figure` lists :class:`Panel` s (target depth ``L̄``, frozen depth ``L``, activation,
biases, random or pretrained frozen model, which methods to run); a :class:`Budget` is the work
(steps, seeds, learning-rate × weight-decay grid, evaluation sizes). Full mode is the paper's
protocol exactly; quick mode keeps every *setting* (width, depths, ranks, initialisation, batch and
validation sizes) and shrinks only the work, so the curves keep their shape on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..fnn import ACTIVATIONS
from ..runtime import Mode, check_mode

METHODS = ("construction", "gradient", "final_layers")


@dataclass(frozen=True)
class Panel:
    """One panel: adapt a frozen ``FNN_{L,D}`` to a target ``FNN_{L̄,D}``.

    ``name`` is the CSV's ``panel`` value; ``bias``: the models have bias vectors;
    ``tune_bias``: the gradient runs train all biases too (only with ``bias``); ``pretrained``:
    the frozen model is first trained towards the target (PAPER_SPEC §7.1,
    :func:`lora_theory.experiments.tasks.pretrain`).
    """

    name: str
    target_depth: int
    depth: int
    activation: str = "relu"
    bias: bool = True
    tune_bias: bool = True
    pretrained: bool = False
    methods: tuple[str, ...] = ("construction", "gradient")

    def __post_init__(self) -> None:
        if not 1 <= self.target_depth <= self.depth:
            raise ValueError(
                f"panel {self.name!r}: need 1 ≤ L̄ ≤ L, got {self.target_depth}, {self.depth}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"panel {self.name!r}: activation must be one of {ACTIVATIONS}")
        if self.tune_bias and not self.bias:
            raise ValueError(f"panel {self.name!r}: tune_bias needs bias=True")
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(
                f"panel {self.name!r}: methods must be among {METHODS}, got {self.methods}"
            )

    @property
    def model_key(self) -> tuple[int, int, str, bool]:
        """Panels with equal keys (and seeds) share their random target and frozen model."""
        return (self.target_depth, self.depth, self.activation, self.bias)

    def threshold(self, width: int) -> int:
        """The exactness threshold ``⌈D / M⌉``, ``M = ⌊L / L̄⌋`` (Lemma 1 / Corollary 4)."""
        return math.ceil(width / (self.depth // self.target_depth))


@dataclass(frozen=True)
class Budget:
    """The work of a run: Adam ``steps`` per configuration, ``seeds``, the ``lrs × weight_decays``
    grid searched by validation, batch/validation/test sizes and the evaluation period."""

    steps: int
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    batch_size: int = 256
    n_val: int = 256
    n_test: int = 5000
    eval_every: int = 1


@dataclass(frozen=True)
class Pretraining:
    """The paper's "pretrained" frozen model (§7.1): Adam on all parameters, fresh batches, stop
    once the training MSE is below (initial MSE) / ``ratio`` or after ``max_steps``."""

    lr: float = 1e-3
    max_steps: int = 1000
    ratio: float = 3.0
    batch_size: int = 256


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
    """The default :class:`Budget` of ``mode`` (``"quick"`` or ``"full"``)."""
    return BUDGETS[check_mode(mode)]


@dataclass(frozen=True)
class Figure:
    """A figure of the paper: its panels, the width ``D``, the LoRA ranks swept, and optionally a
    smaller quick budget (and a subset of ranks, ``quick_ranks``) for figures whose CPU cost is
    far above Figure 1's. Full mode always runs every rank with the paper's budget."""

    name: str
    title: str
    chapter: str
    panels: tuple[Panel, ...]
    width: int = 16
    ranks: tuple[int, ...] = tuple(range(1, 17))
    quick: Budget = QUICK
    quick_ranks: tuple[int, ...] | None = None

    def budget(self, mode: Mode | str) -> Budget:
        """The :class:`Budget` of this figure in ``mode``: the paper's in full mode."""
        return self.quick if check_mode(mode) == "quick" else FULL

    def in_mode(self, mode: Mode | str) -> Figure:
        """This figure with the ranks swept in ``mode``: in quick mode only those of ``ranks``
        that are also in ``quick_ranks`` (when set); in full mode all of ``ranks``."""
        if check_mode(mode) == "quick" and self.quick_ranks is not None:
            return replace(self, ranks=tuple(r for r in self.ranks if r in self.quick_ranks))
        return self


def _random_and_pretrained(prefix: str, **kw: object) -> tuple[Panel, Panel]:
    return (
        Panel(f"{prefix}random", pretrained=False, **kw),  # type: ignore[arg-type]
        Panel(f"{prefix}pretrained", pretrained=True, **kw),  # type: ignore[arg-type]
    )


#: The registered figures (``reproduce <name>``) and their panels (the CSV ``panel`` column):
#:
#: * ``fig1`` (E1): linear, ``L̄ = 1, L = 2``, no biases; ``random``, ``pretrained``.
#: * ``fig2`` (E2): ReLU with biases; ``Lbar2-L4-{random,pretrained}``, ``Lbar1-L2-{…}``.
#: * ``bias`` (E5): ReLU, ``L̄ = 1, L = 2``, gradient only;
#:   ``{random,pretrained}-{fixed,tuned}-bias`` (plot against ``n_params``; unlike the paper's
#:   notebook, the lr × wd grid point is chosen by validation).
#: * ``flt`` (E4): ReLU, ``L̄ = 1, L = 8``; LoRA (``gradient``) vs ``final_layers`` (``rank``: k).
#: * ``depth`` (E9): ReLU, ``L̄ = 1``, ``L = 2, 4, …, 14``, gradient only; ``Lbar1-L{L}-random``.
FIGURES: dict[str, Figure] = {
    "fig1": Figure(
        name="fig1",
        title="Linear model approximation (E1, Figure 1)",
        chapter="Linear models",
        panels=_random_and_pretrained(
            "", target_depth=1, depth=2, activation="identity", bias=False, tune_bias=False
        ),
    ),
    "fig2": Figure(
        name="fig2",
        title="ReLU FNN approximation (E2, Figure 2)",
        chapter="Multi-layer FNN",
        panels=(
            *_random_and_pretrained("Lbar2-L4-", target_depth=2, depth=4),
            *_random_and_pretrained("Lbar1-L2-", target_depth=1, depth=2),
        ),
        quick=QUICK_RELU,
    ),
    "bias": Figure(
        name="bias",
        title="Importance of bias updates (E5)",
        chapter="Multi-layer FNN",
        panels=tuple(
            Panel(
                f"{frozen}-{'tuned' if tune else 'fixed'}-bias",
                target_depth=1,
                depth=2,
                tune_bias=tune,
                pretrained=frozen == "pretrained",
                methods=("gradient",),
            )
            for frozen in ("random", "pretrained")
            for tune in (False, True)
        ),
        quick=QUICK_RELU,
    ),
    "flt": Figure(
        name="flt",
        title="LoRA vs tuning final layers (E4)",
        chapter="LoRA vs final layers",
        panels=_random_and_pretrained(
            "", target_depth=1, depth=8, methods=("gradient", "final_layers")
        ),
        quick=replace(QUICK, seeds=(0, 1), lrs=(1e-2,)),
    ),
    "depth": Figure(
        name="depth",
        title="Frozen-depth sweep (E9)",
        chapter="Multi-layer FNN",
        panels=tuple(
            Panel(f"Lbar1-L{depth}-random", target_depth=1, depth=depth, methods=("gradient",))
            for depth in range(2, 15, 2)
        ),
        # Seven depths up to 14 layers: one seed, and only ranks that include every threshold.
        quick=replace(QUICK_RELU, seeds=(0,)),
        quick_ranks=(1, 2, 3, 4, 8, 16),
    ),
}


def figure(name: str) -> Figure:
    """The registered figure ``name``; ``ValueError`` naming the valid choices otherwise."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose one of {sorted(FIGURES)}")
    return FIGURES[name]
