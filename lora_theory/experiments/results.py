"""Tidy result rows, their CSV form and the per-seed median the figures plot.

One :class:`Row` per run after model selection, with the columns of ``COLUMNS`` (the CLI's
``DIR/<figure>.csv``). ``rank`` is the LoRA rank ``R``, or the number ``k`` of tuned final layers
for ``method = "final_layers"``; ``n_params`` is the trainable parameter count of
:meth:`lora_theory.training.Trainable.n_params` (``2RDL``, plus ``DL`` when biases are tuned).
A diverged run has ``test_mse = NaN`` (the schema has no extra column for it).

The appendix experiments add optional columns, ``OPTIONAL_COLUMNS``, after these six: a file
has the six columns of ``COLUMNS`` and then those optional ones that at least one of its rows
uses, in this order (an empty field where a row has none), so the figures of the main text
keep exactly the six columns. ``step``: a point of a training curve, the run's training loss
``train_loss`` after ``step`` updates (the run's other columns repeated); without ``step``,
``train_loss`` is the loss of the reported iterate on the fixed training set.
``test_accuracy``: fraction of test points classified as the teacher classifies them;
``shift_mse``, ``shift_accuracy``: the same on the shifted test set.

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
    step: int | None = None
    train_loss: float | None = None
    test_accuracy: float | None = None
    shift_mse: float | None = None
    shift_accuracy: float | None = None


#: The columns every file has (those of the paper's figures), then the optional ones.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))[:6]
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))[6:]
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


def _fraction(v: object) -> bool:
    return _mse(v) and (math.isnan(float(v)) or float(v) <= 1)  # type: ignore[arg-type]


_COUNT = "a non-negative integer"
_MSE = "a finite float >= 0 or NaN"
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
    "test_mse": (_mse, float, _MSE),
    "n_params": (_count, int, _COUNT),
    "step": (_count, int, _COUNT),
    "train_loss": (_mse, float, _MSE),
    "test_accuracy": (_fraction, float, "a float in [0, 1] or NaN"),
    "shift_mse": (_mse, float, _MSE),
    "shift_accuracy": (_fraction, float, "a float in [0, 1] or NaN"),
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
    for column, value in zip(COLUMNS + OPTIONAL_COLUMNS, astuple(row), strict=True):
        valid, _, expected = _SPEC[column]
        if column in OPTIONAL_COLUMNS and value is None:
            continue
        if not valid(value):
            optional = " (or None)" if column in OPTIONAL_COLUMNS else ""
            return f"column {column}: expected {expected}{optional}, got {value!r}"
    return None


def _header(rows: Sequence[Row]) -> tuple[str, ...]:
    """``COLUMNS`` and the optional columns that some row uses, in the order of the schema."""
    used = [c for c in OPTIONAL_COLUMNS if any(getattr(r, c) is not None for r in rows)]
    return COLUMNS + tuple(used)


def _text(column: str, value: object) -> object:
    """The value as written: the plain int/float it stands for, empty for a missing one."""
    return "" if value is None else _SPEC[column][1](value)


def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    """Write ``rows`` under a header line of ``COLUMNS`` (and the optional columns the rows use),
    atomically; return ``path``.

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
            header = _header(rows)
            writer.writerow(header)
            # NumPy scalars and the like are written as the plain int/float they stand for
            writer.writerows([_text(c, getattr(r, c)) for c in header] for r in rows)
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
    the header is not ``COLUMNS`` (followed by optional columns in their order; an empty field in
    an optional column reads as ``None``), a line has the wrong number of fields or a bad value
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
        header = next(reader)
        extra = header[len(COLUMNS) :]
        if header[: len(COLUMNS)] != list(COLUMNS) or extra != sorted(
            set(extra) & set(OPTIONAL_COLUMNS), key=OPTIONAL_COLUMNS.index
        ):
            raise ValueError(
                f"{path}, line 1: expected columns {','.join(COLUMNS)}, got {header} (optionally "
                f"followed by some of {','.join(OPTIONAL_COLUMNS)}, in this order)"
            )
        for texts in reader:
            where = f"{path}, line {reader.line_num}"
            if len(texts) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(texts)}")
            values = {c: _field(where, c, t) for c, t in zip(header, texts, strict=True)}
            rows.append(Row(**values))  # type: ignore[arg-type]
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: {exc}") from None
    if not text.endswith(("\n", "\r")):
        raise ValueError(f"{path}, line {reader.line_num}: no line break at the end (truncated?)")
    return rows


def _field(where: str, column: str, text: str) -> object:
    """The value of ``text`` in ``column``; ``ValueError`` ``"<where>, column C: …"`` if invalid."""
    valid, kind, expected = _SPEC[column]
    if column in OPTIONAL_COLUMNS and text == "":
        return None
    try:
        value = _parse(kind, text)
        ok = valid(value)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{where}, column {column}: expected {expected}, got {text!r}")
    return value


def median_curve(
    rows: Sequence[Row],
    panel: str,
    method: str,
    x: str = "rank",
    *,
    y: str = "test_mse",
    rank: int | None = None,
) -> tuple[list[float], list[float]]:
    """``(xs, medians)``: the median of column ``y`` over seeds at each value of column ``x``.

    The paper plots the median over seeds. ``x`` is ``"rank"``, ``"n_params"`` or ``"step"``
    (the points of training curves, one ``rank`` at a time: pass ``rank``); ``y`` is
    ``"test_mse"`` or an optional column. Rows without a ``y`` value are left out, and so are
    curve points (rows with a ``step``) unless ``x == "step"``. A diverged run (NaN score)
    counts as the worst value, ``+inf`` (``-inf`` for an accuracy): the median is then the same
    whatever the row order, and is that worst value when at least half of the seeds diverged.

    Introduced in :ref:`sec-fig1`.
    """
    rows = checks.sequence(rows, "rows", "result Rows", empty=True)
    checks.instances(rows, "rows", Row, "a Row")
    checks.choice(x, "x", ("rank", "n_params", "step"))
    checks.choice(y, "y", ("test_mse", *OPTIONAL_COLUMNS[1:]))
    if rank is not None:
        checks.integer(rank, "rank", low=0)
    worst = -math.inf if y.endswith("accuracy") else math.inf
    groups: dict[float, list[float]] = {}
    for r in rows:
        value = getattr(r, y)
        if r.panel != panel or r.method != method or value is None:
            continue
        if (r.step is not None) != (x == "step") or (rank is not None and r.rank != rank):
            continue
        groups.setdefault(getattr(r, x), []).append(worst if math.isnan(value) else value)
    xs = sorted(groups)
    return xs, [statistics.median(groups[v]) for v in xs]
