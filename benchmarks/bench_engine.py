"""Throughput of the batched training engine, and the wall time of ``reproduce fig1`` (quick).

Run: ``python benchmarks/bench_engine.py`` (CPU, float64). The workload is the gradient part of
Figure 1 in quick mode (chapter "Linear models"): ``D = 16``, ``L̄ = 1``, ``L = 2``, linear, ranks
1–16 × seeds × learning rates × both panels. It is trained (a) as one batched
:func:`lora_theory.training.fit` and (b) one configuration after another (the same ``fit`` with a
single run, same number of steps, on an evenly spaced sample of the configurations, which cost the
same per step); each is timed as the best of a few repeats. It prints configurations per second
for both and their ratio, then times the full ``run("fig1", "quick")`` — the same call the chapter
and ``python -m lora_theory reproduce fig1 --mode quick`` make.
"""

from __future__ import annotations

import torch
from timing import best_of

from lora_theory.experiments import FIGURES, budget, run
from lora_theory.experiments.runners import build_tasks, plans
from lora_theory.training import FitSettings, Run, fit

STEPS = 200
SEQUENTIAL_SAMPLE = 24
REPEATS = 3


def main() -> None:
    fig, work = FIGURES["fig1"], budget("quick")
    tasks = build_tasks(fig, work.seeds)
    (plan,) = plans(fig, work, tasks).values()  # one frozen shape: L = 2, linear
    settings = FitSettings(steps=STEPS, n_test=work.n_test, eval_every=work.eval_every)
    n = len(plan.runs)
    sample = plan.runs[:: max(1, n // SEQUENTIAL_SAMPLE)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads available")
    print(f"workload: {n} configurations of fig1 (quick), {STEPS} Adam steps each, batch 256")

    batched = n / best_of(lambda: fit(plan.tasks, plan.runs, settings), REPEATS)
    one = [([plan.tasks[r.task]], [Run(0, r.trainable, r.lr, r.weight_decay)]) for r in sample]
    sequential = len(sample) / best_of(lambda: [fit(t, r, settings) for t, r in one], REPEATS)
    print(f"batched   : {batched:8.2f} configurations/s  ({n} in one fit)")
    print(f"sequential: {sequential:8.2f} configurations/s  ({len(sample)} fits of one run)")
    print(f"speed-up  : {batched / sequential:8.1f}x  (goal ≥ 10x)")

    wall = best_of(lambda: run("fig1", "quick", progress=False), repeats=1)
    print(f"reproduce fig1 --mode quick: {wall:.1f} s  (goal < 90 s)")


if __name__ == "__main__":
    main()
