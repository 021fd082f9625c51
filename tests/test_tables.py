"""Printed tables fit the page; caption text reaches the page or the reader."""

from __future__ import annotations

import pytest

from lora_theory import tables


def test_table_aligns_right_and_formats_columns():
    text = tables.table(["R", "mse"], [(1, 0.25), (10, 1e-12)], ["d", tables.below(1e-10)])
    assert text.splitlines() == [" R       mse", " 1   2.5e-01", "10    <1e-10"]


def test_table_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="exceeds the page width 79"):
        tables.table(["x"], [("y" * 80,)])
    with pytest.raises(ValueError, match="rows\\[0\\] has 1 cells for 2 columns"):
        tables.table(["a", "b"], [(1,)])
    with pytest.raises(ValueError, match="formats has 1 entries for 2 columns"):
        tables.table(["a", "b"], [(1, 2)], ["d"])


def test_inline_wraps_to_the_page():
    pairs = [(r, 10.0**-r) for r in range(1, 17)]
    lines = tables.inline(pairs, ".1e").splitlines()
    assert all(len(line) <= tables.PAGE_WIDTH for line in lines) and len(lines) > 1
    assert lines[0].startswith(" 1: 1.0e-01") and lines[-1].endswith("16: 1.0e-16")


def test_joined_and_below():
    assert tables.joined("g")((0.01, 0.001)) == "0.01 0.001"
    assert tables.below(1e-10)(3e-11) == "<1e-10"
    assert tables.below(1e-10)(2.0) == "2.0e+00"
    with pytest.raises(ValueError, match="floor"):
        tables.below(0.0)


def test_glue_prints_without_myst_nb(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name == "myst_nb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    tables.glue("fig-x", "quick mode: 3 seeds")
    assert capsys.readouterr().out == "quick mode: 3 seeds\n"
    with pytest.raises(ValueError, match="name"):
        tables.glue("", "x")
