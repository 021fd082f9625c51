"""Lemma 1's construction side by side with the paper's code: error and time on identical inputs.

Run: ``python benchmarks/bench_paper.py --paper PATH/helper.py`` (CPU). ``PATH/helper.py`` is a
copy of ``helper.py`` from the paper's repository (``UW-Madison-Lee-Lab/Expressive_Power_of_LoRA``),
kept outside this repository (its latest version, with the ``atol`` check); its
``our_construction(target, frozen, rank, log_wandb)`` is the paper's float32 routine (explicit
inverses of the frozen and adapted partial products). ``wandb`` is stubbed and its printed
warnings are discarded. Without ``--paper`` only this package's columns are printed.

* **One problem.** ``N(0, 1/D)`` frozen factors and target, ``D = 16 … 1024``, ``L = 2, 4, 8``,
  below the threshold (``R = ⌈D/2L⌉``) and at it (``R = ⌈D/L⌉``). Columns: time of the paper's
  routine and of :func:`lora_theory.linear.construct` (default method, self-checked) in float64
  and in float32, the ratios (> 1: this package is faster), and each one's relative error
  ``|‖∏(W_l + ΔW_l) − W̄‖₂ − σ_{RL+1}(E)| / ‖W̄‖₂`` (the product formed in float64 from the
  returned factors). ``refused`` means the package raised instead of returning a wrong answer;
  the paper's routine always returns. ``floor``: the same float64 construction as bare torch
  calls (one SVD of ``E``, the LU factorizations and solves, nothing else: no input checks, no
  conditioning, no self-check), the least a float64 version of Lemma 1's construction costs
  here; its ratio to the paper's time bounds what any checked float64 version could reach.
* **A sweep.** Seeds × ranks of one shape: the paper's routine in a loop against one call of
  :func:`lora_theory.linear.construct_batch`, which shares the SVD of ``E`` and the frozen solves
  across the ranks of a problem.
* **A deep sweep.** At the threshold and above in deep models, where the batched sequential
  solution cannot be certified: ``construct_batch(..., method="auto")``, which rebuilds such
  entries one by one with the conditioned construction, timed once, with both codes' worst errors.

Times are the best of a few repeats, the two codes alternated, on whatever threads torch uses.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import math
import sys
import time
import types
import warnings
from pathlib import Path

import torch
from timing import best_of

from lora_theory import linear
from lora_theory.linalg import AssumptionError, ExactnessError

SWEEPS = ((16, 2, 10, 16), (16, 4, 10, 8), (16, 8, 10, 4), (64, 2, 4, 32), (64, 4, 4, 16))
#: Deep sweeps at the threshold and above (``D, L, seeds``; ranks ``⌈D/L⌉ … ⌈D/L⌉ + 2``), where
#: the batched sequential solution refuses and ``method="auto"`` rebuilds entries one by one.
AUTO_SWEEPS = ((16, 8, 4), (64, 4, 2), (64, 8, 2))


def load_paper(path: str | None) -> types.ModuleType | None:
    if not path:
        return None
    if importlib.util.find_spec("wandb") is None:
        sys.modules["wandb"] = types.SimpleNamespace(log=lambda *a, **k: None)  # type: ignore[assignment]
    spec = importlib.util.spec_from_file_location("paper_helper", Path(path))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.wandb = types.SimpleNamespace(log=lambda *a, **k: None)  # its log of S goes nowhere
    return module


def instance(width: int, depth: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mats = torch.randn(depth + 1, width, width, generator=g, dtype=torch.float64)
    return mats[0] / math.sqrt(width), mats[1:] / math.sqrt(width)


def paper_deltas(paper: types.ModuleType, target: torch.Tensor, frozen: torch.Tensor, rank: int):
    """The paper's ``ΔW_l = lora_A_l lora_B_lᵀ``, float64 out."""
    with contextlib.redirect_stdout(io.StringIO()):
        a, b = paper.our_construction(target.float(), list(frozen.float()), rank, True)
    return [(x @ y.T).double() for x, y in zip(a, b, strict=True)]


def paper_timer(paper: types.ModuleType, target: torch.Tensor, frozen: torch.Tensor, rank: int):
    """The paper's call alone, on float32 copies made beforehand (its prints discarded)."""
    t32, f32 = target.float(), list(frozen.float())

    def call() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            paper.our_construction(t32, f32, rank, True)

    return call


def relative_gap(target, frozen, deltas, rank) -> float:
    adapted = torch.eye(target.shape[0], dtype=torch.float64)
    for w, d in zip(frozen, deltas, strict=True):
        adapted = (w + d) @ adapted
    err = float(torch.linalg.matrix_norm(adapted - target, 2))
    gap = abs(err - linear.min_error(target, list(frozen), rank))
    return gap / float(torch.linalg.matrix_norm(target, 2)) if math.isfinite(err) else math.inf


def bare(
    target: torch.Tensor, frozen: torch.Tensor, rank: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Lemma 1's sequential construction in float64 as bare torch calls (the ``floor`` column):
    ``B_l = W_{l+1}^{-1} ⋯ W_L^{-1} U_J S_J`` and ``A_l = V_Jᵀ W'_1^{-1} ⋯ W'_{l-1}^{-1}``, one LU
    factorization per matrix, nothing checked; returns the factors ``(B_l, A_l)``."""
    ws, width = list(frozen), target.shape[0]
    prod = ws[0]
    for w in ws[1:]:
        prod = w @ prod
    u, s, vh = torch.linalg.svd(target - prod)
    bounds = [min(rank * k, width) for k in range(len(ws) + 1)]
    b, a = u * s, vh
    for k in range(len(ws) - 1, 0, -1):
        lu, piv = torch.linalg.lu_factor(ws[k])
        b = torch.cat([torch.linalg.lu_solve(lu, piv, b[:, : bounds[k]]), b[:, bounds[k] :]], 1)
    for k, w in enumerate(ws[:-1]):
        lo, hi = bounds[k], bounds[k + 1]
        lu, piv = torch.linalg.lu_factor(w + b[:, lo:hi] @ a[lo:hi])
        a = torch.cat([a[:hi], torch.linalg.lu_solve(lu, piv, a[hi:].mT, adjoint=True).mT])
    return [(b[:, lo:hi], a[lo:hi]) for lo, hi in itertools.pairwise(bounds)]


def one_problem(paper, width: int, depth: int, rank: int, repeats: int) -> str:
    target, frozen = instance(width, depth)
    cells = [f"{width:>5} {depth:>2} {rank:>4}"]
    t_ours, ours_cell = ours(target, frozen, rank, repeats, torch.float64)
    t_32, cell_32 = ours(target.float(), frozen.float(), rank, repeats, torch.float32)
    t_bare = best_of(lambda: bare(target, frozen, rank), repeats)
    if paper is not None:
        deltas = paper_deltas(paper, target, frozen, rank)
        t_paper = best_of(paper_timer(paper, target, frozen, rank), repeats)
        cells.append(f"{t_paper * 1e3:>9.2f} {relative_gap(target, frozen, deltas, rank):>9.1e}")
        cells.append(f"{ours_cell} {ratio(t_paper, t_ours)}")
        cells.append(f"{cell_32} {ratio(t_paper, t_32)}")
        cells.append(f"{t_bare * 1e3:>9.2f} {ratio(t_paper, t_bare)}")
    else:
        cells += [ours_cell, cell_32, f"{t_bare * 1e3:>9.2f}"]
    return " | ".join(cells)


def ratio(reference: float, time: float) -> str:
    return f"{reference / time:>6.2f}×" if math.isfinite(time) else f"{'—':>7}"


def ours(target, frozen, rank, repeats, dtype) -> tuple[float, str]:
    """Time and cell of :func:`lora_theory.linear.construct` in ``dtype`` (``nan``: refused)."""
    try:
        adapters = linear.construct(target, list(frozen), rank, dtype=dtype)
    except (AssumptionError, ExactnessError):
        return math.nan, f"{'refused':>19}"
    err = relative_gap(
        target.double(), frozen.double(), [f.delta().double() for f in adapters], rank
    )
    t = best_of(lambda: linear.construct(target, list(frozen), rank, dtype=dtype), repeats)
    return t, f"{t * 1e3:>9.2f} {err:>9.1e}"


def sweep(paper, width: int, depth: int, seeds: int, top: int) -> str:
    g = torch.Generator().manual_seed(0)
    scale = 1 / math.sqrt(width)
    targets = torch.randn(seeds, width, width, generator=g, dtype=torch.float64) * scale
    frozen = torch.randn(seeds, depth, width, width, generator=g, dtype=torch.float64) * scale
    ranks = list(range(1, top + 1))
    try:
        t_batch = best_of(lambda: linear.construct_batch(targets, frozen, ranks), 5)
    except (AssumptionError, ExactnessError) as exc:
        return f"{width:>4} {depth:>2} {seeds * top:>5} | construct_batch refused: {str(exc)[:60]}"
    line = f"{width:>4} {depth:>2} {seeds * top:>5} | {t_batch * 1e3:>8.2f}"
    if paper is None:
        return line

    calls = [paper_timer(paper, targets[i], frozen[i], r) for i in range(seeds) for r in ranks]

    def loop() -> None:
        for call in calls:
            call()

    t_paper = best_of(loop, 3)
    return f"{line} | {t_paper * 1e3:>9.2f} | {t_paper / t_batch:>6.1f}×"


def sweep_auto(paper, width: int, depth: int, seeds: int) -> str:
    """One call of ``construct_batch(..., method="auto")`` (timed once: it refines per entry)
    against the paper's loop: times, each side's worst ``|error − σ_{RL+1}(E)| / ‖W̄‖₂``."""
    g = torch.Generator().manual_seed(0)
    scale = 1 / math.sqrt(width)
    targets = torch.randn(seeds, width, width, generator=g, dtype=torch.float64) * scale
    frozen = torch.randn(seeds, depth, width, width, generator=g, dtype=torch.float64) * scale
    threshold = math.ceil(width / depth)
    ranks = list(range(threshold, threshold + 3))
    entries = [(i, q, r) for i in range(seeds) for q, r in enumerate(ranks)]
    head = f"{width:>4} {depth:>2} {len(entries):>5}"
    try:
        batch, t_batch = timed(
            lambda: linear.construct_batch(targets, frozen, ranks, method="auto")
        )
    except (AssumptionError, ExactnessError) as exc:
        return f"{head} | construct_batch refused: {str(exc)[:60]}"
    ours_err = max(
        relative_gap(targets[i], frozen[i], [f.delta() for f in batch.problem(i, q)], r)
        for i, q, r in entries
    )
    line = f"{head} | {t_batch * 1e3:>9.0f} {ours_err:>9.1e}"
    if paper is None:
        return line
    paper_err = max(
        relative_gap(targets[i], frozen[i], paper_deltas(paper, targets[i], frozen[i], r), r)
        for i, _, r in entries
    )
    calls = [paper_timer(paper, targets[i], frozen[i], r) for i, _, r in entries]
    t_paper = best_of(lambda: [call() for call in calls], 3)
    return f"{line} | {t_paper * 1e3:>9.1f} {paper_err:>9.1e} | {t_paper / t_batch:>8.4f}×"


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", help="path to a copy of the paper's helper.py")
    parser.add_argument("--widths", default="16,64,256,1024")
    args = parser.parse_args()
    paper = load_paper(args.paper)
    warnings.simplefilter("ignore", linear.ConditioningWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("One problem: time [ms] and relative error (see the module docstring)")
    head = f"{'D':>5} {'L':>2} {'R':>4} | "
    cols = [f"{'f64 ms':>9} {'f64 err':>9}", f"{'f32 ms':>9} {'f32 err':>9}", f"{'floor ms':>9}"]
    if paper is not None:
        cols = [f"{c} {'speed':>7}" for c in cols]
        print(head + f"{'paper ms':>9} {'paper err':>9} | " + " | ".join(cols))
    else:
        print(head + " | ".join(cols))
    for width in (int(w) for w in args.widths.split(",")):
        for depth in (2, 4, 8):
            for rank in (math.ceil(width / (2 * depth)), math.ceil(width / depth)):
                print(one_problem(paper, width, depth, rank, 5 if width <= 256 else 2), flush=True)
    print("\nA sweep (seeds × ranks 1..R): construct_batch against the paper's routine in a loop")
    print(
        f"{'D':>4} {'L':>2} {'n':>5} | {'batch ms':>8}" + (" | paper ms  | speed" if paper else "")
    )
    for width, depth, seeds, top in SWEEPS:
        print(sweep(paper, width, depth, seeds, top), flush=True)
    print("\nDeep sweeps (seeds × ranks ⌈D/L⌉..⌈D/L⌉+2): construct_batch(method='auto') once")
    print(
        f"{'D':>4} {'L':>2} {'n':>5} | {'batch ms':>9} {'err':>9}"
        + (f" | {'paper ms':>9} {'paper err':>9} | {'speed':>9}" if paper else "")
    )
    for width, depth, seeds in AUTO_SWEEPS:
        print(sweep_auto(paper, width, depth, seeds), flush=True)


if __name__ == "__main__":
    main()
