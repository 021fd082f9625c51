"""The command line ``python -m lora_theory reproduce <figure> [--mode] [--out]``."""

from __future__ import annotations

import runpy
import sys

import pytest
import torch

from lora_theory.experiments import Row, cli, read_csv

ROWS = [Row("random", "construction", 1, 0, 0.25, 64), Row("random", "gradient", 1, 0, 0.26, 64)]


def exit_code_and_stderr(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["reproduce", "fig9"], ["invalid choice: 'fig9'", "fig1", "fig2", "bias", "depth"]),
        (["reproduce", "fig1", "--mode", "fast"], ["invalid choice: 'fast'", "quick", "full"]),
        (["reproduce", "fig1", "--colour"], ["unrecognized arguments: --colour"]),
        (["reproduce"], ["figure"]),
        ([], ["COMMAND"]),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, expected, capsys):
    code, err = exit_code_and_stderr(argv, capsys)
    assert code == 2
    for text in expected:
        assert text in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_without_cuda_exits_2(capsys):
    code, err = exit_code_and_stderr(["reproduce", "fig1", "--device", "cuda"], capsys)
    assert code == 2 and "CUDA" in err


def test_reproduce_writes_figure_csv(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(figure, mode, device):
        calls.append((figure, mode, device.type))
        return ROWS

    monkeypatch.setattr(cli, "run", fake_run)
    assert cli.main(["reproduce", "fig1", "--mode", "quick", "--out", str(tmp_path / "o")]) == 0
    assert calls == [("fig1", "quick", "cpu" if not torch.cuda.is_available() else "cuda")]
    assert read_csv(tmp_path / "o" / "fig1.csv") == ROWS
    assert "fig1.csv" in capsys.readouterr().out


def test_mode_defaults_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_THEORY_MODE", "full")
    seen = []
    monkeypatch.setattr(cli, "run", lambda figure, mode, device: seen.append(mode) or ROWS)
    cli.main(["reproduce", "bias", "--out", str(tmp_path)])
    assert seen == ["full"] and (tmp_path / "bias.csv").exists()


def test_python_dash_m_entry_point(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["lora-theory", "reproduce", "nope"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("lora_theory", run_name="__main__")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "fig1" in err
