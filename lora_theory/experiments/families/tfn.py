"""The Transformer family: Theorem 7's models in the engine.

A panel's options are ``heads`` (``H``) and ``tokens`` (``N``); ``target_depth = depth = L``
(Theorem 7 adapts a Transformer to one of the same size). Seed ``s`` draws the target and then the
random frozen ``TFN`` from its ``"model"`` stream (:meth:`~lora_theory.transformer.TFN.random`, the
paper's initialisation); inputs are ``X ∈ R^{D×N}`` with i.i.d. ``N(0, 1)`` entries. The gradient
update trains the set of Theorem 7 (LoRA factors ``B A`` on every ``W_Q, W_K, W_V, W_O``, on the
last ``W_{2L}`` and on ``W_o``, ``B = 0`` and ``A ~ N(0, 0.25²)`` at initialisation, plus all
feed-forward biases); pretraining trains every parameter.

Introduced in :ref:`ch-transformer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ... import checks, transformer
from ...adapters import LoRAFactors
from ...runtime import generator
from ...training import Run, Stacked, Task, lora_init
from ...training.stacked import check_build
from ...transformer import ATTENTION, TFN, TFNAdapters
from ..settings import Experiment, Panel, model_size, task_arguments
from . import Family, register


@dataclass(frozen=True)
class TFNTrainable:
    """Which parameters of a frozen ``TFN`` a run trains.

    ``lora_rank``: ``R`` of the ``4LH + 2`` adapters of Theorem 7 (``0``: none); ``tune_bias``:
    all feed-forward biases ``b_{1l}, b_{2l}``; ``full``: every parameter (the "pretrained"
    protocol).

    Introduced in :ref:`ch-transformer`.
    """

    lora_rank: int = 0
    tune_bias: bool = True
    full: bool = False

    def __post_init__(self) -> None:
        checks.integer(self.lora_rank, "lora_rank", low=0)
        for flag in ("tune_bias", "full"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        if self.lora_rank == 0 and not (self.tune_bias or self.full):
            raise ValueError("nothing to train: lora_rank=0, tune_bias=False, full=False")

    def n_params(self, width: int, depth: int, heads: int) -> int:
        """``2RD(4LH + 2)`` LoRA weights, ``+ 2LD`` biases if tuned, ``+ (4LH + 2L)D² + D²``
        weights when ``full``."""
        width, depth = model_size(width, depth)
        heads = model_size(width, heads, "heads")[1]
        lora = 2 * self.lora_rank * width * (4 * depth * heads + 2)
        biases = 2 * depth * width if self.tune_bias or self.full else 0
        weights = ((4 * heads + 2) * depth + 1) * width * width if self.full else 0
        return lora + biases + weights


def _options(panel: Panel) -> tuple[int, int]:
    heads = checks.integer(panel.option("heads", 2), f"panel {panel.name!r}: heads", low=1)
    tokens = checks.integer(panel.option("tokens", 10), f"panel {panel.name!r}: tokens", low=1)
    return heads, tokens


class TFNStack(Stacked):
    """``C`` runs of ``TFN_{L,D}`` with ``H`` heads: attention ``attn: (C, L, 4, H, D, D)``
    (``W_Q, W_K, W_V, W_O``), ``w_1, w_2: (C, L, D, D)``, ``b_1, b_2: (C, L, D)``,
    ``w_out: (C, D, D)`` and the factors of the ``M = 4LH + 2`` adapters,
    ``lora_a: (C, M, R_max, D)``, ``lora_b: (C, M, D, R_max)`` (attention in ``(L, 4, H)`` order,
    then the last ``W_{2L}``, then ``W_o``). Gradients by autograd (the engine's default).

    Introduced in :ref:`ch-transformer`.
    """

    @classmethod
    def build(
        cls,
        tasks: Sequence[Task],
        runs: Sequence[Run],
        init_std: float,
        dev: torch.device,
        dtype: torch.dtype,
    ) -> TFNStack:
        tasks, runs, init_std = check_build(tasks, runs, init_std, dev, dtype)
        checks.instances([t.frozen for t in tasks], "frozen models of tasks", TFN, "a TFN")
        shapes = {(t.frozen.width, t.frozen.heads, t.frozen.depth) for t in tasks}
        if len(shapes) != 1:
            raise ValueError(
                f"all frozen models of one fit must share (width, heads, depth), got {shapes}"
            )
        width, heads, depth = shapes.pop()
        specs = [r.trainable for r in runs]
        for i, s in enumerate(specs):
            if not isinstance(s, TFNTrainable):
                raise ValueError(f"runs[{i}].trainable must be a TFNTrainable, got {s!r}")
            checks.integer(s.lora_rank, f"runs[{i}].trainable.lora_rank", 0, width)
        n_mats = 4 * depth * heads + 2
        ranks = [s.lora_rank for s in specs]
        r_max = max(ranks)
        frozen = [tasks[r.task].frozen.effective() for r in runs]
        tensors = {
            "attn": torch.stack([torch.stack([f[n] for n in ATTENTION], 1) for f in frozen]),
            **{n: torch.stack([f[n] for f in frozen]) for n in ("w_1", "b_1", "w_2", "b_2")},
            "w_out": torch.stack([f["w_out"] for f in frozen]),
            "lora_a": torch.stack(
                [
                    lora_init(tasks[r.task], rank, r_max, (n_mats, width), init_std)
                    for r, rank in zip(runs, ranks, strict=True)
                ]
            ),
            "lora_b": torch.zeros(len(runs), n_mats, width, r_max, dtype=torch.float64),
        }
        full = torch.tensor([s.full for s in specs])
        bias = torch.tensor([s.tune_bias or s.full for s in specs])
        rank_mask = torch.arange(r_max) < torch.tensor(ranks)[:, None]  # (C, R_max)

        def per_run(flags: torch.Tensor, ndim: int) -> torch.Tensor:
            return flags.reshape(-1, *([1] * ndim))

        masks = {
            "attn": per_run(full, 5),
            "w_1": per_run(full, 3),
            "w_2": per_run(full, 3),
            "w_out": per_run(full, 2),
            "b_1": per_run(bias, 2),
            "b_2": per_run(bias, 2),
            "lora_a": rank_mask[:, None, :, None],
            "lora_b": rank_mask[:, None, None, :],
        }
        stack = cls(tensors, masks, runs, dev, dtype)
        stack.r_max = r_max
        return stack

    def effective(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The merged parameters (``W + B A``) in the layout of
        :func:`lora_theory.transformer.forward`."""
        attn, w_2, w_out = params["attn"], params["w_2"], params["w_out"]
        if self.r_max:
            delta = params["lora_b"] @ params["lora_a"]  # (C', M, D, D)
            attn = attn + delta[:, :-2].reshape(attn.shape)
            w_2 = torch.cat([w_2[:, :-1], (w_2[:, -1] + delta[:, -2])[:, None]], 1)
            w_out = w_out + delta[:, -1]
        p = {n: attn[:, :, k] for k, n in enumerate(ATTENTION)}
        rest = {n: params[n] for n in ("w_1", "b_1", "b_2")}
        return {**p, **rest, "w_2": w_2, "w_out": w_out}

    def forward(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``TFN(X)`` of every config on ``x: (C', n, D, N)``."""
        return transformer.forward(self.effective(params), x)[0]

    @staticmethod
    def model(task: Task, run: Run, params: Mapping[str, torch.Tensor]) -> TFN:
        rank = run.trainable.lora_rank
        attn = params["attn"]  # (L, 4, H, D, D)
        depth, _, heads = attn.shape[:3]
        factors = [
            LoRAFactors(b[:, :rank], a[:rank])
            for b, a in zip(params["lora_b"], params["lora_a"], strict=True)
        ]
        adapters = None
        if rank:
            grid = {
                n: tuple(
                    tuple(factors[(layer * 4 + k) * heads + h] for h in range(heads))
                    for layer in range(depth)
                )
                for k, n in enumerate(ATTENTION)
            }
            adapters = TFNAdapters(**grid, w_2=factors[-2], w_out=factors[-1])
        weights = {n: attn[:, k] for k, n in enumerate(ATTENTION)}
        rest = {n: params[n] for n in ("w_1", "b_1", "w_2", "b_2", "w_out")}
        return TFN(**weights, **rest, adapters=adapters)


def random_task(panel: Panel, width: int, seed: int) -> Task:
    """The random target and frozen ``TFN`` of ``panel`` for ``seed`` (not pretrained).

    Introduced in :ref:`ch-transformer`.
    """
    panel, width, seed = task_arguments(panel, width, seed)
    if panel.target_depth != panel.depth:
        raise ValueError(
            f"panel {panel.name!r}: Theorem 7 needs target_depth == depth, got "
            f"{panel.target_depth} and {panel.depth}"
        )
    heads, tokens = _options(panel)
    gen = generator(seed, "model")
    target = TFN.random(width, heads, panel.depth, gen)
    frozen = TFN.random(width, heads, panel.depth, gen)
    return Task(target, frozen, seed, (width, tokens))


def construction(task: Task, rank: int) -> TFN:
    """Theorem 7's adapted ``TFN`` (exact for every input).

    Introduced in :ref:`ch-transformer`.
    """
    checks.instance(task, "task", Task, "a training.Task")
    return transformer.construct(task.target, task.frozen, rank=rank)


def _gradient(exp: Experiment, p: Panel) -> list[tuple[int, TFNTrainable]]:
    return [(r, TFNTrainable(lora_rank=r, tune_bias=p.tune_bias)) for r in exp.ranks]


TFN_FAMILY = register(
    Family(
        name="tfn",
        random_task=random_task,
        construct=construction,
        sweeps={"gradient": _gradient},
        shape_key=lambda p: (p.depth, *_options(p)),
        stacked=TFNStack,
        n_params=lambda width, p, spec: spec.n_params(width, p.depth, _options(p)[0]),
        construction_spec=lambda p, rank: TFNTrainable(lora_rank=rank, tune_bias=True),
        pretrain_spec=lambda p: TFNTrainable(full=True),
        threshold=lambda p, width: math.ceil(width / 2),
    )
)
