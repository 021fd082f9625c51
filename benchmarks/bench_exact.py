"""How exact the constructions stay in deep frozen models, per method, and what it costs.

Run: ``python benchmarks/bench_exact.py [--fnn] [--linear D,D,...] [--seeds N]`` (CPU, float64).

* ``--fnn``: ``D = 16``, ``nn.Linear`` initialisation (:meth:`FNN.random`), ``L̄ = 1`` and ``2``,
  ``L = 4…8``, threshold rank, seeds ``0..N−1``. For each method of
  :func:`lora_theory.fnn.construct` (``sequential``: Lemma 1's factors; ``placement``: the
  conditioned family's greedy start, no refinement; ``conditioned``; ``auto``, the default) it
  prints the worst relative error on the box over the seeds (the certificate's bound and the
  float64 evaluation on box samples, both divided by ``max |f̄|``; ``refused`` counts the seeds
  where the construction raised), how many seeds miss ``1e-9`` and the mean time as a multiple
  of the sequential construction's.
* ``--linear``: Gaussian ``N(0, 1/D)`` factors and target (as ``bench_linear.py``), ``L = 2, 4,
  8`` at the threshold ``R = ⌈D/L⌉``; the same columns for :func:`lora_theory.linear.construct`
  (relative error ``‖∏(W+BA) − W̄‖₂ / ‖W̄‖₂``).

``--newton`` adds a column to the linear rows: the greedy start (``placement``) followed by three
rank-preserving Gauss–Newton steps on its factors (:func:`lora_theory.linear.gauss_newton`,
``--lsqr`` LSQR iterations per step, its best iterate), beside ``conditioned``, which moves along
the family of exact solutions from the same start instead.

Errors are measured with ``rtol=1e300`` so that a construction returns what it found.
``--refine-width W`` refines the conditioned construction up to ``D = W`` (default
:data:`lora_theory.conditioned.REFINE_MAX_WIDTH`; a refinement step costs ``O(L D³)``). Above it
``auto`` still refines, to its spectral target (``WIDE_REFINE_RTOL`` of ``linear.construction``,
at most ``WIDE_REFINE_STEPS`` iterations): about a minute per seed at ``D = 1024``, ``L = 4``, and
several minutes at ``L = 8``.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from functools import partial
from unittest.mock import patch

import torch

from lora_theory import conditioned, fnn, linear
from lora_theory.linalg import AssumptionError, ExactnessError

METHODS = ("sequential", "placement", "conditioned", "auto")
NEWTON = "placement+Gauss–Newton"


def _method(name: str) -> str:
    return "conditioned" if name == "placement" else name


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        out = fn()
    except (AssumptionError, ExactnessError):
        out = None
    return out, time.perf_counter() - start


def fnn_row(target_depth: int, depth: int, seeds: int) -> list[str]:
    cells, base = [], None
    for name in METHODS:
        worst, misses, refused, elapsed = 0.0, 0, 0, 0.0
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            target, frozen = fnn.FNN.random(16, target_depth, g), fnn.FNN.random(16, depth, g)
            rank = fnn.required_rank(target, frozen)
            steps = 0 if name == "placement" else conditioned.REFINE_STEPS
            with patch.object(conditioned, "REFINE_STEPS", steps):
                run = partial(fnn.construct, target, frozen, rank, 1.0, rtol=1e300)
                adapted, dt = _timed(partial(run, method=_method(name)))
            elapsed += dt
            if adapted is None:
                refused += 1
                misses += 1
                continue
            x = fnn.box_sample(16, 1.0, 200, torch.Generator().manual_seed(1))
            ref = float(target(x).abs().max())
            bound = fnn.certify(target, adapted, 1.0, rank, rtol=1e300).bound / ref
            err = max(bound, float((adapted(x) - target(x)).abs().max()) / ref)
            worst = max(worst, err)
            misses += err > 1e-9
        base = base or elapsed
        cells.append(f"{worst:8.1e} {misses:2d}/{seeds} ({refused} ref.) {elapsed / base:6.1f}×")
    return cells


def _newton(target, frozen, bounds, lsqr):  # type: ignore[no-untyped-def]
    start = conditioned.adapters(target, frozen, bounds, steps=0)
    return linear.gauss_newton(target, frozen, start, iterations=lsqr).adapters


def linear_row(
    width: int, depth: int, seeds: int, methods: tuple[str, ...], lsqr: int
) -> list[str]:
    rank = math.ceil(width / depth)
    bounds = [min(rank * m, width) for m in range(depth + 1)]
    cells, base = [], None
    for name in methods:
        worst, misses, refused, elapsed = 0.0, 0, 0, 0.0
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            mats = [
                torch.randn(width, width, generator=g, dtype=torch.float64)
                for _ in range(depth + 1)
            ]
            target, frozen = mats[0] / math.sqrt(width), [w / math.sqrt(width) for w in mats[1:]]
            if name == "placement":
                run = partial(conditioned.adapters, target, frozen, bounds, steps=0)
            elif name == NEWTON:
                run = partial(_newton, target, frozen, bounds, lsqr)
            else:
                run = partial(linear.construct, target, frozen, rank, rtol=1e300, method=name)
            adapters, dt = _timed(run)
            elapsed += dt
            if adapters is None:
                refused += 1
                misses += 1
                continue
            err = linear.relative_error(target, frozen, adapters)
            worst = max(worst, err)
            misses += not err <= 1e-9
        base = base or elapsed
        cells.append(f"{worst:8.1e} {misses:2d}/{seeds} ({refused} ref.) {elapsed / base:6.1f}×")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fnn", action="store_true", help="the D = 16 FNN grid")
    parser.add_argument("--linear", default="", help="comma-separated widths, e.g. 64,256")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--newton", action="store_true", help="add placement + Gauss–Newton")
    parser.add_argument("--lsqr", type=int, default=linear.refinement.LSQR_ITERATIONS)
    parser.add_argument(
        "--refine-width",
        type=int,
        default=conditioned.REFINE_MAX_WIDTH,
        help="widest D whose conditioned construction is refined (L-BFGS)",
    )
    args = parser.parse_args()
    with patch.object(conditioned, "REFINE_MAX_WIDTH", args.refine_width):
        run(args)


def run(args: argparse.Namespace) -> None:
    warnings.simplefilter("ignore", linear.ConditioningWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    head = " | ".join(f"{m:^33}" for m in METHODS)
    print("cells: worst relative error, seeds missing 1e-9 (refused), time ÷ sequential")
    if args.fnn:
        print(f"{'L̄':>2} {'L':>2} | {head}")
        for target_depth in (1, 2):
            for depth in range(4, 9):
                print(
                    f"{target_depth:>2} {depth:>2} | "
                    + " | ".join(fnn_row(target_depth, depth, args.seeds)),
                    flush=True,
                )
    methods = (*METHODS, NEWTON) if args.newton else METHODS
    for width in [int(w) for w in args.linear.split(",") if w]:
        print(f"{'D':>4} {'L':>2} | " + " | ".join(f"{m:^33}" for m in methods))
        for depth in (2, 4, 8):
            row = linear_row(width, depth, args.seeds, methods, args.lsqr)
            print(f"{width:>4} {depth:>2} | " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
