"""The command line: ``python -m lora_theory reproduce <figure> [--mode quick|full] [--out DIR]``.

Runs :func:`lora_theory.experiments.run` (the code path the chapters use) and writes the tidy rows
to ``DIR/<figure>.csv`` (columns ``panel, method, rank, seed, test_mse, n_params``). Also installed
as the console script ``lora-theory``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..runtime import MODES, device, mode
from .results import write_csv
from .runners import run
from .settings import FIGURES


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (unknown figures or options exit with status 2 and a usage message)."""
    parser = argparse.ArgumentParser(
        prog="lora-theory",
        description="Experiments of Zeng & Lee, 'The Expressive Power of Low-Rank Adaptation'.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rep = commands.add_parser(
        "reproduce",
        help="run one of the paper's experiments and write DIR/<figure>.csv",
        description="Run one of the paper's experiments and write DIR/<figure>.csv.",
    )
    rep.add_argument("figure", choices=sorted(FIGURES), help="which experiment")
    rep.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="quick (CPU budget) or full (the paper's protocol); default: $LORA_THEORY_MODE, "
        "else full iff CUDA is available",
    )
    rep.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    rep.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m lora_theory`` and ``lora-theory``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dev = device(args.device)
        run_mode = mode(args.mode)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{args.figure}: {run_mode} mode on {dev}", file=sys.stderr)
    rows = run(args.figure, run_mode, device=dev)
    path = write_csv(rows, args.out / f"{args.figure}.csv")
    print(f"wrote {len(rows)} rows to {path}")
    return 0
