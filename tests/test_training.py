"""The batched training engine (chapter "Linear models", FNN chapters): Adam, batching, masks,
model selection, early stopping, data streams."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from lora_theory import training
from lora_theory.experiments.families.fnn import FNNStack, Trainable
from lora_theory.fnn import FNN
from lora_theory.training import (
    BatchedAdam,
    FitSettings,
    Run,
    Task,
    generator,
    select_by_validation,
)

WIDTH = 8
fit = partial(training.fit, stacked=FNNStack)


def make_task(seed: int, target_depth: int, depth: int, activation: str, bias: bool) -> Task:
    gen = generator(seed, "model")
    target = FNN.random(WIDTH, target_depth, gen, bias=bias, activation=activation)
    frozen = FNN.random(WIDTH, depth, gen, bias=bias, activation=activation)
    return Task(target, frozen, seed, (WIDTH,))


def alone(tasks: list[Task], run: Run, settings: FitSettings):
    """``run`` trained by itself: a fit over its task only."""
    return fit([tasks[run.task]], [Run(0, run.trainable, run.lr, run.weight_decay)], settings)


def assert_batched_equals_alone(tasks: list[Task], runs: list[Run], settings: FitSettings) -> None:
    batched = fit(tasks, runs, settings)
    for i, run in enumerate(runs):
        single = alone(tasks, run, settings)
        for name in ("best_val", "test_mse", "final_train_mse"):
            torch.testing.assert_close(
                getattr(batched, name)[i : i + 1], getattr(single, name), rtol=1e-9, atol=1e-14
            )
        assert int(batched.best_step[i]) == int(single.best_step[0])
        rank = run.trainable.lora_rank
        b, s = batched.params, single.params
        for name in ("weight", "bias"):
            torch.testing.assert_close(b[name][i], s[name][0])
        torch.testing.assert_close(b["lora_a"][i, :, :rank], s["lora_a"][0, :, :rank])
        torch.testing.assert_close(b["lora_b"][i, :, :, :rank], s["lora_b"][0, :, :, :rank])


def test_batched_adam_matches_torch_adam_per_config():
    gen = torch.Generator().manual_seed(0)
    lrs, wds = [1e-2, 1e-3, 3e-2], [0.0, 1e-2, 1e-3]
    start = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 4, 5, generator=gen, dtype=torch.float64) for _ in range(20)]
    ours = start.clone()
    adam = BatchedAdam(
        ours,
        torch.ones(1, 1, 1, dtype=torch.bool),
        torch.tensor(lrs, dtype=torch.float64),
        torch.tensor(wds, dtype=torch.float64),
    )
    refs = [start[c].clone().requires_grad_(True) for c in range(3)]
    opts = [
        torch.optim.Adam([p], lr=lr, weight_decay=wd)
        for p, lr, wd in zip(refs, lrs, wds, strict=True)
    ]
    for g in grads:
        adam.step(g.clone())  # step() overwrites its gradient
        for c, (p, opt) in enumerate(zip(refs, opts, strict=True)):
            p.grad = g[c].clone()
            opt.step()
    for c in range(3):
        torch.testing.assert_close(ours[c], refs[c].detach(), rtol=1e-13, atol=1e-15)


def test_batched_adam_leaves_masked_and_inactive_entries_untouched():
    param = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    mask = torch.tensor([[True, False], [True, True]])
    per_config = torch.tensor([0.1, 0.1], dtype=torch.float64)
    adam = BatchedAdam(param, mask, per_config, 5 * per_config)
    grad = torch.tensor([[1.0, float("nan")], [1.0, 1.0]], dtype=torch.float64)
    adam.step(grad, active=torch.tensor([True, False]))
    assert param.tolist() == [[pytest.approx(0.9), 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(("activation", "bias"), [("identity", False), ("relu", True)])
def test_stacked_forward_and_gradient(activation, bias):
    """The stacked forward equals each run's own FNN; autograd's gradient matches central
    differences of the stacked loss."""
    tasks = [make_task(s, 2, 3, activation, bias) for s in (0, 1)]
    runs = [
        Run(0, Trainable(lora_rank=2, tune_bias=bias), 1e-2),
        Run(1, Trainable(lora_rank=5, final_layers=1), 1e-2),
    ]
    stack = FNNStack.build(tasks, runs, 0.25, torch.device("cpu"), torch.float64)
    noise = torch.randn(stack.flat.shape, generator=generator(0, "t"), dtype=torch.float64)
    stack.flat += 0.1 * noise * stack.mask  # padded entries stay zero
    x, y = tasks[0].sample((2, 64), generator(1, "t"))  # (T, n, D): one batch per task
    losses, grad = stack.loss_and_grad(x, y)
    params = stack.params()
    for c, run in enumerate(runs):
        net = FNNStack.model(tasks[run.task], run, {k: v[c] for k, v in params.items()})
        torch.testing.assert_close(losses[c], (net(x[c]) - y[c]).square().mean())
    h = 1e-6
    for k in torch.randperm(stack.flat.shape[1], generator=generator(2, "t"))[:12].tolist():
        bump = torch.zeros_like(stack.flat)
        bump[:, k] = h
        up, down = stack.mse(x, y, stack.flat + bump), stack.mse(x, y, stack.flat - bump)
        numeric = (up - down) / (2 * h) * stack.mask[:, k]
        torch.testing.assert_close(grad[:, k] * stack.mask[:, k], numeric, rtol=1e-5, atol=1e-9)


def test_batched_equals_one_by_one_linear():
    tasks = [make_task(s, 1, 2, "identity", bias=False) for s in (0, 1)]
    runs = [
        Run(t, Trainable(lora_rank=r), lr, wd)
        for t, r, lr, wd in [
            (0, 1, 1e-2, 0.0),
            (1, 3, 1e-3, 1e-3),
            (0, 8, 1e-2, 1e-2),
            (1, 5, 3e-3, 0.0),
        ]
    ]
    assert_batched_equals_alone(tasks, runs, FitSettings(steps=60, n_test=300, eval_every=7))


def test_batched_equals_one_by_one_relu_bias_depth4():
    tasks = [make_task(0, 2, 4, "relu", bias=True), make_task(1, 2, 4, "relu", bias=True)]
    runs = [
        Run(0, Trainable(lora_rank=2, tune_bias=True), 1e-2, 0.0),
        Run(1, Trainable(lora_rank=6, tune_bias=False), 1e-2, 1e-3),
        Run(1, Trainable(lora_rank=1, tune_bias=True), 1e-3, 1e-2),
        Run(0, Trainable(final_layers=2), 1e-3, 1e-4),
    ]
    assert_batched_equals_alone(tasks, runs, FitSettings(steps=40, n_test=300, eval_every=3))


def test_rank_mask_keeps_padded_factors_exactly_zero():
    tasks = [make_task(0, 1, 3, "relu", bias=True)]
    runs = [Run(0, Trainable(lora_rank=r, tune_bias=True), 1e-2, 1e-2) for r in (1, 3, WIDTH)]
    result = fit(tasks, runs, FitSettings(steps=30, n_val=0, n_test=0))  # keeps the final state
    a, b = result.params["lora_a"], result.params["lora_b"]
    for i, r in enumerate((1, 3, WIDTH)):
        assert torch.all(a[i, :, r:] == 0)
        assert torch.all(b[i, :, :, r:] == 0)
        assert torch.all(b[i, :, :, :r] != 0)  # the live columns did train
        adapters = result.model(i).adapters
        assert [tuple(a.B.shape) for a in adapters] == [(WIDTH, r)] * 3


def test_lora_starts_at_zero_update_and_frozen_weights_stay():
    tasks = [make_task(0, 1, 2, "relu", bias=True)]
    result = fit(tasks, [Run(0, Trainable(lora_rank=2), 1e-2)], FitSettings(steps=0, n_test=0))
    p = result.params
    assert torch.all(p["lora_b"] == 0)
    assert float(p["lora_a"].std()) == pytest.approx(0.25, rel=0.4)
    torch.testing.assert_close(p["weight"][0], torch.stack(tasks[0].frozen.weights))
    torch.testing.assert_close(p["bias"][0], torch.stack(tasks[0].frozen.biases))


def test_test_mse_is_measured_at_the_best_validation_step():
    tasks = [make_task(0, 1, 2, "relu", bias=True)]
    runs = [Run(0, Trainable(lora_rank=4, tune_bias=True), lr) for lr in (1e-2, 3.0)]
    settings = FitSettings(steps=40, n_test=500, eval_every=4)
    result = fit(tasks, runs, settings)
    x, y = tasks[0].test_set(500)
    for i in range(len(runs)):
        curve = torch.nan_to_num(result.val_curve[i], nan=math.inf)
        k = int(torch.argmin(curve))
        assert float(result.best_val[i]) == float(curve[k])
        assert int(result.best_step[i]) == int(result.eval_steps[k])
        recomputed = (result.model(i)(x) - y).square().mean()
        torch.testing.assert_close(result.test_mse[i], recomputed)
    assert result.eval_steps.tolist() == [*range(0, 41, 4)]


def test_select_by_validation_picks_smallest_per_key():
    keys = [("a", 1), ("a", 1), ("b", 1), ("a", 1), ("b", 1)]
    losses = [0.5, float("nan"), 0.2, 0.1, 0.2]
    assert select_by_validation(keys, losses) == {("a", 1): 3, ("b", 1): 2}
    with pytest.raises(ValueError, match="keys"):
        select_by_validation(keys, losses[:2])


def test_selection_prefers_the_run_with_the_best_validation():
    tasks = [make_task(0, 1, 2, "identity", bias=False)]
    runs = [Run(0, Trainable(lora_rank=4), lr) for lr in (1e-5, 1e-2)]  # 1e-5 barely moves
    result = fit(tasks, runs, FitSettings(steps=100, n_test=200, eval_every=10))
    chosen = select_by_validation([("k",)] * 2, result.best_val.tolist())
    assert chosen == {("k",): 1}
    assert float(result.test_mse[1]) < float(result.test_mse[0])


def test_early_stop_below_a_third_of_the_first_loss():
    tasks = [make_task(s, 1, 2, "relu", bias=True) for s in (0, 1)]
    runs = [Run(t, Trainable(final_layers=2), 1e-3) for t in (0, 1)]
    settings = FitSettings(steps=1000, n_val=0, n_test=0, stop_ratio=3.0, train_stream="pretrain")
    calls: list[int] = []
    result = fit(tasks, runs, settings, progress=calls.append)
    assert sum(calls) == 1000
    assert torch.all(result.steps_run < 1000)
    for i, task in enumerate(tasks):
        model = result.model(i)
        x, y = task.sample((2000,), generator(0, "check"))
        before = (task.frozen(x) - y).square().mean()
        after = (model(x) - y).square().mean()
        assert after < before / 2  # a third on the training batches, about that on fresh data


def test_streams_are_deterministic_and_independent():
    draw = lambda seed, name: torch.randn(4, generator=generator(seed, name))  # noqa: E731
    assert torch.equal(draw(3, "train"), draw(3, "train"))
    assert not torch.equal(draw(3, "train"), draw(3, "val"))
    assert not torch.equal(draw(3, "train"), draw(4, "train"))
    with pytest.raises(ValueError, match="seed"):
        generator(-1, "train")


def test_n_params_convention():
    assert Trainable(lora_rank=4).n_params(16, 2) == 2 * 4 * 16 * 2
    assert Trainable(lora_rank=4, tune_bias=True).n_params(16, 2) == 2 * 4 * 16 * 2 + 16 * 2
    assert Trainable(final_layers=3).n_params(16, 8) == 3 * (16 * 16 + 16)
    assert Trainable(final_layers=2).n_params(16, 2, bias=False) == 2 * 16 * 16


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ([Run(0, Trainable(lora_rank=2, tune_bias=True), 1e-2)], "no biases"),
        ([Run(0, Trainable(), 1e-2)], "nothing to train"),
        ([Run(0, Trainable(lora_rank=WIDTH + 1), 1e-2)], "lora_rank"),
        ([Run(0, Trainable(final_layers=3), 1e-2)], "final_layers"),
        ([Run(5, Trainable(lora_rank=1), 1e-2)], "index"),
        ([Run(0, "rank 2", 1e-2)], "Trainable"),
    ],
)
def test_fit_rejects_bad_runs(runs, message):
    tasks = [make_task(0, 1, 2, "identity", bias=False)]
    with pytest.raises(ValueError, match=message):
        fit(tasks, runs, FitSettings(steps=1))


def test_fit_rejects_mixed_shapes_and_bad_settings():
    tasks = [make_task(0, 1, 2, "relu", True), make_task(0, 1, 3, "relu", True)]
    with pytest.raises(ValueError, match="share"):
        fit(tasks, [Run(0, Trainable(lora_rank=1), 1e-2)], FitSettings(steps=1))
    with pytest.raises(ValueError, match="batch_size"):
        FitSettings(steps=1, batch_size=0)
    with pytest.raises(ValueError, match="stop_ratio"):
        FitSettings(steps=1, stop_ratio=0.5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_fit_on_cuda_without_cuda_raises():
    tasks = [make_task(0, 1, 2, "identity", bias=False)]
    with pytest.raises(ValueError, match="CUDA"):
        fit(tasks, [Run(0, Trainable(lora_rank=1), 1e-2)], FitSettings(steps=1), device="cuda")


def test_cpu_shards_do_not_change_results():
    tasks = [make_task(s, 1, 2, "relu", bias=True) for s in (0, 1, 2)]
    runs = [Run(s % 3, Trainable(lora_rank=1 + s % 4, tune_bias=True), 1e-2) for s in range(7)]
    settings = FitSettings(steps=20, n_test=100, eval_every=5)
    one, three = fit(tasks, runs, settings, workers=1), fit(tasks, runs, settings, workers=3)
    for name in ("best_val", "test_mse", "val_curve", "diverged"):
        torch.testing.assert_close(getattr(one, name), getattr(three, name))
    for name in ("weight", "bias", "lora_a", "lora_b"):
        torch.testing.assert_close(one.params[name], three.params[name])
    assert torch.equal(one.eval_steps, three.eval_steps)
    with pytest.raises(ValueError, match="workers"):
        fit(tasks, runs, settings, workers=0)


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.nan, math.inf, True, "1e-2"])
def test_run_rejects_bad_learning_rates(lr):
    with pytest.raises(ValueError, match="lr"):
        Run(0, Trainable(lora_rank=1), lr)


@pytest.mark.parametrize("wd", [-1e-3, math.nan, math.inf])
def test_run_rejects_bad_weight_decay(wd):
    with pytest.raises(ValueError, match="weight_decay"):
        Run(0, Trainable(lora_rank=1), 1e-2, wd)


def test_a_diverging_run_is_reported_as_diverged_not_with_its_start_score():
    tasks = [make_task(0, 1, 2, "relu", bias=True)]
    runs = [Run(0, Trainable(lora_rank=4, tune_bias=True), lr) for lr in (1e-2, 1e200)]
    result = fit(tasks, runs, FitSettings(steps=30, n_test=100, eval_every=5))
    assert result.diverged.tolist() == [False, True]
    assert math.isfinite(float(result.test_mse[0]))
    assert math.isnan(float(result.test_mse[1])) and math.isnan(float(result.best_val[1]))
    assert int(result.steps_run[1]) < 30
    assert select_by_validation([("k",)] * 2, result.best_val.tolist()) == {("k",): 0}


def test_adapters_on_the_frozen_model_are_merged_not_ignored():
    task = make_task(0, 1, 2, "relu", bias=True)
    gen = generator(5, "t")
    adapters = [(torch.randn(WIDTH, 1, generator=gen), torch.randn(1, WIDTH, generator=gen))] * 2
    carried = FNN(task.frozen.weights, task.frozen.biases, adapters=adapters)
    merged = Task(task.target, carried.merged(), 0, (WIDTH,))
    settings = FitSettings(steps=5, n_test=100)
    run = [Run(0, Trainable(lora_rank=2), 1e-2)]
    a = fit([Task(task.target, carried, 0, (WIDTH,))], run, settings)
    b = fit([merged], run, settings)
    torch.testing.assert_close(a.test_mse, b.test_mse)
    torch.testing.assert_close(a.params["weight"], b.params["weight"])


def test_frozen_weights_that_require_grad_do_not_break_fit():
    task = make_task(0, 1, 2, "relu", bias=True)
    for w in task.frozen.weights:
        w.requires_grad_(True)
    result = fit([task], [Run(0, Trainable(lora_rank=2), 1e-2)], FitSettings(steps=3, n_test=50))
    assert math.isfinite(float(result.test_mse[0]))


def test_a_failing_shard_stops_the_others_promptly(monkeypatch):
    """Ctrl-C (or any error) in one shard ends the whole fit within a step, not at its end."""
    from lora_theory.training import engine

    tasks = [make_task(s, 1, 2, "relu", bias=True) for s in (0, 1)]
    runs = [Run(s, Trainable(lora_rank=2), 1e-2) for s in (0, 1)]
    steps_seen: list[int] = []
    real_batch = engine._Data.batch

    def batch(self, step):
        steps_seen.append(step)
        if step == 3 and len(self.tasks) == 1 and self.tasks[0] is tasks[0]:
            raise KeyboardInterrupt
        return real_batch(self, step)

    monkeypatch.setattr(engine._Data, "batch", batch)
    with pytest.raises(KeyboardInterrupt):
        fit(tasks, runs, FitSettings(steps=100_000, n_val=0, n_test=0), workers=2)
    assert max(steps_seen) < 1000  # the other shard did not run to the end


@pytest.mark.parametrize("depth", [1, 3])
def test_the_linear_models_moment_gradient_is_autograds(depth):
    """A linear stack's training gradient comes from the data's moments (``_LinearMSE``); it is
    the gradient autograd takes through ``X Mᵀ`` and the MSE, and the loss is the same MSE."""
    tasks = [make_task(s, 1, depth, "identity", False) for s in (0, 1)]
    runs = [
        Run(t, Trainable(lora_rank=r, final_layers=f), 1e-3, 0.0)
        for t in (0, 1)
        for r, f in ((2, 0), (WIDTH, 1))
    ]
    stack = FNNStack.build(tasks, runs, 0.25, torch.device("cpu"), torch.float64)
    stack.flat += 0.1 * torch.randn(stack.flat.shape, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 64, WIDTH, generator=g, dtype=torch.float64)
    y = torch.stack([t.target(xi) for t, xi in zip(tasks, x, strict=True)])
    losses, grad = stack.loss_and_grad(x, y)
    flat = stack.flat.detach().requires_grad_(True)
    reference = stack.mse(stack.gather(x, "x").clone(), stack.gather(y, "y").clone(), flat)
    (expected,) = torch.autograd.grad(reference.sum(), flat)
    torch.testing.assert_close(losses, reference.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)
    assert stack.linear_map(stack.params()) is not None


def test_a_relu_stack_has_no_linear_map():
    task = make_task(0, 1, 2, "relu", True)
    stack = FNNStack.build(
        [task],
        [Run(0, Trainable(lora_rank=2), 1e-3, 0.0)],
        0.25,
        torch.device("cpu"),
        torch.float64,
    )
    assert stack.linear_map(stack.params()) is None
