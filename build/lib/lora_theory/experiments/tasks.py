"""Targets and frozen models of the experiments: random (``nn.Linear`` init) or pretrained.

Seed ``s`` fixes everything (PAPER_SPEC §7.1): the target ``FNN_{L̄,D}`` and the random frozen
``FNN_{L,D}`` are drawn, in that order, from the ``"model"`` stream of ``s``; the pretrained frozen
model is that random model trained towards the target on the ``"pretrain"`` stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..fnn import FNN
from ..training import FitSettings, Run, Task, Trainable, fit, generator
from .settings import PRETRAINING, Panel, Pretraining


def random_task(panel: Panel, width: int, seed: int) -> Task:
    """The random target and frozen model of ``panel`` for ``seed`` (not pretrained)."""
    gen = generator(seed, "model")
    kw = {"bias": panel.bias, "activation": panel.activation}
    target = FNN.random(width, panel.target_depth, gen, **kw)
    frozen = FNN.random(width, panel.depth, gen, **kw)
    return Task(target, frozen, seed, bias=panel.bias)


def pretrain(
    tasks: Sequence[Task],
    protocol: Pretraining = PRETRAINING,
    *,
    device: str | torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Task]:
    """The tasks with their frozen models pretrained (all parameters, batched over tasks).

    Adam (``lr = protocol.lr``, no weight decay) on the weights and biases of every layer, fresh
    batches of ``protocol.batch_size``, each model stopping on its own once its training MSE is
    below (its first batch's MSE) / ``protocol.ratio``, after at most ``protocol.max_steps`` steps.
    Tasks must share the frozen depth and activation.
    """
    depth = tasks[0].frozen.depth
    runs = [Run(i, Trainable(final_layers=depth), protocol.lr) for i in range(len(tasks))]
    settings = FitSettings(
        steps=protocol.max_steps,
        batch_size=protocol.batch_size,
        n_val=0,
        n_test=0,
        stop_ratio=protocol.ratio,
        train_stream="pretrain",
    )
    result = fit(tasks, runs, settings, device=device, progress=progress)
    return [Task(t.target, result.model(i), t.seed, t.bias) for i, t in enumerate(tasks)]
