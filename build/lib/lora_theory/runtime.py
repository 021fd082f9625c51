"""Seeds, devices and the quick/full switch shared by the whole book.

Every chapter's setup cell calls :func:`set_seed` and :func:`device`; experiment runners ask
:func:`mode` whether to use the paper's full settings (``"full"``, the default when CUDA is present)
or the reduced-work CPU settings (``"quick"``). The environment variable ``LORA_THEORY_MODE``
overrides the detection. Introduced in the chapter "Linear models".
"""

from __future__ import annotations

import os
import random
from typing import Literal

import numpy as np
import torch

Mode = Literal["quick", "full"]
MODES: tuple[str, ...] = ("quick", "full")
MODE_ENV = "LORA_THEORY_MODE"


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh CPU generator.

    The returned ``torch.Generator`` is seeded with the same value; pass it explicitly to sampling
    calls so that a cell's randomness does not depend on what ran before it.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds legacy global-state users too)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def check_mode(value: str) -> Mode:
    """Return ``value`` if it is ``"quick"`` or ``"full"``; raise ``ValueError`` otherwise."""
    if value not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {value!r}")
    return value  # type: ignore[return-value]


def mode(override: str | None = None) -> Mode:
    """The run mode: ``override``, else ``$LORA_THEORY_MODE``, else ``"full"`` iff CUDA exists."""
    if override is not None:
        return check_mode(override)
    env = os.environ.get(MODE_ENV, "").strip().lower()
    if env:
        return check_mode(env)
    return "full" if torch.cuda.is_available() else "quick"


def device(prefer: str | None = None) -> torch.device:
    """The compute device: ``prefer`` if given (``"cpu"``/``"cuda"``), else CUDA when available.

    Asking for ``"cuda"`` on a machine without it raises ``ValueError`` instead of failing later.
    """
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(prefer)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available on this machine")
    return dev
