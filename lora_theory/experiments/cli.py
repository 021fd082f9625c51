"""The command line: ``python -m lora_theory reproduce <figure> [--mode] [--out DIR] [--device]``.

Runs :func:`lora_theory.experiments.run` (the code path the chapters use) and writes the tidy rows
to ``DIR/<figure>.csv`` (columns ``panel, method, rank, seed, test_mse, n_params``; the appendix
experiments ``curves``, ``generalization``, ``classification`` and ``rank-schedule`` add the
optional columns of ``results.OPTIONAL_COLUMNS`` after them). Also installed as the console script
``lora-theory``.

Exit status: 0 on success; 2 on bad arguments, checked before any work (an unknown figure, mode or
device, ``--device cuda`` without CUDA, an ``--out`` that is not a writable folder); 130 on Ctrl-C,
which writes nothing (an earlier ``DIR/<figure>.csv`` stays as it was).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..runtime import MODES, device, mode
from .results import write_csv
from .runners import run
from .settings import EXPERIMENTS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (unknown figures or options exit with status 2 and a usage message).

    Introduced in :ref:`sec-fig1`.
    """
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
    rep.add_argument("figure", choices=sorted(EXPERIMENTS), help="which experiment")
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


def prepare_out(out: Path, figure: str) -> Path:
    """Make ``out`` a writable folder before any work; return the CSV path ``out/<figure>.csv``.

    Creates ``out`` (and its parents) if missing and proves it writable by creating and removing a
    temporary file in it. Raises ``ValueError`` with a one-line message naming the path and the
    problem: ``out`` or a parent is a file, it cannot be created, it is not writable, or the CSV
    path is a folder.

    Introduced in :ref:`sec-fig1`.
    """
    target = out / f"{figure}.csv"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out '{out}' is a file, not a folder") from None
        if isinstance(exc, NotADirectoryError):
            raise ValueError(f"--out '{out}' cannot be created: a parent is a file") from None
        raise ValueError(f"--out '{out}' cannot be created: {exc.strerror}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out '{out}' is not writable: {exc.strerror}") from None
    if target.is_dir():
        raise ValueError(f"--out '{out}': '{target}' is a folder, cannot write the CSV there")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m lora_theory`` and ``lora-theory``; returns the exit status.

    Bad arguments exit with status 2 (``SystemExit``) before any work; Ctrl-C returns 130 after
    one line on stderr, with nothing written.

    Introduced in :ref:`sec-fig1`.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dev = device(args.device)
        run_mode = mode(args.mode)
        target = prepare_out(args.out, args.figure)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{args.figure}: {run_mode} mode on {dev}", file=sys.stderr)
    try:
        rows = run(args.figure, run_mode, device=dev)
        path = write_csv(rows, target)
    except KeyboardInterrupt:
        print(f"interrupted: no results written to {target}", file=sys.stderr)
        return 130
    print(f"wrote {len(rows)} rows to {path}")
    return 0
