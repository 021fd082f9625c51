"""A seeded fuzz of the whole public API: bad and unusual arguments, one at a time.

For every public callable of ``lora_theory`` (the names of each module's ``__all__``, or the
functions and classes a module defines, as the API page lists them; plus the public methods of
its classes) ``fuzz_api.py`` gives one valid call. From a fixed seed the fuzz replaces one
argument of that call by a value derived from the valid one — a wrong type, a bool for an int,
NaN or infinity, a negative or huge size, a complex, float16 or bfloat16 tensor, a wrong shape,
an empty sequence, a string for a number, ``None`` — and runs each call under a watchdog
(``signal.setitimer`` on the main thread, ``LIMIT_S`` seconds). Each outcome is one of

* ``clean`` — a result (for constructions and other self-checking results, verified by the
  spec's ``check`` with the package's own residual and certificate functions);
* ``clear`` — a ``ValueError`` (or subclass); a ``TypeError`` only where Python raises it for a
  wrong call signature; an ``OSError`` naming the path from the CSV functions;
* ``obscure`` — any other exception (e.g. ``RuntimeError``/``IndexError``/``AttributeError``
  from inside torch);
* ``hang`` — the watchdog fired;
* ``wrong`` — the result misses its own promise (``check`` failed).

The test asserts 0 obscure errors, 0 hangs and 0 wrong answers, and prints the counts by
function (``pytest -s``). Allocation is capped during the fuzz (``RLIMIT_AS``) so that a missing
size check shows as an error instead of exhausting the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import math
import os
import random
import resource
import signal
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from fuzz_api import Spec, specs

from lora_theory import fnn, transformer

#: The fuzz's seed: it fixes which mutations each function gets.
SEED = 20240508
#: Mutated calls per function (all of them when a function has fewer).
#: ``LORA_THEORY_FUZZ_CALLS=all`` runs every mutation of every function (about 11000 calls).
PER_FUNCTION = 10**9 if os.environ.get("LORA_THEORY_FUZZ_CALLS") == "all" else 24
#: Watchdog per call, in seconds.
LIMIT_S = 2.0
#: Extra address space the fuzzed calls may allocate (a missing size check then fails fast).
HEADROOM = 3 * 2**30

MODULES = (
    "runtime checks linalg adapters linear fnn instances bounds transformer final_layers "
    "interop allocation allocation.practice training experiments experiments.families.fnn "
    "experiments.families.tfn experiments.annotate plotting conditioned verification texttable "
    "provenance sweeps optimality solves"
).split()
#: Public names that are not called: constants, abstract bases and re-exported modules.
NOT_CALLED = {
    "linear.PrecisionCheck": "a NamedTuple record returned by precision_check",
    "linear.Refinement": "a NamedTuple record returned by gauss_newton",
    "solves.LUFactorization.unchecked": "of without its checks, by design (a construction's inner "
    "loop on matrices it formed); its checked door LUFactorization.of is fuzzed",
    "solves.LUFactorization.solve_unchecked": "solve without its checks, by design; its checked "
    "door LUFactorization.solve is fuzzed",
    "fnn.Partition": "a type alias (tuple of blocks), not a function",
    "transformer.forward": "the stacked forward pass the engine calls every training step "
    "(TFNStack.forward): no checks there; its checked door is TFN.__call__, fuzzed",
    "training.Stacked": "abstract base class; its subclasses FNNStack/TFNStack are fuzzed",
    "allocation.practice": "a module; its functions are fuzzed under allocation.practice.*",
    "allocation.practice.Task": "a NamedTuple record; built by spectrum_task, which is fuzzed",
    "allocation.practice.Output": "a dataclass record returned by ParallelLinear",
    "training.FitResult": "a record returned by fit (its method model is fuzzed)",
    "interop.TrainingComparison": "a record returned by compare_training",
    "fnn.PartitionExample": "the same class as instances.PartitionExample",
    "allocation.Comparison": "a NamedTuple record returned by compare_allocations",
    "allocation.Correlation": "a NamedTuple record returned by gradient_loss_correlation",
    "allocation.Errors": "a NamedTuple record returned by approximation_errors",
    "allocation.PiSSAInit": "a NamedTuple record returned by pissa_init",
    "allocation.Reading": "a NamedTuple record returned by gradient_norm_table",
    "allocation.SeedReport": "a record returned by analyse_seed_proposal",
    "allocation.SeedSetting": "a NamedTuple record returned by seed_setting",
    "allocation.Start": "a NamedTuple record returned by initialise",
    "allocation.Tuned": "a NamedTuple record returned by tune_step_size",
    "final_layers.Region": "a record returned by find_region (its methods are fuzzed)",
    "families.fnn.FNNStack": "the engine's stacked form: build is fuzzed, the rest runs per step",
    "families.tfn.TFNStack": "the engine's stacked form: build is fuzzed, the rest runs per step",
    "optimality.Rivals": "a NamedTuple record returned by perturbation_rivals",
    "optimality.UnitOff": "a NamedTuple record returned by unit_off_fit",
    "verification.DeepBlock": "a NamedTuple record returned by deep_block",
    "verification.SweepRow": "a NamedTuple record returned by rank_sweep",
    "verification.Theorem3Check": "a NamedTuple record returned by theorem3_check",
    "sweeps.BiasRun": "a NamedTuple record returned by bias_rules_by_depth",
    "sweeps.BoxCheck": "a NamedTuple record returned by exact_on_box",
    "sweeps.DepthRun": "a NamedTuple record returned by conditioning_by_depth",
    "sweeps.Deviation": "a NamedTuple record returned by population_deviations",
    "sweeps.Lemma1Gap": "a NamedTuple record returned by lemma1_gaps",
    "sweeps.Lemma2Row": "a NamedTuple record returned by lemma2_table",
    "sweeps.Outside": "a NamedTuple record returned by outside_box",
}
ALIASES = {"fnn": ("instances",)}  # fnn re-exports the instance samplers under the same names


class Hang(BaseException):
    """Raised by the watchdog; a BaseException, so that no ``except Exception`` swallows it."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def public_callables() -> set[str]:
    """``module.name`` of every public callable, as the API page lists them (``__all__``, or what
    a module defines itself), and ``module.Class.method`` of their public methods."""
    out = set()
    for short in MODULES:
        mod = importlib.import_module(f"lora_theory.{short}")
        label = short.replace("experiments.families.", "families.")
        names = getattr(mod, "__all__", None) or [
            k
            for k, v in vars(mod).items()
            if not k.startswith("_") and getattr(v, "__module__", None) == mod.__name__
        ]
        for name in names:
            value = getattr(mod, name)
            if not callable(value) and not inspect.ismodule(value):
                continue  # a constant
            if short == "fnn" and hasattr(importlib.import_module("lora_theory.instances"), name):
                if name != "layer_ranks":
                    continue  # the same object as instances.<name>
            out.add(f"{label}.{name}")
            if inspect.isclass(value) and not issubclass(value, BaseException):
                for attr, member in vars(value).items():
                    method = inspect.isfunction(member) or isinstance(
                        member, (classmethod, staticmethod)
                    )
                    is_rank = attr == "rank" and isinstance(member, property)
                    if (not attr.startswith("_") and method) or attr == "__call__" or is_rank:
                        out.add(f"{label}.{name}.{attr}")
    return out


# --- mutations -----------------------------------------------------------------------------------

Mutation = tuple[str, Callable[[object], object]]
GENERIC: list[Mutation] = [
    ("None", lambda v: None),
    ("str", lambda v: "abc"),
    ("object", lambda v: object()),
]
INT: list[Mutation] = [
    ("True", lambda v: True),
    ("negative", lambda v: -1),
    ("zero", lambda v: 0),
    ("float", lambda v: float(v)),
    ("fraction", lambda v: v + 0.5),
    ("str-number", lambda v: str(v)),
    ("huge", lambda v: 10**12),
    ("beyond-int64", lambda v: 2**70),
    ("nan", lambda v: math.nan),
    ("numpy-int", lambda v: np.int64(v)),
    ("complex", lambda v: complex(v, 1)),
]
REAL: list[Mutation] = [
    ("nan", lambda v: math.nan),
    ("inf", lambda v: math.inf),
    ("-inf", lambda v: -math.inf),
    ("negative", lambda v: -abs(v) - 1.0),
    ("zero", lambda v: 0.0),
    ("huge", lambda v: 1e308),
    ("subnormal", lambda v: 5e-324),
    ("True", lambda v: True),
    ("str-number", lambda v: str(v)),
    ("complex", lambda v: complex(v, 1)),
    ("numpy-float32", lambda v: np.float32(v)),
    ("tensor-0d", lambda v: torch.tensor(v)),
    ("int-beyond-float", lambda v: 10**400),
]
TENSOR: list[Mutation] = [
    ("float16", lambda t: t.to(torch.float16)),
    ("bfloat16", lambda t: t.to(torch.bfloat16)),
    ("float32", lambda t: t.to(torch.float32)),
    ("complex", lambda t: t.to(torch.complex128)),
    ("int64", lambda t: t.round().to(torch.int64)),
    ("bool", lambda t: t != 0),
    ("nan-entry", lambda t: t.flatten().index_fill(0, torch.tensor([0]), math.nan).view(t.shape)),
    ("inf-entry", lambda t: t.flatten().index_fill(0, torch.tensor([0]), math.inf).view(t.shape)),
    ("huge-entries", lambda t: t * 1e300),
    ("drop-last", lambda t: t[..., :-1]),
    ("extra-dim", lambda t: t[None]),
    ("flattened", lambda t: t.flatten()),
    ("empty", lambda t: t.new_zeros((0, *t.shape[1:]))),
    ("scalar", lambda t: t.flatten()[0]),
    ("numpy", lambda t: t.numpy()),
    ("nested-list", lambda t: t.tolist()),
    ("requires-grad", lambda t: t.clone().requires_grad_(t.is_floating_point())),
    ("transposed-view", lambda t: t.mT if t.ndim >= 2 else t),
]
SEQUENCE: list[Mutation] = [
    ("empty", lambda v: type(v)()),
    ("first-only", lambda v: type(v)(list(v)[:1])),
    ("doubled", lambda v: type(v)(list(v) * 2)),
    ("None-item", lambda v: type(v)([None, *list(v)[1:]])),
    ("str-item", lambda v: type(v)(["x", *list(v)[1:]])),
    ("nan-item", lambda v: type(v)([math.nan, *list(v)[1:]])),
    ("bool-item", lambda v: type(v)([True, *list(v)[1:]])),
    ("as-tuple", lambda v: tuple(v)),
    ("as-dict", lambda v: dict(enumerate(v))),
    ("iterator", lambda v: iter(v)),
]
STRING: list[Mutation] = [
    ("empty", lambda v: ""),
    ("unknown", lambda v: "no-such-name"),
    ("upper", lambda v: v.upper()),
    ("bytes", lambda v: v.encode()),
    ("int", lambda v: 3),
    ("list", lambda v: [v]),
]
BOOL: list[Mutation] = [
    ("int-1", lambda v: 1),
    ("str", lambda v: "yes"),
    ("numpy-bool", lambda v: np.bool_(v)),
]
DTYPE: list[Mutation] = [
    ("float16", lambda v: torch.float16),
    ("bfloat16", lambda v: torch.bfloat16),
    ("int64", lambda v: torch.int64),
    ("complex128", lambda v: torch.complex128),
    ("str", lambda v: "float64"),
    ("numpy", lambda v: np.float64),
]
GENERATOR: list[Mutation] = [
    ("int-seed", lambda v: 0),
    ("numpy-rng", lambda v: np.random.default_rng(0)),
]
DEVICE: list[Mutation] = [
    ("cuda", lambda v: "cuda"),
    ("cuda-7", lambda v: "cuda:7"),
    ("meta", lambda v: "meta"),
    ("bogus", lambda v: "bogus"),
    ("torch-meta", lambda v: torch.device("meta")),
]


def _fnn_variants() -> list[Mutation]:
    g = torch.Generator().manual_seed(7)
    return [
        ("fnn-wider", lambda v: fnn.FNN.random(v.width + 1, v.depth, g)),
        ("fnn-deeper", lambda v: fnn.FNN.random(v.width, v.depth + 3, g)),
        (
            "fnn-float32",
            lambda v: fnn.FNN(
                v.weights, v.biases if v.has_bias else None, v.activation, dtype=torch.float32
            ),
        ),
        ("fnn-no-bias", lambda v: fnn.FNN(v.weights, None, v.activation)),
        (
            "fnn-identity",
            lambda v: fnn.FNN(v.weights, v.biases if v.has_bias else None, "identity"),
        ),
        (
            "fnn-zero-weights",
            lambda v: fnn.FNN(
                [w * 0 for w in v.weights], v.biases if v.has_bias else None, v.activation
            ),
        ),
        (
            "fnn-huge-weights",
            lambda v: fnn.FNN(
                [w * 1e150 for w in v.weights], v.biases if v.has_bias else None, v.activation
            ),
        ),
        ("tensor-instead", lambda v: v.weights[0]),
    ]


def _tfn_variants() -> list[Mutation]:
    g = torch.Generator().manual_seed(7)
    return [
        ("tfn-wider", lambda v: transformer.TFN.random(v.width + 1, v.heads, v.depth, g)),
        ("tfn-more-heads", lambda v: transformer.TFN.random(v.width, v.heads + 1, v.depth, g)),
        ("tfn-deeper", lambda v: transformer.TFN.random(v.width, v.heads, v.depth + 1, g)),
        (
            "tfn-float32",
            lambda v: transformer.TFN(
                **{k: t for k, t in v.effective().items()}, dtype=torch.float32
            ),
        ),
        ("fnn-instead", lambda v: fnn.FNN.random(v.width, v.depth, g)),
    ]


def mutations(valid: object) -> list[Mutation]:
    """The mutations that apply to an argument whose valid value is ``valid``."""
    out = list(GENERIC)
    if isinstance(valid, bool):
        out += BOOL
    elif isinstance(valid, int):
        out += INT
    elif isinstance(valid, float):
        out += REAL
    elif isinstance(valid, str):
        out += DEVICE if valid in ("cpu", "cuda") else STRING
    elif isinstance(valid, torch.Tensor) and valid.is_floating_point():
        out += TENSOR
    elif isinstance(valid, torch.dtype):
        out += DTYPE
    elif isinstance(valid, torch.Generator):
        out += GENERATOR
    elif isinstance(valid, torch.device):
        out += DEVICE
    elif isinstance(valid, fnn.FNN):
        out += _fnn_variants()
    elif isinstance(valid, transformer.TFN):
        out += _tfn_variants()
    elif isinstance(valid, (list, tuple)) and not hasattr(valid, "_fields"):
        out += SEQUENCE
        if valid and isinstance(valid[0], torch.Tensor):
            out += [("item-" + n, lambda v, f=f: type(v)([f(v[0]), *v[1:]])) for n, f in TENSOR]
    elif dataclasses.is_dataclass(valid) or hasattr(valid, "_fields"):
        out += [
            ("int", lambda v: 3),
            ("dict-of-fields", lambda v: dict(vars(v)) if hasattr(v, "__dict__") else v._asdict()),
        ]
    return out


# --- running and classifying ---------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    function: str
    argument: str
    mutation: str
    kind: str  # clean, clear, obscure, hang, wrong
    detail: str = ""
    seconds: float = 0.0


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_cap(headroom: int) -> Iterator[None]:
    """Cap the address space at its current size plus ``headroom`` bytes (Linux only)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        cap = pages * resource.getpagesize() + headroom
    except OSError:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def classify(
    spec: Spec, kwargs: dict[str, object], fixed: dict[str, object], limit: float = LIMIT_S
) -> tuple[str, str]:
    """Run one call and say what kind of outcome it had."""
    try:
        with watchdog(limit), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = spec.func(**fixed, **kwargs)
            if spec.check is not None:
                try:
                    spec.check(result, kwargs)
                except AssertionError as exc:
                    return "wrong", f"check failed: {exc}"
                except ValueError as exc:
                    return "wrong", f"check raised: {type(exc).__name__}: {exc}"
    except Hang:
        return "hang", f"no result within {limit} s"
    except ValueError as exc:
        return "clear", f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        if spec.name.endswith("_csv") and exc.filename is not None:
            return "clear", f"{type(exc).__name__}: {exc}"
        return "obscure", _where(exc)
    except TypeError as exc:
        try:
            inspect.signature(spec.func).bind(**fixed, **kwargs)
        except (TypeError, ValueError):
            return "clear", f"signature: {exc}"
        return "obscure", _where(exc)
    except Exception as exc:
        return "obscure", _where(exc)
    finally:
        plt.close("all")
    return "clean", ""


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "lora_theory" in f.filename] or frames
    last = inner[-1]
    message = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {message} (at {last.filename.split('/')[-1]}:{last.lineno})"


def fuzz(
    all_specs: list[Spec], seed: int = SEED, per_function: int = PER_FUNCTION
) -> list[Outcome]:
    """The baseline call and ``per_function`` seeded mutated calls of every spec."""
    rng = random.Random(seed)
    outcomes = []
    for spec in all_specs:
        valid = {name: make() for name, make in spec.args.items()}
        candidates = [
            (arg, label, mutate)
            for arg, value in valid.items()
            for label, mutate in mutations(value)
        ]
        for arg, extras in spec.extra.items():
            candidates += [(arg, label, lambda v, make=make: make()) for label, make in extras]
        chosen = [("", "valid", None), *rng.sample(candidates, min(per_function, len(candidates)))]
        for arg, label, mutate in chosen:
            kwargs = {name: make() for name, make in spec.args.items()}
            fixed = {name: make() for name, make in spec.fixed.items()}
            if mutate is not None:
                try:
                    kwargs[arg] = mutate(kwargs[arg])
                except Exception:  # the mutation does not apply to this value
                    continue
            begin = time.perf_counter()
            kind, detail = classify(spec, kwargs, fixed)
            seconds = time.perf_counter() - begin
            outcomes.append(Outcome(spec.name, arg, label, kind, detail, seconds))
    return outcomes


# --- tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_specs(tmp_path_factory):
    return specs(tmp_path_factory.mktemp("fuzz"))


def test_every_public_callable_has_a_fuzz_spec(all_specs):
    fuzzed = {s.name for s in all_specs}
    public = public_callables()
    skipped = {n for n in public if n in NOT_CALLED or n.rsplit(".", 1)[0] in NOT_CALLED}
    missing = sorted(public - fuzzed - skipped)
    assert not missing, f"public callables without a fuzz spec: {missing}"
    unknown = sorted(fuzzed - public)
    assert not unknown, f"fuzz specs for names that are not public: {unknown}"


def _spin() -> None:
    while True:
        pass


def _wrong_check(result: object, kwargs: dict[str, object]) -> None:
    assert result == 0, f"promised 0, got {result}"


@pytest.mark.parametrize(
    ("spec", "kwargs", "kind"),
    [
        (Spec("ok", lambda x: 0, {}), {"x": 1}, "clean"),
        (Spec("value", lambda x: math.sqrt(x), {}), {"x": -1}, "clear"),
        (Spec("signature", lambda x: 0, {}), {"y": 1}, "clear"),
        (Spec("inside", lambda x: [][x], {}), {"x": 1}, "obscure"),
        (Spec("type", lambda x: x + "a", {}), {"x": 1}, "obscure"),
        (Spec("spin", lambda x: _spin(), {}), {"x": 1}, "hang"),
        (Spec("wrong", lambda x: x, {}, check=_wrong_check), {"x": 1}, "wrong"),
        (Spec("read_csv", lambda path: open(path), {}), {"path": "/nonexistent"}, "clear"),
        (Spec("open", lambda path: open(path), {}), {"path": "/nonexistent"}, "obscure"),
    ],
    ids=lambda v: v.name if isinstance(v, Spec) else "",
)
def test_the_classifier_tells_the_outcomes_apart(spec, kwargs, kind):
    assert classify(spec, kwargs, {}, limit=0.2)[0] == kind


def test_fuzz_public_api(all_specs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a mutated path such as "abc" is written here, not in the checkout
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread, no contention
    start = time.perf_counter()
    try:
        with memory_cap(HEADROOM):
            outcomes = fuzz(all_specs)
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - start
    by_function: dict[str, Counter] = defaultdict(Counter)
    seconds: Counter = Counter()
    for o in outcomes:
        by_function[o.function][o.kind] += 1
        seconds[o.function] += o.seconds
    kinds = ("clean", "clear", "obscure", "hang", "wrong")
    total = Counter(o.kind for o in outcomes)
    calls = f"{len(outcomes)} calls of {len(by_function)} callables"
    print(f"\nfuzz: {calls} in {elapsed:.1f} s, seed {SEED}")
    print(f"{'function':<48}" + "".join(f"{k:>8}" for k in kinds) + "       s")
    for name in sorted(by_function):
        counts = "".join(f"{by_function[name][k]:>8}" for k in kinds)
        print(f"{name:<48}{counts}{seconds[name]:>8.2f}")
    print(f"{'total':<48}" + "".join(f"{total[k]:>8}" for k in kinds))
    bad = [o for o in outcomes if o.kind in ("obscure", "hang", "wrong")]
    bad += [o for o in outcomes if o.mutation == "valid" and o.kind != "clean"]
    report = "\n".join(
        f"{o.kind}: {o.function}({o.argument}={o.mutation}): {o.detail}" for o in bad
    )
    assert not bad, f"{len(bad)} bad outcomes:\n{report}"
