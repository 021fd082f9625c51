"""The linear and FNN families: the models of Lemma 1, Lemma 2 and Theorem 3 in the engine.

Both train ``FNN_{L,D}`` stacks (the linear model is an FNN with the identity activation and no
biases): LoRA factors ``B_l A_l`` on every layer (PEFT orientation, no ``α/r`` scaling, ``B = 0``
and ``A ~ N(0, 0.25²)`` at initialisation as in the paper's code), optionally all biases, and
optionally the full weights and biases of the last ``k`` layers (final-layer tuning; ``k = L``
trains the whole model, the paper's "pretraining"). Seed ``s`` fixes the models: the target
``FNN_{L̄,D}`` and the random frozen ``FNN_{L,D}`` are drawn, in that order, from the ``"model"``
stream of ``s`` (``nn.Linear``'s initialisation).

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ... import checks, fnn, linear
from ...adapters import LoRAFactors, n_lora_params
from ...fnn import FNN
from ...linalg import product
from ...runtime import generator
from ...training import Run, Stacked, Task, lora_init
from ...training.stacked import check_build
from ..settings import Experiment, Panel, model_size, task_arguments
from . import Family, register


@dataclass(frozen=True)
class Trainable:
    """Which parameters of the frozen ``FNN_{L,D}`` a run trains.

    ``lora_rank``: ``R`` of the adapter ``B_l A_l`` on every layer (``0``: no LoRA), or one rank
    per frozen layer, ``(R_1, …, R_L)`` (a list is stored as a tuple; ``0`` leaves a layer
    unadapted); ``tune_bias``: all biases ``b_1, …, b_L``; ``final_layers``: ``k``, the full
    weights and biases of layers ``L−k+1, …, L`` (final-layer tuning; ``k = L`` trains the whole
    model).

    Introduced in :ref:`sec-fig1`.
    """

    lora_rank: int | tuple[int, ...] = 0
    tune_bias: bool = False
    final_layers: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.lora_rank, (list, tuple)):
            ranks = checks.integers(self.lora_rank, "lora_rank", low=0)
            object.__setattr__(self, "lora_rank", tuple(ranks))
        else:
            checks.integer(self.lora_rank, "lora_rank", low=0)
        checks.integer(self.final_layers, "final_layers", low=0)
        _flag(self.tune_bias, "tune_bias")

    def layer_ranks(self, depth: int) -> list[int]:
        """``[R_1, …, R_L]``: the common rank repeated, or the per-layer ranks (``ValueError``
        when there are not ``depth`` of them)."""
        if not isinstance(self.lora_rank, tuple):
            return [self.lora_rank] * depth
        if len(self.lora_rank) != depth:
            raise ValueError(
                f"lora_rank has {len(self.lora_rank)} per-layer ranks for {depth} frozen layers: "
                f"{self.lora_rank}"
            )
        return list(self.lora_rank)

    def check(self, width: int, depth: int, bias: bool) -> None:
        """Raise ``ValueError`` if this spec does not fit a width-``D``, depth-``L`` model."""
        width, depth = model_size(width, depth)
        _flag(bias, "bias")
        ranks = self.layer_ranks(depth)
        if isinstance(self.lora_rank, tuple):
            checks.integers(ranks, "lora_rank", 0, width)
        else:
            checks.integer(self.lora_rank, "lora_rank", 0, width)
        checks.integer(self.final_layers, "final_layers", 0, depth)
        if self.tune_bias and not bias:
            raise ValueError("tune_bias=True but the frozen model has no biases")
        if not any(ranks) and self.final_layers == 0 and not self.tune_bias:
            raise ValueError(
                f"nothing to train: lora_rank={self.lora_rank}, final_layers=0, tune_bias=False"
            )

    def n_params(self, width: int, depth: int, bias: bool = True) -> int:
        """Trainable parameters: ``Σ_l 2R_lD`` (LoRA; ``2RDL`` for one rank) ``+ kD²``
        (final-layer weights) ``+ D`` per tuned bias (all ``L`` with ``tune_bias``, else the last
        ``k``; none without biases)."""
        width, depth = model_size(width, depth)
        _flag(bias, "bias")
        tuned_biases = (depth if self.tune_bias else self.final_layers) if bias else 0
        lora = n_lora_params(width, self.layer_ranks(depth))
        return lora + self.final_layers * width * width + tuned_biases * width


def _flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


class FNNStack(Stacked):
    """``C`` runs of ``FNN_{L,D}``: weights ``(C, L, D, D)``, biases ``(C, L, D)``,
    ``lora_a: (C, L, R_max, D)``, ``lora_b: (C, L, D, R_max)``.

    Adapters already on a frozen model are merged into its weights: the engine trains the model
    it is given. Gradients come from the engine's autograd path, except that a linear model
    (identity activation, no biases) exposes its product as :meth:`linear_map`, whose MSE
    gradient the engine takes from the data's moments (1.29× faster on the Figure 1 sweep); the
    first engine's hand-written backward pass was removed after ``benchmarks/bench_engine.py``
    measured it no faster end to end (0.97× autograd's configurations/s).

    Introduced in :ref:`sec-fig1`.
    """

    @classmethod
    def build(
        cls,
        tasks: Sequence[Task],
        runs: Sequence[Run],
        init_std: float,
        dev: torch.device,
        dtype: torch.dtype,
    ) -> FNNStack:
        tasks, runs, init_std = check_build(tasks, runs, init_std, dev, dtype)
        checks.instances([t.frozen for t in tasks], "frozen models of tasks", FNN, "an FNN")
        frozen = [tasks[r.task].frozen for r in runs]
        shapes = {
            (t.frozen.width, t.frozen.depth, t.frozen.activation, t.frozen.has_bias) for t in tasks
        }
        if len(shapes) != 1:
            raise ValueError(
                "all frozen models of one fit must share (width, depth, activation, has_bias), "
                f"got {sorted(shapes)}"
            )
        width, depth, activation, has_bias = shapes.pop()
        for i, t in enumerate(tasks):
            if t.input_shape != (width,):
                raise ValueError(
                    f"tasks[{i}].input_shape is {t.input_shape} but its frozen FNN has width "
                    f"{width}: the inputs must be ({width},)"
                )
            out = t.target(torch.zeros(1, width, dtype=torch.float64))
            if not isinstance(out, torch.Tensor) or out.shape != (1, width):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"tasks[{i}].target must map (n, {width}) inputs to (n, {width}) outputs like "
                    f"its frozen FNN, got {got} for n = 1"
                )
        specs = [r.trainable for r in runs]
        for i, s in enumerate(specs):
            if not isinstance(s, Trainable):
                raise ValueError(f"runs[{i}].trainable must be a Trainable, got {s!r}")
            s.check(width, depth, has_bias)
        layer = torch.arange(depth)
        flt = torch.stack([layer >= depth - s.final_layers for s in specs])  # (C, L)
        tune_b = (torch.tensor([s.tune_bias for s in specs])[:, None] | flt) & has_bias
        ranks = torch.tensor([s.layer_ranks(depth) for s in specs])  # (C, L)
        r_max = int(ranks.max())
        rank_mask = torch.arange(r_max) < ranks[:, :, None]  # (C, L, R_max)
        # A's rows beyond a layer's rank start at zero; for one common rank this is the draw of
        # ``lora_init`` as it is.
        lora_a = torch.stack(
            [
                lora_init(tasks[r.task], int(rank.max()), r_max, (depth, width), init_std)
                for r, rank in zip(runs, ranks, strict=True)
            ]
        )
        tensors = {
            "weight": torch.stack([torch.stack(f.effective_weights) for f in frozen]),
            "bias": torch.stack([torch.stack(f.biases) for f in frozen]),
            "lora_a": lora_a * rank_mask[..., None],
            "lora_b": torch.zeros(len(runs), depth, width, r_max, dtype=torch.float64),
        }
        masks = {
            "weight": flt[:, :, None, None],
            "bias": tune_b[:, :, None],
            "lora_a": rank_mask[:, :, :, None],
            "lora_b": rank_mask[:, :, None, :],
        }
        stack = cls(tensors, masks, runs, dev, dtype)
        stack.activation, stack.has_bias, stack.r_max = activation, has_bias, r_max
        return stack

    def effective(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``W_l + B_l A_l`` of all configs and layers, ``(C', L, D, D)``."""
        w = params["weight"]
        return w + params["lora_b"] @ params["lora_a"] if self.r_max else w

    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``h_l = act(h_{l−1} (W_l + B_l A_l)ᵀ + b_l)`` for ``x: (C', n, D)``; returns ``h_L``.

        A linear model (identity activation, no biases) is ``x ↦ x (W'_L ⋯ W'_1)ᵀ``: the product
        is formed first (``L − 1`` products of ``D × D`` matrices), so the ``n`` points pass
        through one matrix instead of ``L``, forwards and backwards.
        """
        linear_map = self.linear_map(params)
        if linear_map is not None:
            return torch.bmm(x, linear_map.mT)
        w, h = self.effective(params), x
        for layer in range(w.shape[1]):
            if self.has_bias:  # b_l + h W_lᵀ in one kernel
                h = torch.baddbmm(params["bias"][:, layer, None, :], h, w[:, layer].mT)
            else:
                h = torch.bmm(h, w[:, layer].mT)
            if self.activation == "relu":
                h = torch.relu_(h)
        return h

    def linear_map(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """``W'_L ⋯ W'_1`` ``(C', D, D)`` of a linear model (identity activation, no biases),
        ``None`` otherwise.

        Introduced in :ref:`sec-fig1`."""
        if self.activation != "identity" or self.has_bias:
            return None
        w = self.effective(params)
        prod = w[:, 0]
        for layer in range(1, w.shape[1]):
            prod = torch.bmm(w[:, layer], prod)
        return prod

    @staticmethod
    def model(task: Task, run: Run, params: Mapping[str, torch.Tensor]) -> FNN:
        ranks = run.trainable.layer_ranks(len(params["weight"]))
        adapters = [
            LoRAFactors(b[:, :rank], a[:rank])
            for b, a, rank in zip(params["lora_b"], params["lora_a"], ranks, strict=True)
        ]
        return FNN(
            list(params["weight"]),
            list(params["bias"]) if task.frozen.has_bias else None,
            activation=task.frozen.activation,
            adapters=adapters if any(ranks) else None,
        )


def random_task(panel: Panel, width: int, seed: int) -> Task:
    """The random target and frozen model of ``panel`` for ``seed`` (not pretrained).

    Introduced in :ref:`sec-fig1`.
    """
    panel, width, seed = task_arguments(panel, width, seed)
    gen = generator(seed, "model")
    kw = {"bias": panel.bias, "activation": "identity" if panel.family == "linear" else "relu"}
    target = FNN.random(width, panel.target_depth, gen, **kw)
    frozen = FNN.random(width, panel.depth, gen, **kw)
    fnn.check_pair(target, frozen)
    return Task(target, frozen, seed, (width,))


#: Half-width ``c`` of the input box ``‖x‖_∞ ≤ c`` for which the ReLU constructions are built. It
#: is fixed before any data are drawn (never read off the test set): a standard Gaussian coordinate
#: exceeds 6 in absolute value with probability about 2e-9, so a test set of 5000 inputs in
#: ``R^16`` leaves the box with probability below 2e-4. Points outside it are not covered: the
#: construction is exact there only where its linearised ReLUs happen to stay active (see
#: :func:`fnn_construction`); the 5× shifted inputs of the classification experiment leave the box
#: in almost every point.
INPUT_BOUND = 6.0


def _per_layer(rank: int | Sequence[int], depth: int) -> int | Sequence[int]:
    """Rank ``0`` as ``[0] * L`` (no layer adapted), which the constructions accept."""
    return [0] * depth if rank == 0 else rank


def linear_construction(task: Task, rank: int | Sequence[int]) -> FNN:
    """Lemma 1's adapted linear model (frozen weights plus ``B_l A_l``) for the target
    ``W̄ = W̄_{L̄} ⋯ W̄_1``; exact for every input. ``rank``: one ``R`` (``0``: the frozen model)
    or per-layer ranks.

    Introduced in :ref:`sec-fig1`.
    """
    _fnn_task(task)
    if task.frozen.has_bias or task.target.has_bias:
        raise ValueError("Lemma 1 is stated for linear models without biases")
    ranks = _per_layer(rank, task.frozen.depth)
    adapters = linear.construct(product(task.target.weights), task.frozen.weights, ranks)
    return FNN(task.frozen.weights, None, activation="identity", adapters=adapters)


def fnn_construction(task: Task, rank: int | Sequence[int]) -> FNN:
    """Theorem 3's adapted ReLU FNN (Lemma 2 when ``L̄ = 1``; per-layer ranks: the
    general-partition version on ``P^u``), exact on the box ``‖x‖_∞ ≤ INPUT_BOUND`` chosen in
    advance (Gaussian inputs are unbounded). Rank ``0``: no weight changes, the biases re-tuned
    as for any rank (each block computes ``ReLU(∏ W z + b̄_i)`` on its box).

    **Outside the box.** The equality ``f = f̄`` at and above the threshold is proved for
    ``‖x‖_∞ ≤ INPUT_BOUND`` only. It holds exactly on the larger set ``S`` of inputs at which
    every pre-activation that the construction linearises (all layers of a block but its last)
    is ``≥ 0``: there each block is the affine map ``W'_i z + b̄_i`` followed by ``ReLU``, the
    same as the target's layer when ``W'_i = W̄_i``. ``S`` is a polyhedron (for ``L̄ = 1``; a
    union of polyhedral pieces after the first block) that contains the box with a margin,
    since the linearising biases are chosen for the worst case over the box. At an input
    outside ``S`` some linearised ReLU clips, the network no longer equals the target, and
    nothing bounds the error; on the paper's 5× shifted test set, ``5 · N(0, I_16)``, most
    inputs lie outside the box (each coordinate exceeds 6 with probability ``P(|N(0,1)| > 1.2)
    ≈ 0.23``), and whether they lie in ``S`` depends on the instance. A construction meant for
    shifted inputs is built for the larger box (``fnn.construct(…, input_bound=30)``).

    Introduced in :ref:`sec-fig2`.
    """
    _fnn_task(task)
    ranks = _per_layer(rank, task.frozen.depth)
    return fnn.construct(task.target, task.frozen, rank=ranks, input_bound=INPUT_BOUND)


def _fnn_task(task: object) -> None:
    checks.instance(task, "task", Task, "a training.Task")
    fnn.check_pair(task.target, task.frozen)  # type: ignore[attr-defined]


def _gradient(exp: Experiment, p: Panel) -> list[tuple[int, Trainable]]:
    return [
        (r, Trainable(lora_rank=p.layer_ranks(r, exp.width), tune_bias=p.tune_bias))
        for r in exp.ranks
    ]


def _final_layers(exp: Experiment, p: Panel) -> list[tuple[int, Trainable]]:
    return [(k, Trainable(final_layers=k)) for k in range(1, p.depth)]


def _declare(name: str, construct) -> Family:  # type: ignore[no-untyped-def]
    return register(
        Family(
            name=name,
            random_task=random_task,
            construct=construct,
            sweeps={"gradient": _gradient, "final_layers": _final_layers},
            shape_key=lambda p: (p.depth, p.bias),
            stacked=FNNStack,
            n_params=lambda width, p, spec: spec.n_params(width, p.depth, p.bias),
            construction_spec=lambda p, rank: Trainable(lora_rank=rank, tune_bias=p.bias),
            pretrain_spec=lambda p: Trainable(final_layers=p.depth),
            threshold=lambda p, width: fnn.corollary4_threshold(width, p.depth, p.target_depth),
        )
    )


LINEAR = _declare("linear", linear_construction)
FNN_FAMILY = _declare("fnn", fnn_construction)
