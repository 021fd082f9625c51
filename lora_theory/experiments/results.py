"""Tidy result rows, their CSV form and the per-seed median the figures plot.

One :class:`Row` per run after model selection, with the columns of ``COLUMNS`` (the CLI's
``DIR/<figure>.csv``). ``rank`` is the LoRA rank ``R``, or the number ``k`` of tuned final layers
for ``method = "final_layers"``; ``n_params`` is the trainable parameter count of
:meth:`lora_theory.training.Trainable.n_params` (``2RDL``, plus ``DL`` when biases are tuned).
A diverged run has ``test_mse = NaN`` (the schema has no extra column for it).

Nothing is written or read silently wrong: :func:`write_csv` validates every row, then replaces the
file atomically (a crash or Ctrl-C leaves the previous file, never a truncated one);
:func:`read_csv` checks the header, the number of fields and every value, naming file, line and
column of the first problem.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import numbers
import os
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from .. import checks


@dataclass(frozen=True)
class Row:
    """One run: ``panel``, ``method``, ``rank``, ``seed``, ``test_mse``, ``n_params``.

    Introduced in :ref:`sec-fig1`.
    """

    panel: str
    method: str
    rank: int
    seed: int
    test_mse: float
    n_params: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))
#: The values of the ``method`` column; the one home of the method names.
METHODS: tuple[str, ...] = ("construction", "gradient", "final_layers")


def _count(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _mse(v: object) -> bool:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        f = float(v)
    except OverflowError:  # an int beyond float range
        return False
    return math.isnan(f) or 0 <= f < math.inf


_COUNT = "a non-negative integer"
#: Per column: (is this Python value valid?, its type in the file, what a valid value is).
_SPEC: dict[str, tuple[Callable[[object], bool], type, str]] = {
    "panel": (
        lambda v: isinstance(v, str) and v != "" and not {"\n", "\r"} & set(v),
        str,
        "a non-empty string without line breaks",
    ),
    "method": (lambda v: isinstance(v, str) and v in METHODS, str, f"one of {', '.join(METHODS)}"),
    "rank": (_count, int, _COUNT),
    "seed": (_count, int, _COUNT),
    "test_mse": (_mse, float, "a finite float >= 0 or NaN"),
    "n_params": (_count, int, _COUNT),
}


def _parse(kind: type, text: str) -> object:
    """``kind(text)``, stricter: ints are ASCII digits only, floats have no spaces or ``_``."""
    if kind is int and not re.fullmatch("[0-9]+", text):
        raise ValueError(text)
    if kind is float and (text != text.strip() or "_" in text):
        raise ValueError(text)
    return kind(text)


def _row_problem(row: object) -> str | None:
    """``None`` if ``row`` is a valid :class:`Row`, else ``"column C: expected …, got …"``."""
    if not isinstance(row, Row):
        return f"expected a Row, got {type(row).__name__} {row!r}"
    for column, value in zip(COLUMNS, astuple(row), strict=True):
        valid, _, expected = _SPEC[column]
        if not valid(value):
            return f"column {column}: expected {expected}, got {value!r}"
    return None


def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """Write ``rows`` under a header line of ``COLUMNS``, atomically; return ``path``.

    Every row is checked first (``ValueError`` naming the 1-based row and the column; nothing is
    written). The text goes to a temporary file in the same folder, is flushed and fsync'ed, then
    ``os.replace`` puts it in place: on any exception, Ctrl-C included, the temporary file is
    removed and an existing ``path`` stays as it was. Missing parent folders are created.

    Introduced in :ref:`sec-fig1`.
    """
    path = checks.path(path)
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise ValueError(f"rows must be an iterable of Row, got {type(rows).__name__}")
    rows = list(rows)
    for i, row in enumerate(rows, 1):
        if (problem := _row_problem(row)) is not None:
            raise ValueError(f"{path} not written: row {i} of {len(rows)}, {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            umask = os.umask(0)  # no getter: read it, restore it
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # what open() would give; mkstemp gives 0o600
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            # NumPy scalars and the like are written as the plain int/float they stand for
            writer.writerows(
                [_SPEC[c][1](v) for c, v in zip(COLUMNS, astuple(r), strict=True)] for r in rows
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


def read_csv(path: str | Path) -> list[Row]:
    """The rows of a file written by :func:`write_csv`, every field checked.

    Raises ``ValueError`` naming the file, the 1-based line and the column when the file is empty,
    the header is not ``COLUMNS``, a line has the wrong number of fields or a bad value
    (``rank``/``seed``/``n_params`` non-negative integers, ``test_mse`` a float ``>= 0`` or NaN,
    ``method`` in ``METHODS``), malformed quoting, or no line break after the last line (a
    truncated file); a missing file raises ``FileNotFoundError`` naming it.

    Introduced in :ref:`sec-fig1`.
    """
    path = checks.path(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text:
        raise ValueError(f"{path}: empty file, expected the header line {','.join(COLUMNS)}")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        if (header := next(reader)) != list(COLUMNS):
            raise ValueError(f"{path}, line 1: expected columns {','.join(COLUMNS)}, got {header}")
        for texts in reader:
            where = f"{path}, line {reader.line_num}"
            if len(texts) != len(COLUMNS):
                raise ValueError(f"{where}: expected {len(COLUMNS)} fields, got {len(texts)}")
            rows.append(Row(*(_field(where, c, t) for c, t in zip(COLUMNS, texts, strict=True))))
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: {exc}") from None
    if not text.endswith(("\n", "\r")):
        raise ValueError(f"{path}, line {reader.line_num}: no line break at the end (truncated?)")
    return rows


def _field(where: str, column: str, text: str) -> object:
    """The value of ``text`` in ``column``; ``ValueError`` ``"<where>, column C: …"`` if invalid."""
    valid, kind, expected = _SPEC[column]
    try:
        value = _parse(kind, text)
        ok = valid(value)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{where}, column {column}: expected {expected}, got {text!r}")
    return value


def median_curve(
    rows: Sequence[Row], panel: str, method: str, x: str = "rank"
) -> tuple[list[float], list[float]]:
    """``(xs, medians)``: the median ``test_mse`` over seeds at each value of column ``x``.

    The paper plots the median over seeds. ``x`` is ``"rank"`` or ``"n_params"``. A diverged
    run (NaN score) counts as ``+inf``: the median is then the same whatever the row order, and
    is ``inf`` when at least half of the seeds diverged.

    Introduced in :ref:`sec-fig1`.
    """
    rows = checks.sequence(rows, "rows", "result Rows", empty=True)
    checks.instances(rows, "rows", Row, "a Row")
    checks.choice(x, "x", ("rank", "n_params"))
    groups: dict[float, list[float]] = {}
    for r in rows:
        if r.panel == panel and r.method == method:
            score = math.inf if math.isnan(r.test_mse) else r.test_mse
            groups.setdefault(getattr(r, x), []).append(score)
    xs = sorted(groups)
    return xs, [statistics.median(groups[v]) for v in xs]
