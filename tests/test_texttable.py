"""Plain-text tables for the chapters' printed output."""

from __future__ import annotations

import pytest

from lora_theory import texttable
from lora_theory.texttable import PAGE_WIDTH, format_table, span, wrap


def test_columns_align_and_format():
    text = format_table(["name", "R", "error"], [["a", 1, 0.5], ["bb", 12, None]], ["", "d", ".1e"])
    assert text.splitlines() == ["name   R    error", "a      1  5.0e-01", "bb    12        —"]


def test_wide_tables_are_refused():
    with pytest.raises(ValueError, match="at most width=79"):
        format_table(["x" * 50, "y" * 50], [])
    assert PAGE_WIDTH == 79


@pytest.mark.parametrize(
    ("header", "rows", "formats", "match"),
    [
        ("ab", [], None, "header"),
        (["a"], [[1, 2]], None, "row 0 has 2 cells"),
        (["a", "b"], [], ["d"], "one spec per column"),
    ],
)
def test_bad_input(header, rows, formats, match):
    with pytest.raises(ValueError, match=match):
        format_table(header, rows, formats)


def test_numbers_align_right_strings_left():
    text = format_table(["D", "name"], [[16, "a"], [768, "bcd"]], ["d", ""])
    assert text.splitlines() == ["  D  name", " 16  a", "768  bcd"]


def test_wrap_fits_the_page():
    text = wrap("word " * 40)
    assert all(len(line) <= 79 for line in text.splitlines())
    assert text.splitlines()[1].startswith("  word")
    with pytest.raises(ValueError, match="width"):
        wrap("x", 0)


def test_span_of_values_and_of_none():
    assert span([2.0, 0.5, 1.0], ".1f") == "0.5 … 2.0"
    assert span([]) is None
    with pytest.raises(ValueError, match="values"):
        span(3.0)


def test_inline_wraps_to_the_page():
    pairs = [(r, 10.0**-r) for r in range(1, 17)]
    lines = texttable.inline(pairs, ".1e").splitlines()
    assert all(len(line) <= texttable.PAGE_WIDTH for line in lines) and len(lines) > 1
    assert lines[0].startswith(" 1: 1.0e-01") and lines[-1].endswith("16: 1.0e-16")


def test_joined_and_below():
    assert texttable.joined("g")((0.01, 0.001)) == "0.01 0.001"
    assert texttable.below(1e-10)(3e-11) == "<1e-10"
    assert texttable.below(1e-10)(2.0) == "2.0e+00"
    with pytest.raises(ValueError, match="floor"):
        texttable.below(0.0)


def test_format_table_takes_a_function_as_a_column_format():
    text = format_table(["R", "mse"], [(1, 0.25), (10, 1e-12)], ["d", texttable.below(1e-10)])
    assert text.splitlines() == [" R      mse", " 1  2.5e-01", "10   <1e-10"]
