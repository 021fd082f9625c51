"""Bad input to ``lora-theory reproduce``: checked before any work; Ctrl-C writes nothing.

No test runs an experiment: :func:`lora_theory.experiments.cli.run` is replaced by a fake that
records its calls and returns two rows (or raises ``KeyboardInterrupt``).
"""

from __future__ import annotations

import os
import runpy
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from lora_theory.experiments import Row, cli, read_csv, results, write_csv

ROWS = [Row("random", "construction", 1, 0, 0.25, 64), Row("random", "gradient", 1, 0, 0.26, 64)]
OLD = [Row("pretrained", "final_layers", 2, 3, 0.5, 128)]


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str, str]]:
    """The fake run's calls ``(figure, mode, device type)``; it returns :data:`ROWS`."""
    seen: list[tuple[str, str, str]] = []

    def fake_run(figure, mode, device):
        seen.append((figure, mode, device.type))
        return ROWS

    monkeypatch.setattr(cli, "run", fake_run)
    return seen


def exit_2(argv: list[str], capsys) -> str:
    """Run the CLI, assert it exits with status 2, return the last line of stderr."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lora-theory")
    return err.strip().splitlines()[-1]


def reproduce(out: Path | str, *extra: str) -> list[str]:
    return ["reproduce", "fig1", "--mode", "quick", "--device", "cpu", "--out", str(out), *extra]


# --- --out is checked before any work -----------------------------------------------------------


def test_out_that_is_a_file_exits_2_before_any_work(tmp_path, calls, capsys):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    line = exit_2(reproduce(out), capsys)
    assert line == f"lora-theory: error: --out '{out}' is a file, not a folder"
    assert calls == [] and out.read_text() == "keep me"


def test_out_under_a_file_exits_2(tmp_path, calls, capsys):
    (tmp_path / "f").write_text("")
    line = exit_2(reproduce(tmp_path / "f" / "sub"), capsys)
    assert f"--out '{tmp_path / 'f' / 'sub'}' cannot be created: a parent is a file" in line
    assert calls == []


def test_out_that_cannot_be_created_exits_2(tmp_path, calls, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    line = exit_2(reproduce(tmp_path / "new"), capsys)
    assert f"--out '{tmp_path / 'new'}' cannot be created: Permission denied" in line
    assert calls == []


@pytest.mark.parametrize(
    ("errno", "strerror"), [(13, "Permission denied"), (30, "Read-only file system")]
)
def test_out_that_is_not_writable_exits_2(tmp_path, calls, capsys, monkeypatch, errno, strerror):
    def refuse(*args, **kwargs):
        raise OSError(errno, strerror)

    monkeypatch.setattr(cli.tempfile, "NamedTemporaryFile", refuse)
    line = exit_2(reproduce(tmp_path), capsys)
    assert line == f"lora-theory: error: --out '{tmp_path}' is not writable: {strerror}"
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_out_in_a_read_only_folder_exits_2(tmp_path, calls, capsys):
    tmp_path.chmod(0o500)
    try:
        line = exit_2(reproduce(tmp_path), capsys)
    finally:
        tmp_path.chmod(0o700)
    assert "is not writable: Permission denied" in line and calls == []


def test_out_whose_csv_path_is_a_folder_exits_2(tmp_path, calls, capsys):
    (tmp_path / "fig1.csv").mkdir()
    line = exit_2(reproduce(tmp_path), capsys)
    assert f"'{tmp_path / 'fig1.csv'}' is a folder, cannot write the CSV there" in line
    assert calls == []


def test_the_write_test_leaves_nothing_behind(tmp_path, calls):
    out = tmp_path / "a" / "b"
    assert cli.main(reproduce(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fig1.csv"] and read_csv(out / "fig1.csv")


def test_the_write_test_uses_the_out_folder(tmp_path, calls, monkeypatch):
    folders = []
    real = tempfile.NamedTemporaryFile

    def spy(*args, dir=None, **kwargs):
        folders.append(Path(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(cli.tempfile, "NamedTemporaryFile", spy)
    assert cli.main(reproduce(tmp_path)) == 0
    assert folders == [tmp_path]


# --- the other arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["reproduce", "fig9"], ["invalid choice: 'fig9'", "fig1", "fig2", "bias", "depth"]),
        (["reproduce", "Fig1"], ["invalid choice: 'Fig1'", "fig1"]),
        (["reproduce", "fig1", "--mode", "slow"], ["invalid choice: 'slow'", "quick", "full"]),
        (["reproduce", "fig1", "--mode"], ["--mode: expected one argument"]),
        (["reproduce", "fig1", "--device", "tpu"], ["invalid choice: 'tpu'", "cpu", "cuda"]),
        (["reproduce", "fig1", "--device", "cuda:0"], ["invalid choice: 'cuda:0'"]),
        (["reproduce", "fig1", "--out"], ["--out: expected one argument"]),
        (["reproduce", "fig1", "fig2"], ["unrecognized arguments: fig2"]),
        (["replay", "fig1"], ["invalid choice: 'replay'", "reproduce"]),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(argv, words, tmp_path, calls, capsys):
    line = exit_2([argv[0], "--out", str(tmp_path / "o"), *argv[1:]], capsys)
    for w in words:
        assert w in line
    assert calls == [] and not (tmp_path / "o").exists()


def test_bad_mode_in_the_environment_exits_2(monkeypatch, tmp_path, calls, capsys):
    monkeypatch.setenv("LORA_THEORY_MODE", "slow")
    line = exit_2(["reproduce", "fig1", "--out", str(tmp_path / "o")], capsys)
    assert "mode must be one of ('quick', 'full'), got 'slow'" in line
    assert calls == [] and not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_without_cuda_exits_2_before_touching_out(tmp_path, calls, capsys):
    argv = ["reproduce", "fig1", "--device", "cuda", "--out", str(tmp_path / "o")]
    line = exit_2(argv, capsys)
    assert "CUDA is not available" in line and calls == [] and not (tmp_path / "o").exists()


# --- Ctrl-C writes nothing, says so in one line, exits 130 --------------------------------------


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def write_old(out: Path) -> bytes:
    return write_csv(OLD, out / "fig1.csv").read_bytes()


def interrupted_writer(f, *args, **kwargs):
    """A ``csv.writer`` interrupted after writing a line to ``f``: a partial temporary file."""
    writer = REAL_CSV_WRITER(f, *args, **kwargs)
    writer.writerow(("partial",))
    f.flush()
    interrupt()


REAL_CSV_WRITER = results.csv.writer
CTRL_C = {
    "run": (cli, "run", interrupt),
    "fsync": (results.os, "fsync", interrupt),
    "writer": (results.csv, "writer", interrupted_writer),
}


@pytest.mark.parametrize("old", [True, False], ids=["old-file", "no-old-file"])
@pytest.mark.parametrize("where", sorted(CTRL_C))
def test_ctrl_c_writes_nothing_and_exits_130(tmp_path, monkeypatch, calls, capsys, old, where):
    before = write_old(tmp_path) if old else None
    monkeypatch.setattr(*CTRL_C[where])
    assert cli.main(reproduce(tmp_path)) == 130
    captured = capsys.readouterr()
    target = tmp_path / "fig1.csv"
    assert captured.err.splitlines() == [
        "fig1: quick mode on cpu",
        f"interrupted: no results written to {target}",
    ]
    assert captured.out == ""
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["fig1.csv"] if old else [])
    if old:
        assert target.read_bytes() == before and read_csv(target) == OLD


def test_ctrl_c_through_python_dash_m_exits_130(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "run", interrupt)
    monkeypatch.setattr(sys, "argv", ["lora-theory", *reproduce(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("lora_theory", run_name="__main__")
    assert exc.value.code == 130
    assert capsys.readouterr().err.splitlines()[-1].startswith("interrupted: no results written")
    assert list(tmp_path.iterdir()) == []


def test_a_later_run_replaces_the_old_file_whole(tmp_path, calls):
    write_old(tmp_path)
    assert cli.main(reproduce(tmp_path)) == 0
    assert read_csv(tmp_path / "fig1.csv") == ROWS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig1.csv"]
