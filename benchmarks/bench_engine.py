"""Throughput of the batched training engine: this version, a baseline version, one-by-one.

Run: ``python benchmarks/bench_engine.py [--baseline REV]`` (CPU, float64). The workload is the
gradient part of Figure 1 in quick mode (chapter "Linear models"): ``D = 16``, ``L̄ = 1``,
``L = 2``, linear, ranks 1–16 × seeds × learning rates × both panels, ``STEPS`` Adam steps. It is
trained

* (a) as one batched ``fit`` by this checkout's package,
* (b) the same by the package at ``REV`` (default ``HEAD~1``), checked out in a temporary
  ``git worktree`` and run in a subprocess,
* (c) one configuration after another (a ``fit`` with a single run, same steps, on an evenly
  spaced sample of the configurations, which cost the same per step),

each timed as the best of a few repeats in a fresh process, (a) and (b) alternated over
``ROUNDS`` rounds with the best round of each kept, and prints configurations per second and the
ratios. Then it times ``run("fig1", "quick")``, the call the chapter and
``python -m lora_theory reproduce fig1 --mode quick`` make.

When the engine became model-generic (baseline ``cc1d233``, the first engine with hand-written
FNN gradients), a run on the idle 2-core machine printed 98.8 configurations/s with the
hand-written gradient kept as an option and 101.5 with autograd (0.97×), so the hand-written
gradient was deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 200
SEQUENTIAL_SAMPLE = 24
REPEATS = 3
ROUNDS = 3
ROOT = Path(__file__).resolve().parent.parent


def _workload():  # type: ignore[no-untyped-def]
    """``(fit, tasks, runs, settings)`` of the Figure 1 sweep, for either package layout."""
    from lora_theory.experiments import budget
    from lora_theory.experiments.runners import plans

    try:  # the model-generic engine
        from lora_theory.experiments import EXPERIMENTS, family
        from lora_theory.experiments.tasks import build_tasks
        from lora_theory.training import FitSettings, fit

        stacked = family("linear").stacked

        def fit_one(tasks, runs, settings):  # type: ignore[no-untyped-def]
            return fit(tasks, runs, settings, stacked=stacked)

        exp = EXPERIMENTS["fig1"]
    except ImportError:  # the first engine (FNN only, hand-written gradients)
        from lora_theory.experiments import FIGURES
        from lora_theory.experiments.runners import build_tasks
        from lora_theory.training import FitSettings, fit

        fit_one, exp = fit, FIGURES["fig1"]
    work = budget("quick")
    (plan,) = plans(exp, work, build_tasks(exp, work.seeds)).values()
    settings = FitSettings(steps=STEPS, n_test=work.n_test, eval_every=work.eval_every)
    return fit_one, plan.tasks, plan.runs, settings


def measure(sequential: bool) -> dict[str, float]:
    """Configurations/s of one batched fit, or of one-by-one fits when ``sequential``."""
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import best_of

    fit_one, tasks, runs, settings = _workload()
    out = {"n": len(runs)}
    if not sequential:
        out["batched"] = len(runs) / best_of(lambda: fit_one(tasks, runs, settings), REPEATS)
    else:
        sample = runs[:: max(1, len(runs) // SEQUENTIAL_SAMPLE)]
        one = [([tasks[r.task]], [replace(r, task=0)]) for r in sample]
        wall = best_of(lambda: [fit_one(t, r, settings) for t, r in one], REPEATS)
        out["sequential"] = len(sample) / wall
    return out


def _in_subprocess(root: Path, *flags: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, __file__, "--measure", *flags]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git revision to compare against")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.sequential)))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads available")
    # Alternate the two versions and keep each one's best round: other load on the machine only
    # ever slows a round down, so the best rounds compare the versions fairly.
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        git = ["git", "-C", str(ROOT)]
        subprocess.run(
            [*git, "worktree", "add", "-q", "--detach", str(tree), args.baseline], check=True
        )
        try:
            rounds = [(_in_subprocess(ROOT), _in_subprocess(tree)) for _ in range(ROUNDS)]
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)
    now = max((r[0] for r in rounds), key=lambda m: m["batched"])
    before = max((r[1] for r in rounds), key=lambda m: m["batched"])
    now["sequential"] = _in_subprocess(ROOT, "--sequential")["sequential"]
    print(f"workload: {now['n']} configurations of fig1 (quick), {STEPS} Adam steps, batch 256")
    print(f"batched, this version : {now['batched']:8.2f} configurations/s")
    print(f"batched, {args.baseline:<13}: {before['batched']:8.2f} configurations/s")
    print(f"one by one            : {now['sequential']:8.2f} configurations/s")
    print(f"this / baseline       : {now['batched'] / before['batched']:8.2f}x  (goal ≥ 1)")
    print(f"batched / one by one  : {now['batched'] / now['sequential']:8.1f}x  (goal ≥ 10)")

    from timing import best_of

    from lora_theory.experiments import run

    wall = best_of(lambda: run("fig1", "quick", progress=False), repeats=1)
    print(f"reproduce fig1 --mode quick: {wall:.1f} s")


if __name__ == "__main__":
    main()
