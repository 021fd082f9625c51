"""Plain-text tables that fit the book's page: one header row, aligned columns, ≤ 79 characters.

The chapters print their key numbers as small tables, and nbval compares the printed text, so a
table must come out the same every time and must fit the page (the book's code and output boxes
are 80 columns wide). :func:`format_table` formats each column with its own format spec,
left-aligns the first column, right-aligns the others and refuses a table wider than ``width``.

Introduced in :ref:`sec-thm3-verification`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from . import checks

__all__ = ["PAGE_WIDTH", "format_table", "span", "wrap"]

#: The widest line the book's code and output boxes show without clipping.
PAGE_WIDTH = 79


def _cell(value: object, spec: str) -> str:
    if value is None:
        return "—"
    return format(value, spec) if spec else str(value)


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    formats: Sequence[str] | None = None,
    width: int = PAGE_WIDTH,
) -> str:
    """The rows as aligned text columns under ``header``, separated by two spaces.

    ``formats[j]`` is a ``format()`` spec for column ``j`` (``""`` means ``str``, the default);
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
    formats = [""] * n if formats is None else list(formats)
    if len(formats) != n:
        raise ValueError(f"formats must have one spec per column ({n}), got {len(formats)}")
    width = checks.integer(width, "width", low=1)
    rows = checks.sequence(rows, "rows", "table rows", empty=True)
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
    values = [float(v) for v in checks.sequence(values, "values", "numbers", empty=True)]
    if not values:
        return None
    return f"{min(values):{spec}} … {max(values):{spec}}"
