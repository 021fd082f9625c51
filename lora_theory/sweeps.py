"""Sweeps over random instances behind the checks of Lemmas 1 and 2 (chapters 1 and 2).

Each function runs one construction over a grid (depths, ranks, seeds, input scales) and returns
plain rows, one per instance; the chapters print them and assert on them, so the check itself
stays on the page. Every instance is drawn from its own seeded generator, in a fixed order, so a
sweep gives the same numbers on every run.

* :func:`lemma1_gaps` — Lemma 1's construction against ``σ_{RL+1}(E)``, with the conditioning
  that bounds its round-off;
* :func:`conditioning_by_depth` — the largest condition number and the error at the threshold
  as the frozen model deepens;
* :func:`population_deviations` — the construction's test MSE against the population optimum
  ``(1/D) Σ_{i>RL} σ_i²(E)``, in standard errors of the test-set mean;
* :func:`exact_on_box`, :func:`outside_box`, :func:`lemma2_table` — Lemma 2 on the box, off the
  box, and its bounds below the threshold;
* :func:`float32_residuals` — exact adapters evaluated in float32;
* :func:`bias_rules_by_depth` — the construction's biases against the paper's constant ones as
  the frozen block deepens.

Introduced in :ref:`sec-linear-verification`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch

from . import bounds, checks, fnn, linalg, linear
from .experiments import Panel, family, random_task
from .fnn import FNN
from .training import Task


def _gaussian(shape: tuple[int, ...], g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


class Lemma1Gap(NamedTuple):
    """``gap = |‖∏(W_l + ΔW_l) − W̄‖₂ − σ_{RL+1}(E)| / ‖W̄‖₂`` and ``kappa``, the largest
    condition number the construction solved with (1 when it solved with none).

    Introduced in :ref:`sec-linear-verification`.
    """

    depth: int
    rank: int
    seed: int
    gap: float
    kappa: float


def lemma1_gaps(
    depth: int, ranks: Sequence[int], seeds: Sequence[int], width: int = 16
) -> list[Lemma1Gap]:
    """Lemma 1 on Gaussian instances: for each rank and seed, ``depth`` frozen ``(D, D)`` layers
    then a target ``W̄``, standard normal entries from ``Generator().manual_seed(seed)``.

    Introduced in :ref:`sec-linear-verification`.
    """
    depth = checks.integer(depth, "depth", low=1, high=checks.MAX_LENGTH)
    width = checks.integer(width, "width", low=1)
    checks.elements((depth + 1, width, width), "lemma1_gaps")
    ranks = checks.integers(ranks, "ranks", low=1)
    seeds = checks.integers(seeds, "seeds", low=0)
    rows = []
    for rank in ranks:
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            ws = [_gaussian((width, width), g) for _ in range(depth)]
            wbar = _gaussian((width, width), g)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", linear.ConditioningWarning)
                adapted = linear.adapted_product(ws, linear.construct(wbar, ws, rank))
                kappa = max(
                    (c.condition for c in linear.construction_conditioning(wbar, ws, rank)),
                    default=1.0,
                )
            err = float(torch.linalg.matrix_norm(adapted - wbar, 2))
            gap = abs(err - linear.min_error(wbar, ws, rank))
            gap /= float(torch.linalg.matrix_norm(wbar, 2))
            rows.append(Lemma1Gap(depth, rank, seed, gap, kappa))
    return rows


class DepthRun(NamedTuple):
    """One instance at the threshold rank: the largest condition number met, the relative
    spectral error ``‖∏(W_l + ΔW_l) − W̄‖₂ / ‖W̄‖₂`` and whether :func:`lora_theory.linear.construct`
    refused (its error is then the one it reported).

    Introduced in :ref:`sec-linear-assumption-fails`.
    """

    seed: int
    depth: int
    rank: int
    kappa: float
    rel_error: float
    refused: bool


def conditioning_by_depth(
    depths: Sequence[int], seeds: Sequence[int], width: int = 16, scale: float = 0.25
) -> list[DepthRun]:
    """Lemma 1 at the threshold ``R = ⌈D/L⌉`` for each seed and depth ``L``: frozen layers and
    target with ``N(0, scale²)`` entries, drawn for all depths of a seed from one generator.

    Introduced in :ref:`sec-linear-assumption-fails`.
    """
    depths = checks.integers(depths, "depths", low=1, high=checks.MAX_LENGTH)
    seeds = checks.integers(seeds, "seeds", low=0)
    width = checks.integer(width, "width", low=1)
    checks.elements((max(depths) + 1, width, width), "conditioning_by_depth")
    scale = checks.real(scale, "scale", positive=True)
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        for depth in depths:
            ws = [_gaussian((width, width), g, scale) for _ in range(depth)]
            wbar = _gaussian((width, width), g, scale)
            rank = math.ceil(width / depth)
            refused = False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", linear.ConditioningWarning)
                cs = linear.construction_conditioning(wbar, ws, rank)
                try:  # construct checks its own residual and refuses a bad one
                    adapters = linear.construct(wbar, ws, rank)
                    err = float(
                        torch.linalg.matrix_norm(linear.adapted_product(ws, adapters) - wbar, 2)
                    )
                except linalg.ExactnessError as exc:
                    err, refused = exc.achieved, True
            rel = err / float(torch.linalg.matrix_norm(wbar, 2))
            kappa = max((c.condition for c in cs), default=1.0)
            rows.append(DepthRun(seed, depth, rank, kappa, rel, refused))
    return rows


class Deviation(NamedTuple):
    """The construction's test MSE on one seed at one rank, the population optimum and the
    standard error of the test-set mean; ``z`` is ``|measured − optimum| / stderr``.

    Introduced in :ref:`sec-fig1`.
    """

    seed: int
    rank: int
    measured: float
    optimum: float
    stderr: float

    @property
    def z(self) -> float:
        """The deviation in standard errors."""
        return abs(self.measured - self.optimum) / self.stderr


def population_deviations(
    panel: Panel, seeds: Sequence[int], n_test: int, ranks: Sequence[int], width: int = 16
) -> list[Deviation]:
    """For a linear ``panel``: the construction's test MSE (``n_test`` points of each seed's
    task) against :func:`lora_theory.linear.population_mse`, ``(1/D) Σ_{i>RL} σ_i²(E)``.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(panel, Panel) or panel.family != "linear":
        raise ValueError(f"panel must be a linear experiments.Panel, got {panel!r}")
    seeds = checks.integers(seeds, "seeds", low=0)
    n_test = checks.integer(n_test, "n_test", low=2)
    ranks = checks.integers(ranks, "ranks", low=1)
    rows = []
    for seed in seeds:
        task = random_task(panel, width, seed)
        x, y = task.test_set(n_test)
        for rank in ranks:
            per_point = (family("linear").construct(task, rank)(x) - y).square().mean(dim=1)
            optimum = linear.population_mse(task.target.weights[0], task.frozen.weights, rank)
            stderr = float(per_point.std() / per_point.numel() ** 0.5)
            rows.append(Deviation(seed, rank, float(per_point.mean()), optimum, stderr))
    return rows


class BoxCheck(NamedTuple):
    """Lemma 2 on one instance: the threshold and the worst ``max|f − f̄|`` over every rank from
    the threshold to ``D``, in units of ``ε · roundoff_scale`` (``ε`` the float64 epsilon).

    Introduced in :ref:`sec-lemma2-verification`.
    """

    threshold: int
    worst: float


def exact_on_box(
    width: int, depth: int, seed: int, input_bound: float = 1.0, n: int = 500
) -> BoxCheck:
    """A random one-layer target and depth-``L`` frozen FNN (``nn.Linear`` initialisation), the
    construction for the box ``‖x‖_∞ ≤ c`` at every rank ``R ≥ ⌈rank(E)/L⌉``, tested on
    ``2n`` fresh box inputs (:func:`~lora_theory.instances.box_sample`).

    Introduced in :ref:`sec-lemma2-verification`.
    """
    seed = checks.integer(seed, "seed", low=0)
    g = torch.Generator().manual_seed(seed)
    target, frozen = FNN.random(width, 1, g), FNN.random(width, depth, g)
    x = fnn.box_sample(width, input_bound, n, g)
    threshold = fnn.required_rank(target, frozen)
    eps = torch.finfo(torch.float64).eps
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linear.ConditioningWarning)
        for rank in range(threshold, width + 1):
            f = fnn.construct(target, frozen, rank, input_bound)
            error = float((f(x) - target(x)).abs().max())
            worst = max(worst, error / (eps * f.roundoff_scale(x)))
    return BoxCheck(threshold, worst)


class Outside(NamedTuple):
    """Inputs scaled by ``scale``: the MSE, the share of first-layer ReLUs switched off and the
    share of inputs with at least one of them off.

    Introduced in :ref:`sec-lemma2-verification`.
    """

    scale: float
    mse: float
    units_off: float
    inputs_off: float


def outside_box(
    adapted: FNN, target: FNN, x: torch.Tensor, scales: Sequence[float]
) -> list[Outside]:
    """``adapted`` against ``target`` on ``scale · x`` for each scale (``x``: ``(n, D)``).

    Introduced in :ref:`sec-lemma2-verification`.
    """
    checks.instances([adapted, target], "networks", FNN, "an FNN")
    x = checks.shape(checks.tensor(x, "x", adapted.dtype), (None, adapted.width), "x")
    rows = []
    for scale in checks.reals(scales, "scales", positive=True):
        pre = scale * x @ adapted.effective_weights[0].T + adapted.biases[0]
        mse = float((adapted(scale * x) - target(scale * x)).square().mean())
        off = pre < 0
        rows.append(
            Outside(scale, mse, float(off.double().mean()), float(off.any(dim=1).double().mean()))
        )
    return rows


class Lemma2Row(NamedTuple):
    """At rank ``R``: the measured ``E‖f − f̄‖²``, the sharp bound ``tr(ΔΣΔᵀ)``, Lemma 2's
    ``tr(Σ) σ²_{RL+1}(E)`` and the Korean-language analysis's ``‖Σ‖_F σ²_{RL+1}(E)``.

    Introduced in :ref:`sec-lemma2-bound`.
    """

    rank: int
    measured: float
    sharp: float
    trace: float
    frobenius_sigma2: float


def lemma2_table(
    target: FNN, frozen: FNN, x: torch.Tensor, ranks: Sequence[int], input_bound: float = 1.0
) -> list[Lemma2Row]:
    """Lemma 2's construction for the box at each rank, its error on the sample ``x`` and the
    bounds for the sample's own second moment ``Σ`` (so they hold exactly).

    Introduced in :ref:`sec-lemma2-bound`.
    """
    s = bounds.empirical_second_moment(x)
    (e,) = fnn.discrepancies(target, frozen)
    rows = []
    for rank in checks.integers(ranks, "ranks", low=1):
        adapted = fnn.construct(target, frozen, rank, input_bound)
        sigma2 = float(linalg.sigma(e, rank * frozen.depth + 1)) ** 2
        rows.append(
            Lemma2Row(
                rank,
                bounds.measured_error(target, adapted, x, squared=True),
                bounds.lemma2_construction_bound(target, frozen, rank, s),
                bounds.lemma2_bound(target, frozen, rank, s),
                float(torch.linalg.matrix_norm(s)) * sigma2,
            )
        )
    return rows


def _as_float32(net: FNN) -> FNN:
    """The same network, weights (adapters merged) and biases rounded to float32."""
    weights = [w.float() for w in net.effective_weights]
    biases = [b.float() for b in net.biases]
    return FNN(weights, biases, activation=net.activation, dtype=torch.float32)


def float32_residuals(task: Task, rank: int, n_test: int) -> tuple[float, float]:
    """Test MSE in float32 of Lemma 2's ReLU construction and of Lemma 1's bias-free linear
    construction for the same frozen weights (against ``x ↦ W̄_1 x``), both exact in exact
    arithmetic at ``rank ≥`` the threshold: float32 round-off alone.

    Introduced in :ref:`sec-lemma2-experiment`.
    """
    checks.instance(task, "task", Task, "a training.Task")
    rank = checks.integer(rank, "rank", low=1)
    x32 = task.test_set(checks.integer(n_test, "n_test", low=1))[0].float()
    relu = _as_float32(family("fnn").construct(task, rank))
    y32 = _as_float32(task.target)(x32)
    lin = linear.construct(task.target.weights[0], task.frozen.weights, rank)
    lin32 = _as_float32(FNN(task.frozen.weights, None, activation="identity", adapters=lin))
    mse_relu = float((relu(x32) - y32).double().square().mean())
    linear_target = x32 @ task.target.weights[0].float().T
    mse_lin = float((lin32(x32) - linear_target).double().square().mean())
    return mse_relu, mse_lin


class BiasRun(NamedTuple):
    """One depth: the threshold rank, the worst condition number of Assumption 1, and either the
    refusal of the construction or, for (re-centred, constant) biases, the round-off yardsticks
    ``roundoff_scale`` and the largest errors ``max|f − f̄|`` on box inputs.

    Introduced in :ref:`sec-fnn-depth`.
    """

    depth: int
    rank: int
    kappa: float
    refused: linalg.ExactnessError | None
    scales: tuple[float, float] | None
    errors: tuple[float, float] | None


def bias_rules_by_depth(
    depths: Sequence[int], width: int = 16, input_bound: float = 1.0, seed: int = 0, n: int = 500
) -> list[BiasRun]:
    """For each depth ``L``: a random one-layer target and depth-``L`` frozen FNN (seed ``seed``),
    the construction at ``R = ⌈D/L⌉`` for the box, and the same adapters with the paper's
    constant biases (:func:`~lora_theory.fnn.constant_biases`), on ``2n`` box inputs.

    Introduced in :ref:`sec-fnn-depth`.
    """
    seed = checks.integer(seed, "seed", low=0)
    rows = []
    for depth in checks.integers(depths, "depths", low=1):
        g = torch.Generator().manual_seed(seed)
        target, frozen = FNN.random(width, 1, g), FNN.random(width, depth, g)
        x, rank = fnn.box_sample(width, input_bound, n, g), math.ceil(width / depth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linear.ConditioningWarning)
            kappa = fnn.check_assumption(target, frozen, rank).worst.condition
            try:
                ours = fnn.construct(target, frozen, rank, input_bound)
            except linalg.ExactnessError as exc:
                rows.append(BiasRun(depth, rank, kappa, exc, None, None))
                continue
        nets = (ours, fnn.constant_biases(ours, target, input_bound))
        scales = tuple(f.roundoff_scale(x) for f in nets)
        errors = tuple(float((f(x) - target(x)).abs().max()) for f in nets)
        rows.append(BiasRun(depth, rank, kappa, None, scales, errors))
    return rows
