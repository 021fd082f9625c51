"""The one validation module: every public function checks its arguments through these helpers.

Each helper returns the value in canonical form (a Python ``int``, a ``float``, a float64 tensor)
or raises ``ValueError`` whose message names the argument, shows the offending value and says what
was expected. Integers never accept ``bool`` (``True`` is not a rank), floats never accept NaN or
infinity unless asked to, tensors never accept complex or non-finite entries.

Introduced in :ref:`ch-linear`.
"""

from __future__ import annotations

import cmath
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def integer(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) with ``low ≤ value ≤ high``.

    Introduced in :ref:`ch-linear`.
    """
    for label, bound in (("low", low), ("high", high)):  # the caller's bounds, checked too
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise ValueError(f"the bound {label} of {name} must be an int or None, got {bound!r}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        if high is None:
            expected = f"{name} ≥ {low}"
        elif low is None:
            expected = f"{name} ≤ {high}"
        else:
            expected = f"{low} ≤ {name} ≤ {high}"
        raise ValueError(f"{name} out of range: need {expected}, got {out}")
    return out


def rank(value: object, name: str = "rank", upper: int | None = None, low: int = 1) -> int:
    """A LoRA rank: an integer in ``[low, upper]`` (``low = 1`` unless a rank-0 layer is allowed).

    Introduced in :ref:`ch-linear`.
    """
    return integer(value, name, low, upper)


def real(
    value: object,
    name: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float``: a real number (not a bool, not complex), finite unless
    ``finite=False``, and ``> 0`` / ``≥ 0`` when asked.

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
            value = value.item()
        else:
            raise ValueError(
                f"{name} must be a real number, got {value!r} ({type(value).__name__})"
            )
    try:
        out = float(value)
    except OverflowError as exc:  # an int beyond the float range
        raise ValueError(f"{name} must be a finite number, got {value!r}") from exc
    if math.isnan(out) or (finite and math.isinf(out)):
        raise ValueError(f"{name} must be a finite number, got {out}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be positive, got {out}")
    if non_negative and not out >= 0:
        raise ValueError(f"{name} must be non-negative, got {out}")
    return out


def probability(value: object, name: str) -> float:
    """A probability ``p ∈ [0, 1]``.

    Introduced in :ref:`ch-linear`.
    """
    p = real(value, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {p}")
    return p


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of the floating (or complex) tensor ``t`` is finite.

    First the sum: IEEE arithmetic carries a NaN or an infinity into it (``inf − inf`` is NaN),
    so a finite sum proves every entry finite, and one reduction costs a tenth of
    ``torch.isfinite(t).all()`` at ``D = 1024`` (no ``D × D`` mask). Only when the sum is not
    finite (a non-finite entry, or finite entries whose sum overflows) is the mask computed.

    Introduced in :ref:`ch-linear`.
    """
    if not isinstance(t, torch.Tensor) or not (t.dtype.is_floating_point or t.is_complex()):
        raise ValueError(f"t must be a floating or complex tensor, got {type(t).__name__}")
    return cmath.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def tensor(x: object, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``x`` (tensor, array or nested list of reals) as a finite tensor of floating ``dtype``.

    Complex input is rejected (never silently cut to its real part); half-precision input is
    accepted and converted to ``dtype`` (float64 by default), so the computation runs in float64.

    Introduced in :ref:`ch-linear`.
    """
    if type(x) is torch.Tensor and x.dtype is dtype and dtype.is_floating_point:  # the hot path
        if not all_finite(x):
            raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
        return x
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if x is None or isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be a numeric tensor or array, got {type(x).__name__}")
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(
            f"{name} must be a numeric tensor or array, got {type(x).__name__}"
        ) from exc
    if t.is_complex():
        raise ValueError(f"{name} must be real, got complex dtype {t.dtype}")
    if t.dtype == torch.bool:
        raise ValueError(f"{name} must be numeric, got a boolean tensor")
    t = t.to(dtype)
    if not all_finite(t):
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    return t


def square(x: object, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """:func:`tensor` plus a check that ``x`` is a non-empty square ``(D, D)`` matrix.

    Introduced in :ref:`ch-linear`.
    """
    t = tensor(x, name, dtype)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty square (D, D) matrix, got shape {tuple(t.shape)}"
        )
    return t


def square_list(
    mats: Sequence[object], name: str, dtype: torch.dtype = torch.float64
) -> list[torch.Tensor]:
    """A non-empty sequence of ``(D, D)`` matrices with one common ``D``, as a list of tensors.

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(mats, (torch.Tensor, np.ndarray)) and np.ndim(mats) == 2:
        raise ValueError(f"{name} must be a list of (D, D) matrices, got a single matrix")
    if isinstance(mats, (str, bytes)) or not isinstance(mats, (Sequence, torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a list of (D, D) matrices, got {type(mats).__name__}")
    mats = list(mats)
    if not mats:
        raise ValueError(f"{name} must contain at least one matrix")
    out = [square(m, f"{name}[{i}]", dtype) for i, m in enumerate(mats)]
    widths = {m.shape[0] for m in out}
    if len(widths) != 1:
        raise ValueError(
            f"all matrices in {name} must share one width D, got widths {sorted(widths)}"
        )
    return out


def shape(t: torch.Tensor, expected: tuple[int | None, ...], name: str) -> torch.Tensor:
    """Check ``t.shape`` against ``expected`` (``None`` matches any size); return ``t``.

    Introduced in :ref:`ch-linear`.
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(t).__name__}")
    if not isinstance(expected, tuple) or not all(
        e is None or (isinstance(e, int) and not isinstance(e, bool)) for e in expected
    ):
        raise ValueError(f"the expected shape of {name} must be a tuple of ints, got {expected!r}")
    ok = t.ndim == len(expected) and all(
        e is None or s == e for s, e in zip(t.shape, expected, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("n" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    return t


def choice(value: object, name: str, options: Sequence[object] | Mapping[object, object]) -> object:
    """``value`` if it is one of ``options`` (a sequence, or the keys of a mapping).

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(options, Mapping):
        options = list(options)
    options = sequence(options, f"the options of {name}", "allowed values")
    try:
        ok = not isinstance(value, (bool, np.bool_)) and bool(value in options)
    except (TypeError, ValueError, RuntimeError):  # e.g. an array compared with strings
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


#: Largest number of tensor entries a public function allocates on request (8 GiB of float64):
#: a larger request is a typo or an overflow, refused before any allocation.
MAX_ELEMENTS = 2**30
#: Longest list a public function builds on request (layers, blocks, names, steps of a table): a
#: larger request is a typo or an overflow, refused before any work.
MAX_LENGTH = 2**20


def elements(shape: Sequence[int], name: str) -> None:
    """Refuse a requested tensor ``shape`` with more than :data:`MAX_ELEMENTS` entries.

    Introduced in :ref:`ch-linear`.
    """
    sizes = integers(shape, f"the shape of {name}", low=0, empty=True)
    total = math.prod(sizes)
    if total > MAX_ELEMENTS:
        raise ValueError(
            f"{name} asks for a tensor of shape {tuple(shape)} ({total} entries); at most "
            f"{MAX_ELEMENTS} are allowed"
        )


#: The computation dtypes of the package: half precision cannot hold a construction's accuracy.
COMPUTE_DTYPES = (torch.float32, torch.float64)


def dtype(value: object, name: str = "dtype") -> torch.dtype:
    """A computation dtype: ``torch.float32`` or ``torch.float64`` (inputs of any floating dtype
    are converted to it; half precision is refused as a *computation* dtype).

    Introduced in :ref:`ch-linear`.
    """
    if not isinstance(value, torch.dtype) or value not in COMPUTE_DTYPES:
        hint = (
            " (half precision is accepted for inputs, which are converted, but not as the "
            "computation dtype)"
            if value in (torch.float16, torch.bfloat16)
            else ""
        )
        raise ValueError(f"{name} must be torch.float32 or torch.float64, got {value!r}{hint}")
    return value


def generator(value: object, name: str = "generator") -> torch.Generator:
    """A CPU ``torch.Generator`` (the package draws every random number from an explicit one).

    Introduced in :ref:`ch-linear`.
    """
    if not isinstance(value, torch.Generator):
        raise ValueError(
            f"{name} must be a torch.Generator (e.g. runtime.generator(seed, stream)), got "
            f"{type(value).__name__}"
        )
    if value.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU torch.Generator, got one on {value.device}")
    return value


def sequence(value: object, name: str, what: str = "items", *, empty: bool = False) -> list:
    """``value`` as a list if it is a sequence (list, tuple, range, 1-D array), not a string, a
    mapping or a set; non-empty unless ``empty=True``.

    Introduced in :ref:`ch-linear`.
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(
        value, (Sequence, torch.Tensor, np.ndarray)
    ):
        raise ValueError(f"{name} must be a list of {what}, got {type(value).__name__}")
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        raise ValueError(f"{name} must be a list of {what}, got a 0-d {type(value).__name__}")
    out = list(value)
    if not out and not empty:
        raise ValueError(f"{name} must contain at least one of the {what}, got an empty list")
    return out


def instance(value: object, name: str, kind: type | tuple[type, ...], what: str = "") -> object:
    """``value`` if it is a ``kind`` (a type or a tuple of types); else ``ValueError``
    ``"<name> must be <what>, got <type>"`` (``what`` defaults to the type's name).

    Introduced in :ref:`ch-linear`.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not kinds or not all(isinstance(k, type) for k in kinds):
        raise ValueError(f"the kind of {name} must be a type or a tuple of types, got {kind!r}")
    if not isinstance(value, kinds):
        label = what or " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{name} must be {label}, got {type(value).__name__}")
    return value


def instances(
    items: Sequence[object], name: str, kind: type | tuple[type, ...], what: str = ""
) -> None:
    """Raise ``ValueError`` unless every ``items[i]`` is a ``kind`` (message: ``name[i]``).

    Introduced in :ref:`ch-linear`.
    """
    for i, item in enumerate(sequence(items, name, "items", empty=True)):
        instance(item, f"{name}[{i}]", kind, what)


def path(value: object, name: str = "path") -> Path:
    """``value`` (a ``str`` or ``os.PathLike``, not empty) as a ``pathlib.Path``.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(value, (str, os.PathLike)) or value == "":
        raise ValueError(f"{name} must be a file path (str or os.PathLike), got {value!r}")
    return Path(value)


def integers(
    value: object, name: str, low: int | None = None, high: int | None = None, *, empty=False
) -> tuple[int, ...]:
    """A sequence of integers (not bools) in ``[low, high]`` as a tuple of ``int``.

    Introduced in :ref:`ch-linear`.
    """
    items = sequence(value, name, "integers", empty=empty)
    return tuple(integer(v, f"{name}[{i}]", low, high) for i, v in enumerate(items))


def reals(value: object, name: str, *, empty: bool = False, **kw: bool) -> tuple[float, ...]:
    """A sequence of finite reals (see :func:`real` for ``positive`` / ``non_negative``) as a
    tuple of ``float``.

    Introduced in :ref:`ch-linear`.
    """
    items = sequence(value, name, "numbers", empty=empty)
    return tuple(real(v, f"{name}[{i}]", **kw) for i, v in enumerate(items))


def matrix(x: object, name: str) -> torch.Tensor:
    """A finite real 2-D tensor; float32/float64 keep their dtype, anything else becomes float64.

    Introduced in :ref:`ch-linear`.
    """
    keep = isinstance(x, torch.Tensor) and x.dtype in COMPUTE_DTYPES
    t = tensor(x, name, x.dtype if keep else torch.float64)  # type: ignore[union-attr]
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(t.shape)}")
    return t
