"""Where the book's numbers come from: software versions, hardware and run mode, as text lines.

The status page prints these so that every copy of the book records the environment behind its
outputs. Each function returns ``(name, value)`` pairs; nothing here affects a computation.

Introduced in :ref:`sec-status-software`.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

from . import runtime

__all__ = ["DISTRIBUTIONS", "hardware", "installed", "run_mode", "software"]

#: The distributions whose versions the status page reports, besides Python itself.
DISTRIBUTIONS = ("torch", "numpy", "lora_theory", "jupyter-book")


def installed(distribution: str) -> str:
    """The installed version of ``distribution``, or ``"not installed"``.

    Introduced in :ref:`sec-status-software`.
    """
    if not isinstance(distribution, str) or not distribution:
        raise ValueError(f"distribution must be a non-empty string, got {distribution!r}")
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def software() -> list[tuple[str, str]]:
    """Python, then the versions of :data:`DISTRIBUTIONS` (torch and NumPy as imported).

    Introduced in :ref:`sec-status-software`.
    """
    imported = {"torch": torch.__version__, "numpy": np.__version__}
    rows = [("python", platform.python_version())]
    return rows + [(d, imported.get(d) or installed(d)) for d in DISTRIBUTIONS]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())


def hardware() -> list[tuple[str, str]]:
    """The operating system, the CPU and its logical cores, CUDA and every visible GPU.

    Introduced in :ref:`sec-status-software`.
    """
    rows = [
        ("OS", platform.platform()),
        ("CPU", f"{_cpu_name()} ({os.cpu_count()} logical cores)"),
        ("CUDA", str(torch.cuda.is_available())),
    ]
    for i in range(torch.cuda.device_count()):
        rows.append((f"GPU {i}", f"{torch.cuda.get_device_name(i)} (CUDA {torch.version.cuda})"))
    return rows


def run_mode() -> list[tuple[str, str]]:
    """The mode and device the chapters run with, and the override variable as set.

    Introduced in :ref:`sec-status-software`.
    """
    override = os.environ.get("LORA_THEORY_MODE", "(not set)")
    return [
        ("mode", runtime.mode()),
        ("device", str(runtime.device())),
        ("override", f"LORA_THEORY_MODE={override}"),
    ]
