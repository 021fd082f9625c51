"""How ``transformer.construct`` (Theorem 7) scales with D and L, and batched vs one-by-one TFN
training.

Run: ``python benchmarks/bench_transformer.py`` (CPU, float64).

1. For ``H = 2`` heads and each (D, L): a random target and frozen ``TFN`` (the paper's
   initialisation), the construction at the threshold ``R = ⌈D/2⌉`` — wall time (best of a few,
   self-check included) and the relative output error ``‖f(X) − f̄(X)‖_F / ‖f̄(X)‖_F`` on
   ``X ~ N(0, I)`` of shape ``(20, D, 10)`` and on ``10³ X`` (far outside the training
   distribution); then one rank below the threshold (truncated construction, no guarantee).
2. The gradient part of ``reproduce tfn`` for one panel (``D = 16, H = 2, N = 10``, ``L`` = 1 and
   2, ranks 1–16, ``STEPS`` Adam steps, batch 256): one batched ``fit`` versus one ``fit`` per
   configuration (on a sample of the configurations), in configurations per second.
"""

from __future__ import annotations

import math

import torch
from timing import best_of

from lora_theory import transformer
from lora_theory.experiments import EXPERIMENTS, family
from lora_theory.experiments.families.tfn import TFNStack, TFNTrainable
from lora_theory.training import FitSettings, Run, fit

STEPS = 20
SEQUENTIAL_SAMPLE = 4


def construction_table() -> None:
    print(
        f"{'D':>4} {'L':>2} {'R':>3} {'time [s]':>9} {'rel. err':>9} {'at 10³X':>9} {'R−1 err':>9}"
    )
    for width in (16, 32, 64, 128):
        for depth in (1, 2, 4):
            g = torch.Generator().manual_seed(0)
            target = transformer.TFN.random(width, 2, depth, g)
            frozen = transformer.TFN.random(width, 2, depth, g)
            rank = math.ceil(width / 2)
            x = torch.randn(20, width, 10, generator=g, dtype=torch.float64)
            head = f"{width:>4} {depth:>2} {rank:>3}"
            try:
                adapted = transformer.construct(target, frozen, rank)
            except ValueError as exc:  # ExactnessError / AssumptionError: refused, with reason
                print(f"{head}  refused: {str(exc)[:120]}")
                continue
            elapsed = best_of(lambda t=target, f=frozen, r=rank: transformer.construct(t, f, r), 3)
            errs = [transformer.relative_error(adapted, target, s * x) for s in (1.0, 1e3)]
            below = transformer.construct(target, frozen, rank - 1)
            low = transformer.relative_error(below, target, x)
            print(f"{head} {elapsed:>9.4f} {errs[0]:>9.1e} {errs[1]:>9.1e} {low:>9.1e}", flush=True)


def training_table() -> None:
    panels = {p.depth: p for p in EXPERIMENTS["tfn"].panels if not p.pretrained}
    settings = FitSettings(steps=STEPS, n_test=1000, eval_every=5)
    for depth, panel in panels.items():
        task = family("tfn").random_task(panel, 16, 0)
        runs = [Run(0, TFNTrainable(lora_rank=r), 1e-2) for r in range(1, 17)]
        batched = len(runs) / best_of(
            lambda t=task, rs=runs: fit([t], rs, settings, stacked=TFNStack), 2
        )
        sample = runs[:: len(runs) // SEQUENTIAL_SAMPLE]
        wall = best_of(
            lambda t=task, s=sample: [fit([t], [r], settings, stacked=TFNStack) for r in s], 1
        )
        one = len(sample) / wall
        print(
            f"L={depth}: batched {batched:6.2f} configurations/s, one by one {one:6.2f} "
            f"configurations/s, ratio {batched / one:4.1f}x  ({len(runs)} configs, {STEPS} steps)"
        )


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    construction_table()
    training_table()


if __name__ == "__main__":
    main()
