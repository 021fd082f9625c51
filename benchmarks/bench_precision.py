"""Extended precision for the design step only: does it rescue Lemma 1's sequential construction?

Run: ``python benchmarks/bench_precision.py [--widths 16,32] [--seeds 3] [--digits 50]`` (CPU).

Gaussian ``N(0, 1/D)`` target and frozen factors (as ``bench_exact.py --linear``), ``L = 2, 4,
6, 8``, threshold rank ``R = ⌈D/L⌉``; for each, :func:`lora_theory.linear.precision_check`.
Columns, each the worst over the seeds of ``‖∏_l (W_l + B_l A_l) − W̄‖₂ / ‖W̄‖₂``:

* ``f64``: the float64 sequential construction (``inf``: refused);
* ``mp→f64``: the same solution computed with ``--digits`` digits, its factors rounded to
  float64, the adapted product formed in float64 (a float64 forward pass);
* ``stored``: the same rounded factors, the product formed with ``--digits`` digits (the cost
  of storing the factors in float64 alone);
* ``conditioned``: ``linear.construct(method="auto")`` in float64;
* ``max ‖BA‖/‖W̄‖``: how large the sequential updates are, i.e. the cancellation they rely on;
* ``s``: seconds per problem.
"""

from __future__ import annotations

import argparse
import math
import time

import mpmath
import torch

from lora_theory import linear


def row(width: int, depth: int, seeds: int, digits: int) -> str:
    rank = math.ceil(width / depth)
    worst, start = [0.0] * 5, time.perf_counter()
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        mats = torch.randn(depth + 1, width, width, generator=g, dtype=torch.float64)
        mats = mats / math.sqrt(width)
        check = linear.precision_check(mats[0], list(mats[1:]), rank, digits)
        cells = (check.float64, check.rounded, check.rounded_exact_product, check.conditioned)
        worst = [max(w, c) for w, c in zip(worst, (*cells, check.update_size), strict=True)]
    seconds = (time.perf_counter() - start) / seeds
    cells = " | ".join(f"{v:>11.1e}" for v in worst)
    return f"{width:>4} {depth:>2} {rank:>3} | {cells} | {seconds:>5.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--digits", type=int, default=50)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, mpmath {mpmath.__version__}, {args.digits} digits")
    names = ["f64", "mp→f64", "stored", "conditioned", "max ‖BA‖/‖W̄‖"]
    print(f"{'D':>4} {'L':>2} {'R':>3} | " + " | ".join(f"{n:>11}" for n in names) + " |     s")
    for width in (int(w) for w in args.widths.split(",")):
        for depth in (2, 4, 6, 8):
            print(row(width, depth, args.seeds, args.digits), flush=True)


if __name__ == "__main__":
    main()
