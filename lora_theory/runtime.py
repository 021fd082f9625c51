"""Seeds, named random streams, devices and the quick/full switch shared by the whole book.

Every chapter's setup cell calls :func:`set_seed` and :func:`device`; experiment runners ask
:func:`mode` whether to use the paper's full settings (``"full"``, the default when CUDA is present)
or the reduced-work CPU settings (``"quick"``). The environment variable ``LORA_THEORY_MODE``
overrides the detection. :func:`generator` gives each named stream of a seed (``"model"``,
``"train"``, ``"val"``, ``"test"``, …) its own independent generator.

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

import os
import random
from typing import Literal

import numpy as np
import torch

from . import checks

Mode = Literal["quick", "full"]
MODES: tuple[str, ...] = ("quick", "full")
MODE_ENV = "LORA_THEORY_MODE"


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh CPU generator.

    The returned ``torch.Generator`` is seeded with the same value; pass it explicitly to sampling
    calls so that a cell's randomness does not depend on what ran before it.

    Introduced in :ref:`ch-linear`.
    """
    seed = checks.integer(seed, "seed", 0, 2**64 - 1)  # torch's seed range
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds legacy global-state users too)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for the named random ``stream`` of ``seed``.

    Streams with different names are statistically independent (the seed is mixed with the name by
    ``numpy.random.SeedSequence``), so e.g. the training batches, the validation set and the test
    set of a seed never share points.

    Introduced in :ref:`sec-fig1`.
    """
    seed = checks.integer(seed, "seed", low=0)
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream must be a non-empty string, got {stream!r}")
    entropy = [seed, *stream.encode()]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def check_mode(value: str) -> Mode:
    """Return ``value`` if it is ``"quick"`` or ``"full"``; raise ``ValueError`` otherwise.

    Introduced in :ref:`ch-linear`.
    """
    return checks.choice(value, "mode", MODES)  # type: ignore[return-value]


def mode(override: str | None = None) -> Mode:
    """The run mode: ``override``, else ``$LORA_THEORY_MODE``, else ``"full"`` iff CUDA exists.

    Introduced in :ref:`ch-linear`.
    """
    if override is not None:
        return check_mode(override)
    env = os.environ.get(MODE_ENV, "").strip().lower()
    if env:
        return check_mode(env)
    return "full" if torch.cuda.is_available() else "quick"


def device(prefer: str | None = None) -> torch.device:
    """The compute device: ``prefer`` if given (``"cpu"``/``"cuda"``), else CUDA when available.

    Asking for ``"cuda"`` on a machine without it raises ``ValueError`` instead of failing later.

    Introduced in :ref:`ch-linear`.
    """
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(prefer, (str, torch.device)):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N' (or None), got {prefer!r} "
            f"({type(prefer).__name__})"
        )
    try:
        dev = torch.device(prefer)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {prefer!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {prefer!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {prefer!r} was requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return dev
