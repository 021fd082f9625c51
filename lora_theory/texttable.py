"""Plain-text tables that fit the book's page: one header row, aligned columns, ≤ 79 characters.

The chapters print their key numbers as small tables, and nbval compares the printed text, so a
table must come out the same every time and must fit the page (the book's code and output boxes
are 80 columns wide). :func:`format_table` formats each column with its own format spec,
left-aligns the first column, right-aligns the others and refuses a table wider than ``width``.

Introduced in :ref:`sec-thm3-verification`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

from . import checks

__all__ = ["PAGE_WIDTH", "below", "format_table", "inline", "joined", "span", "wrap"]

#: The widest line the book's code and output boxes show without clipping.
PAGE_WIDTH = 79

#: A column's format: a ``format()`` spec, or a function ``value → str`` (e.g. :func:`below`).
Format = str | Callable[[object], str]


def _spec(spec: object, name: str) -> Format:
    """``spec`` if it is a format spec (a ``str``) or a formatter (a callable)."""
    if not (isinstance(spec, str) or callable(spec)):
        raise ValueError(
            f"{name} must be a format spec (str) or a function value → str, got {spec!r}"
        )
    return spec  # type: ignore[return-value]


def _string(value: object, name: str, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _format(value: object, spec: str) -> str:
    """``format(value, spec)``, a ``ValueError`` naming both when they do not fit together."""
    try:
        return format(value, spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot format {value!r} with the spec {spec!r}: {exc}") from exc


def _cell(value: object, spec: Format) -> str:
    if value is None:
        return "—"
    if callable(spec):
        return str(spec(value))
    return _format(value, spec) if spec else str(value)


def _fits(lines: list[str], width: int) -> str:
    too_long = [line for line in lines if len(line) > width]
    if too_long:
        raise ValueError(
            f"a line of {len(too_long[0])} characters exceeds the page width {width}: "
            f"{too_long[0]!r}"
        )
    return "\n".join(lines)


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    formats: Sequence[Format] | None = None,
    width: int = PAGE_WIDTH,
) -> str:
    """The rows as aligned text columns under ``header``, separated by two spaces.

    ``formats[j]`` is a ``format()`` spec for column ``j`` (``""`` means ``str``, the default) or
    a function ``value → str`` such as :func:`below`;
    a ``None`` cell prints as ``—``. Column ``j`` is as wide as its widest entry, header included;
    a column of strings is left-aligned, any other column right-aligned.
    Raises ``ValueError`` when a row has the wrong length or a line would exceed ``width``
    characters (default :data:`PAGE_WIDTH`).

    >>> rows = [["a", 1, 0.25], ["b", 2, 0.0]]
    >>> print(format_table(["case", "R", "error"], rows, ["", "d", ".1e"]))
    case  R    error
    a     1  2.5e-01
    b     2  0.0e+00

    Introduced in :ref:`sec-thm3-verification`.
    """
    header = [str(h) for h in checks.sequence(header, "header", "column names")]
    n = len(header)
    formats = (
        [""] * n
        if formats is None
        else [
            _spec(f, f"formats[{j}]")
            for j, f in enumerate(checks.sequence(formats, "formats", "format specs"))
        ]
    )
    if len(formats) != n:
        raise ValueError(f"formats must have one spec per column ({n}), got {len(formats)}")
    width = checks.integer(width, "width", low=1)
    rows = [
        checks.sequence(row, f"rows[{k}]", "cells", empty=True)
        for k, row in enumerate(checks.sequence(rows, "rows", "table rows", empty=True))
    ]
    cells = [header]
    for k, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"row {k} has {len(row)} cells, expected {n} (one per column)")
        cells.append([_cell(v, spec) for v, spec in zip(row, formats, strict=True)])
    widths = [max(len(r[j]) for r in cells) for j in range(n)]
    left = [bool(rows) and all(isinstance(r[j], str) for r in rows) for j in range(n)]
    lines = [
        "  ".join(
            c.ljust(w) if flush else c.rjust(w) for c, w, flush in zip(r, widths, left, strict=True)
        ).rstrip()
        for r in cells
    ]
    widest = max(len(line) for line in lines)
    if widest > width:
        raise ValueError(f"table is {widest} characters wide, expected at most width={width}")
    return "\n".join(lines)


def wrap(text: str, width: int = PAGE_WIDTH) -> str:
    """``text`` wrapped to ``width`` columns, continuation lines indented by two spaces.

    For long messages (an exception's explanation, a budget in words) that would otherwise run
    past the page.

    Introduced in :ref:`sec-assumption1-fails`.
    """
    width = checks.integer(width, "width", low=4)
    return textwrap.fill(str(text), width, subsequent_indent="  ", break_on_hyphens=False)


def span(values: Sequence[float], spec: str = ".0e") -> str | None:
    """``"min … max"`` of ``values`` in the format ``spec``, or ``None`` (``—`` in a table) when
    there are none.

    >>> span([3e-14, 1e-13, 5e-14])
    '3e-14 … 1e-13'

    Introduced in :ref:`sec-deep-caveat`.
    """
    spec = _string(spec, "spec", "a format spec (str)")
    values = checks.reals(values, "values", empty=True, finite=False)
    if not values:
        return None
    return f"{_format(min(values), spec)} … {_format(max(values), spec)}"


def inline(
    pairs: Sequence[tuple[object, object]],
    fmt: Format = "",
    *,
    sep: str = "   ",
    width: int = PAGE_WIDTH,
) -> str:
    """``label: value`` items, ``value`` formatted with ``fmt``, wrapped to lines of at most
    ``width`` characters; labels are right-aligned to the widest one so columns line up.

    Introduced in :ref:`sec-lemma2-experiment`.
    """
    pairs = checks.sequence(pairs, "pairs", "(label, value) pairs")
    fmt = _spec(fmt, "fmt")
    sep = _string(sep, "sep")
    width = checks.integer(width, "width", low=1)
    for i, pair in enumerate(pairs):
        if len(checks.sequence(pair, f"pairs[{i}]", "(label, value)")) != 2:
            raise ValueError(f"pairs[{i}] must be a (label, value) pair, got {pair!r}")
    labels = [str(k) for k, _ in pairs]
    values = [_cell(v, fmt) for _, v in pairs]
    lw, vw = max(map(len, labels)), max(map(len, values))
    items = [f"{k.rjust(lw)}: {v.rjust(vw)}" for k, v in zip(labels, values, strict=True)]
    per_line = max(1, (width + len(sep)) // (len(items[0]) + len(sep)))
    lines = [sep.join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return _fits(lines, width)


def below(floor: float, fmt: str = ".1e") -> Callable[[object], str]:
    """A formatter: ``f"{v:{fmt}}"``, or ``"<floor"`` (e.g. ``"<1e-10"``) for ``v < floor``.

    Introduced in :ref:`sec-fig1`.
    """
    floor = checks.real(floor, "floor", positive=True)
    fmt = _string(fmt, "fmt", "a format spec (str)")

    def formatter(value: object) -> str:
        v = checks.real(value, "value", finite=False)
        return f"<{floor:.0e}" if v < floor else _format(v, fmt)

    return formatter


def joined(fmt: str = "g", sep: str = " ") -> Callable[[object], str]:
    """A formatter for a sequence of values: each formatted with ``fmt``, joined by ``sep``
    (``(0.01, 0.001)`` → ``"0.01 0.001"``).

    Introduced in :ref:`sec-fig1`.
    """
    fmt, sep = _string(fmt, "fmt", "a format spec (str)"), _string(sep, "sep")

    def formatter(values: object) -> str:
        items = checks.sequence(values, "values", "values", empty=True)
        return sep.join(_format(v, fmt) for v in items)

    return formatter
