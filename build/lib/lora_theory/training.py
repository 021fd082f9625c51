r"""Gradient-based fitting of LoRA adapters (and biases, or whole final layers) for FNNs, batched.

The paper's "Gradient Update" baseline (chapter "Linear models", then the FNN chapters): adapt a
frozen network ``f_0 = FNN_{L,D}((W_l), (b_l))`` to a target ``f̄ = FNN_{L̄,D}`` (``L̄ ≤ L``) by
minimising the mean squared error

    ℓ(θ) = (1 / (n D)) Σ_{i=1}^{n} ‖f_θ(x_i) − f̄(x_i)‖²,     x_i ~ N(0, I_D), n = batch size,

with Adam (``torch.optim.Adam``'s defaults, coupled L2 weight decay) on fresh batches, where every
layer uses ``W_l + B_l A_l`` with ``B_l: (D, R)``, ``A_l: (R, D)`` (PEFT orientation, no ``α/r``
scaling). Initialisation keeps ``ΔW = 0``: ``B_l = 0`` and ``A_l ~ N(0, 0.25²)`` entrywise — the
paper's code zeroes one factor and draws the other with std 0.25, in the transposed orientation.
What is trainable is described by :class:`Trainable`: the LoRA factors, optionally all biases, and
optionally the full weights and biases of the last ``k`` layers (final-layer tuning, FLT; training
every layer of a model this way is the paper's "pretraining" of the frozen model).

**Batching.** :func:`fit` trains ``C`` runs (ranks × seeds × learning rates × weight decays …) as
one computation: every trainable tensor carries a leading config dimension, e.g.
``A: (C, L, R_max, D)``. Runs of different ranks share one shape by padding the factors to
``R_max``; the padded rows of ``A`` and columns of ``B`` start at exactly zero, receive exactly zero
gradient (``∂ℓ/∂B_{:,r} = G A_{r,:}ᵀ = 0``, ``∂ℓ/∂A_{r,:} = B_{:,r}ᵀ G = 0``) and are excluded
from the Adam update by a 0/1 mask, so they stay zero and the run is exactly a rank-``R`` run.
:class:`BatchedAdam` is Adam with a learning rate and weight decay per config; the gradients come
from a hand-written backward pass (no autograd graph, see ``_Stack.gradient``). Each run evaluates
a validation MSE every ``eval_every`` steps and keeps the parameters of its best evaluation; its
test MSE is measured there (the paper's model selection, with validation, test and training data
drawn from independent streams — see :func:`generator`).

**Determinism.** A run's factor ``A`` is drawn from its seed's ``"lora-init"`` stream and its data
from the ``"train"``/``"val"``/``"test"`` streams, so its result depends only on its own settings,
not on which other runs share the batch (checked by the tests to float64 round-off).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .adapters import LoRAFactors
from .fnn import FNN
from .runtime import device as resolve_device

#: The paper's std of the randomly initialised LoRA factor.
LORA_INIT_STD = 0.25
#: Adam's defaults, as in ``torch.optim.Adam``.
BETAS = (0.9, 0.999)
EPS = 1e-8
#: Entries (configs × points × D) evaluated at once when measuring test MSE.
_EVAL_ELEMENTS = 2**24


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for the named random ``stream`` of ``seed``.

    Streams with different names are statistically independent (the seed is mixed with the name by
    ``numpy.random.SeedSequence``), so e.g. the training batches, the validation set and the test
    set of a seed never share points.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [int(seed), *stream.encode()]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@dataclass(frozen=True)
class Task:
    """One adaptation problem: a target, a frozen model and the seed of its data streams.

    ``target`` and ``frozen`` must share width and activation; ``bias`` says whether the frozen
    model has bias vectors at all (if not, none is ever trained). Inputs are ``x ~ N(0, I_D)``.
    """

    target: FNN
    frozen: FNN
    seed: int
    bias: bool = True

    def __post_init__(self) -> None:
        if self.target.width != self.frozen.width:
            raise ValueError(
                f"target width {self.target.width} != frozen width {self.frozen.width}"
            )
        if self.target.activation != self.frozen.activation:
            raise ValueError(
                f"target activation {self.target.activation!r} != frozen activation "
                f"{self.frozen.activation!r}"
            )

    def sample(
        self, shape: tuple[int, ...], gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``x`` of shape ``(*shape, D)`` from ``gen`` and labels ``f̄(x)`` (float64, CPU)."""
        d = self.frozen.width
        x = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
        return x, self.target(x.reshape(-1, d)).reshape(x.shape)

    def test_set(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n``-point test set ``(x, f̄(x))`` of the ``"test"`` stream, each ``(n, D)``."""
        return self.sample((n,), generator(self.seed, "test"))


@dataclass(frozen=True)
class Trainable:
    """Which parameters of the frozen ``FNN_{L,D}`` a run trains.

    ``lora_rank``: ``R`` of the adapter ``B_l A_l`` on every layer (``0``: no LoRA);
    ``tune_bias``: all biases ``b_1, …, b_L``; ``final_layers``: ``k``, the full weights and biases
    of layers ``L−k+1, …, L`` (final-layer tuning; ``k = L`` trains the whole model).
    """

    lora_rank: int = 0
    tune_bias: bool = False
    final_layers: int = 0

    def check(self, width: int, depth: int, bias: bool) -> None:
        """Raise ``ValueError`` if this spec does not fit a width-``D``, depth-``L`` model."""
        if not 0 <= self.lora_rank <= width:
            raise ValueError(f"lora_rank must be in [0, {width}], got {self.lora_rank}")
        if not 0 <= self.final_layers <= depth:
            raise ValueError(f"final_layers must be in [0, {depth}], got {self.final_layers}")
        if self.tune_bias and not bias:
            raise ValueError("tune_bias=True but the frozen model has no biases")
        if self.lora_rank == 0 and self.final_layers == 0 and not self.tune_bias:
            raise ValueError("nothing to train: lora_rank=0, final_layers=0, tune_bias=False")

    def n_params(self, width: int, depth: int, bias: bool = True) -> int:
        """Trainable parameters: ``2RDL`` (LoRA) ``+ kD²`` (FLT weights) ``+ D`` per tuned bias.

        Biases count once per layer whose bias is trained: all ``L`` with ``tune_bias``, else the
        last ``k`` (none if the model has no biases). E.g. LoRA with tuned biases: ``2RDL + DL``.
        """
        tuned_biases = (depth if self.tune_bias else self.final_layers) if bias else 0
        return (
            2 * self.lora_rank * width * depth
            + self.final_layers * width * width
            + tuned_biases * width
        )


@dataclass(frozen=True)
class Run:
    """One configuration: which task, what is trained, Adam's learning rate and weight decay."""

    task: int
    trainable: Trainable
    lr: float
    weight_decay: float = 0.0


@dataclass(frozen=True)
class FitSettings:
    """The work of one :func:`fit`.

    ``steps`` Adam updates on fresh batches of ``batch_size`` points from the ``train_stream`` of
    each task's seed; validation MSE on ``n_val`` points (``"val"`` stream) after every
    ``eval_every``-th update, at the start and at the end (``n_val = 0``: no validation, the final
    parameters are kept); test MSE on ``n_test`` points at the kept parameters (``0``: none).
    ``stop_ratio``: stop a run as soon as its training MSE falls below (its first batch's MSE) /
    ``stop_ratio``. ``chunk``: how many steps of data are drawn at once.
    """

    steps: int
    batch_size: int = 256
    n_val: int = 256
    n_test: int = 5000
    eval_every: int = 1
    stop_ratio: float | None = None
    init_std: float = LORA_INIT_STD
    train_stream: str = "train"
    chunk: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "n_val", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("batch_size", "eval_every", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.stop_ratio is not None and self.stop_ratio <= 1:
            raise ValueError(f"stop_ratio must be > 1, got {self.stop_ratio}")


class BatchedAdam:
    """``torch.optim.Adam`` for ``C`` stacked configs, with a per-config ``lr`` and weight decay.

    For the parameter ``θ`` (leading dim ``C``) and step ``t``:
    ``g ← ∇θ + wd·θ``, ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``,
    ``θ ← θ − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)``, applied only where ``mask`` (broadcastable
    to ``θ``) is true and the config is active; elsewhere ``θ`` is left bit-for-bit unchanged.
    Same operation order as PyTorch's implementation.
    """

    def __init__(
        self, param: torch.Tensor, mask: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor
    ) -> None:
        per_config = (-1,) + (1,) * (param.ndim - 1)
        self.param, self.fixed = param, ~mask
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)
        self.lr, self.wd = lr.reshape(per_config), weight_decay.reshape(per_config)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One update with ``grad`` (shape of the parameter, overwritten); ``active``: ``(C,)``."""
        self.t += 1
        beta1, beta2 = BETAS
        bc1, bc2_sqrt = 1 - beta1**self.t, math.sqrt(1 - beta2**self.t)
        g = grad.addcmul_(self.param, self.wd)  # in place: ``grad`` is not used afterwards
        self.m.lerp_(g, 1 - beta1)
        self.v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        update = self.v.sqrt().div_(bc2_sqrt).add_(EPS)  # the denominator, then the update
        torch.div(self.m, update, out=update).mul_(self.lr / bc1)
        fixed = self.fixed if active is None else self.fixed | ~active.reshape(self.lr.shape)
        self.param.sub_(update.masked_fill_(fixed, 0.0))


class _Stack:
    """The ``C`` runs' parameters: weights ``(C, L, D, D)``, biases ``(C, L, D)``,
    ``A: (C, L, R_max, D)``, ``B: (C, L, D, R_max)``, with the forward pass and its gradient.

    The tensors with a trainable entry live side by side, layer by layer, in one buffer
    ``flat: (C, L, P)`` (what Adam updates; ``P`` entries per layer, so ``(C, L)`` merges into one
    batch dimension without a copy), with a boolean ``mask`` of the trainable entries; the other
    tensors stay fixed.
    Activations (``C × n × D``) are written into work buffers reused from step to step: fresh
    allocations of that size would be returned to the OS and page-faulted back every step.
    """

    NAMES = ("weight", "bias", "lora_a", "lora_b")

    def __init__(
        self,
        tasks: Sequence[Task],
        runs: Sequence[Run],
        init_std: float,
        dev: torch.device,
        dtype: torch.dtype,
    ) -> None:
        frozen = [tasks[r.task].frozen for r in runs]
        width, depth = frozen[0].width, frozen[0].depth
        self.activation = frozen[0].activation
        self.index = torch.tensor([r.task for r in runs], device=dev)  # run -> task
        self._buffers: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}
        specs = [r.trainable for r in runs]
        layer = torch.arange(depth)
        flt = torch.stack([layer >= depth - s.final_layers for s in specs])  # (C, L)
        has_bias = torch.tensor([tasks[r.task].bias for r in runs])[:, None]
        tune_b = (torch.tensor([s.tune_bias for s in specs])[:, None] | flt) & has_bias
        self.has_bias = bool(has_bias.any())
        ranks = torch.tensor([s.lora_rank for s in specs])
        self.r_max = int(ranks.max())
        rank_mask = torch.arange(self.r_max) < ranks[:, None]  # (C, R_max)

        a0 = torch.zeros(len(runs), depth, self.r_max, width, dtype=torch.float64)
        for c, r in enumerate(runs):
            rank = specs[c].lora_rank
            gen = generator(tasks[r.task].seed, "lora-init")
            a0[c, :, :rank] = torch.randn(depth, rank, width, generator=gen, dtype=torch.float64)
        init = {
            "weight": torch.stack([torch.stack(f.weights) for f in frozen]),
            "bias": torch.stack([torch.stack(f.biases) for f in frozen]),
            "lora_a": a0 * init_std,
            "lora_b": torch.zeros(len(runs), depth, width, self.r_max, dtype=torch.float64),
        }
        masks = {
            "weight": flt[:, :, None, None],
            "bias": tune_b[:, :, None],
            "lora_a": rank_mask[:, None, :, None],
            "lora_b": rank_mask[:, None, None, :],
        }
        self.trained = [n for n in self.NAMES if bool(masks[n].any())]
        self.shapes = {n: init[n].shape[2:] for n in self.trained}  # per layer
        self.fixed = {n: init[n].to(dev, dtype) for n in self.NAMES if n not in self.trained}
        self.flat = torch.cat([init[n].flatten(2) for n in self.trained], 2).to(dev, dtype)
        self.mask = torch.cat(
            [masks[n].expand(init[n].shape).flatten(2) for n in self.trained], 2
        ).to(dev)

    def _buffer(
        self, name: str, shape: torch.Size, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The work buffer ``name`` of this shape (allocated on first use)."""
        key = (name, tuple(shape), dtype or self.flat.dtype)
        if key not in self._buffers:
            self._buffers[key] = self.flat.new_empty(shape, dtype=key[2])
        return self._buffers[key]

    def gather(self, data: torch.Tensor, name: str) -> torch.Tensor:
        """Per-task ``data`` ``(T, n, D)`` → per-run ``(C, n, D)``: each run gets its task's."""
        shape = (len(self.index), *data.shape[1:])
        return torch.index_select(data, 0, self.index, out=self._buffer(name, shape))

    def params(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All four tensors; the trained ones are views into ``flat`` (default: the current)."""
        flat = self.flat if flat is None else flat
        sizes = [math.prod(self.shapes[n]) for n in self.trained]
        parts = flat.split(sizes, dim=2)
        views = {
            n: p.view(*flat.shape[:2], *self.shapes[n])
            for n, p in zip(self.trained, parts, strict=True)
        }
        return {**self.fixed, **views}

    def effective(self, flat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_l + B_l A_l, b_l)`` of all configs and layers: ``(C, L, D, D)``, ``(C, L, D)``."""
        p = self.params(flat)
        w = p["weight"] + p["lora_b"] @ p["lora_a"] if self.r_max else p["weight"]
        return w, p["bias"]

    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """States ``[h_0 = x, …, h_L]``, each ``(C, n, D)``, ``h_l = act(h_{l-1} W_lᵀ + b_l)``."""
        states = [x]
        for layer in range(w.shape[1]):
            h = torch.bmm(states[-1], w[:, layer].mT, out=self._buffer(f"h{layer}", x.shape))
            if self.has_bias:
                h += b[:, layer, None, :]
            states.append(torch.relu_(h) if self.activation == "relu" else h)
        return states

    @torch.no_grad()
    def mse(
        self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        """MSE per run (mean over points and outputs) of the model ``(w, b)`` on ``(x, y)``."""
        residual = torch.sub(self.forward(x, w, b)[-1], y, out=self._buffer("residual", x.shape))
        return torch.linalg.vector_norm(residual, dim=(1, 2)).square() / residual[0].numel()

    def gradient(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training MSE ``ℓ_c`` ``(C,)`` and ``∂ℓ_c/∂flat`` ``(C, L, P)`` on the per-task batch
        ``(x, y)`` (each ``(T, n, D)``; run ``c`` trains on its task's).

        Backpropagation by hand, with ``δ_L = h_L − y`` and ``δ_{l−1} = (δ_l W_l) ⊙ act′``:
        ``∂ℓ/∂W_l = s δ_lᵀ h_{l−1}``, ``∂ℓ/∂b_l = s Σ_i δ_l``, ``s = 2/(nD)``; through the
        adapter ``W_l + B_l A_l``: ``∂ℓ/∂B_l = (∂ℓ/∂W_l) A_lᵀ`` and ``∂ℓ/∂A_l = B_lᵀ (∂ℓ/∂W_l)``.
        """
        p = self.params()
        w, b = self.effective()
        states = self.forward(self.gather(x, "x"), w, b)
        delta = torch.sub(
            states[-1], self.gather(y, "y"), out=self._buffer("delta", states[0].shape)
        )
        scale = 2 / delta[0].numel()
        losses = torch.linalg.vector_norm(delta, dim=(1, 2)).square() * (scale / 2)
        grad_w, grad_b = [], []
        for layer in range(w.shape[1] - 1, -1, -1):
            if self.activation == "relu":
                off = self._buffer("off", delta.shape, torch.bool)
                delta.masked_fill_(torch.le(states[layer + 1], 0, out=off), 0.0)
            grad_w.append(delta.mT @ states[layer])
            if "bias" in self.trained:
                grad_b.append(delta.sum(1))
            if layer:
                delta = torch.bmm(delta, w[:, layer], out=self._buffer(f"d{layer}", delta.shape))
        grads = {"weight": torch.stack(grad_w[::-1], 1).mul_(scale)}
        if grad_b:
            grads["bias"] = torch.stack(grad_b[::-1], 1).mul_(scale)
        if self.r_max:
            grads["lora_b"] = grads["weight"] @ p["lora_a"].mT
            grads["lora_a"] = p["lora_b"].mT @ grads["weight"]
        return losses, torch.cat([grads[n].flatten(2) for n in self.trained], 2)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns; tensors are on the CPU, indexed by run.

    ``best_val`` ``(C,)`` (``inf`` without validation), ``best_step`` ``(C,)`` (updates done at the
    kept parameters), ``test_mse`` ``(C,)`` (``nan`` without a test set), ``val_curve``
    ``(C, n_evals)`` at ``eval_steps``, ``steps_run`` ``(C,)`` (fewer than ``steps`` after an early
    stop), ``final_train_mse`` ``(C,)`` (MSE of the last training batch seen), and the kept
    parameters ``weight`` ``(C, L, D, D)`` (frozen unless final layers are trained), ``bias``
    ``(C, L, D)``, ``lora_a`` ``(C, L, R_max, D)``, ``lora_b`` ``(C, L, D, R_max)``.
    """

    tasks: tuple[Task, ...]
    runs: tuple[Run, ...]
    best_val: torch.Tensor
    best_step: torch.Tensor
    test_mse: torch.Tensor
    val_curve: torch.Tensor
    eval_steps: torch.Tensor
    steps_run: torch.Tensor
    final_train_mse: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    lora_a: torch.Tensor
    lora_b: torch.Tensor

    def model(self, i: int) -> FNN:
        """Run ``i``'s kept model as an :class:`~lora_theory.fnn.FNN` (``.adapters`` if LoRA)."""
        run, task = self.runs[i], self.tasks[self.runs[i].task]
        rank = run.trainable.lora_rank
        adapters = [
            LoRAFactors(b[:, :rank], a[:rank])
            for b, a in zip(self.lora_b[i], self.lora_a[i], strict=True)
        ]
        return FNN(
            list(self.weight[i]),
            list(self.bias[i]) if task.bias else None,
            activation=task.frozen.activation,
            adapters=adapters if rank else None,
        )


def _check(tasks: Sequence[Task], runs: Sequence[Run]) -> None:
    if not tasks or not runs:
        raise ValueError("fit needs at least one task and one run")
    shapes = {(t.frozen.width, t.frozen.depth, t.frozen.activation) for t in tasks}
    if len(shapes) != 1:
        raise ValueError(
            f"all frozen models of one fit must share (width, depth, activation), got {shapes}"
        )
    for i, r in enumerate(runs):
        if not 0 <= r.task < len(tasks):
            raise ValueError(f"runs[{i}].task={r.task} is not an index into {len(tasks)} tasks")
        if r.lr <= 0 or r.weight_decay < 0:
            raise ValueError(f"runs[{i}] needs lr > 0 and weight_decay ≥ 0, got {r}")
        f = tasks[r.task].frozen
        r.trainable.check(f.width, f.depth, tasks[r.task].bias)


class _Data:
    """Fresh training batches for every task, drawn ``chunk`` steps at a time on the CPU."""

    def __init__(
        self, tasks: Sequence[Task], settings: FitSettings, dev: torch.device, dtype: torch.dtype
    ) -> None:
        self.tasks, self.s, self.dev, self.dtype = tasks, settings, dev, dtype
        self.gens = [generator(t.seed, settings.train_stream) for t in tasks]
        self.x = self.y = torch.empty(0)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, f̄(x))`` of step ``step``, each ``(T, batch, D)`` on the device."""
        k = step % self.s.chunk
        if k == 0:
            shape = (min(self.s.chunk, self.s.steps - step), self.s.batch_size)
            pairs = [t.sample(shape, g) for t, g in zip(self.tasks, self.gens, strict=True)]
            self.x = torch.stack([p[0] for p in pairs], 1).to(self.dev, self.dtype)
            self.y = torch.stack([p[1] for p in pairs], 1).to(self.dev, self.dtype)
        return self.x[k], self.y[k]


def _test_mse(stack: _Stack, flat: torch.Tensor, tasks: Sequence[Task], n: int) -> torch.Tensor:
    """Test MSE of every run at the parameters ``flat``, in chunks of runs to bound memory."""
    sets = [t.test_set(n) for t in tasks]
    x = torch.stack([s[0] for s in sets]).to(flat.device, flat.dtype)
    y = torch.stack([s[1] for s in sets]).to(flat.device, flat.dtype)
    w, b = stack.effective(flat)
    size = max(1, _EVAL_ELEMENTS // (n * w.shape[-1]))
    chunks = [slice(i, i + size) for i in range(0, len(flat), size)]
    index = stack.index
    return torch.cat([stack.mse(x[index[c]], y[index[c]], w[c], b[c]) for c in chunks])


class _Selection:
    """Validation-based model selection: each run's best validation MSE and its parameters."""

    def __init__(self, tasks: Sequence[Task], stack: _Stack, n: int) -> None:
        sets = [t.sample((n,), generator(t.seed, "val")) for t in tasks]
        like = stack.flat
        self.x = torch.stack([s[0] for s in sets]).to(like.device, like.dtype)[stack.index]
        self.y = torch.stack([s[1] for s in sets]).to(like.device, like.dtype)[stack.index]
        self.best_val = like.new_full((len(like),), math.inf)
        self.best_step = torch.zeros(len(like), dtype=torch.long, device=like.device)
        self.best = stack.flat.clone()
        self.curve: list[torch.Tensor] = []
        self.steps: list[int] = []

    @torch.no_grad()
    def evaluate(self, stack: _Stack, step: int) -> None:
        """Validate the current parameters (after ``step`` updates); keep them where better."""
        val = stack.mse(self.x, self.y, *stack.effective())
        better = val < self.best_val  # NaN (a diverged run) never counts as better
        self.best_val = torch.where(better, val, self.best_val)
        self.best_step = torch.where(better, step, self.best_step)
        self.best = torch.where(better[:, None, None], stack.flat, self.best)
        self.curve.append(val)
        self.steps.append(step)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run with ``n`` CPU intra-op threads, then restore torch's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    settings: FitSettings,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> FitResult:
    """Train all ``runs`` together (see the module docstring); ``progress(n)`` after ``n`` steps.

    All tasks must share the frozen width ``D``, depth ``L`` and activation (group runs by shape
    otherwise); target depths may differ. A run's data, initialisation and result do not depend on
    which other runs share the batch.

    On the CPU the runs are split into ``workers`` shards (default: torch's thread count, i.e. the
    cores), trained side by side in Python threads that each run single-threaded torch ops. The
    tensors are small (``C × batch × D``): sharding uses the cores without a synchronisation
    barrier in every op (which stalls when the cores are shared), and keeps the numbers
    independent of the core count. On a GPU all runs form one batch.
    """
    _check(tasks, runs)
    dev = resolve_device(str(device) if device is not None else None)
    if dev.type != "cpu":
        return _fit(tasks, runs, settings, dev, dtype, progress)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    n = min(workers or torch.get_num_threads(), len(runs))
    with _threads(1):
        if n == 1:
            return _fit(tasks, runs, settings, dev, dtype, progress)
        shards = _shards(runs, n)
        with ThreadPoolExecutor(n) as pool:
            futures = [
                pool.submit(_fit_shard, tasks, runs, shard, settings, dev, dtype, report)
                for shard, report in zip(shards, [progress] + [None] * (n - 1), strict=True)
            ]
            parts = [f.result() for f in futures]
    return _merge(tasks, runs, shards, parts)


def _shards(runs: Sequence[Run], n: int) -> list[list[int]]:
    """``n`` near-equal groups of run positions, runs of one task kept together where possible."""
    order = sorted(range(len(runs)), key=lambda i: runs[i].task)
    return [order[i * len(order) // n : (i + 1) * len(order) // n] for i in range(n)]


def _fit_shard(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    shard: list[int],
    settings: FitSettings,
    dev: torch.device,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None,
) -> FitResult:
    """:func:`_fit` on the runs at positions ``shard``, with their tasks renumbered."""
    used = sorted({runs[i].task for i in shard})
    local = {t: k for k, t in enumerate(used)}
    shard_runs = [replace(runs[i], task=local[runs[i].task]) for i in shard]
    return _fit([tasks[t] for t in used], shard_runs, settings, dev, dtype, progress)


#: Per-run fields of :class:`FitResult` whose size varies between shards: (dim, fill value).
_PADDED = {"lora_a": (2, 0.0), "lora_b": (3, 0.0), "val_curve": (1, math.nan)}


def _pad(t: torch.Tensor, dim: int, size: int, fill: float) -> torch.Tensor:
    """``t`` extended along ``dim`` to ``size`` with ``fill``."""
    extra = list(t.shape)
    extra[dim] = size - t.shape[dim]
    return torch.cat([t, t.new_full(extra, fill)], dim)


def _merge(
    tasks: Sequence[Task], runs: Sequence[Run], shards: list[list[int]], parts: list[FitResult]
) -> FitResult:
    """One :class:`FitResult` in the order of ``runs`` from the shards' results."""
    merged = {}
    for f in fields(FitResult):
        if f.name in ("tasks", "runs", "eval_steps"):
            continue
        pieces = [getattr(p, f.name) for p in parts]
        if f.name in _PADDED:
            dim, fill = _PADDED[f.name]
            size = max(t.shape[dim] for t in pieces)
            pieces = [_pad(t, dim, size, fill) for t in pieces]
        out = pieces[0].new_empty((len(runs), *pieces[0].shape[1:]))
        for shard, piece in zip(shards, pieces, strict=True):
            out[shard] = piece
        merged[f.name] = out
    steps = max((p.eval_steps for p in parts), key=len)
    return FitResult(tasks=tuple(tasks), runs=tuple(runs), eval_steps=steps, **merged)


def _fit(
    tasks: Sequence[Task],
    runs: Sequence[Run],
    settings: FitSettings,
    dev: torch.device,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None,
) -> FitResult:
    stack = _Stack(tasks, runs, settings.init_std, dev, dtype)
    per_run = {"device": dev, "dtype": dtype}
    adam = BatchedAdam(
        stack.flat,
        stack.mask,
        torch.tensor([r.lr for r in runs], **per_run),
        torch.tensor([r.weight_decay for r in runs], **per_run),
    )
    selection = _Selection(tasks, stack, settings.n_val) if settings.n_val else None
    active = torch.ones(len(runs), dtype=torch.bool, device=dev)
    steps_run = torch.zeros(len(runs), dtype=torch.long, device=dev)
    train_mse = first_mse = torch.full((len(runs),), math.nan, **per_run)
    data = _Data(tasks, settings, dev, dtype)
    step = 0
    for step in range(settings.steps + 1):
        if selection and (step % settings.eval_every == 0 or step == settings.steps):
            selection.evaluate(stack, step)
        if step == settings.steps:
            break
        x, y = data.batch(step)
        losses, grad = stack.gradient(x, y)
        train_mse = torch.where(active, losses, train_mse)
        if settings.stop_ratio is not None:
            first_mse = losses if step == 0 else first_mse
            active &= ~(losses < first_mse / settings.stop_ratio)
            if not bool(active.any()):
                break
        adam.step(grad, active if settings.stop_ratio is not None else None)
        steps_run += active
        if progress is not None:
            progress(1)
    if progress is not None and step < settings.steps:
        progress(settings.steps - step)  # the steps an early stop skipped
    kept = selection.best if selection else stack.flat
    no_val = torch.full((len(runs),), math.inf)
    return FitResult(
        tasks=tuple(tasks),
        runs=tuple(runs),
        best_val=selection.best_val.cpu() if selection else no_val,
        best_step=selection.best_step.cpu() if selection else steps_run.cpu(),
        test_mse=(
            _test_mse(stack, kept, tasks, settings.n_test).cpu()
            if settings.n_test
            else torch.full((len(runs),), math.nan)
        ),
        val_curve=torch.stack(selection.curve, 1).cpu() if selection else torch.empty(len(runs), 0),
        eval_steps=torch.tensor(selection.steps if selection else [], dtype=torch.long),
        steps_run=steps_run.cpu(),
        final_train_mse=train_mse.cpu(),
        **{name: t.cpu().clone() for name, t in stack.params(kept).items()},
    )


def select_by_validation(
    keys: Sequence[Hashable], val_loss: Sequence[float]
) -> dict[Hashable, int]:
    """For each distinct key, the index of its run with the smallest validation loss.

    The paper's model selection: e.g. keys ``(panel, rank, seed)`` over an lr × wd grid. NaN counts
    as ``+inf``; ties go to the earliest run. Keys appear in order of first occurrence.
    """
    if len(keys) != len(val_loss):
        raise ValueError(f"got {len(keys)} keys but {len(val_loss)} validation losses")
    losses = [math.inf if math.isnan(v) else float(v) for v in val_loss]
    chosen: dict[Hashable, int] = {}
    for i, key in enumerate(keys):
        if key not in chosen or losses[i] < losses[chosen[key]]:
            chosen[key] = i
    return chosen
