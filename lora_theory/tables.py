"""The printed text of the chapters: aligned tables that fit the page, and caption text.

A chapter's page is about 80 characters wide; every function here returns or prints lines of at
most :data:`PAGE_WIDTH` characters and raises ``ValueError`` when its content cannot fit, so a
table never runs off the page unnoticed.

* :func:`table` — rows under a header, one column per field, each column as wide as its widest
  entry and right-aligned (numbers line up on their last digit);
* :func:`inline` — ``label: value`` pairs wrapped into as many lines as needed;
* :func:`below` — a value, or ``"<floor"`` when it is round-off below ``floor``;
* :func:`joined` — a sequence of values on one line (a grid of learning rates, say);
* :func:`glue` — text for a figure caption: glued into the page by the book build (myst-nb),
  printed in plain Jupyter or Colab.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import checks

#: The widest line a chapter prints (the page shows 80 columns; one is kept free).
PAGE_WIDTH = 79

Format = str | Callable[[object], str]


def _cell(value: object, fmt: Format) -> str:
    if callable(fmt):
        return str(fmt(value))
    return format(value, fmt)


def _fits(lines: list[str], width: int) -> str:
    too_long = [line for line in lines if len(line) > width]
    if too_long:
        raise ValueError(
            f"a line of {len(too_long[0])} characters exceeds the page width {width}: "
            f"{too_long[0]!r}"
        )
    return "\n".join(lines)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    formats: Sequence[Format] | None = None,
    *,
    gap: int = 3,
    width: int = PAGE_WIDTH,
) -> str:
    """The rows as an aligned text table: ``header`` on the first line, one line per row.

    ``formats[k]`` formats column ``k``: a format spec (``".2e"``, ``"d"``, ``""``) or a function
    ``value → str``; default ``""`` (``str``). Columns are separated by ``gap`` spaces and
    right-aligned. Raises ``ValueError`` if a row's length differs from the header's or a line
    would exceed ``width`` characters.

    Introduced in :ref:`sec-fig1`.
    """
    header = [str(h) for h in checks.sequence(header, "header", "column names")]
    rows = checks.sequence(rows, "rows", "table rows", empty=True)
    gap = checks.integer(gap, "gap", low=1)
    width = checks.integer(width, "width", low=1)
    if formats is None:
        formats = [""] * len(header)
    formats = checks.sequence(formats, "formats", "column formats")
    if len(formats) != len(header):
        raise ValueError(f"formats has {len(formats)} entries for {len(header)} columns")
    text = []
    for i, row in enumerate(rows):
        row = checks.sequence(row, f"rows[{i}]", "table cells", empty=True)
        if len(row) != len(header):
            raise ValueError(f"rows[{i}] has {len(row)} cells for {len(header)} columns")
        text.append([_cell(v, f) for v, f in zip(row, formats, strict=True)])
    widths = [max(len(c) for c in col) for col in zip(header, *text, strict=True)]
    lines = [
        (" " * gap).join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        for cells in [header, *text]
    ]
    return _fits(lines, width)


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
    width = checks.integer(width, "width", low=1)
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

    def formatter(value: object) -> str:
        v = checks.real(value, "value", finite=False)
        return f"<{floor:.0e}" if v < floor else format(v, fmt)

    return formatter


def joined(fmt: str = "g", sep: str = " ") -> Callable[[object], str]:
    """A formatter for a sequence of values: each formatted with ``fmt``, joined by ``sep``
    (``(0.01, 0.001)`` → ``"0.01 0.001"``).

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(fmt, str) or not isinstance(sep, str):
        raise ValueError(f"fmt and sep must be strings, got {fmt!r} and {sep!r}")

    def formatter(values: object) -> str:
        items = checks.sequence(values, "values", "values", empty=True)
        return sep.join(format(v, fmt) for v in items)

    return formatter


def glue(name: str, text: str) -> None:
    """Put ``text`` into the page under ``name`` (myst-nb's ``glue``; a caption refers to it with
    ``{glue:text}`name```), or print it where myst-nb is not installed (plain Jupyter, Colab).

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        print(text)
    else:
        myst_glue(name, text, display=False)
