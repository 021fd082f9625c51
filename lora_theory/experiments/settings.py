"""The paper's synthetic experiments as data (Section 6 and Appendix G of the paper).

An :class:`Experiment` lists :class:`Panel` s (model family, target depth ``L̄``, frozen depth
``L``, biases, random or pretrained frozen model, which methods to run); a :class:`Budget` is the
work (steps, seeds, learning-rate × weight-decay grid, evaluation sizes). Full mode is the paper's
protocol exactly; quick mode keeps every *setting* (width, depths, ranks, initialisation, batch and
validation sizes) and shrinks only the work, so the curves keep their shape on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import checks
from ..runtime import Mode, check_mode
from ..training.data import KEEP
from ..training.objectives import TASKS
from .budgets import FULL, MAX_STEPS, QUICK, QUICK_RELU, Budget
from .results import METHODS
from .schedules import SCHEDULES, rank_schedule

#: Widest model an experiment accepts.
MAX_WIDTH = 4096


@dataclass(frozen=True)
class Panel:
    """One panel: adapt a frozen depth-``L`` model to a target of depth ``L̄`` of one family.

    ``name`` is the CSV's ``panel`` value; ``family`` names a registered model family
    (``lora_theory.experiments.families``: ``"linear"``, ``"fnn"``, …); ``bias``: the models
    have bias vectors; ``tune_bias``: the gradient runs train all biases too (only with
    ``bias``); ``pretrained``: the frozen model is first trained towards the target
    (``experiments.tasks.pretrain``); ``options``: family-specific settings as
    ``(name, value)`` pairs (e.g. heads and tokens of a Transformer).

    Appendix settings, none of which changes the models (such panels share them): ``task``, a
    key of :data:`~lora_theory.training.objectives.TASKS` (the loss of the gradient runs);
    ``n_train``: a fixed training set, full-batch Adam (``None``: fresh batches);
    ``rank_step``, ``schedule``: per-layer ranks from the base rank (the rank column) by
    :func:`~lora_theory.experiments.schedules.rank_schedule` (``0``, ``"paper"``: uniform).

    Introduced in :ref:`sec-fig1`.
    """

    name: str
    target_depth: int
    depth: int
    family: str = "fnn"
    bias: bool = True
    tune_bias: bool = True
    pretrained: bool = False
    methods: tuple[str, ...] = ("construction", "gradient")
    options: tuple[tuple[str, object], ...] = ()
    task: str = "regression"
    n_train: int | None = None
    rank_step: int = 0
    schedule: str = "paper"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "," in self.name:
            raise ValueError(f"panel name must be a non-empty string without commas: {self.name!r}")
        checks.integer(self.target_depth, f"panel {self.name!r}: target_depth", low=1)
        checks.integer(self.depth, f"panel {self.name!r}: depth", low=1)
        if not self.target_depth <= self.depth:
            raise ValueError(
                f"panel {self.name!r}: need 1 ≤ L̄ ≤ L, got {self.target_depth}, {self.depth}"
            )
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(
                f"panel {self.name!r}: family must be a non-empty string, got {self.family!r}"
            )
        for flag in ("bias", "tune_bias", "pretrained"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"panel {self.name!r}: {flag} must be a bool")
        if self.tune_bias and not self.bias:
            raise ValueError(f"panel {self.name!r}: tune_bias needs bias=True")
        methods = checks.sequence(self.methods, f"panel {self.name!r}: methods", "method names")
        for i, m in enumerate(methods):
            checks.choice(m, f"panel {self.name!r}: methods[{i}]", METHODS)
        if len(set(methods)) != len(methods):
            raise ValueError(f"panel {self.name!r}: methods repeat a method: {self.methods!r}")
        object.__setattr__(self, "methods", tuple(methods))
        options = checks.sequence(
            self.options, f"panel {self.name!r}: options", "(name, value) pairs", empty=True
        )
        for i, pair in enumerate(options):
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ValueError(
                    f"panel {self.name!r}: options[{i}] must be a (name, value) pair with a "
                    f"string name, got {pair!r}"
                )
            try:
                hash(pair[1])
            except TypeError as exc:
                raise ValueError(
                    f"panel {self.name!r}: option {pair[0]!r} must have a hashable value, got "
                    f"{pair[1]!r}"
                ) from exc
        object.__setattr__(self, "options", tuple(options))
        checks.choice(self.task, f"panel {self.name!r}: task", TASKS)
        if self.n_train is not None:
            checks.integer(self.n_train, f"panel {self.name!r}: n_train", 1, checks.MAX_ELEMENTS)
        checks.integer(self.rank_step, f"panel {self.name!r}: rank_step")
        checks.choice(self.schedule, f"panel {self.name!r}: schedule", SCHEDULES)

    def layer_ranks(self, rank: int, width: int) -> int | tuple[int, ...]:
        """``rank`` for the uniform schedule, else the per-layer ranks of ``rank_schedule``."""
        if self.rank_step == 0 and self.schedule == "paper":
            return rank
        return rank_schedule(
            rank, self.rank_step, self.depth, width, self.schedule, self.target_depth
        )

    @property
    def model_key(self) -> tuple[object, ...]:
        """Panels with equal keys (and seeds) share their random target and frozen model."""
        return (self.family, self.target_depth, self.depth, self.bias, self.options)

    def option(self, name: str, default: object = None) -> object:
        """The family-specific option ``name`` (``default`` when not set)."""
        if not isinstance(name, str):
            raise ValueError(f"option name must be a string, got {name!r}")
        return dict(self.options).get(name, default)

    def threshold(self, width: int) -> int:
        """The family's exactness threshold for random models, e.g. ``⌈D / M⌉``,
        ``M = ⌊L / L̄⌋`` (Lemma 1 / Corollary 4) for linear models and FNNs."""
        from .families import family  # the registry imports this module

        return family(self.family).threshold(self, width)


def task_arguments(panel: object, width: object, seed: object) -> tuple[Panel, int, int]:
    """The arguments of a family's ``random_task``, checked: a :class:`Panel`, an integer width
    ``1 ≤ D ≤ MAX_WIDTH`` and a seed ``≥ 0``.

    Introduced in :ref:`sec-fig1`.
    """
    checks.instance(panel, "panel", Panel, "a Panel")
    width = checks.integer(width, "width", 1, MAX_WIDTH)
    return panel, width, checks.integer(seed, "seed", low=0)  # type: ignore[return-value]


def model_size(width: object, depth: object, name: str = "depth") -> tuple[int, int]:
    """``(D, L)`` of a model, checked: ``1 ≤ D ≤ MAX_WIDTH``, ``1 ≤ L ≤ checks.MAX_LENGTH``.

    Introduced in :ref:`sec-fig1`.
    """
    width = checks.integer(width, "width", 1, MAX_WIDTH)
    return width, checks.integer(depth, name, 1, checks.MAX_LENGTH)


@dataclass(frozen=True)
class Experiment:
    """The settings of one of the paper's experiments (one figure): its panels, the width ``D``,
    the LoRA ranks swept, and optionally a smaller quick budget (and a subset of ranks,
    ``quick_ranks``) for experiments whose CPU cost is far above Figure 1's. Full mode always runs
    every rank with the paper's budget, ``full`` (``FULL`` unless the paper ran more steps).

    Appendix settings: ``keep``, the iterate gradient runs report (``"best"`` by validation, or
    ``"final"``); ``curve_every``: record the training loss every that many steps (rows with a
    ``step``); ``test_shift``: also test on the test inputs times this factor. Rank ``0``: the
    construction without weight change (biases re-tuned); gradient runs train the biases only.

    Introduced in :ref:`sec-fig1`.
    """

    name: str
    title: str
    chapter: str
    panels: tuple[Panel, ...]
    width: int = 16
    ranks: tuple[int, ...] = tuple(range(1, 17))
    quick: Budget = QUICK
    quick_ranks: tuple[int, ...] | None = None
    full: Budget = FULL
    keep: str = "best"
    curve_every: int = 0
    test_shift: float | None = None

    def __post_init__(self) -> None:
        for name in ("name", "title", "chapter"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(
                    f"experiment {name} must be a non-empty string, got {getattr(self, name)!r}"
                )
        panels = checks.sequence(self.panels, f"experiment {self.name!r}: panels", "Panel objects")
        for i, p in enumerate(panels):
            if not isinstance(p, Panel):
                raise ValueError(
                    f"experiment {self.name!r}: panels[{i}] must be a Panel, got {p!r}"
                )
        names = [p.name for p in panels]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r}: panel names repeat: {names}")
        object.__setattr__(self, "panels", tuple(panels))
        checks.integer(self.width, f"experiment {self.name!r}: width", 1, MAX_WIDTH)
        where = f"experiment {self.name!r}: ranks"  # ranks above the width fail when run
        object.__setattr__(self, "ranks", checks.integers(self.ranks, where, 0, MAX_WIDTH))
        for name in ("quick", "full"):
            if not isinstance(getattr(self, name), Budget):
                raise ValueError(
                    f"experiment {self.name!r}: {name} must be a Budget, got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if self.quick_ranks is not None:
            where = f"experiment {self.name!r}: quick_ranks"
            object.__setattr__(self, "quick_ranks", checks.integers(self.quick_ranks, where, 0))
        checks.choice(self.keep, f"experiment {self.name!r}: keep", KEEP)
        checks.integer(self.curve_every, f"experiment {self.name!r}: curve_every", 0, MAX_STEPS)
        if self.test_shift is not None:
            checks.real(self.test_shift, f"experiment {self.name!r}: test_shift", positive=True)

    def budget(self, mode: Mode | str) -> Budget:
        """The :class:`Budget` of this figure in ``mode``: the paper's (``full``) in full mode."""
        return self.quick if check_mode(mode) == "quick" else self.full

    def in_mode(self, mode: Mode | str) -> Experiment:
        """This figure with the ranks swept in ``mode``: in quick mode only those of ``ranks``
        that are also in ``quick_ranks`` (when set); in full mode all of ``ranks``."""
        if check_mode(mode) == "quick" and self.quick_ranks is not None:
            return replace(self, ranks=tuple(r for r in self.ranks if r in self.quick_ranks))
        return self


#: The Transformer experiment's architecture beyond ``D`` and ``L``: ``H = 2`` heads, ``N = 10``
#: tokens (the paper's E3).
TFN_OPTIONS: tuple[tuple[str, object], ...] = (("heads", 2), ("tokens", 10))


def _random_and_pretrained(prefix: str, **kw: object) -> tuple[Panel, Panel]:
    return (
        Panel(f"{prefix}random", pretrained=False, **kw),  # type: ignore[arg-type]
        Panel(f"{prefix}pretrained", pretrained=True, **kw),  # type: ignore[arg-type]
    )


#: The registered experiments (``reproduce <name>``) and their panels (the CSV ``panel`` column):
#:
#: * ``fig1`` (E1): linear, ``L̄ = 1, L = 2``, no biases; ``random``, ``pretrained``.
#: * ``fig2`` (E2): ReLU with biases; ``Lbar2-L4-{random,pretrained}``, ``Lbar1-L2-{…}``.
#: * ``bias`` (E5): ReLU, ``L̄ = 1, L = 2``, gradient only;
#:   ``{random,pretrained}-{fixed,tuned}-bias`` (plot against ``n_params``; unlike the paper's
#:   notebook, the lr × wd grid point is chosen by validation).
#: * ``flt`` (E4): ReLU, ``L̄ = 1, L = 8``; LoRA (``gradient``) vs ``final_layers`` (``rank``: k).
#: * ``depth`` (E9): ReLU, ``L̄ = 1``, ``L = 2, 4, …, 14``, gradient only; ``Lbar1-L{L}-random``.
#: * ``tfn`` (E3): Transformers, ``D = 16``, ``H = 2``, ``N = 10``, ``L̄ = L ∈ {1, 2}``;
#:   ``L{L}-{random,pretrained}``.
EXPERIMENTS: dict[str, Experiment] = {
    "fig1": Experiment(
        name="fig1",
        title="Linear model approximation (E1, Figure 1)",
        chapter="Linear models",
        panels=_random_and_pretrained(
            "", target_depth=1, depth=2, family="linear", bias=False, tune_bias=False
        ),
    ),
    "fig2": Experiment(
        name="fig2",
        title="ReLU FNN approximation (E2, Figure 2)",
        chapter="Multi-layer FNN",
        panels=(
            *_random_and_pretrained("Lbar2-L4-", target_depth=2, depth=4),
            *_random_and_pretrained("Lbar1-L2-", target_depth=1, depth=2),
        ),
        quick=QUICK_RELU,
    ),
    "bias": Experiment(
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
    "flt": Experiment(
        name="flt",
        title="LoRA vs tuning final layers (E4)",
        chapter="LoRA vs final layers",
        panels=_random_and_pretrained(
            "", target_depth=1, depth=8, methods=("gradient", "final_layers")
        ),
        quick=replace(QUICK, seeds=(0, 1), lrs=(1e-2,)),
    ),
    "depth": Experiment(
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
    "tfn": Experiment(
        name="tfn",
        title="Transformer approximation (E3)",
        chapter="Transformers",
        panels=tuple(
            panel
            for depth in (1, 2)
            for panel in _random_and_pretrained(
                f"L{depth}-", target_depth=depth, depth=depth, family="tfn", options=TFN_OPTIONS
            )
        ),
        # A Transformer step costs ~50x an FNN step on a CPU: one seed, one learning rate,
        # 200 steps, and the ranks of the paper code's reference table (threshold 8).
        quick=replace(QUICK_RELU, steps=200, seeds=(0,), eval_every=10),
        quick_ranks=(1, 4, 7, 8, 12, 16),
    ),
}


def experiment(name: str) -> Experiment:
    """The registered experiment ``name``; ``ValueError`` naming the valid choices otherwise.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]
