"""How ``linear.construct`` (Lemma 1) scales with the width D and the depth L, and how exact it is.

Run: ``python benchmarks/bench_linear.py`` (CPU, float64). For each (D, L) it draws Gaussian frozen
factors and a Gaussian target (entries ``N(0, 1/D)``) and runs the construction below the
threshold (``R = ⌈D / 2L⌉``) and at it (``R = ⌈D / L⌉``). Columns: wall time (best of a few), the
time as a multiple of one D×D SVD, the relative error (below: ``|‖∏(W+ΔW) − W̄‖₂ − σ_{RL+1}(E)|``;
at the threshold: ``‖∏(W+ΔW) − W̄‖₂``; both divided by ``‖W̄‖₂``), and the largest condition number
among the matrices the construction solves with, which is what limits its accuracy.
"""

from __future__ import annotations

import math
import warnings

import torch
from timing import best_of

from lora_theory import linear
from lora_theory.linalg import AssumptionError


def instance(width: int, depth: int, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    scale = 1 / math.sqrt(width)
    frozen = [
        torch.randn(width, width, generator=g, dtype=torch.float64) * scale for _ in range(depth)
    ]
    return torch.randn(width, width, generator=g, dtype=torch.float64) * scale, frozen


def row(width: int, depth: int, rank: int, regime: str, svd_time: float, repeats: int) -> str:
    target, frozen = instance(width, depth)
    head = f"{width:>5} {depth:>3} {rank:>4}"
    try:
        conds = linear.construction_conditioning(target, frozen, rank)
    except AssumptionError as exc:
        return f"{head}  construction refused: {exc}"
    elapsed = best_of(lambda: linear.construct(target, frozen, rank), repeats)
    adapters = linear.construct(target, frozen, rank)
    err = float(torch.linalg.matrix_norm(linear.adapted_product(frozen, adapters) - target, 2))
    if regime == "below":
        err = abs(err - linear.min_error(target, frozen, rank))
    rel = err / float(torch.linalg.matrix_norm(target, 2))
    worst = max(c.condition for c in conds) if conds else 1.0
    return (
        f"{head} {elapsed:>9.4f} {elapsed / svd_time:>7.1f} {rel:>10.2e} {worst:>10.2e}  {regime}"
    )


def main() -> None:
    warnings.simplefilter("ignore", linear.ConditioningWarning)  # the table reports conditioning
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    header = (
        f"{'D':>5} {'L':>3} {'R':>4} {'time [s]':>9} {'÷ SVD':>7} {'rel. err':>10} {'max cond':>10}"
    )
    print(header + "  regime")
    print("-" * (len(header) + 8))
    for width in (16, 64, 256, 1024):
        repeats = 5 if width <= 256 else 2
        svd_time = best_of(
            lambda w=width: torch.linalg.svd(torch.randn(w, w, dtype=torch.float64)), repeats
        )
        for depth in (2, 4, 8):
            for rank, regime in (
                (math.ceil(width / (2 * depth)), "below"),
                (math.ceil(width / depth), "threshold"),
            ):
                print(row(width, depth, rank, regime, svd_time, repeats), flush=True)


if __name__ == "__main__":
    main()
