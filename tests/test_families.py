"""The family registry: a toy family declared in this file only runs end to end through
``experiments.run`` — a new chapter joins the engine without editing it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pytest
import torch

from lora_theory import experiments
from lora_theory.experiments import FAMILIES, Budget, Experiment, Family, Panel
from lora_theory.experiments.families.fnn import FNNStack, Trainable
from lora_theory.runtime import generator
from lora_theory.training import FitSettings, Run, Stacked, Task, fit

WIDTH = 6


@dataclasses.dataclass(frozen=True)
class Diagonal:
    """``x ↦ d ⊙ x`` on ``(n, D)``; an "adapter" changes the first ``rank`` entries of ``d``."""

    d: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.d


class DiagonalStack(Stacked):
    """``C`` diagonal models: frozen ``d`` ``(C, D)`` and a trainable change ``delta`` ``(C, D)``
    whose first ``rank`` entries are free; gradients from the engine's generic autograd path."""

    @classmethod
    def build(cls, tasks, runs, init_std, dev, dtype):
        d = torch.stack([tasks[r.task].frozen.d for r in runs])
        free = torch.arange(WIDTH) < torch.tensor([r.trainable for r in runs])[:, None]
        tensors = {"d": d, "delta": torch.zeros_like(d)}
        return cls(
            tensors, {"d": torch.zeros(1, 1, dtype=torch.bool), "delta": free}, runs, dev, dtype
        )

    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return x * (params["d"] + params["delta"])[:, None, :]

    @staticmethod
    def model(task: Task, run: Run, params: Mapping[str, torch.Tensor]) -> Diagonal:
        return Diagonal(params["d"] + params["delta"])


def diagonal_task(panel: Panel, width: int, seed: int) -> Task:
    gen = generator(seed, "model")
    target = torch.randn(width, generator=gen, dtype=torch.float64)
    frozen = target.clone()
    frozen[: panel.depth] += 1.0  # the first L entries differ: the threshold is L
    return Task(Diagonal(target), Diagonal(frozen), seed, (width,))


def diagonal_construction(task: Task, rank: int) -> Diagonal:
    d = task.frozen.d.clone()
    d[:rank] = task.target.d[:rank]
    return Diagonal(d)


def sweep(exp: Experiment, panel: Panel) -> list[tuple[int, int]]:
    return [(r, r) for r in exp.ranks]


TOY = Family(
    name="diagonal",
    random_task=diagonal_task,
    construct=diagonal_construction,
    sweeps={"gradient": sweep},
    shape_key=lambda p: (),
    stacked=DiagonalStack,
    n_params=lambda width, p, spec: int(spec),
    construction_spec=lambda p, rank: rank,
    pretrain_spec=lambda p: WIDTH,
    threshold=lambda p, width: p.depth,
)


@pytest.fixture
def toy_family():
    experiments.register(TOY)
    yield TOY
    experiments.unregister(TOY.name)


def test_a_family_declared_in_a_test_runs_end_to_end(toy_family):
    panels = (
        Panel("toy-random", 1, 3, family="diagonal", bias=False, tune_bias=False),
        Panel(
            "toy-pretrained", 1, 3, family="diagonal", bias=False, tune_bias=False, pretrained=True
        ),
    )
    exp = Experiment("toy", "toy", "none", panels, width=WIDTH, ranks=(1, 2, 3, 4))
    work = Budget(steps=400, seeds=(0, 1), lrs=(5e-2,), weight_decays=(0.0,), n_test=200)
    rows = experiments.run(exp, budget=work, progress=False)
    assert len(rows) == 2 * 2 * 4 * 2  # panels × methods × ranks × seeds
    for r in rows:
        assert r.n_params == r.rank
        exact = r.rank >= 3
        if r.panel == "toy-random" and r.method == "construction":
            assert (r.test_mse < 1e-28) == exact
        if r.panel == "toy-random" and r.method == "gradient":  # convex: Adam gets there too
            assert (r.test_mse < 1e-6) == exact
    pretrained = [r for r in rows if r.panel == "toy-pretrained" and r.method == "construction"]
    random = [r for r in rows if r.panel == "toy-random" and r.method == "construction"]
    assert sum(r.test_mse for r in pretrained[:2]) < sum(r.test_mse for r in random[:2])
    assert panels[0].threshold(WIDTH) == 3


def test_unknown_family_and_method_fail_before_any_work(toy_family):
    exp = Experiment("toy", "toy", "none", (Panel("p", 1, 2, family="nope"),), width=WIDTH)
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        experiments.run(exp, progress=False)
    bad = Panel(
        "p", 1, 2, family="diagonal", bias=False, tune_bias=False, methods=("final_layers",)
    )
    with pytest.raises(ValueError, match="cannot run"):
        experiments.run(dataclasses.replace(exp, panels=(bad,)), progress=False)
    with pytest.raises(ValueError, match="already registered"):
        experiments.register(TOY)


@pytest.mark.parametrize("bad", [None, "fnn", FNNStack.build])
def test_fit_needs_a_stacked_form(bad):
    task = experiments.random_task(Panel("p", 1, 2), 8, 0)
    with pytest.raises(ValueError, match="Stacked subclass"):
        fit([task], [Run(0, Trainable(lora_rank=1), 1e-2)], FitSettings(steps=1), stacked=bad)


def test_registered_families():
    assert {"linear", "fnn"} <= set(FAMILIES)
    assert experiments.family("linear").stacked is FNNStack
    with pytest.raises(ValueError, match="registered"):
        experiments.family("transformer-xl")
    assert math.isfinite(experiments.family("fnn").threshold(Panel("p", 1, 4), 16))
