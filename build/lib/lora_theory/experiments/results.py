"""Tidy result rows, their CSV form and the per-seed median the figures plot.

One :class:`Row` per run after model selection, with the columns of :data:`COLUMNS` (the CLI's
``DIR/<figure>.csv``). ``rank`` is the LoRA rank ``R``, or the number ``k`` of tuned final layers
for ``method = "final_layers"``; ``n_params`` is the trainable parameter count of
:meth:`lora_theory.training.Trainable.n_params` (``2RDL``, plus ``DL`` when biases are tuned).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One run: ``panel``, ``method``, ``rank``, ``seed``, ``test_mse``, ``n_params``."""

    panel: str
    method: str
    rank: int
    seed: int
    test_mse: float
    n_params: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))


def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """Write ``rows`` with a header line of :data:`COLUMNS`; creates missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(astuple(r) for r in rows)
    return path


def read_csv(path: str | Path) -> list[Row]:
    """Rows written by :func:`write_csv`; ``ValueError`` if the header is not :data:`COLUMNS`."""
    with Path(path).open(newline="") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != COLUMNS:
            raise ValueError(f"{path}: expected columns {COLUMNS}, got {header}")
        return [Row(p, m, int(r), int(s), float(e), int(n)) for p, m, r, s, e, n in reader]


def median_curve(
    rows: Sequence[Row], panel: str, method: str, x: str = "rank"
) -> tuple[list[float], list[float]]:
    """``(xs, medians)``: the median ``test_mse`` over seeds at each value of column ``x``.

    The paper plots the median over seeds (PAPER_SPEC §7.1). ``x`` is ``"rank"`` or ``"n_params"``.
    """
    if x not in ("rank", "n_params"):
        raise ValueError(f"x must be 'rank' or 'n_params', got {x!r}")
    groups: dict[float, list[float]] = {}
    for r in rows:
        if r.panel == panel and r.method == method:
            groups.setdefault(getattr(r, x), []).append(r.test_mse)
    xs = sorted(groups)
    return xs, [statistics.median(groups[v]) for v in xs]
