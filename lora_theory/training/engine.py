r"""The batched engine: train many configurations of any model family as one computation.

The paper's "Gradient Update" baseline: adapt a frozen model ``f_0`` to a target ``f̄`` by
minimising the mean squared error

    ℓ(θ) = (1 / (n d)) Σ_{i=1}^{n} ‖f_θ(x_i) − f̄(x_i)‖²,     x_i ~ N(0, I), n = batch size,

(``d`` output entries per point) with Adam (``torch.optim.Adam``'s defaults, coupled L2 weight
decay) on fresh batches. :func:`fit` trains ``C`` runs together through the family's
:class:`~lora_theory.training.stacked.Stacked` form, with :class:`BatchedAdam` (a learning rate and
weight decay per run) and autograd for the gradients. Each run evaluates a validation MSE every
``eval_every`` steps and keeps the parameters of its best evaluation; its test MSE is measured there
(the paper's model selection, with validation, test and training data drawn from independent
streams, :func:`lora_theory.runtime.generator`). A run whose training loss becomes NaN or infinite
stops there and is reported as diverged (``diverged`` flag, NaN test MSE), never with its earlier
score.

The appendix experiments change this protocol through :class:`FitSettings` only: a fixed training
set trained full-batch (``n_train``), the final iterate instead of the best one (``keep``), the
soft-target cross-entropy of the classification tasks (``loss``, ``output_groups``,
:mod:`lora_theory.training.objectives`; selection by validation accuracy), training-loss curves
(``curve_every``) and a shifted test set (``test_shift``). With the defaults the MSE path is the
one described above, step for step.

**Determinism.** A run's initialisation comes from its seed's ``"lora-init"`` stream and its data
from the ``"train"``/``"val"``/``"test"`` streams, so its result depends only on its own settings,
not on which other runs share the batch (checked by the tests to float64 round-off).

**Gradients.** Autograd, with one exception: a family whose models are linear maps
(:meth:`~lora_theory.training.stacked.Stacked.linear_map`) gets the MSE's gradient with respect
to the map from the data's moments, 1.29× faster end to end on the Figure 1 sweep (the chain to
the LoRA factors stays autograd's). The first engine's hand-written FNN backward pass was
measured against autograd end to end on the same sweep (``benchmarks/bench_engine.py``, 2-core
CPU): it reached 0.97× autograd's configurations/s, so it was removed.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch

from .. import checks
from ..runtime import device as resolve_device
from ..runtime import generator
from .adam import BatchedAdam
from .data import FitResult, FitSettings, Run, Task
from .objectives import Objective
from .shards import sharded
from .stacked import Stacked, check_runs

#: Input entries (configs × points × entries per point) evaluated at once for the test MSE.
_EVAL_ELEMENTS = 2**24

Progress = Callable[[int], None]


def _check(tasks: Sequence[Task], runs: Sequence[Run], stacked: object) -> None:
    if not isinstance(stacked, type) or not issubclass(stacked, Stacked):
        raise ValueError(f"stacked must be a Stacked subclass, got {stacked!r}")
    if not tasks or not runs:
        raise ValueError("fit needs at least one task and one run")
    check_runs(tasks, runs)


def _stack_data(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], like: torch.Tensor, dim: int):
    x = torch.stack([p[0] for p in pairs], dim).to(like.device, like.dtype)
    y = torch.stack([p[1] for p in pairs], dim).to(like.device, like.dtype)
    return x, y


class _Data:
    """Training batches for every task: fresh ones drawn ``chunk`` steps at a time on the CPU,
    or, with ``n_train``, the same fixed training set at every step (full batch)."""

    def __init__(self, tasks: Sequence[Task], settings: FitSettings, like: torch.Tensor) -> None:
        self.tasks, self.s, self.like = tasks, settings, like
        self.gens = [generator(t.seed, settings.train_stream) for t in tasks]
        self.x = self.y = torch.empty(0)
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        if settings.n_train is not None:
            n = (settings.n_train,)
            pairs = [t.sample(n, g) for t, g in zip(tasks, self.gens, strict=True)]
            self.fixed = _stack_data(pairs, like, 0)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, f̄(x))`` of step ``step``, each ``(T, batch, …)`` on the device."""
        if self.fixed is not None:
            return self.fixed
        k = step % self.s.chunk
        if k == 0:
            shape = (min(self.s.chunk, self.s.steps - step), self.s.batch_size)
            pairs = [t.sample(shape, g) for t, g in zip(self.tasks, self.gens, strict=True)]
            self.x, self.y = _stack_data(pairs, self.like, 1)
        return self.x[k], self.y[k]


@torch.no_grad()
def _test_metrics(
    stack: Stacked,
    flat: torch.Tensor,
    tasks: Sequence[Task],
    n: int,
    objective: Objective,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test MSE of every run at the parameters ``flat`` (raw outputs against the teacher's) and
    its accuracy (NaN unless ``objective`` classifies), on the test inputs times ``scale``, in
    chunks of runs to bound memory."""
    x, y = _stack_data([t.test_set(n, scale) for t in tasks], flat, 0)
    size = max(1, _EVAL_ELEMENTS // x[0].numel())
    mse, accuracy = [], []
    for start in range(0, len(flat), size):
        runs = slice(start, start + size)
        index = stack.index[runs]
        if not objective.classifies:
            mse.append(stack.mse(x[index], y[index], flat, runs))
            continue
        pred = stack.outputs(x[index], flat, runs)
        accuracy.append(objective.accuracy(pred, y[index]))
        mse.append((pred - y[index]).square().flatten(1).mean(1))
    nan = torch.full((len(flat),), math.nan, dtype=flat.dtype, device=flat.device)
    return torch.cat(mse), torch.cat(accuracy) if accuracy else nan


class _Selection:
    """Validation-based model selection: each run's best validation loss (or, for a classifier,
    accuracy) and its parameters."""

    def __init__(
        self, tasks: Sequence[Task], stack: Stacked, n: int, objective: Objective | None
    ) -> None:
        sets = [t.sample((n,), generator(t.seed, "val")) for t in tasks]
        x, y = _stack_data(sets, stack.flat, 0)
        self.x, self.y = x[stack.index], y[stack.index]
        self.objective = objective
        self.classifies = objective is not None and objective.classifies
        like = stack.flat
        self.best_val = like.new_full((len(like),), math.inf)
        self.best_accuracy = like.new_full((len(like),), -math.inf)
        self.best_step = torch.zeros(len(like), dtype=torch.long, device=like.device)
        self.best = stack.flat.clone()
        self.curve: list[torch.Tensor] = []
        self.steps: list[int] = []

    @torch.no_grad()
    def measure(
        self, stack: Stacked, flat: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation loss and accuracy (NaN unless the objective classifies) at ``flat``."""
        if not self.classifies:
            val = stack.loss(self.x, self.y, flat, self.objective)
            return val, torch.full_like(val, math.nan)
        pred = stack.outputs(self.x, flat)
        return self.objective.value(pred, self.y), self.objective.accuracy(pred, self.y)

    @torch.no_grad()
    def evaluate(self, stack: Stacked, step: int) -> None:
        """Validate the current parameters (after ``step`` updates); keep them where better."""
        if self.classifies:
            val, accuracy = self.measure(stack)
            better = accuracy > self.best_accuracy  # NaN (a diverged run) never counts as better
            self.best_accuracy = torch.where(better, accuracy, self.best_accuracy)
        else:
            val = stack.loss(self.x, self.y, None, self.objective)
            better = val < self.best_val  # NaN (a diverged run) never counts as better
        self.best_val = torch.where(better, val, self.best_val)
        self.best_step = torch.where(better, step, self.best_step)
        self.best = torch.where(better[:, None], stack.flat, self.best)
        self.curve.append(val)
        self.steps.append(step)


def fit(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    settings: FitSettings,
    *,
    stacked: type[Stacked],
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    progress: Progress | None = None,
    workers: int | None = None,
) -> FitResult:
    """Train all ``runs`` together through the family's stacked form ``stacked``.

    ``progress(n)`` is called after every ``n`` steps. All tasks must fit one stacked form (e.g.
    one frozen width, depth and activation for FNNs: group runs by the family's shape key
    otherwise). A run's data, initialisation and result do not depend on which other runs share
    the batch.

    On the CPU the runs are split into ``workers`` shards (default: torch's thread count, i.e. the
    cores), trained side by side in Python threads that each run single-threaded torch ops
    (``lora_theory.training.shards``). On a GPU all runs form one batch.

    Introduced in :ref:`sec-fig1`.
    """
    tasks = checks.sequence(tasks, "tasks", "Task objects", empty=True)
    runs = checks.sequence(runs, "runs", "Run objects", empty=True)
    _check(tasks, runs, stacked)
    if not isinstance(settings, FitSettings):
        raise ValueError(f"settings must be FitSettings, got {type(settings).__name__}")
    dtype = checks.dtype(dtype)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable (or None), got {type(progress).__name__}")
    dev = resolve_device(device)

    def one(
        ts: Sequence[Task], rs: Sequence[Run], report: Progress | None, stop: threading.Event
    ) -> FitResult:
        return _fit(ts, rs, settings, stacked, dev, dtype, report, stop)

    if dev.type != "cpu":
        return one(tasks, runs, progress, threading.Event())
    if workers is not None:
        checks.integer(workers, "workers", low=1)
    return sharded(one, tasks, runs, workers or torch.get_num_threads(), progress)


def _fit(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    settings: FitSettings,
    stacked: type[Stacked],
    dev: torch.device,
    dtype: torch.dtype,
    progress: Progress | None,
    stop: threading.Event,
) -> FitResult:
    """One stacked fit of ``runs`` (see :func:`fit`); raises ``KeyboardInterrupt`` at the next
    step once ``stop`` is set (another shard failed or was interrupted)."""
    stack = stacked.build(tasks, runs, settings.init_std, dev, dtype)
    per_run = {"device": dev, "dtype": dtype}
    adam = BatchedAdam(
        stack.flat,
        stack.mask,
        torch.tensor([r.lr for r in runs], **per_run),
        torch.tensor([r.weight_decay for r in runs], **per_run),
    )
    goal = settings.objective
    objective = None if goal.plain else goal  # None: the MSE's fast path
    selection = _Selection(tasks, stack, settings.n_val, objective) if settings.n_val else None
    active = torch.ones(len(runs), dtype=torch.bool, device=dev)
    diverged = torch.zeros(len(runs), dtype=torch.bool, device=dev)
    steps_run = torch.zeros(len(runs), dtype=torch.long, device=dev)
    train_mse = first_mse = torch.full((len(runs),), math.nan, **per_run)
    every = settings.curve_every
    n_points = -(-settings.steps // every) if every else 0
    curve = torch.full((len(runs), n_points), math.nan, **per_run)
    data = _Data(tasks, settings, stack.flat)
    step = 0
    for step in range(settings.steps + 1):
        if selection and (step % settings.eval_every == 0 or step == settings.steps):
            selection.evaluate(stack, step)
        if step == settings.steps:
            break
        if stop.is_set():
            raise KeyboardInterrupt("stopped: another shard of this fit failed or was interrupted")
        x, y = data.batch(step)
        losses, grad = stack.loss_and_grad(x, y, objective)
        train_mse = torch.where(active, losses, train_mse)
        if every and step % every == 0:  # the loss just computed: no extra forward pass
            curve[:, step // every] = torch.where(active, losses, math.nan)
        bad = ~torch.isfinite(losses)  # a non-finite gradient shows in the next step's loss
        diverged |= bad & active
        active &= ~bad
        if settings.stop_ratio is not None:
            first_mse = losses if step == 0 else first_mse
            active &= ~(losses < first_mse / settings.stop_ratio)
        if not bool(active.any()):
            break
        # Runs that stopped or diverged are left unchanged.
        adam.step(grad, None if bool(active.all()) else active)
        steps_run += active
        if progress is not None:
            progress(1)
    if progress is not None and step < settings.steps:
        progress(settings.steps - step)  # the steps an early stop skipped
    nan = torch.full((len(runs),), math.nan)
    best_step, val_accuracy = steps_run, nan
    if selection is None or settings.keep == "final":
        kept = stack.flat
        if selection is not None:
            best_val, val_accuracy = selection.measure(stack, kept)
        else:
            best_val = torch.full((len(runs),), math.inf)
    else:
        kept, best_step = selection.best, selection.best_step
        best_val, val_accuracy = selection.best_val, selection.best_accuracy
    if not goal.classifies:
        val_accuracy = nan
    val_accuracy = torch.where(torch.isinf(val_accuracy), math.nan, val_accuracy)  # never better
    test = test_accuracy = shift = shift_accuracy = nan
    if settings.n_test:
        test, test_accuracy = _test_metrics(stack, kept, tasks, settings.n_test, goal)
        if settings.test_shift is not None:
            shift, shift_accuracy = _test_metrics(
                stack, kept, tasks, settings.n_test, goal, settings.test_shift
            )
    train_loss = nan
    if data.fixed is not None:
        with torch.no_grad():
            x, y = (stack.gather(t, name) for t, name in zip(data.fixed, "xy", strict=True))
            train_loss = stack.loss(x, y, kept, objective)
    lost = diverged.cpu()

    def per_run_result(t: torch.Tensor) -> torch.Tensor:
        return t.cpu().masked_fill(lost, math.nan)

    return FitResult(
        tasks=tuple(tasks),
        runs=tuple(runs),
        stacked=stacked,
        best_val=per_run_result(best_val),
        best_step=best_step.cpu(),
        test_mse=per_run_result(test),
        val_curve=torch.stack(selection.curve, 1).cpu() if selection else torch.empty(len(runs), 0),
        eval_steps=torch.tensor(selection.steps if selection else [], dtype=torch.long),
        steps_run=steps_run.cpu(),
        final_train_mse=train_mse.cpu(),
        diverged=lost,
        params={n: t.detach().cpu().clone() for n, t in stack.params(kept).items()},
        train_curve=curve.cpu(),
        curve_steps=torch.arange(n_points, dtype=torch.long) * every,
        train_loss=per_run_result(train_loss),
        val_accuracy=per_run_result(val_accuracy),
        test_accuracy=per_run_result(test_accuracy),
        shift_mse=per_run_result(shift),
        shift_accuracy=per_run_result(shift_accuracy),
    )
