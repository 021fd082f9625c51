"""The table behind ``test_fuzz.py``: one valid call of every public callable of ``lora_theory``.

Each :class:`Spec` names a callable (``module.name``, or ``module.Class.method``), gives a factory
per argument that returns a fresh *valid* value, and optionally ``check(result, kwargs)``, which
verifies a returned result against the promise the function makes (for constructions: the
package's own residual and certificate functions). The fuzz replaces one argument at a time by
bad or unusual values derived from the valid one (``test_fuzz.mutations``); ``fixed`` arguments
are passed but never replaced (e.g. the instance of a method). ``extra`` adds argument-specific
mutations (inputs outside a bound's box, paths to bad files, …).

Everything is small (width ``D = 4``, a few layers, a few steps) so that the whole fuzz runs in
seconds. Valid values that take long to build (a certified region, a constructed Transformer, a
fit, PEFT models that are only read) are built once and shared between calls: no public function
mutates its arguments (one that did would change the outcomes of the calls after it).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lora_theory import (
    adapters,
    allocation,
    bounds,
    checks,
    conditioned,
    experiments,
    final_layers,
    fnn,
    instances,
    interop,
    linalg,
    linear,
    optimality,
    plotting,
    provenance,
    runtime,
    solves,
    sweeps,
    texttable,
    training,
    transformer,
    verification,
)
from lora_theory.allocation import practice
from lora_theory.experiments import annotate
from lora_theory.experiments.families import fnn as fnn_family
from lora_theory.experiments.families import tfn as tfn_family

D = 4
Factory = Callable[[], object]


@dataclass
class Spec:
    """One public callable, a valid value per argument, and how to check a returned result."""

    name: str
    func: Callable[..., object]
    args: dict[str, Factory] = field(default_factory=dict)
    check: Callable[[object, dict[str, object]], None] | None = None
    fixed: dict[str, Factory] = field(default_factory=dict)
    extra: dict[str, list[tuple[str, Factory]]] = field(default_factory=dict)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mat(seed: int = 0, width: int = D) -> torch.Tensor:
    """A well-conditioned ``(D, D)`` float64 matrix: identity plus a small random part."""
    return torch.eye(width, dtype=torch.float64) + 0.3 * torch.randn(
        width, width, generator=gen(seed), dtype=torch.float64
    )


def batch(seed: int = 0, n: int = 8, width: int = D, scale: float = 1.0) -> torch.Tensor:
    return scale * (2 * torch.rand(n, width, generator=gen(seed), dtype=torch.float64) - 1)


def net(depth: int, seed: int, **kw: object) -> fnn.FNN:
    return fnn.FNN.random(D, depth, gen(seed), **kw)


@functools.cache
def tfn_pair() -> tuple[transformer.TFN, transformer.TFN]:
    return transformer.planted_pair(D, 1, 1, 2, gen(3))


def tokens(n: int = 2, n_tokens: int = 3) -> torch.Tensor:
    return torch.randn(n, D, n_tokens, generator=gen(5), dtype=torch.float64)


def factors(rank: int = 1, seed: int = 1) -> adapters.LoRAFactors:
    g = gen(seed)
    b = torch.randn(D, rank, generator=g, dtype=torch.float64)
    return adapters.LoRAFactors(b, torch.randn(rank, D, generator=g, dtype=torch.float64))


# --- experiments and training values -------------------------------------------------------------

PANEL = experiments.Panel("p", target_depth=1, depth=2)


def task() -> training.Task:
    return experiments.random_task(PANEL, D, 0)


def tfn_task() -> training.Task:
    panel = experiments.Panel("t", 1, 1, family="tfn", options=(("heads", 1), ("tokens", 3)))
    return experiments.random_task(panel, D, 0)


def settings(**kw: object) -> training.FitSettings:
    base = {"steps": 2, "batch_size": 8, "n_val": 8, "n_test": 8, "chunk": 2}
    return training.FitSettings(**{**base, **kw})  # type: ignore[arg-type]


def run() -> training.Run:
    return training.Run(0, fnn_family.Trainable(lora_rank=1), 1e-2)


@functools.cache
def fit_result() -> training.FitResult:
    return training.fit([task()], [run()], settings(), stacked=fnn_family.FNNStack, workers=1)


def budget() -> experiments.Budget:
    return experiments.Budget(
        steps=2, seeds=(0,), lrs=(1e-2,), weight_decays=(0.0,), batch_size=8, n_val=8, n_test=8
    )


def experiment() -> experiments.Experiment:
    return experiments.Experiment(
        name="tiny",
        title="tiny",
        chapter="c",
        panels=(PANEL,),
        width=D,
        ranks=(1, 2),
        quick=budget(),
    )


def rows() -> list[experiments.Row]:
    return [
        experiments.Row("p", "construction", 1, 0, 0.5, 16),
        experiments.Row("p", "gradient", 1, 0, 0.25, 16),
        experiments.Row("p", "gradient", 2, 0, math.nan, 32),
    ]


def toy_family() -> experiments.Family:
    base = experiments.family("fnn")
    return experiments.Family(
        name="fuzz-toy",
        random_task=base.random_task,
        construct=base.construct,
        sweeps=base.sweeps,
        shape_key=base.shape_key,
        stacked=base.stacked,
        n_params=base.n_params,
        construction_spec=base.construction_spec,
        pretrain_spec=base.pretrain_spec,
        threshold=base.threshold,
    )


def register_once(family: object) -> object:
    """``experiments.register``, then unregister again so that every call starts clean."""
    out = experiments.register(family)  # type: ignore[arg-type]
    experiments.unregister(out.name)
    return out


def unregister_toy(name: object) -> None:
    """Register the toy family, then ``experiments.unregister(name)`` (and clean up)."""
    experiments.register(toy_family())
    try:
        experiments.unregister(name)  # type: ignore[arg-type]
    finally:
        experiments.FAMILIES.pop("fuzz-toy", None)


@functools.cache
def region() -> final_layers.Region:
    return final_layers.find_region(net(1, 1), net(2, 2), 1.0)


def seed_setting() -> allocation.SeedSetting:
    return allocation.seed_setting(gen(0), width=8)


def start(name: str = "standard") -> allocation.Start:
    return allocation.initialise(name, mat(0), mat(1), 2, gen(0))


def alloc_stack() -> allocation.Stack:
    return allocation.stack_starts([start(), start()])


def spectra() -> list[torch.Tensor]:
    return [torch.tensor([4.0, 2.0, 1.0]), torch.tensor([3.0, 0.5, 0.1])]


@functools.cache
def practice_task() -> practice.Task:
    return practice.spectrum_task([0.5, 0.8], gen(0), width=D)


def peft_lora() -> object:
    """A fresh PEFT model (``practice.fit`` trains the one it is given)."""
    return practice.peft_model(practice_task(), "lora", [1, 2])


@functools.cache
def peft_read() -> object:
    """A PEFT model for the functions that only read it."""
    return practice.peft_model(practice_task(), "lora", [1, 2])


@functools.cache
def peft_adalora() -> object:
    return practice.peft_model(practice_task(), "adalora", [2, 2], total_step=10)


@functools.cache
def tfn_adapted() -> transformer.TFN:
    return transformer.construct(*tfn_pair(), 1)


def csv_file(tmp: Path) -> Path:
    return experiments.write_csv(rows(), tmp / "rows.csv")


# --- checks of returned results (each raises AssertionError for a wrong answer) ------------------

RTOL = 10 * linalg.EXACT_RTOL


def norm2(m: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(m, 2))


def check_linear_construct(result: object, kw: dict[str, object]) -> None:
    """``‖∏(W_l + B_l A_l) − W̄‖₂`` equals Lemma 1's optimum ``min_error`` to the promised rtol."""
    target, frozen = linear.check_inputs(kw["target"], kw["frozen"])  # type: ignore[arg-type]
    achieved = norm2(linear.adapted_product(frozen, result) - target)  # type: ignore[arg-type]
    optimum = linear.min_error(target, frozen, kw["rank"])  # type: ignore[arg-type]
    scale = norm2(target) + norm2(linalg.product(frozen))
    assert abs(achieved - optimum) <= RTOL * scale, (achieved, optimum, scale)


def check_linear_construct_batch(result: object, kw: dict[str, object]) -> None:
    """Every (problem, rank) entry meets Lemma 1's optimum, as :func:`check_linear_construct`."""
    targets, frozen = kw["targets"], kw["frozen"]
    for i in range(result.B.shape[0]):  # type: ignore[attr-defined]
        for q, rank in enumerate(kw["ranks"]):  # type: ignore[arg-type]
            check_linear_construct(
                result.problem(i, q),  # type: ignore[attr-defined]
                {"target": targets[i], "frozen": list(frozen[i]), "rank": rank},  # type: ignore[index]
            )


def batch_problems() -> tuple[torch.Tensor, torch.Tensor]:
    """Two well-conditioned linear problems of depth 2: ``(2, D, D)`` targets, ``(2, 2, D, D)``."""
    return torch.stack([mat(9), mat(8)]), torch.stack([torch.stack([mat(1), mat(2)])] * 2)


def lu(seed: int = 1) -> solves.LUFactorization:
    return solves.LUFactorization.of("W", mat(seed))


def check_fnn_construct(result: object, kw: dict[str, object]) -> None:
    """The package's interval certificate holds for the returned network on its box."""
    fnn.certify(kw["target"], result, kw["input_bound"], kw["rank"], kw.get("partition"), RTOL)  # type: ignore[arg-type]


def check_tfn_construct(result: object, kw: dict[str, object]) -> None:
    transformer.certify(kw["target"], kw["frozen"], result, kw["rank"], RTOL)  # type: ignore[arg-type]


def check_linear_required_rank(result: object, kw: dict[str, object]) -> None:
    """At the required rank the optimum error ``σ_{RL+1}(E)`` is round-off (``0``: ``E`` itself
    is)."""
    assert isinstance(result, int) and result >= 0, result
    target, frozen = linear.check_inputs(kw["target"], kw["frozen"])  # type: ignore[arg-type]
    scale = norm2(target) + norm2(linalg.product(frozen))
    error = (
        linear.min_error(target, frozen, result)
        if result
        else norm2(target - linalg.product(frozen))
    )
    assert error <= RTOL * scale, (result, error, scale)


def check_theorem5_chain(result: object, kw: dict[str, object]) -> None:
    """Each inequality of Theorem 5's proof bounds the previous one, up to float64 round-off
    (``RTOL`` times the bound's own scale ``β Σ_i γ^{L̄−i} (1 + γ)``: at the threshold every bound
    is exactly 0 while the measured error is round-off)."""
    x = checks.tensor(kw["x"], "x")
    thm = bounds.theorem5_bound(
        kw["target"],
        kw["frozen"],
        kw["rank"],
        bounds.empirical_second_moment(x),  # type: ignore[arg-type]
    )
    depth = len(thm.block_errors)
    slack = RTOL * thm.beta * sum(thm.growth**k for k in range(depth)) * (1 + thm.growth)
    values = list(result)  # type: ignore[call-overload]
    for a, b in itertools.pairwise(values):
        assert a <= b + slack, (values, slack)


def check_optimal_ranks(result: object, kw: dict[str, object]) -> None:
    """The optimal allocation spends the budget no worse than the uniform one."""
    spectra_, budget_ = kw["spectra"], kw["budget"]
    objective = kw.get("objective", "frobenius")
    uniform = allocation.uniform_ranks(spectra_, budget_)  # type: ignore[arg-type]
    best = allocation.total_residual(spectra_, result, objective)  # type: ignore[arg-type]
    assert best <= allocation.total_residual(spectra_, uniform, objective) * (1 + 1e-12) + 1e-15  # type: ignore[arg-type]


# --- the table -----------------------------------------------------------------------------------

SUPPLIERS = {
    "linear": {"target": lambda: mat(9), "frozen": lambda: [mat(1), mat(2)], "rank": lambda: 1},
    "fnn": {"target": lambda: net(1, 1), "frozen": lambda: net(2, 2), "rank": lambda: 2},
}
LIN = SUPPLIERS["linear"]
FN = SUPPLIERS["fnn"]
TARGET_FROZEN = {"target": FN["target"], "frozen": FN["frozen"]}
TFN_PAIR = {"target": lambda: tfn_pair()[0], "frozen": lambda: tfn_pair()[1]}
#: The arguments of ``linalg.linear_problem`` and ``linalg.linear_pair`` (one signature).
LINEAR_PAIR = {
    "target": lambda: mat(0),
    "frozen": lambda: [mat(1), mat(2)],
    "dtype": lambda: torch.float64,
    "names": lambda: ("target", "frozen"),
}
SIGMA = {"second_moment": lambda: torch.eye(D, dtype=torch.float64)}
OUTSIDE_BOX = [("x-outside-box", lambda: batch(scale=3.0)), ("x-nan-row", lambda: batch() / 0)]


def specs(tmp: Path) -> list[Spec]:
    """Every fuzzed callable; ``tmp`` is a scratch folder for the file functions."""
    E = lambda: mat(4) - mat(5)  # noqa: E731
    return [
        # runtime
        Spec("runtime.set_seed", runtime.set_seed, {"seed": lambda: 3}),
        Spec("runtime.generator", runtime.generator, {"seed": lambda: 3, "stream": lambda: "s"}),
        Spec("runtime.check_mode", runtime.check_mode, {"value": lambda: "quick"}),
        Spec("runtime.mode", runtime.mode, {"override": lambda: "full"}),
        Spec("runtime.device", runtime.device, {"prefer": lambda: "cpu"}),
        Spec(
            "plotting.rendered_px",
            plotting.rendered_px,
            {
                "points": lambda: 10.0,
                "figure_width": lambda: 8.4,
                "column_px": lambda: 700.0,
                "dpi": lambda: 100.0,
            },
        ),
        Spec(
            "instances.box_corners",
            instances.box_corners,
            {"width": lambda: 3, "input_bound": lambda: 1.0},
        ),
        # checks
        Spec("checks.all_finite", checks.all_finite, {"t": lambda: mat()}),
        Spec(
            "checks.integer",
            checks.integer,
            {"value": lambda: 3, "name": lambda: "n", "low": lambda: 0, "high": lambda: 9},
        ),
        Spec(
            "checks.rank",
            checks.rank,
            {"value": lambda: 2, "name": lambda: "rank", "upper": lambda: 4, "low": lambda: 1},
        ),
        Spec(
            "checks.real",
            checks.real,
            {"value": lambda: 0.5, "name": lambda: "lr", "positive": lambda: True},
        ),
        Spec("checks.probability", checks.probability, {"value": lambda: 0.5, "name": lambda: "p"}),
        Spec(
            "checks.tensor",
            checks.tensor,
            {"x": lambda: mat(), "name": lambda: "x", "dtype": lambda: torch.float64},
        ),
        Spec(
            "checks.square",
            checks.square,
            {"x": lambda: mat(), "name": lambda: "W", "dtype": lambda: torch.float64},
        ),
        Spec(
            "checks.square_list",
            checks.square_list,
            {
                "mats": lambda: [mat(1), mat(2)],
                "name": lambda: "frozen",
                "dtype": lambda: torch.float64,
            },
        ),
        Spec(
            "checks.shape",
            checks.shape,
            {"t": lambda: mat(), "expected": lambda: (D, None), "name": lambda: "x"},
        ),
        Spec(
            "checks.choice",
            checks.choice,
            {
                "value": lambda: "relu",
                "name": lambda: "act",
                "options": lambda: ("relu", "identity"),
            },
        ),
        Spec("checks.elements", checks.elements, {"shape": lambda: (3, 4), "name": lambda: "x"}),
        Spec(
            "checks.dtype", checks.dtype, {"value": lambda: torch.float32, "name": lambda: "dtype"}
        ),
        Spec("checks.generator", checks.generator, {"value": lambda: gen(), "name": lambda: "g"}),
        Spec(
            "checks.sequence",
            checks.sequence,
            {
                "value": lambda: [1, 2],
                "name": lambda: "xs",
                "what": lambda: "items",
                "empty": lambda: False,
            },
        ),
        Spec(
            "checks.instances",
            checks.instances,
            {
                "items": lambda: [1, 2],
                "name": lambda: "xs",
                "kind": lambda: int,
                "what": lambda: "an int",
            },
        ),
        Spec(
            "checks.instance",
            checks.instance,
            {
                "value": lambda: 1,
                "name": lambda: "x",
                "kind": lambda: int,
                "what": lambda: "an int",
            },
        ),
        Spec("checks.path", checks.path, {"value": lambda: "out/fig1.csv", "name": lambda: "path"}),
        Spec(
            "checks.integers",
            checks.integers,
            {"value": lambda: [1, 2], "name": lambda: "ranks", "low": lambda: 0, "high": lambda: 9},
        ),
        Spec(
            "checks.reals",
            checks.reals,
            {"value": lambda: [0.5, 1.0], "name": lambda: "lrs", "empty": lambda: False},
        ),
        Spec("checks.matrix", checks.matrix, {"x": lambda: mat(), "name": lambda: "W"}),
        # linalg
        Spec(
            "linalg.ExactnessError",
            linalg.ExactnessError,
            {
                "message": lambda: "m",
                "achieved": lambda: 1.0,
                "optimum": lambda: 0.0,
                "allowed": lambda: 0.5,
            },
        ),
        Spec("linalg.exact_rtol", linalg.exact_rtol, {"dtype": lambda: torch.float32}),
        Spec(
            "linalg.check_exact",
            linalg.check_exact,
            {
                "where": lambda: "w",
                "achieved": lambda: 1.0,
                "optimum": lambda: 1.0,
                "scale": lambda: 1.0,
                "rtol": lambda: 1e-7,
            },
        ),
        Spec(
            "linalg.AssumptionError",
            lambda message: linalg.AssumptionError(message),
            {"message": lambda: "m"},
        ),
        Spec("linalg.product", linalg.product, {"mats": lambda: [mat(1), mat(2)]}),
        Spec(
            "linalg.linear_problem",
            linalg.linear_problem,
            LINEAR_PAIR,
        ),
        Spec(
            "linalg.linear_pair",
            linalg.linear_pair,
            LINEAR_PAIR,
        ),
        Spec("linalg.singular_values", linalg.singular_values, {"a": lambda: mat()}),
        Spec("linalg.sigma", linalg.sigma, {"a": lambda: mat(), "i": lambda: 2}),
        Spec(
            "linalg.difference_tol",
            lambda a, b: linalg.difference_tol(a, b),
            {"a": lambda: mat(1), "b": lambda: mat(2)},
        ),
        Spec(
            "linalg.numerical_rank",
            linalg.numerical_rank,
            {"a": lambda: mat(), "tol": lambda: 1e-9},
        ),
        Spec(
            "linalg.low_rank_approx", linalg.low_rank_approx, {"a": lambda: mat(), "r": lambda: 2}
        ),
        Spec("linalg.condition_number", linalg.condition_number, {"a": lambda: mat()}),
        Spec(
            "linalg.Conditioning",
            linalg.Conditioning,
            {"name": lambda: "W", "sigma_min": lambda: 0.5, "condition": lambda: 2.0},
        ),
        Spec(
            "linalg.Conditioning.of",
            linalg.Conditioning.of,
            {"name": lambda: "W", "a": lambda: mat()},
        ),
        # adapters
        Spec(
            "adapters.LoRAFactors",
            adapters.LoRAFactors,
            {"B": lambda: factors().B, "A": lambda: factors().A},
        ),
        Spec(
            "adapters.LoRAFactors.zeros",
            adapters.LoRAFactors.zeros,
            {"width": lambda: D, "dtype": lambda: torch.float32},
        ),
        Spec("adapters.LoRAFactors.delta", lambda f: f.delta(), fixed={"f": factors}),
        Spec("adapters.LoRAFactors.rank", lambda f: f.rank, fixed={"f": factors}),
        Spec(
            "adapters.LoRAFactors.merge",
            lambda f, weight: f.merge(weight),
            {"weight": lambda: mat()},
            fixed={"f": factors},
        ),
        Spec("adapters.LoRAFactors.n_params", lambda f: f.n_params, fixed={"f": factors}),
        Spec("adapters.LoRAFactors.balanced", lambda f: f.balanced, fixed={"f": factors}),
        Spec(
            "adapters.check_factors",
            adapters.check_factors,
            {"adapter": factors, "width": lambda: D, "name": lambda: "a"},
        ),
        Spec(
            "adapters.layer_ranks",
            adapters.layer_ranks,
            {"rank": lambda: [1, 2], "depth": lambda: 2, "width": lambda: D},
        ),
        Spec(
            "adapters.n_lora_params",
            adapters.n_lora_params,
            {"width": lambda: D, "ranks": lambda: [1, 2]},
        ),
        # linear
        Spec(
            "linear.ConditioningWarning",
            lambda message: linear.ConditioningWarning(message),
            {"message": lambda: "m"},
        ),
        Spec(
            "linear.check_inputs",
            linear.check_inputs,
            {"target": LIN["target"], "frozen": LIN["frozen"]},
        ),
        Spec(
            "linear.error_matrix",
            linear.error_matrix,
            {"target": LIN["target"], "frozen": LIN["frozen"]},
        ),
        Spec("linear.min_error", linear.min_error, dict(LIN)),
        Spec("linear.population_mse", linear.population_mse, dict(LIN)),
        Spec(
            "linear.required_rank",
            linear.required_rank,
            {"target": LIN["target"], "frozen": LIN["frozen"]},
            check_linear_required_rank,
        ),
        Spec(
            "linear.adapted_product",
            linear.adapted_product,
            {"frozen": LIN["frozen"], "adapters": lambda: [factors(1, 1), factors(2, 2)]},
        ),
        Spec(
            "linear.telescoping_terms",
            linear.telescoping_terms,
            {"frozen": LIN["frozen"], "deltas": lambda: [mat(3), mat(4)]},
        ),
        Spec(
            "linear.AssumptionReport",
            linear.AssumptionReport,
            {"frozen": lambda: (), "corrected": lambda: ()},
        ),
        Spec("linear.diagnose", linear.diagnose, dict(LIN)),
        Spec(
            "linear.construct",
            linear.construct,
            {**LIN, "dtype": lambda: torch.float64, "rtol": lambda: 1e-7},
            check_linear_construct,
        ),
        Spec("linear.construction_conditioning", linear.construction_conditioning, dict(LIN)),
        Spec(
            "linear.precision_check",
            linear.precision_check,
            {**LIN, "rank": lambda: 2, "digits": lambda: 30},
        ),
        Spec(
            "linear.relative_error",
            linear.relative_error,
            {
                "target": LIN["target"],
                "frozen": LIN["frozen"],
                "adapters": lambda: [factors(1, 1), factors(2, 2)],
            },
        ),
        Spec(
            "linear.gauss_newton",
            linear.gauss_newton,
            {
                "target": LIN["target"],
                "frozen": LIN["frozen"],
                "adapters": lambda: [factors(1, 1), factors(2, 2)],
                "steps": lambda: 1,
                "iterations": lambda: 8,
            },
        ),
        Spec(
            "linear.construct_batch",
            linear.construct_batch,
            {
                "targets": lambda: batch_problems()[0],
                "frozen": lambda: batch_problems()[1],
                "ranks": lambda: [1, [0, 2], D],
                "dtype": lambda: torch.float64,
                "rtol": lambda: 1e-7,
                "method": lambda: "auto",
            },
            check_linear_construct_batch,
        ),
        Spec(
            "linear.BatchedAdapters",
            linear.BatchedAdapters,
            {
                "B": lambda: torch.zeros(1, 1, 2, D, 1),
                "A": lambda: torch.zeros(1, 1, 2, 1, D),
                "inner": lambda: torch.ones(1, 1, 2, dtype=torch.long),
            },
        ),
        Spec(
            "linear.BatchedAdapters.problem",
            lambda i, q: linear.construct_batch(*batch_problems(), [1, 2]).problem(i, q),
            {"i": lambda: 1, "q": lambda: 1},
        ),
        Spec(
            "linear.BatchedAdapters.deltas",
            lambda: linear.construct_batch(*batch_problems(), [1]).deltas(),
            {},
        ),
        # solves
        Spec(
            "solves.LUFactorization",
            solves.LUFactorization,
            {
                "name": lambda: "W",
                "matrix": lambda: lu().matrix,
                "lu": lambda: lu().lu,
                "pivots": lambda: lu().pivots,
                "zero_pivot": lambda: lu().zero_pivot,
            },
        ),
        Spec(
            "solves.LUFactorization.of",
            solves.LUFactorization.of,
            {"name": lambda: "W", "a": lambda: mat()},
        ),
        Spec(
            "solves.LUFactorization.solve",
            lambda b, left: lu().solve(b, left),
            {"b": lambda: mat(3)[:, :2], "left": lambda: True},
        ),
        Spec("solves.LUFactorization.inverse_norm1", lambda: lu().inverse_norm1(), {}),
        Spec(
            "solves.conditioning",
            solves.conditioning,
            {"factorizations": lambda: [lu(1), lu(2)]},
        ),
        Spec("solves.norm2_lower", solves.norm2_lower, {"a": lambda: mat()}),
        # fnn
        Spec(
            "fnn.FNN",
            fnn.FNN,
            {
                "weights": lambda: [mat(1), mat(2)],
                "biases": lambda: [torch.ones(D), torch.zeros(D)],
                "activation": lambda: "relu",
                "adapters": lambda: [factors(1, 1), factors(1, 2)],
                "dtype": lambda: torch.float64,
            },
        ),
        Spec("fnn.FNN.__call__", lambda f, x: f(x), {"x": batch}, fixed={"f": lambda: net(2, 1)}),
        Spec(
            "fnn.FNN.hidden_states",
            lambda f, x: f.hidden_states(x),
            {"x": batch},
            fixed={"f": lambda: net(2, 1)},
        ),
        Spec(
            "fnn.FNN.roundoff_scale",
            lambda f, x: f.roundoff_scale(x),
            {"x": batch},
            fixed={"f": lambda: net(2, 1)},
        ),
        Spec(
            "fnn.FNN.merged",
            lambda f: f.merged(),
            fixed={"f": lambda: fnn.FNN([mat(1)], adapters=[factors()])},
        ),
        Spec(
            "fnn.FNN.random",
            fnn.FNN.random,
            {
                "width": lambda: D,
                "depth": lambda: 2,
                "generator": gen,
                "bias": lambda: True,
                "activation": lambda: "relu",
                "dtype": lambda: torch.float64,
            },
        ),
        Spec(
            "fnn.Assumption1Report",
            fnn.Assumption1Report,
            {"frozen": lambda: (), "corrected": lambda: (), "partition": lambda: ((0,),)},
        ),
        Spec(
            "fnn.Certificate",
            fnn.Certificate,
            {
                "bound": lambda: 0.0,
                "weight_error": lambda: (0.0,),
                "weight_optimum": lambda: (0.0,),
                "offset_error": lambda: (0.0,),
                "min_preactivation": lambda: (1.0,),
            },
        ),
        Spec(
            "fnn.AssumptionMargins",
            fnn.AssumptionMargins,
            {"sigma_min": lambda: torch.ones(2), "condition": lambda: torch.ones(2)},
        ),
        Spec(
            "fnn.Pair",
            fnn.Pair,
            {
                "target_weights": lambda: [mat(1)],
                "target_biases": lambda: [torch.zeros(D)],
                "frozen_weights": lambda: [mat(2)],
                "activation": lambda: "relu",
            },
        ),
        Spec(
            "fnn.ParameterCounts",
            fnn.ParameterCounts,
            {
                "rank": lambda: 1,
                "lora_weights": lambda: 8,
                "lora_biases": lambda: 4,
                "target_weights": lambda: 16,
                "target_biases": lambda: 4,
            },
        ),
        Spec(
            "fnn.PartitionChoice",
            fnn.PartitionChoice,
            {"partition": lambda: fnn.uniform_partition(2, 1), "rank": lambda: 1},
        ),
        Spec(
            "fnn.blocks_of",
            fnn.blocks_of,
            {"pair": lambda: fnn.check_pair(net(1, 1), net(2, 2)), "partition": lambda: [[0, 1]]},
        ),
        Spec(
            "fnn.box_image",
            fnn.box_image,
            {
                "g": lambda: mat(),
                "h": lambda: torch.zeros(D),
                "lo": lambda: -torch.ones(D),
                "hi": lambda: torch.ones(D),
            },
        ),
        Spec(
            "fnn.certify",
            fnn.certify,
            {
                "target": FN["target"],
                "adapted": lambda: fnn.construct(net(1, 1), net(2, 2), 2, 1.0),
                "input_bound": lambda: 1.0,
                "rank": lambda: 2,
                "partition": lambda: None,
                "rtol": lambda: 1e-7,
            },
        ),
        Spec("fnn.check_assumption", fnn.check_assumption, {**FN, "partition": lambda: [[0, 1]]}),
        Spec("fnn.check_pair", fnn.check_pair, dict(TARGET_FROZEN)),
        Spec(
            "fnn.check_partition",
            fnn.check_partition,
            {"partition": lambda: [[0], [1, 2]], "L": lambda: 3, "L_bar": lambda: 2},
        ),
        Spec(
            "fnn.construct",
            fnn.construct,
            {**FN, "input_bound": lambda: 1.0, "partition": lambda: None, "rtol": lambda: 1e-7},
            check_fnn_construct,
        ),
        Spec(
            "fnn.constant_biases",
            fnn.constant_biases,
            {
                "adapted": lambda: fnn.construct(net(1, 1), net(2, 2), 2, 1.0),
                "target": lambda: net(1, 1),
                "input_bound": lambda: 1.0,
            },
        ),
        Spec(
            "fnn.sample_calibrated_biases",
            fnn.sample_calibrated_biases,
            {
                "adapted": lambda: fnn.construct(net(1, 1), net(2, 2), 2, 1.0),
                "target": lambda: net(1, 1),
                "sample": batch,
            },
        ),
        Spec(
            "fnn.corollary4_threshold",
            fnn.corollary4_threshold,
            {"D": lambda: D, "L": lambda: 2, "L_bar": lambda: 1},
        ),
        Spec("fnn.discrepancies", fnn.discrepancies, {**TARGET_FROZEN, "partition": lambda: None}),
        Spec(
            "fnn.layer_ranks",
            fnn.layer_ranks,
            {"rank": lambda: 1, "depth": lambda: 2, "width": lambda: D},
        ),
        Spec(
            "fnn.lemma3_margins",
            fnn.lemma3_margins,
            {
                "width": lambda: D,
                "depth": lambda: 2,
                "target_depth": lambda: 1,
                "rank": lambda: 2,
                "n_draws": lambda: 2,
                "generator": gen,
            },
        ),
        Spec("fnn.optimal_partition", fnn.optimal_partition, dict(TARGET_FROZEN)),
        Spec(
            "fnn.parameter_counts",
            fnn.parameter_counts,
            {"D": lambda: D, "L": lambda: 2, "L_bar": lambda: 1, "rank": lambda: 1},
        ),
        Spec(
            "fnn.required_rank",
            fnn.required_rank,
            {**TARGET_FROZEN, "partition": lambda: None},
        ),
        Spec(
            "fnn.theorem5_ranks",
            fnn.theorem5_ranks,
            {"L": lambda: 4, "L_bar": lambda: 2, "rank": lambda: 1},
        ),
        Spec("fnn.uniform_partition", fnn.uniform_partition, {"L": lambda: 4, "L_bar": lambda: 2}),
        # instances (fnn re-exports them)
        Spec(
            "instances.box_sample",
            instances.box_sample,
            {"width": lambda: D, "input_bound": lambda: 1.0, "n": lambda: 3, "generator": gen},
        ),
        Spec(
            "instances.truncated_normal_sample",
            instances.truncated_normal_sample,
            {"width": lambda: D, "input_bound": lambda: 1.0, "n": lambda: 3, "generator": gen},
        ),
        Spec(
            "instances.flat_spectrum_target",
            instances.flat_spectrum_target,
            {**TARGET_FROZEN, "partition": lambda: None},
        ),
        Spec(
            "instances.PartitionExample",
            instances.PartitionExample,
            {**TARGET_FROZEN, "partition": lambda: fnn.uniform_partition(2, 1)},
        ),
        Spec(
            "instances.example_partition_gap",
            instances.example_partition_gap,
            {
                "generator": gen,
                "width": lambda: 6,
                "block_sizes": lambda: (1, 3),
                "discrepancy_ranks": lambda: None,
            },
        ),
        # bounds
        Spec("bounds.empirical_second_moment", bounds.empirical_second_moment, {"x": batch}),
        Spec("bounds.lemma2_bound", bounds.lemma2_bound, {**FN, **SIGMA}),
        Spec("bounds.lemma2_construction_bound", bounds.lemma2_construction_bound, {**FN, **SIGMA}),
        Spec(
            "bounds.SeedCounterexample",
            bounds.SeedCounterexample,
            {
                "measured": lambda: 1.0,
                "seed_claim": lambda: 0.5,
                "trace_bound": lambda: 2.0,
                "construction_bound": lambda: 1.5,
                "frobenius_bound": lambda: 1.8,
                "target": lambda: net(1, 1),
                "frozen": lambda: net(2, 2),
            },
        ),
        Spec(
            "bounds.seed_constant_counterexample",
            bounds.seed_constant_counterexample,
            {"generator": gen},
        ),
        Spec("bounds.theorem5_beta", bounds.theorem5_beta, {"target": FN["target"], **SIGMA}),
        Spec(
            "bounds.Theorem5Bound",
            bounds.Theorem5Bound,
            {"beta": lambda: 1.0, "block_errors": lambda: (0.5,), "growth": lambda: 2.0},
        ),
        Spec(
            "bounds.theorem5_bound",
            bounds.theorem5_bound,
            {**TARGET_FROZEN, "rank": lambda: 1, **SIGMA},
        ),
        Spec(
            "bounds.measured_error",
            bounds.measured_error,
            {
                "target": FN["target"],
                "adapted": lambda: net(1, 3),
                "x": batch,
                "squared": lambda: False,
            },
        ),
        Spec(
            "bounds.Theorem5Chain",
            bounds.Theorem5Chain,
            {
                "measured": lambda: 0.1,
                "lipschitz": lambda: 0.2,
                "worst_direction": lambda: 0.3,
                "frobenius": lambda: 0.4,
                "theorem5": lambda: 0.5,
            },
        ),
        Spec(
            "bounds.theorem5_chain",
            bounds.theorem5_chain,
            {**TARGET_FROZEN, "rank": lambda: 1, "x": batch, "input_bound": lambda: 1.0},
            check_theorem5_chain,
            extra={"x": OUTSIDE_BOX},
        ),
        # transformer
        Spec(
            "transformer.TFN",
            lambda **kw: transformer.TFN(**kw),
            {
                k: (lambda k=k: tfn_pair()[1].effective()[k])
                for k in ("w_q", "w_k", "w_v", "w_o", "w_1", "b_1", "w_2", "b_2", "w_out")
            },
        ),
        Spec(
            "transformer.TFN.__call__",
            lambda t, x: t(x),
            {"x": tokens},
            fixed={"t": lambda: tfn_pair()[0]},
        ),
        Spec(
            "transformer.TFN.scores",
            lambda t, x: t.scores(x),
            {"x": tokens},
            fixed={"t": lambda: tfn_pair()[0]},
        ),
        Spec(
            "transformer.TFN.effective", lambda t: t.effective(), fixed={"t": lambda: tfn_adapted()}
        ),
        Spec("transformer.TFN.merged", lambda t: t.merged(), fixed={"t": lambda: tfn_adapted()}),
        Spec(
            "transformer.TFN.random",
            transformer.TFN.random,
            {
                "width": lambda: D,
                "heads": lambda: 1,
                "depth": lambda: 1,
                "generator": gen,
                "dtype": lambda: torch.float64,
            },
        ),
        Spec(
            "transformer.TFNAdapters.named",
            lambda a: a.named(),
            fixed={"a": lambda: tfn_adapted().adapters},
        ),
        Spec(
            "transformer.TFNAdapters.n_params",
            lambda a: a.n_params(),
            fixed={"a": lambda: tfn_adapted().adapters},
        ),
        Spec(
            "transformer.Assumption4Report",
            transformer.Assumption4Report,
            {"weights": lambda: (), "problems": lambda: ()},
        ),
        Spec(
            "transformer.Certificate",
            transformer.Certificate,
            {
                "problems": lambda: (),
                "biases": lambda: (),
                "spot_error": lambda: 0.0,
                "spot_allowed": lambda: 1.0,
            },
        ),
        Spec(
            "transformer.SubProblem",
            transformer.SubProblem,
            {
                "name": lambda: "s",
                "block": lambda: 0,
                "head": lambda: 0,
                "kind": lambda: "qk",
                "first": lambda: mat(1),
                "second": lambda: mat(2),
                "target": lambda: mat(3),
            },
        ),
        Spec(
            "transformer.SubProblem.gap_rank",
            lambda s: s.gap_rank(),
            fixed={"s": lambda: transformer.subproblems(*tfn_pair())[0]},
        ),
        Spec(
            "transformer.TFNAdapters",
            lambda **kw: transformer.TFNAdapters(**kw),
            {
                k: (lambda k=k: getattr(tfn_adapted().adapters, k))
                for k in ("w_q", "w_k", "w_v", "w_o", "w_2", "w_out")
            },
        ),
        Spec("transformer.calibration", transformer.calibration, dict(TFN_PAIR)),
        Spec(
            "transformer.certify",
            transformer.certify,
            {**TFN_PAIR, "adapted": lambda: tfn_adapted(), "rank": lambda: 1, "rtol": lambda: 1e-7},
        ),
        Spec(
            "transformer.check_assumption",
            transformer.check_assumption,
            {**TFN_PAIR, "rank": lambda: 1},
        ),
        Spec("transformer.check_tfn_pair", transformer.check_tfn_pair, dict(TFN_PAIR)),
        Spec(
            "transformer.construct",
            transformer.construct,
            {**TFN_PAIR, "rank": lambda: 1, "rtol": lambda: 1e-7},
            check_tfn_construct,
        ),
        Spec("transformer.gaps", transformer.gaps, dict(TFN_PAIR)),
        Spec(
            "transformer.planted_pair",
            transformer.planted_pair,
            {
                "width": lambda: D,
                "heads": lambda: 1,
                "depth": lambda: 1,
                "gap": lambda: 2,
                "generator": gen,
            },
        ),
        Spec(
            "transformer.relative_error",
            transformer.relative_error,
            {"a": TFN_PAIR["target"], "b": TFN_PAIR["frozen"], "x": tokens},
        ),
        Spec("transformer.required_rank", transformer.required_rank, dict(TFN_PAIR)),
        Spec("transformer.subproblems", transformer.subproblems, dict(TFN_PAIR)),
        Spec("transformer.weight_conditioning", transformer.weight_conditioning, dict(TFN_PAIR)),
        # final_layers
        Spec(
            "final_layers.FinalLayerCounts",
            final_layers.FinalLayerCounts,
            {
                "width": lambda: D,
                "depth": lambda: 2,
                "layers": lambda: 1,
                "lora_rank": lambda: 1,
                "lora_weights": lambda: 16,
                "lora_biases": lambda: 8,
                "flt_weights": lambda: 16,
                "flt_biases": lambda: 4,
            },
        ),
        Spec(
            "final_layers.FinalLayerCounts.row",
            lambda c: c.row(),
            fixed={"c": lambda: final_layers.parameter_comparison(D, 2)},
        ),
        Spec(
            "final_layers.Region.pre_activation",
            lambda r, x: r.pre_activation(x),
            {"x": batch},
            fixed={"r": region},
        ),
        Spec(
            "final_layers.Region.contains",
            lambda r, x: r.contains(x),
            {"x": batch},
            fixed={"r": region},
        ),
        Spec(
            "final_layers.Region.sample",
            lambda r, n, generator: r.sample(n, generator),
            {"n": lambda: 3, "generator": gen},
            fixed={"r": region},
        ),
        Spec(
            "final_layers.RegionNotFoundError",
            lambda message: final_layers.RegionNotFoundError(message),
            {"message": lambda: "m"},
        ),
        Spec(
            "final_layers.certify_region",
            final_layers.certify_region,
            {"region": region, "target": lambda: net(1, 1), "frozen": lambda: net(2, 2)},
        ),
        Spec(
            "final_layers.find_region",
            final_layers.find_region,
            {
                "target": lambda: net(1, 1),
                "frozen": lambda: net(2, 2),
                "input_bound": lambda: 1.0,
                "n_candidates": lambda: 4,
                "generator": gen,
            },
        ),
        Spec(
            "final_layers.parameter_comparison",
            final_layers.parameter_comparison,
            {"D": lambda: D, "L": lambda: 2, "k": lambda: 1},
        ),
        # interop
        Spec(
            "interop.layer_names",
            interop.layer_names,
            {"depth": lambda: 2, "activation": lambda: "relu"},
        ),
        Spec(
            "interop.to_peft",
            interop.to_peft,
            {"net": lambda: fnn.construct(net(1, 1), net(2, 2), 2, 1.0)},
        ),
        Spec(
            "interop.from_peft",
            interop.from_peft,
            {"model": lambda: interop.to_peft(fnn.construct(net(1, 1), net(2, 2), 2, 1.0))},
        ),
        Spec(
            "interop.compare_training",
            interop.compare_training,
            {
                "task": task,
                "trainable": lambda: fnn_family.Trainable(lora_rank=1),
                "lr": lambda: 1e-2,
                "settings": settings,
                "weight_decay": lambda: 0.0,
            },
        ),
        # allocation
        Spec(
            "allocation.analyse_seed_proposal",
            allocation.analyse_seed_proposal,
            {"E": lambda: seed_setting().E, "R_total": lambda: 3},
        ),
        Spec(
            "allocation.approximation_errors",
            allocation.approximation_errors,
            {"E": E, "R_total": lambda: 2, "norm": lambda: "fro"},
        ),
        Spec(
            "allocation.columns_per_direction",
            allocation.columns_per_direction,
            {
                "B": lambda: allocation.seed_init(E(), 2).B,
                "U": lambda: torch.linalg.svd(E())[0],
                "tol": lambda: 1e-10,
            },
        ),
        Spec(
            "allocation.compare_allocations",
            allocation.compare_allocations,
            {"spectra": spectra, "budget": lambda: 3, "objective": lambda: "frobenius"},
        ),
        Spec(
            "allocation.definiteness",
            allocation.definiteness,
            {"M": lambda: torch.eye(D), "tol": lambda: 1e-12},
        ),
        Spec(
            "allocation.direction_gradients",
            allocation.direction_gradients,
            {
                "E": E,
                "factors": lambda: allocation.seed_init(E(), 2),
                "U": lambda: torch.linalg.svd(E())[0],
                "V": lambda: torch.linalg.svd(E())[2].T,
                "loss": lambda: "half",
                "kind": lambda: "weight",
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.factor_basis",
            allocation.factor_basis,
            {
                "columns": lambda: allocation.seed_init(E(), 2).B,
                "U": lambda: torch.linalg.svd(E())[0],
                "V": lambda: torch.linalg.svd(E())[2].T,
                "tol": lambda: 1e-10,
            },
        ),
        Spec(
            "allocation.gaussian_init",
            allocation.gaussian_init,
            {"width": lambda: D, "rank": lambda: 2, "generator": gen, "std": lambda: 0.1},
        ),
        Spec(
            "allocation.gradient_loss_correlation",
            allocation.gradient_loss_correlation,
            {
                "grad_norms": lambda: [1.0, 2.0, 3.0],
                "final_losses": lambda: [0.3, 0.2, 0.5],
                "log_loss": lambda: True,
            },
        ),
        Spec(
            "allocation.gradient_norm",
            allocation.gradient_norm,
            {
                "E": E,
                "factors": lambda: allocation.seed_init(E(), 2),
                "loss": lambda: "half",
                "wrt": lambda: "joint",
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.gradient_norm_table",
            allocation.gradient_norm_table,
            {"starts": lambda: {"standard": start()}, "alphas": lambda: (None, 2.0)},
        ),
        Spec(
            "allocation.gradients",
            allocation.gradients,
            {
                "E": E,
                "factors": lambda: allocation.seed_init(E(), 2),
                "loss": lambda: "half",
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.initialise",
            allocation.initialise,
            {
                "name": lambda: "standard",
                "frozen": lambda: mat(0),
                "target": lambda: mat(1),
                "rank": lambda: 2,
                "generator": gen,
                "std": lambda: None,
            },
        ),
        Spec(
            "allocation.is_symmetric",
            allocation.is_symmetric,
            {"M": lambda: torch.eye(D), "tol": lambda: 1e-12},
        ),
        Spec(
            "allocation.lora_scale",
            allocation.lora_scale,
            {"rank": lambda: 2, "alpha": lambda: 4.0},
        ),
        Spec("allocation.loss_floor", allocation.loss_floor, {"stack": alloc_stack}),
        Spec(
            "allocation.loss_value",
            allocation.loss_value,
            {
                "E": E,
                "factors": lambda: allocation.seed_init(E(), 2),
                "loss": lambda: "half",
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.optimal_ranks",
            allocation.optimal_ranks,
            {"spectra": spectra, "budget": lambda: 3, "objective": lambda: "frobenius"},
            check_optimal_ranks,
        ),
        Spec(
            "allocation.pissa_init",
            allocation.pissa_init,
            {"weight": lambda: mat(), "rank": lambda: 2},
        ),
        Spec(
            "allocation.random_orthogonal",
            allocation.random_orthogonal,
            {"width": lambda: D, "generator": gen},
        ),
        Spec(
            "allocation.residuals",
            allocation.residuals,
            {"spectra": spectra, "ranks": lambda: [1, 2], "objective": lambda: "frobenius"},
        ),
        Spec(
            "allocation.seed_formula_delta",
            allocation.seed_formula_delta,
            {"E": E, "R1": lambda: 1, "R2": lambda: 1},
        ),
        Spec("allocation.seed_init", allocation.seed_init, {"E": E, "rank": lambda: 2}),
        Spec("allocation.seed_init_v", allocation.seed_init_v, {"E": E, "rank": lambda: 2}),
        Spec(
            "allocation.seed_objective",
            allocation.seed_objective,
            {"E": E, "ranks": lambda: [1, 1]},
        ),
        Spec(
            "allocation.seed_objective_values",
            allocation.seed_objective_values,
            {"E": E, "R_total": lambda: 2},
        ),
        Spec(
            "allocation.seed_proposal",
            allocation.seed_proposal,
            {
                "U": lambda: torch.linalg.svd(E())[0],
                "S": lambda: torch.linalg.svd(E())[1],
                "R_total": lambda: 2,
            },
        ),
        Spec(
            "allocation.seed_setting",
            allocation.seed_setting,
            {"generator": gen, "width": lambda: 8, "sigma_1": lambda: 10.0, "decay": lambda: 0.7},
        ),
        Spec(
            "allocation.seed_uniform_init",
            allocation.seed_uniform_init,
            {"E": E, "rank": lambda: 2},
        ),
        Spec(
            "allocation.spectrum",
            allocation.spectrum,
            {"x": lambda: [3.0, 1.0], "name": lambda: "s"},
        ),
        Spec(
            "allocation.stack_starts",
            allocation.stack_starts,
            {"starts": lambda: [start(), start()]},
        ),
        Spec(
            "allocation.standard_init",
            allocation.standard_init,
            {"width": lambda: D, "rank": lambda: 2, "generator": gen, "std": lambda: 0.1},
        ),
        Spec(
            "allocation.total_residual",
            allocation.total_residual,
            {"spectra": spectra, "ranks": lambda: [1, 2], "objective": lambda: "frobenius"},
        ),
        Spec(
            "allocation.train",
            allocation.train,
            {
                "stack": alloc_stack,
                "method": lambda: "gd",
                "lr": lambda: 0.1,
                "steps": lambda: 3,
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.tune_step_size",
            allocation.tune_step_size,
            {
                "stack": alloc_stack,
                "method": lambda: "gd",
                "grid": lambda: [0.1, 0.01],
                "steps": lambda: 3,
                "alpha": lambda: None,
            },
        ),
        Spec(
            "allocation.uniform_ranks",
            allocation.uniform_ranks,
            {"spectra": spectra, "budget": lambda: 3},
        ),
        Spec(
            "allocation.Stack",
            allocation.Stack,
            {
                "residual": lambda: torch.zeros(1, D, D),
                "B": lambda: torch.zeros(1, D, 1),
                "A": lambda: torch.zeros(1, 1, D),
            },
        ),
        Spec(
            "allocation.practice.spectrum_task",
            practice.spectrum_task,
            {
                "decays": lambda: [0.5, 0.8],
                "generator": gen,
                "width": lambda: D,
                "sigma_1": lambda: 1.0,
            },
        ),
        Spec(
            "allocation.practice.ParallelLinear",
            practice.ParallelLinear,
            {"weights": lambda: [mat(1), mat(2)], "dtype": lambda: torch.float32},
        ),
        Spec(
            "allocation.practice.ParallelLinear.forward",
            lambda m, x, target: m(x, target),
            {"x": lambda: batch().float(), "target": lambda: torch.zeros(2, 8, D)},
            fixed={"m": lambda: practice.ParallelLinear([mat(1), mat(2)])},
        ),
        Spec("allocation.practice.layer_names", practice.layer_names, {"n_layers": lambda: 2}),
        Spec(
            "allocation.practice.peft_model",
            practice.peft_model,
            {
                "task": practice_task,
                "method": lambda: "lora",
                "ranks": lambda: [1, 2],
                "total_step": lambda: 10,
                "init_r": lambda: None,
            },
        ),
        Spec(
            "allocation.practice.effective_weights",
            practice.effective_weights,
            {"model": peft_read, "width": lambda: D},
        ),
        Spec(
            "allocation.practice.layer_losses",
            practice.layer_losses,
            {"model": peft_read, "task": practice_task},
        ),
        Spec("allocation.practice.adalora_ranks", practice.adalora_ranks, {"model": peft_adalora}),
        Spec(
            "allocation.practice.fit",
            practice.fit,
            {
                "model": peft_lora,
                "task": practice_task,
                "steps": lambda: 2,
                "lr": lambda: 1e-2,
                "adalora": lambda: False,
            },
        ),
        # training
        Spec(
            "training.BatchedAdam",
            training.BatchedAdam,
            {
                "param": lambda: torch.zeros(2, 3),
                "mask": lambda: torch.ones(2, 3, dtype=torch.bool),
                "lr": lambda: torch.full((2,), 0.1),
                "weight_decay": lambda: torch.zeros(2),
            },
        ),
        Spec(
            "training.BatchedAdam.step",
            lambda adam, grad, active: adam.step(grad, active),
            {
                "grad": lambda: torch.zeros(2, 3),
                "active": lambda: torch.tensor([True, False]),
            },
            fixed={
                "adam": lambda: training.BatchedAdam(
                    torch.zeros(2, 3),
                    torch.ones(2, 3, dtype=torch.bool),
                    torch.full((2,), 0.1),
                    torch.zeros(2),
                )
            },
        ),
        Spec(
            "training.FitSettings",
            training.FitSettings,
            {
                "steps": lambda: 2,
                "batch_size": lambda: 8,
                "n_val": lambda: 8,
                "n_test": lambda: 8,
                "eval_every": lambda: 1,
                "stop_ratio": lambda: 3.0,
                "init_std": lambda: 0.25,
                "train_stream": lambda: "train",
                "chunk": lambda: 2,
            },
        ),
        Spec(
            "training.Run",
            training.Run,
            {
                "task": lambda: 0,
                "trainable": lambda: fnn_family.Trainable(lora_rank=1),
                "lr": lambda: 1e-2,
                "weight_decay": lambda: 0.0,
            },
        ),
        Spec(
            "training.Task",
            training.Task,
            {
                "target": lambda: net(1, 1),
                "frozen": lambda: net(2, 2),
                "seed": lambda: 0,
                "input_shape": lambda: (D,),
            },
        ),
        Spec(
            "training.Task.sample",
            lambda t, shape, gen: t.sample(shape, gen),
            {"shape": lambda: (2, 3), "gen": gen},
            fixed={"t": task},
        ),
        Spec(
            "training.Task.test_set",
            lambda t, n: t.test_set(n),
            {"n": lambda: 3},
            fixed={"t": task},
        ),
        Spec(
            "training.fit",
            training.fit,
            {
                "tasks": lambda: [task()],
                "runs": lambda: [run()],
                "settings": settings,
                "stacked": lambda: fnn_family.FNNStack,
                "device": lambda: "cpu",
                "dtype": lambda: torch.float64,
                "progress": lambda: None,
                "workers": lambda: 1,
            },
        ),
        Spec(
            "training.FitResult.model",
            lambda r, i: r.model(i),
            {"i": lambda: 0},
            fixed={"r": fit_result},
        ),
        Spec(
            "training.generator", training.generator, {"seed": lambda: 0, "stream": lambda: "train"}
        ),
        Spec(
            "training.lora_init",
            training.lora_init,
            {
                "task": task,
                "rank": lambda: 1,
                "r_max": lambda: 2,
                "shape": lambda: (2, D),
                "init_std": lambda: 0.25,
            },
        ),
        Spec(
            "training.select_by_validation",
            training.select_by_validation,
            {"keys": lambda: ["a", "b", "a"], "val_loss": lambda: [0.3, 0.2, 0.1]},
        ),
        # experiments
        Spec(
            "experiments.Budget",
            experiments.Budget,
            {
                "steps": lambda: 2,
                "seeds": lambda: (0, 1),
                "lrs": lambda: (1e-2,),
                "weight_decays": lambda: (0.0,),
                "batch_size": lambda: 8,
                "n_val": lambda: 8,
                "n_test": lambda: 8,
                "eval_every": lambda: 1,
            },
        ),
        Spec(
            "experiments.Experiment",
            experiments.Experiment,
            {
                "name": lambda: "tiny",
                "title": lambda: "t",
                "chapter": lambda: "c",
                "panels": lambda: (PANEL,),
                "width": lambda: D,
                "ranks": lambda: (1, 2),
                "quick": budget,
                "quick_ranks": lambda: (1,),
            },
        ),
        Spec(
            "experiments.Budget.describe",
            lambda b, mode: b.describe(mode),
            {"mode": lambda: "quick"},
            fixed={"b": budget},
        ),
        Spec(
            "experiments.Experiment.budget",
            lambda e, mode: e.budget(mode),
            {"mode": lambda: "quick"},
            fixed={"e": experiment},
        ),
        Spec(
            "experiments.Experiment.in_mode",
            lambda e, mode: e.in_mode(mode),
            {"mode": lambda: "full"},
            fixed={"e": experiment},
        ),
        Spec(
            "experiments.Family",
            experiments.Family,
            {
                "name": lambda: "fuzz-toy",
                **{
                    k: (lambda k=k: getattr(toy_family(), k))
                    for k in (
                        "random_task",
                        "construct",
                        "sweeps",
                        "shape_key",
                        "stacked",
                        "n_params",
                        "construction_spec",
                        "pretrain_spec",
                        "threshold",
                    )
                },
            },
        ),
        Spec(
            "experiments.Panel",
            experiments.Panel,
            {
                "name": lambda: "p",
                "target_depth": lambda: 1,
                "depth": lambda: 2,
                "family": lambda: "fnn",
                "bias": lambda: True,
                "tune_bias": lambda: True,
                "pretrained": lambda: False,
                "methods": lambda: ("construction", "gradient"),
                "options": lambda: (),
            },
        ),
        Spec(
            "experiments.Panel.option",
            lambda p, name, default: p.option(name, default),
            {"name": lambda: "heads", "default": lambda: 2},
            fixed={"p": lambda: PANEL},
        ),
        Spec(
            "experiments.Panel.layer_ranks",
            lambda p, rank, width: p.layer_ranks(rank, width),
            {"rank": lambda: 2, "width": lambda: D},
            fixed={"p": lambda: PANEL},
        ),
        Spec(
            "experiments.Panel.threshold",
            lambda p, width: p.threshold(width),
            {"width": lambda: D},
            fixed={"p": lambda: PANEL},
        ),
        Spec(
            "experiments.Row",
            experiments.Row,
            {
                "panel": lambda: "p",
                "method": lambda: "gradient",
                "rank": lambda: 1,
                "seed": lambda: 0,
                "test_mse": lambda: 0.5,
                "n_params": lambda: 16,
            },
        ),
        Spec("experiments.budget", experiments.budget, {"mode": lambda: "quick"}),
        Spec("experiments.experiment", experiments.experiment, {"name": lambda: "fig1"}),
        Spec("experiments.family", experiments.family, {"name": lambda: "fnn"}),
        Spec(
            "experiments.median_curve",
            experiments.median_curve,
            {"rows": rows, "panel": lambda: "p", "method": lambda: "gradient", "x": lambda: "rank"},
        ),
        Spec(
            "experiments.plot_mse_vs_rank",
            experiments.plot_mse_vs_rank,
            {
                "rows": rows,
                "panels": lambda: ["p"],
                "threshold": lambda: 2,
                "x": lambda: "rank",
                "titles": lambda: {"p": "P"},
                "axes": lambda: None,
            },
        ),
        Spec(
            "experiments.random_task",
            experiments.random_task,
            {"panel": lambda: PANEL, "width": lambda: D, "seed": lambda: 0},
        ),
        Spec(
            "experiments.read_csv",
            experiments.read_csv,
            {"path": lambda: csv_file(tmp)},
            extra={
                "path": [
                    ("missing", lambda: tmp / "nowhere.csv"),
                    ("folder", lambda: tmp),
                    ("binary", lambda: bad_file(tmp, b"\xff\xfe\x00")),
                    (
                        "truncated",
                        lambda: bad_file(
                            tmp, b"panel,method,rank,seed,test_mse,n_params\np,gradient,1"
                        ),
                    ),
                ]
            },
        ),
        Spec("experiments.register", register_once, {"family": toy_family}),
        Spec(
            "experiments.run",
            experiments.run,
            {
                "experiment": experiment,
                "mode": lambda: "quick",
                "budget": budget,
                "device": lambda: "cpu",
                "progress": lambda: False,
            },
        ),
        Spec("experiments.unregister", unregister_toy, {"name": lambda: "fuzz-toy"}),
        Spec(
            "experiments.write_csv",
            experiments.write_csv,
            {"rows": rows, "path": lambda: tmp / "out.csv"},
            extra={
                "path": [("folder", lambda: tmp), ("under-a-file", lambda: csv_file(tmp) / "x.csv")]
            },
        ),
        # families
        Spec(
            "families.fnn.Trainable",
            fnn_family.Trainable,
            {"lora_rank": lambda: 1, "tune_bias": lambda: True, "final_layers": lambda: 1},
        ),
        Spec(
            "families.fnn.Trainable.check",
            lambda s, width, depth, bias: s.check(width, depth, bias),
            {"width": lambda: D, "depth": lambda: 2, "bias": lambda: True},
            fixed={"s": lambda: fnn_family.Trainable(lora_rank=1)},
        ),
        Spec(
            "families.fnn.Trainable.n_params",
            lambda s, width, depth, bias: s.n_params(width, depth, bias),
            {"width": lambda: D, "depth": lambda: 2, "bias": lambda: True},
            fixed={"s": lambda: fnn_family.Trainable(lora_rank=1)},
        ),
        Spec(
            "families.fnn.Trainable.layer_ranks",
            lambda s, depth: s.layer_ranks(depth),
            {"depth": lambda: 2},
            fixed={"s": lambda: fnn_family.Trainable(lora_rank=(1, 2))},
        ),
        Spec(
            "families.fnn.FNNStack.build",
            fnn_family.FNNStack.build,
            {
                "tasks": lambda: [task()],
                "runs": lambda: [run()],
                "init_std": lambda: 0.25,
                "dev": lambda: torch.device("cpu"),
                "dtype": lambda: torch.float64,
            },
        ),
        Spec(
            "families.fnn.random_task",
            fnn_family.random_task,
            {"panel": lambda: PANEL, "width": lambda: D, "seed": lambda: 0},
        ),
        Spec(
            "families.fnn.linear_construction",
            fnn_family.linear_construction,
            {
                "task": lambda: experiments.random_task(
                    experiments.experiment("fig1").panels[0], D, 0
                ),
                "rank": lambda: 1,
            },
        ),
        Spec(
            "families.fnn.fnn_construction",
            fnn_family.fnn_construction,
            {"task": task, "rank": lambda: 2},
        ),
        Spec(
            "families.tfn.TFNTrainable",
            tfn_family.TFNTrainable,
            {"lora_rank": lambda: 1, "tune_bias": lambda: True, "full": lambda: False},
        ),
        Spec(
            "families.tfn.TFNTrainable.n_params",
            lambda s, width, depth, heads: s.n_params(width, depth, heads),
            {"width": lambda: D, "depth": lambda: 1, "heads": lambda: 1},
            fixed={"s": lambda: tfn_family.TFNTrainable(lora_rank=1)},
        ),
        Spec(
            "families.tfn.TFNStack.build",
            tfn_family.TFNStack.build,
            {
                "tasks": lambda: [tfn_task()],
                "runs": lambda: [training.Run(0, tfn_family.TFNTrainable(lora_rank=1), 1e-2)],
                "init_std": lambda: 0.25,
                "dev": lambda: torch.device("cpu"),
                "dtype": lambda: torch.float64,
            },
        ),
        Spec(
            "families.tfn.random_task",
            tfn_family.random_task,
            {
                "panel": lambda: experiments.Panel(
                    "t", 1, 1, family="tfn", options=(("heads", 1), ("tokens", 3))
                ),
                "width": lambda: D,
                "seed": lambda: 0,
            },
        ),
        Spec(
            "families.tfn.construction",
            tfn_family.construction,
            {"task": tfn_task, "rank": lambda: 2},
        ),
        # plotting
        Spec("plotting.method_style", plotting.method_style, {"method": lambda: "gradient"}),
        *verification_specs(),
        *sweep_specs(),
        *page_specs(),
    ]


def bad_file(tmp: Path, content: bytes) -> Path:
    path = tmp / f"bad-{len(content)}.csv"
    path.write_bytes(content)
    return path


# --- the conditioned construction, the verifications, the sweeps and the page helpers ----------

#: L-BFGS iterations of the conditioned construction in the fuzz (the default is 100).
REFINE_STEPS = 3
#: Slack on the conditioned construction's round-off estimate ``D ε · roundoff_amplification``.
AMPLIFICATION_SLACK = 100
BOUNDS = [0, 2, D]


def check_conditioned(result: object, kw: dict[str, object]) -> None:
    """``∏(W_l + B_l A_l) = W̄`` (measured in float64, relative to ``‖W̄‖₂``) to
    ``AMPLIFICATION_SLACK · D ε`` times the module's round-off amplification, ``ε`` the machine
    epsilon of the factors' dtype."""
    target = checks.square(kw["wbar"], "wbar")
    frozen = checks.square_list(kw["ws"], "ws")  # type: ignore[arg-type]
    width = target.shape[0]
    eps = torch.finfo(result[0].B.dtype).eps  # type: ignore[index]
    pairs = [adapters.check_factors(f, width, "factors") for f in result]  # type: ignore[attr-defined]
    amp = conditioned.roundoff_amplification(target, frozen, pairs)
    error = norm2(linear.adapted_product(frozen, pairs) - target) / norm2(target)
    allowed = AMPLIFICATION_SLACK * width * eps * max(amp, 1.0)
    assert error <= allowed, (error, allowed, amp)


def check_conditioned_adapters(result: object, kw: dict[str, object]) -> None:
    check_conditioned(result, kw)
    widths = [b - a for a, b in itertools.pairwise(kw["bounds"])]  # type: ignore[call-overload]
    assert [f.inner_dim for f in result] == widths, (result, widths)  # type: ignore[attr-defined]


def check_conditioned_construct(result: object, kw: dict[str, object]) -> None:
    factors_, record = result  # type: ignore[misc]
    check_conditioned(factors_, kw)
    assert all(f.inner_dim <= r for f, r in zip(factors_, kw["ranks"], strict=True)), factors_  # type: ignore[call-overload]
    assert set(record) == {"W̄"}, record


def check_unit_off(result: object, kw: dict[str, object]) -> None:
    """The reported loss is ``‖W̄_1 − W'_2 P_j W'_1‖_F²`` of the returned adapters (finite)."""
    frozen, target = kw["frozen"], kw["target"]
    (w1, w2), wbar = frozen.effective_weights, target.weights[0]  # type: ignore[attr-defined]
    f1, f2 = result.adapters  # type: ignore[attr-defined]
    keep = torch.ones(wbar.shape[0], dtype=torch.float64)
    keep[result.unit] = 0  # type: ignore[attr-defined]
    product_ = f2.merge(w2).double() @ torch.diag(keep) @ f1.merge(w1).double()
    loss = float((product_ - wbar.double()).square().sum())
    assert math.isfinite(result.loss), result  # type: ignore[attr-defined]
    assert math.isclose(loss, result.loss, rel_tol=1e-6, abs_tol=1e-12), (loss, result)  # type: ignore[attr-defined]


def check_local_fit(result: object, kw: dict[str, object]) -> None:
    """No local fit beats Eckart–Young: every value is finite and at least ``Σ_{i>r} σ_i²(A)``."""
    a = checks.square(kw["a"], "a")
    tail = float(linalg.singular_values(a)[kw["rank"] :].square().sum())  # type: ignore[misc]
    for value in result:  # type: ignore[attr-defined]
        assert math.isfinite(value) and value >= tail * (1 - RTOL) - RTOL * norm2(a) ** 2, (
            value,
            tail,
        )


def check_rivals(result: object, kw: dict[str, object]) -> None:
    """``best`` is Eckart–Young's ``σ_{r+1}(A)`` and every excess is finite."""
    a = checks.square(kw["a"], "a")
    optimum = float(linalg.sigma(a, kw["rank"] + 1)) if kw["rank"] < a.shape[0] else 0.0  # type: ignore[operator]
    assert abs(result.best - optimum) <= RTOL * norm2(a), (result, optimum)  # type: ignore[attr-defined]
    assert all(math.isfinite(v) for v in result.excess.values()), result  # type: ignore[attr-defined]


@functools.cache
def conditioned_factors() -> list[adapters.LoRAFactors]:
    return conditioned.adapters(mat(9), [mat(1), mat(2)], BOUNDS, REFINE_STEPS)


@functools.cache
def unit_off() -> optimality.UnitOff:
    return optimality.unit_off_fit(net(2, 2), net(1, 1), 0, 1)


def rank_one_target() -> fnn.FNN:
    """A ``D = 2`` one-layer target of rank one: a unit-off network reaches it exactly, so the
    local fits of :func:`~lora_theory.optimality.best_unit_off` stop early."""
    weight = torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=torch.float64)
    return fnn.FNN([weight], [torch.zeros(2, dtype=torch.float64)])


def adapted_net() -> fnn.FNN:
    return fnn.construct(net(1, 1), net(2, 2), 2, 1.0)


def verification_specs() -> list[Spec]:
    """The conditioned construction, :mod:`~lora_theory.verification` and
    :mod:`~lora_theory.optimality`."""
    return [
        Spec(
            "conditioned.adapters",
            conditioned.adapters,
            {
                "wbar": lambda: mat(9),
                "ws": lambda: [mat(1), mat(2)],
                "bounds": lambda: list(BOUNDS),
                "steps": lambda: REFINE_STEPS,
                "accept": lambda: lambda adapters: False,
            },
            check_conditioned_adapters,
        ),
        Spec(
            "conditioned.construct",
            conditioned.construct,
            {
                "wbar": lambda: mat(9),
                "ws": lambda: [mat(1), mat(2)],
                "ranks": lambda: [2, 2],
                "steps": lambda: REFINE_STEPS,
                "accept": lambda: lambda adapters: False,
            },
            check_conditioned_construct,
        ),
        Spec(
            "conditioned.roundoff_amplification",
            conditioned.roundoff_amplification,
            {
                "target": lambda: mat(9),
                "frozen": lambda: [mat(1), mat(2)],
                "adapters": lambda: list(conditioned_factors()),
            },
        ),
        Spec(
            "verification.Exactness",
            verification.Exactness,
            {"error": lambda: 1e-16, "tolerance": lambda: 1e-15},
        ),
        Spec(
            "verification.Exactness.matches",
            lambda e, expected, margin: e.matches(expected, margin),
            {"expected": lambda: True, "margin": lambda: 1e-3},
            fixed={"e": lambda: verification.Exactness(1e-16, 1e-15)},
        ),
        Spec(
            "verification.exactness",
            verification.exactness,
            {"adapted": adapted_net, "target": FN["target"], "x": batch},
        ),
        Spec(
            "verification.allocation_check",
            verification.allocation_check,
            {
                **TARGET_FROZEN,
                "ranks": lambda: 2,
                "x": batch,
                "input_bound": lambda: 1.0,
                "partition": lambda: None,
            },
        ),
        Spec(
            "verification.theorem3_check",
            verification.theorem3_check,
            {
                "depth": lambda: 2,
                "target_depth": lambda: 1,
                "seed": lambda: 0,
                "width": lambda: D,
                "n": lambda: 4,
            },
        ),
        Spec(
            "verification.deep_block",
            verification.deep_block,
            {
                "frozen_weights": lambda: [mat(1), mat(2)],
                "generator": gen,
                "method": lambda: "auto",
            },
        ),
        Spec(
            "verification.orthogonal_layers",
            verification.orthogonal_layers,
            {"width": lambda: D, "depth": lambda: 2, "generator": gen},
        ),
        Spec(
            "verification.state_bounds",
            verification.state_bounds,
            {"target": FN["target"], **SIGMA},
        ),
        Spec(
            "verification.rank_sweep",
            verification.rank_sweep,
            {**TARGET_FROZEN, "x": batch, "input_bound": lambda: 1.0},
        ),
        Spec(
            "verification.deficit_in_block",
            verification.deficit_in_block,
            {
                **TARGET_FROZEN,
                "x": batch,
                "block": lambda: 0,
                "rank": lambda: 1,
                "input_bound": lambda: 1.0,
            },
        ),
        Spec(
            "verification.spectral_bound",
            verification.spectral_bound,
            {**TARGET_FROZEN, "rank": lambda: 1, "x": batch},
        ),
        Spec(
            "optimality.perturbation_rivals",
            optimality.perturbation_rivals,
            {
                "a": lambda: mat(),
                "rank": lambda: 1,
                "scales": lambda: [0.1, 1.0],
                "trials": lambda: 2,
                "generator": gen,
            },
            check_rivals,
        ),
        Spec(
            "optimality.local_low_rank_fit",
            optimality.local_low_rank_fit,
            {"a": lambda: mat(), "rank": lambda: 1, "starts": lambda: [0]},
            check_local_fit,
        ),
        Spec(
            "optimality.unit_off_fit",
            optimality.unit_off_fit,
            {
                "frozen": FN["frozen"],
                "target": FN["target"],
                "unit": lambda: 0,
                "steps": lambda: 1,
            },
            check_unit_off,
        ),
        Spec(
            "optimality.best_unit_off",
            optimality.best_unit_off,
            {"frozen": lambda: fnn.FNN.random(2, 2, gen(2)), "target": rank_one_target},
            check_unit_off,
        ),
        Spec(
            "optimality.unit_off_network",
            optimality.unit_off_network,
            {
                "frozen": FN["frozen"],
                "target": FN["target"],
                "fit": unit_off,
                "input_bound": lambda: 1.0,
            },
        ),
    ]


def sweep_specs() -> list[Spec]:
    """:mod:`~lora_theory.sweeps`: one depth, one seed, one or two ranks, ``D = 4``."""
    return [
        Spec(
            "sweeps.lemma1_gaps",
            sweeps.lemma1_gaps,
            {"depth": lambda: 2, "ranks": lambda: [1], "seeds": lambda: [0], "width": lambda: D},
        ),
        Spec(
            "sweeps.conditioning_by_depth",
            sweeps.conditioning_by_depth,
            {
                "depths": lambda: [2],
                "seeds": lambda: [0],
                "width": lambda: D,
                "scale": lambda: 0.25,
            },
        ),
        Spec(
            "sweeps.population_deviations",
            sweeps.population_deviations,
            {
                "panel": lambda: experiments.experiment("fig1").panels[0],
                "seeds": lambda: [0],
                "n_test": lambda: 8,
                "ranks": lambda: [1],
                "width": lambda: D,
            },
        ),
        Spec(
            "sweeps.exact_on_box",
            sweeps.exact_on_box,
            {
                "width": lambda: D,
                "depth": lambda: 2,
                "seed": lambda: 0,
                "input_bound": lambda: 1.0,
                "n": lambda: 4,
            },
        ),
        Spec(
            "sweeps.outside_box",
            sweeps.outside_box,
            {
                "adapted": adapted_net,
                "target": FN["target"],
                "x": batch,
                "scales": lambda: [1.0, 2.0],
            },
        ),
        Spec(
            "sweeps.lemma2_table",
            sweeps.lemma2_table,
            {**TARGET_FROZEN, "x": batch, "ranks": lambda: [1], "input_bound": lambda: 1.0},
        ),
        Spec(
            "sweeps.float32_residuals",
            sweeps.float32_residuals,
            {"task": task, "rank": lambda: 2, "n_test": lambda: 8},
        ),
        Spec(
            "sweeps.bias_rules_by_depth",
            sweeps.bias_rules_by_depth,
            {
                "depths": lambda: [2],
                "width": lambda: D,
                "input_bound": lambda: 1.0,
                "seed": lambda: 0,
                "n": lambda: 4,
            },
        ),
    ]


def page_specs() -> list[Spec]:
    """:mod:`~lora_theory.texttable`, :mod:`~lora_theory.provenance` and the figure annotations
    (the formatter factories are fuzzed together with one call of the formatter they return)."""
    return [
        Spec(
            "texttable.format_table",
            texttable.format_table,
            {
                "header": lambda: ["case", "R", "error"],
                "rows": lambda: [["a", 1, 0.25], ["b", 2, None]],
                "formats": lambda: ["", "d", ".1e"],
                "width": lambda: 40,
            },
        ),
        Spec("texttable.wrap", texttable.wrap, {"text": lambda: "a b c d e f", "width": lambda: 6}),
        Spec(
            "texttable.span",
            texttable.span,
            {"values": lambda: [3e-14, 1e-13], "spec": lambda: ".0e"},
        ),
        Spec(
            "texttable.inline",
            texttable.inline,
            {
                "pairs": lambda: [("R=1", 0.5), ("R=2", 0.25)],
                "fmt": lambda: ".1e",
                "sep": lambda: "   ",
                "width": lambda: 30,
            },
        ),
        Spec(
            "texttable.below",
            lambda floor, fmt, value: texttable.below(floor, fmt)(value),
            {"floor": lambda: 1e-10, "fmt": lambda: ".1e", "value": lambda: 0.5},
        ),
        Spec(
            "texttable.joined",
            lambda fmt, sep, values: texttable.joined(fmt, sep)(values),
            {"fmt": lambda: "g", "sep": lambda: " ", "values": lambda: (0.01, 0.001)},
        ),
        Spec("provenance.installed", provenance.installed, {"distribution": lambda: "torch"}),
        Spec("provenance.software", provenance.software),
        Spec("provenance.hardware", provenance.hardware),
        Spec("provenance.run_mode", provenance.run_mode),
        Spec(
            "experiments.annotate.describe",
            annotate.describe,
            {"budget": budget, "label": lambda: "quick: "},
        ),
        Spec(
            "experiments.annotate.glue_caption",
            annotate.glue_caption,
            {"name": lambda: "fuzz-caption", "text": lambda: "2 Adam steps"},
        ),
    ]
