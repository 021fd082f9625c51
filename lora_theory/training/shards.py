"""CPU sharding: split the runs of a fit into one group per core, trained side by side.

The tensors of a fit are small (``C × batch × D``): one multi-threaded op per step would stall on
a synchronisation barrier in every op (worst when the cores are shared), so each shard runs
single-threaded torch ops in its own Python thread. The numbers do not depend on the core count:
a run's result depends only on its own settings.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import torch

from .data import FitResult, Run, Task

Progress = Callable[[int], None]
#: ``fit_one(tasks, runs, progress, stop)``: one shard's fit; it returns early (raising
#: ``KeyboardInterrupt``) once ``stop`` is set.
FitOne = Callable[[Sequence[Task], Sequence[Run], "Progress | None", threading.Event], FitResult]


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run with ``n`` CPU intra-op threads, then restore torch's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split(runs: Sequence[Run], n: int) -> list[list[int]]:
    """``n`` near-equal groups of run positions, runs of one task kept together where possible.

    Introduced in :ref:`sec-fig1`.
    """
    order = sorted(range(len(runs)), key=lambda i: runs[i].task)
    return [order[i * len(order) // n : (i + 1) * len(order) // n] for i in range(n)]


def sharded(
    fit_one: FitOne,
    tasks: Sequence[Task],
    runs: Sequence[Run],
    workers: int,
    progress: Progress | None,
) -> FitResult:
    """``fit_one`` on ``min(workers, len(runs))`` shards in threads, merged in the order of
    ``runs``; the first shard reports progress. An exception in any shard, or Ctrl-C in the
    calling thread, stops every shard within one step and is re-raised.

    Introduced in :ref:`sec-fig1`.
    """
    n = min(workers, len(runs))
    stop = threading.Event()
    with _threads(1):
        if n == 1:
            return fit_one(tasks, runs, progress, stop)
        shards = split(runs, n)
        with ThreadPoolExecutor(n) as pool:
            futures = []
            for k, shard in enumerate(shards):
                used = sorted({runs[i].task for i in shard})
                local = {t: j for j, t in enumerate(used)}
                shard_runs = [replace(runs[i], task=local[runs[i].task]) for i in shard]
                report = progress if k == 0 else None
                shard_tasks = [tasks[t] for t in used]
                futures.append(pool.submit(fit_one, shard_tasks, shard_runs, report, stop))
            try:
                parts = [f.result() for f in futures]
            except BaseException:
                stop.set()  # the other shards leave their loops at the next step
                raise
    return merge(tasks, runs, shards, parts)


def _pad(t: torch.Tensor, shape: Sequence[int], fill: float) -> torch.Tensor:
    """``t`` extended with ``fill`` to ``shape`` (every dimension but the first)."""
    out = t.new_full((len(t), *shape), fill)
    out[(slice(None), *(slice(0, s) for s in t.shape[1:]))] = t
    return out


def _merged(pieces: list[torch.Tensor], shards: list[list[int]], n: int, fill: float):
    shape = [max(p.shape[d] for p in pieces) for d in range(1, pieces[0].ndim)]
    out = pieces[0].new_empty((n, *shape))
    for shard, piece in zip(shards, pieces, strict=True):
        out[shard] = _pad(piece, shape, fill)
    return out


def merge(
    tasks: Sequence[Task], runs: Sequence[Run], shards: list[list[int]], parts: list[FitResult]
) -> FitResult:
    """One :class:`FitResult` in the order of ``runs`` from the shards' results.

    Parameters whose size differs between shards (e.g. LoRA factors padded to each shard's own
    ``R_max``) are padded with zeros, validation and training curves with NaN.

    Introduced in :ref:`sec-fig1`.
    """
    n = len(runs)
    per_run = (
        *("best_val", "best_step", "test_mse", "steps_run", "final_train_mse", "diverged"),
        *("train_loss", "val_accuracy", "test_accuracy", "shift_mse", "shift_accuracy"),
    )
    fields = {f: _merged([getattr(p, f) for p in parts], shards, n, 0) for f in per_run}
    curves = {
        f: _merged([getattr(p, f) for p in parts], shards, n, math.nan)
        for f in ("val_curve", "train_curve")
    }
    params = {
        name: _merged([p.params[name] for p in parts], shards, n, 0.0) for name in parts[0].params
    }
    return FitResult(
        tasks=tuple(tasks),
        runs=tuple(runs),
        stacked=parts[0].stacked,
        eval_steps=max((p.eval_steps for p in parts), key=len),
        curve_steps=max((p.curve_steps for p in parts), key=len),
        **curves,
        params=params,
        **fields,
    )
