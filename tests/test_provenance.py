"""The status page's environment report."""

from __future__ import annotations

import platform

import pytest
import torch

from lora_theory import provenance, runtime


def test_software_lists_python_and_every_distribution():
    rows = dict(provenance.software())
    assert rows["python"] == platform.python_version()
    assert rows["torch"] == torch.__version__
    assert set(provenance.DISTRIBUTIONS) <= set(rows)


def test_installed_unknown_distribution():
    assert provenance.installed("no-such-distribution-xyz") == "not installed"
    with pytest.raises(ValueError, match="distribution"):
        provenance.installed("")


def test_hardware_and_mode(monkeypatch):
    rows = dict(provenance.hardware())
    assert rows["CUDA"] == str(torch.cuda.is_available()) and "logical cores" in rows["CPU"]
    monkeypatch.setenv("LORA_THEORY_MODE", "quick")
    assert dict(provenance.run_mode()) == {
        "mode": "quick",
        "device": str(runtime.device()),
        "override": "LORA_THEORY_MODE=quick",
    }
