"""PEFT interop: to_peft / from_peft round trips, the analytic adapters in PEFT, bad input, and the
book's engine against PEFT + torch.optim.Adam."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import box_inputs, random_pair
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model
from torch import nn

from lora_theory import fnn, interop
from lora_theory.adapters import LoRAFactors
from lora_theory.experiments.families.fnn import Trainable
from lora_theory.training import FitSettings, Task


def random_net(seed: int, width: int, ranks: list[int] | None, bias: bool, activation: str):
    g = torch.Generator().manual_seed(seed)
    base = fnn.FNN.random(width, len(ranks or [0]), g, bias=bias, activation=activation)
    adapters = None
    if ranks is not None:
        adapters = [
            LoRAFactors(
                torch.randn(width, r, generator=g, dtype=torch.float64),
                torch.randn(r, width, generator=g, dtype=torch.float64),
            )
            for r in ranks
        ]
    return fnn.FNN(base.weights, base.biases if bias else None, activation, adapters)


CASES = [
    (0, 4, [2, 0, 3], True, "relu"),
    (1, 3, [3, 3], False, "relu"),
    (2, 5, [0, 0, 1, 5], True, "identity"),
    (3, 2, [1], False, "identity"),
    (4, 6, None, True, "relu"),
    (5, 3, [0, 0], True, "relu"),  # adapters of rank 0 only: no LoRA module at all
    (6, 1, [1, 0, 1], True, "relu"),
]


@pytest.mark.parametrize(("seed", "width", "ranks", "bias", "activation"), CASES)
def test_round_trip_and_forward(seed, width, ranks, bias, activation):
    net = random_net(seed, width, ranks, bias, activation)
    model = interop.to_peft(net)
    assert isinstance(model, PeftModel)
    sequential = model.base_model.model
    relus = [m for m in sequential if isinstance(m, nn.ReLU)]
    assert len(relus) == (net.depth if activation == "relu" else 0)
    names = interop.layer_names(net.depth, activation)
    for k, name in enumerate(names):
        layer = sequential.get_submodule(name)
        r = net.adapters[k].inner_dim if net.adapters else 0
        if r:
            assert layer.scaling["default"] == 1.0 and layer.r["default"] == r
            assert torch.equal(layer.lora_A["default"].weight, net.adapters[k].A)
            assert torch.equal(layer.lora_B["default"].weight, net.adapters[k].B)
            base = layer.base_layer
        else:
            assert type(layer) is nn.Linear
            base = layer
        assert base.weight.dtype == torch.float64
        assert torch.equal(base.weight, net.weights[k])
        assert (base.bias is not None) == bias
        if bias:
            assert torch.equal(base.bias, net.biases[k]) and base.bias.requires_grad
    x = torch.randn(64, width, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with torch.no_grad():
        err = float((model(x) - net(x)).abs().max())
    assert err <= 1e3 * torch.finfo(torch.float64).eps * net.roundoff_scale(x)

    back = interop.from_peft(model)
    assert (back.activation, back.has_bias, back.depth, back.width) == (
        activation,
        bias,
        net.depth,
        net.width,
    )
    assert all(torch.equal(a, b) for a, b in zip(back.weights, net.weights, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(back.biases, net.biases, strict=True))
    if ranks is None or not any(ranks):
        assert back.adapters is None
    else:
        for got, want in zip(back.adapters, net.adapters, strict=True):
            assert torch.equal(got.B, want.B) and torch.equal(got.A, want.A)
    assert torch.equal(back(x), net(x))


def test_from_peft_folds_the_scaling_into_b():
    net = random_net(0, 4, [2, 2], True, "relu")
    seq = nn.Sequential(*[m for w in net.weights for m in (nn.Linear(4, 4), nn.ReLU())])
    seq = seq.to(torch.float64)
    model = get_peft_model(seq, LoraConfig(r=2, lora_alpha=7, target_modules=["0", "2"]))
    with torch.no_grad():
        for name, w in zip(["0", "2"], net.weights, strict=True):
            layer = model.base_model.model.get_submodule(name)
            layer.base_layer.weight.copy_(w)
            layer.lora_B["default"].weight.normal_()
    back = interop.from_peft(model)
    x = torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(back(x), model(x), rtol=0, atol=1e-13)


def test_analytic_adapters_in_peft_reproduce_the_target():
    target, frozen = random_pair(3, 4, 1, 2)
    c = 2.0
    adapted = fnn.construct(target, frozen, rank=fnn.required_rank(target, frozen), input_bound=c)
    model = interop.to_peft(adapted)
    x = box_inputs(4, c, 200, seed=4)
    with torch.no_grad():
        err = float((model(x) - target(x)).abs().max())
    assert err <= 1e3 * torch.finfo(torch.float64).eps * adapted.roundoff_scale(x)
    assert err < 1e-10


def test_to_peft_rejects_what_is_not_an_fnn():
    with pytest.raises(ValueError, match=r"net must be an fnn\.FNN"):
        interop.to_peft(nn.Linear(3, 3))


def _lora(seq: nn.Module, targets: list[str]) -> PeftModel:
    return get_peft_model(seq.to(torch.float64), LoraConfig(r=1, target_modules=targets))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Sequential(nn.Linear(3, 3)), "must be a peft.PeftModel"),
        (lambda: random_net(0, 3, [1], True, "relu"), "must be a peft.PeftModel"),
        (
            lambda: get_peft_model(
                nn.Sequential(nn.Linear(3, 3), nn.ReLU()).to(torch.float64),
                IA3Config(target_modules=["0"], feedforward_modules=[]),
            ),
            "must use PEFT's LoRA",
        ),
        (lambda: _lora(nn.Sequential(nn.Linear(3, 3), nn.Tanh()), ["0"]), "must be nn.Linear"),
        (lambda: _lora(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), ["0"]), "Linear\\(4, 4\\)"),
        (
            lambda: _lora(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()), ["0"]),
            "repeated",
        ),
        (
            lambda: _lora(
                nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3), nn.ReLU()), ["0"]
            ),
            "must be nn.ReLU",
        ),
        (
            lambda: _lora(
                nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3, bias=False), nn.ReLU()),
                ["0"],
            ),
            "biases or none",
        ),
        (
            lambda: _lora(nn.Sequential(nn.Sequential(nn.Linear(3, 3)), nn.ReLU()), ["0.0"]),
            "must be nn.Linear",
        ),
        (lambda: _lora(nn.ModuleDict({"a": nn.Linear(3, 3)}), ["a"]), "must be nn.Sequential"),
    ],
)
def test_from_peft_rejects_other_structures(make, message):
    with pytest.raises(ValueError, match=message):
        interop.from_peft(make())


def test_from_peft_rejects_merged_and_dora_adapters():
    model = interop.to_peft(random_net(1, 3, [1, 1], True, "relu"))
    model.merge_adapter()
    with pytest.raises(ValueError, match="merged"):
        interop.from_peft(model)
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU()).to(torch.float64)
    dora = get_peft_model(seq, LoraConfig(r=1, target_modules=["0"], use_dora=True))
    with pytest.raises(ValueError, match="plain LoRA"):
        interop.from_peft(dora)


def tiny_task(seed: int = 1) -> Task:
    g = torch.Generator().manual_seed(seed)
    target, frozen = fnn.FNN.random(4, 1, g), fnn.FNN.random(4, 3, g)
    return Task(target, frozen, seed, (4,))


SMALL = FitSettings(steps=40, batch_size=32, n_val=32, n_test=0, chunk=16, eval_every=3)


@pytest.mark.parametrize(
    "trainable",
    [
        Trainable(lora_rank=2, tune_bias=True),
        Trainable(lora_rank=1),
        Trainable(final_layers=2),
        Trainable(final_layers=1, tune_bias=True),
    ],
    ids=str,
)
def test_peft_training_agrees_with_the_engine(trainable):
    out = interop.compare_training(
        tiny_task(), trainable, lr=1e-2, settings=SMALL, weight_decay=1e-3
    )
    assert out.n_params == trainable.n_params(4, 3, True)
    assert torch.equal(out.eval_steps, out.engine.eval_steps)
    assert out.peft_train.shape == (SMALL.steps,)
    assert out.engine_val[-1] < out.engine_val[0]  # it trains
    assert out.max_rel_diff < 1e-12
    back = interop.from_peft(out.model)
    x = torch.randn(8, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(back(x), out.model(x), rtol=0, atol=1e-13)


def test_compare_training_rejects_bad_input():
    task = tiny_task()
    with pytest.raises(ValueError, match="no PEFT counterpart"):
        interop.compare_training(task, Trainable(lora_rank=1, final_layers=1), 1e-2, SMALL)
    with pytest.raises(ValueError, match="n_val"):
        interop.compare_training(task, Trainable(lora_rank=1), 1e-2, FitSettings(steps=2, n_val=0))
    with pytest.raises(ValueError, match="trainable must be a Trainable"):
        interop.compare_training(task, "lora", 1e-2, SMALL)
    with pytest.raises(ValueError, match="lr"):
        interop.compare_training(task, Trainable(lora_rank=1), -1.0, SMALL)
    with pytest.raises(ValueError, match="task must be"):
        interop.compare_training(Task(task.target, object(), 0, (4,)), Trainable(1), 1e-2, SMALL)
    assert math.isfinite(interop.compare_training(task, Trainable(1), 1e-2, SMALL).max_rel_diff)
