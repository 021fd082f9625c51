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


def _workload(name: str = "fig1"):  # type: ignore[no-untyped-def]
    """``(fit, tasks, runs, settings)`` of experiment ``name``'s sweep (its first shape group), for
    either package layout."""
    from lora_theory.experiments import budget
    from lora_theory.experiments.runners import plans

    try:  # the model-generic engine
        from lora_theory.experiments import EXPERIMENTS, family
        from lora_theory.experiments.tasks import build_tasks
        from lora_theory.training import FitSettings, fit

        stacked = family("linear").stacked

        def fit_one(tasks, runs, settings, **kw):  # type: ignore[no-untyped-def]
            return fit(tasks, runs, settings, stacked=stacked, **kw)

        exp = EXPERIMENTS[name]
    except ImportError:  # the first engine (FNN only, hand-written gradients)
        from lora_theory.experiments import FIGURES
        from lora_theory.experiments.runners import build_tasks
        from lora_theory.training import FitSettings, fit

        fit_one, exp = fit, FIGURES[name]
    work = budget("quick")
    groups = plans(exp, work, build_tasks(exp, work.seeds))
    plan = groups[min(groups)]
    settings = FitSettings(steps=STEPS, n_test=work.n_test, eval_every=work.eval_every)
    return fit_one, plan.tasks, plan.runs, settings


def measure(name: str, sequential: bool) -> dict[str, float]:
    """Configurations per wall second and per CPU second of one batched fit of experiment
    ``name``'s sweep, or configurations per wall second of one-by-one fits when ``sequential``."""
    import time
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from timing import best_of

    fit_one, tasks, runs, settings = _workload(name)
    out = {"n": len(runs)}
    if not sequential:
        batched = lambda: fit_one(tasks, runs, settings)  # noqa: E731
        out["batched"] = len(runs) / best_of(batched, REPEATS)
        out["cpu"] = len(runs) / best_of(batched, REPEATS, clock=time.process_time)
    else:
        sample = runs[:: max(1, len(runs) // SEQUENTIAL_SAMPLE)]
        one = [([tasks[r.task]], [replace(r, task=0)]) for r in sample]
        wall = best_of(lambda: [fit_one(t, r, settings) for t, r in one], REPEATS)
        out["sequential"] = len(sample) / wall
    return out


def _in_subprocess(root: Path, *flags: str) -> dict[str, float]:
    """:func:`measure` with the package at ``root``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, __file__, "--measure", *flags]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git revision to compare against")
    parser.add_argument(
        "--experiment", default="fig1", help="the sweep to train (fig1: linear, fig2: ReLU FNN)"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.experiment, args.sequential)))
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
            flags = ("--experiment", args.experiment)
            rounds = [
                (_in_subprocess(ROOT, *flags), _in_subprocess(tree, *flags)) for _ in range(ROUNDS)
            ]
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)
    now, before = ({k: max(r[i][k] for r in rounds) for k in rounds[0][i]} for i in (0, 1))
    now["sequential"] = _in_subprocess(ROOT, *flags, "--sequential")["sequential"]
    print(
        f"workload: {now['n']} configurations of {args.experiment} (quick, first shape group), "
        f"{STEPS} Adam steps, batch 256"
    )
    print(f"batched, this version : {now['batched']:8.2f} configurations/s")
    print(f"batched, {args.baseline:<13}: {before['batched']:8.2f} configurations/s")
    print(f"one by one            : {now['sequential']:8.2f} configurations/s")
    print(f"this / baseline       : {now['batched'] / before['batched']:8.2f}x  (goal ≥ 1)")
    print(
        f"  per CPU second      : {now['cpu'] / before['cpu']:8.2f}x  "
        f"({now['cpu']:.1f} vs {before['cpu']:.1f} configurations per CPU-s)"
    )
    print(f"batched / one by one  : {now['batched'] / now['sequential']:8.1f}x  (goal ≥ 10)")

    from timing import best_of

    from lora_theory.experiments import run

    wall = best_of(lambda: run(args.experiment, "quick", progress=False), repeats=1)
    print(f"reproduce {args.experiment} --mode quick: {wall:.1f} s")


if __name__ == "__main__":
    main()
