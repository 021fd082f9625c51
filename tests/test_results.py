"""Bad input to :func:`write_csv` and :func:`read_csv`; the atomic write under faults and Ctrl-C."""

from __future__ import annotations

import csv
import math
import os
import stat
from dataclasses import astuple
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from lora_theory.experiments import COLUMNS, Row, read_csv, results, settings, write_csv

GOOD = Row("random", "gradient", 3, 0, 1.5e-3, 192)
OLD = [Row("pretrained", "construction", 8, 4, 0.0, 512)]
HEADER = ",".join(COLUMNS) + "\r\n"


def leftovers(folder: Path, keep: str) -> list[str]:
    """Names in ``folder`` other than ``keep`` (a temporary file left behind shows up here)."""
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# --- write_csv: rows are checked before anything is written -------------------------------------

BAD_ROWS = [
    (Row("random", "gradient", "3", 0, 0.1, 192), "rank", "a non-negative integer", "'3'"),
    (Row("random", "gradient", 3.5, 0, 0.1, 192), "rank", "a non-negative integer", "3.5"),
    (Row("random", "gradient", -1, 0, 0.1, 192), "rank", "a non-negative integer", "-1"),
    (Row("random", "gradient", True, 0, 0.1, 192), "rank", "a non-negative integer", "True"),
    (Row("random", "gradient", 3, -2, 0.1, 192), "seed", "a non-negative integer", "-2"),
    (Row("random", "gradient", 3, None, 0.1, 192), "seed", "a non-negative integer", "None"),
    (Row("random", "gradient", 3, 0, 0.1, 192.0), "n_params", "a non-negative integer", "192.0"),
    (Row("random", "gradient", 3, 0, 0.1, False), "n_params", "a non-negative integer", "False"),
    (Row("random", "gradient", 3, 0, -0.1, 192), "test_mse", "finite float >= 0 or NaN", "-0.1"),
    (Row("random", "gradient", 3, 0, math.inf, 192), "test_mse", "float >= 0 or NaN", "inf"),
    (Row("random", "gradient", 3, 0, -math.inf, 192), "test_mse", "float >= 0 or NaN", "-inf"),
    (Row("random", "gradient", 3, 0, 10**400, 192), "test_mse", "float >= 0 or NaN", "1000"),
    (Row("random", "gradient", 3, 0, "0.1", 192), "test_mse", "float >= 0 or NaN", "'0.1'"),
    (Row("random", "gradient", 3, 0, True, 192), "test_mse", "float >= 0 or NaN", "True"),
    (Row("random", "gradient", 3, 0, torch.tensor(0.1), 192), "test_mse", "float", "tensor("),
    (
        Row("random", "lora", 3, 0, 0.1, 192),
        "method",
        "construction, gradient, final_layers",
        "'lora'",
    ),
    (Row("random", "Gradient", 3, 0, 0.1, 192), "method", "one of construction", "'Gradient'"),
    (Row("random", None, 3, 0, 0.1, 192), "method", "one of construction", "None"),
    (Row("", "gradient", 3, 0, 0.1, 192), "panel", "a non-empty string", "''"),
    (Row("a\nb", "gradient", 3, 0, 0.1, 192), "panel", "without line breaks", "'a\\nb'"),
    (Row("a\rb", "gradient", 3, 0, 0.1, 192), "panel", "without line breaks", "'a\\rb'"),
    (Row(7, "gradient", 3, 0, 0.1, 192), "panel", "a non-empty string", "7"),
]


@pytest.mark.parametrize(
    ("bad", "column", "expected", "got"), BAD_ROWS, ids=[f"{c}={g}" for _, c, _, g in BAD_ROWS]
)
def test_write_csv_rejects_a_bad_value_and_keeps_the_old_file(tmp_path, bad, column, expected, got):
    path = write_csv(OLD, tmp_path / "fig.csv")
    before = path.read_bytes()
    with pytest.raises(ValueError) as exc:
        write_csv([GOOD, bad], path)
    message = str(exc.value)
    assert f"{path} not written: row 2 of 2, column {column}: expected" in message
    assert expected in message and f"got {got}" in message
    assert path.read_bytes() == before and leftovers(tmp_path, "fig.csv") == []


@pytest.mark.parametrize("bad", [("random", "gradient", 3, 0, 0.1, 192), {"panel": "random"}, None])
def test_write_csv_rejects_what_is_not_a_row(tmp_path, bad):
    with pytest.raises(ValueError, match=r"fig\.csv not written: row 1 of 2, expected a Row, got"):
        write_csv([bad, GOOD], tmp_path / "fig.csv")
    assert not (tmp_path / "fig.csv").exists()


FAULTS = [KeyboardInterrupt, OSError]  # Ctrl-C, a disk error


def broken_writer(fault: type[BaseException]):
    """A ``csv.writer`` that writes the header and one row, then raises ``fault``."""
    real = csv.writer

    def make(f, *args, **kwargs):
        inner = real(f, *args, **kwargs)

        class Writer:
            writerow = inner.writerow

            def writerows(self, rows):
                inner.writerow(next(iter(rows)))
                f.flush()
                raise fault("fault mid-write")

        return Writer()

    return make


def raiser(fault: type[BaseException]):
    def fail(*args, **kwargs):
        raise fault("fault")

    return fail


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("where", ["writerows", "fsync", "replace"])
@pytest.mark.parametrize("old", [True, False], ids=["old-file", "no-old-file"])
def test_write_csv_fault_leaves_no_partial_or_temporary_file(
    tmp_path, monkeypatch, fault, where, old
):
    path = tmp_path / "fig.csv"
    if old:
        write_csv(OLD, path)
    before = path.read_bytes() if old else None
    patches = {
        "writerows": (results.csv, "writer", broken_writer(fault)),
        "fsync": (results.os, "fsync", raiser(fault)),
        "replace": (results.os, "replace", raiser(fault)),
    }
    monkeypatch.setattr(*patches[where])
    with pytest.raises(fault, match="fault"):
        write_csv([GOOD, GOOD, GOOD], path)
    monkeypatch.undo()
    assert leftovers(tmp_path, "fig.csv") == []
    if old:
        assert path.read_bytes() == before and read_csv(path) == OLD
    else:
        assert not path.exists()


def test_write_csv_fsyncs_a_temporary_file_in_the_same_folder_then_replaces(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(results.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        results.os,
        "replace",
        lambda a, b: events.append(("replace", Path(a).parent)) or real_replace(a, b),
    )
    write_csv([GOOD], tmp_path / "fig.csv")
    assert events == ["fsync", ("replace", tmp_path)]  # the temporary file is in the same folder


def test_write_csv_round_trips_nan_commas_quotes_and_numpy_scalars(tmp_path):
    rows = [
        Row("L1-random", "final_layers", 2, 1, math.nan, 0),  # a diverged run
        Row('a, "quoted" panel', "construction", 0, 0, 0.0, 0),
        Row("p", "gradient", np.int64(4), np.int32(2), np.float32(0.5), np.int64(10**12)),
        Row("p", "gradient", 1, 0, 1e-300, 5),
    ]
    path = write_csv(rows, tmp_path / "deep" / "er" / "fig.csv")
    back = read_csv(path)
    assert math.isnan(back[0].test_mse) and back[0].rank == 2 and back[1:] == rows[1:]
    assert path.read_text().startswith("panel,method,rank,seed,test_mse,n_params\n")


def test_write_csv_writes_numpy_and_other_numbers_as_plain_int_and_float(tmp_path):
    rows = [
        Row("p", "gradient", np.uint8(3), 0, np.float32(0.1), 4),
        Row("p", "gradient", 1, 0, Fraction(1, 4), 4),
    ]
    path = write_csv(rows, tmp_path / "fig.csv")
    assert path.read_text().splitlines()[1:] == [
        "p,gradient,3,0,0.10000000149011612,4",
        "p,gradient,1,0,0.25,4",
    ]
    values = astuple(read_csv(path)[0])[: len(COLUMNS)]  # the optional columns are None here
    assert [type(v) for v in values] == [str, str, int, int, float, int]


def test_write_csv_with_no_rows_writes_the_header_only(tmp_path):
    path = write_csv(iter([]), tmp_path / "fig.csv")
    assert path.read_bytes() == HEADER.encode() and read_csv(path) == []


def test_write_csv_gives_the_mode_open_would_give(tmp_path):
    path = write_csv([GOOD], tmp_path / "fig.csv")
    (tmp_path / "plain").write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_methods_of_the_schema_are_those_of_the_settings():
    assert results.METHODS == settings.METHODS


# --- read_csv: header, field counts, every value, truncation ------------------------------------

LINE = "random,gradient,3,0,0.0015,192\r\n"


def bad_value(column: str, text: str) -> str:
    """A file whose third line has ``text`` in ``column``."""
    fields = dict(zip(COLUMNS, LINE.strip().split(","), strict=True)) | {column: text}
    return HEADER + LINE + ",".join(fields.values()) + "\r\n"


BAD_VALUES = [
    ("rank", "3.5", "a non-negative integer"),
    ("rank", "-1", "a non-negative integer"),
    ("rank", "", "a non-negative integer"),
    ("rank", " 3", "a non-negative integer"),
    ("rank", "+3", "a non-negative integer"),
    ("rank", "1_0", "a non-negative integer"),
    ("rank", "True", "a non-negative integer"),
    ("seed", "0x1", "a non-negative integer"),
    ("seed", "٣", "a non-negative integer"),  # an Arabic-Indic digit: int() would take it
    ("n_params", "1e3", "a non-negative integer"),
    ("test_mse", "-0.1", "a finite float >= 0 or NaN"),
    ("test_mse", "inf", "a finite float >= 0 or NaN"),
    ("test_mse", "-inf", "a finite float >= 0 or NaN"),
    ("test_mse", "abc", "a finite float >= 0 or NaN"),
    ("test_mse", "", "a finite float >= 0 or NaN"),
    ("test_mse", " 0.1", "a finite float >= 0 or NaN"),
    ("test_mse", "1_0", "a finite float >= 0 or NaN"),
    ("method", "lora", "one of construction, gradient, final_layers"),
    ("method", "Gradient", "one of construction, gradient, final_layers"),
    ("method", "", "one of construction, gradient, final_layers"),
    ("panel", "", "a non-empty string without line breaks"),
    ("panel", '"a\nb"', "a non-empty string without line breaks"),
]


@pytest.mark.parametrize(("column", "text", "expected"), BAD_VALUES)
def test_read_csv_names_file_line_and_column_of_a_bad_value(tmp_path, column, text, expected):
    path = tmp_path / "fig1.csv"
    path.write_bytes(bad_value(column, text).encode())
    got = text.strip('"') if column == "panel" else text
    line = 4 if "\n" in text else 3  # a quoted line break: the record ends on the next line
    with pytest.raises(ValueError) as exc:
        read_csv(path)
    assert (
        str(exc.value) == f"{path}, line {line}, column {column}: expected {expected}, got {got!r}"
    )


def test_read_csv_message_has_the_documented_form(tmp_path):
    path = tmp_path / "out" / "fig1.csv"
    path.parent.mkdir()
    path.write_text(HEADER + LINE * 5 + LINE.replace(",3,", ",3.5,"), newline="")
    with pytest.raises(ValueError) as exc:
        read_csv(path)
    assert (
        str(exc.value) == f"{path}, line 7, column rank: expected a non-negative integer, got '3.5'"
    )


BAD_FILES = [
    ("", ["empty file", "expected the header line panel,method,rank,seed,test_mse,n_params"]),
    ("\r\n", ["line 1: expected columns panel,method,rank,seed,test_mse,n_params, got []"]),
    (LINE, ["line 1: expected columns", "got ['random', 'gradient', '3',"]),  # no header
    ("method,panel,rank,seed,test_mse,n_params\r\n" + LINE, ["line 1: expected columns"]),
    (HEADER.replace("\r\n", ",extra\r\n") + LINE, ["line 1: expected columns", "'extra'"]),
    (HEADER.replace(",", ", ") + LINE, ["line 1: expected columns", "' method'"]),
    ("\ufeff" + HEADER + LINE, ["line 1: expected columns", "'\\ufeffpanel'"]),  # a BOM
    (HEADER + LINE + "random,gradient,3,0\r\n", ["line 3: expected 6 fields, got 4"]),
    (HEADER + LINE + LINE.replace("\r\n", ",7\r\n"), ["line 3: expected 6 fields, got 7"]),
    (HEADER + "\r\n" + LINE, ["line 2: expected 6 fields, got 0"]),  # a blank line
    (HEADER + LINE + "random,grad", ["line 3: expected 6 fields, got 2"]),  # truncated, fewer
    (HEADER + LINE + LINE[:-4], ["line 3: no line break at the end (truncated?)"]),  # 192 → 1
    (HEADER + LINE + '"random,gradient,3,0,0.1,1\r\n', ["line 3: unexpected end of data"]),
    (HEADER + LINE + 'random,"gradient"x,3,0,0.1,1\r\n', ["line 3: ',' expected after '\"'"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_FILES)
def test_read_csv_rejects_a_malformed_file(tmp_path, text, words):
    path = tmp_path / "fig.csv"
    path.write_bytes(text.encode())
    with pytest.raises(ValueError) as exc:
        read_csv(path)
    assert str(exc.value).startswith(str(path))
    for w in words:
        assert w in str(exc.value)


def test_read_csv_rejects_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "fig.csv"
    path.write_bytes(HEADER.encode() + b"caf\xe9,gradient,3,0,0.1,1\r\n")
    with pytest.raises(ValueError, match=r"fig\.csv: not UTF-8 text \(invalid .* at byte \d+\)"):
        read_csv(path)


def test_read_csv_of_a_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere" / "fig.csv"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_csv(path)


def test_read_csv_accepts_nan_and_plain_line_endings(tmp_path):
    path = tmp_path / "fig.csv"
    path.write_bytes(b"panel,method,rank,seed,test_mse,n_params\np,gradient,1,0,nan,4\n")
    (row,) = read_csv(path)
    assert math.isnan(row.test_mse) and (row.panel, row.rank, row.n_params) == ("p", 1, 4)
    assert isinstance(row.rank, int) and isinstance(row.test_mse, float)
