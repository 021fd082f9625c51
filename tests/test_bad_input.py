"""Bad input at the door: checks, linalg, adapters, linear, runtime (FNN and instances in
``test_bad_input_fnn.py``, training and experiments in ``test_bad_input_training.py``).

One parametrized test per public function; each case names the call, the exception class and
words of the message (which must name the argument and say what was expected). Also here: the
rank tolerances are absolute in scale (a target equal to the frozen product up to round-off has
required rank 0; a genuine rank-k discrepancy of size 1e-6 keeps rank k).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import adapters, checks, fnn, linalg, linear, runtime
from lora_theory.adapters import LoRAFactors
from lora_theory.linalg import AssumptionError

NAN = math.nan
W = 2 * torch.eye(3, dtype=torch.float64)
NANS = torch.full((3, 3), NAN)
C128 = W.to(torch.complex128)


def case(call, match, exc=ValueError, id=None):
    """One bad-input case: ``call()`` must raise ``exc`` with ``match`` in its message."""
    return pytest.param(call, exc, match, id=id or re.sub(r"[^\w]+", "-", match).strip("-")[:40])


def check(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- checks -----------------------------------------------------------------------------------

CHECKS_INTEGER = [
    case(lambda: checks.integer(True, "rank"), r"rank must be an integer, got True", id="bool"),
    case(lambda: checks.integer(np.bool_(True), "n"), "n must be an integer", id="numpy-bool"),
    case(lambda: checks.integer(2.0, "depth"), r"depth must be an integer, got 2.0", id="float"),
    case(lambda: checks.integer("3", "width"), "width must be an integer, got '3'", id="str"),
    case(lambda: checks.integer(None, "seed"), "seed must be an integer, got None", id="None"),
    case(lambda: checks.integer(-1, "n", low=0), r"n out of range: need n ≥ 0, got -1", id="low"),
    case(lambda: checks.integer(9, "r", 0, 3), r"need 0 ≤ r ≤ 3, got 9", id="high"),
    case(lambda: checks.rank(0, upper=4), r"rank out of range: need 1 ≤ rank ≤ 4", id="rank-0"),
]
CHECKS_REAL = [
    case(lambda: checks.real(NAN, "lr"), "lr must be a finite number, got nan", id="nan"),
    case(lambda: checks.real(math.inf, "c"), "c must be a finite number, got inf", id="inf"),
    case(lambda: checks.real(1j, "c"), r"c must be a real number, got 1j \(complex\)", id="cx"),
    case(lambda: checks.real(False, "c"), "c must be a real number, got False", id="bool"),
    case(lambda: checks.real("0.1", "lr"), "lr must be a real number, got '0.1'", id="str"),
    case(lambda: checks.real(10**400, "c"), "c must be a finite number", id="huge-int"),
    case(lambda: checks.real(0.0, "c", positive=True), "c must be positive", id="zero"),
    case(lambda: checks.real(-1, "wd", non_negative=True), "wd must be non-negative", id="neg"),
    case(lambda: checks.real(torch.tensor(1j), "c"), "c must be a real number", id="cx-tensor"),
    case(lambda: checks.probability(1.5, "p"), r"p must lie in \[0, 1\], got 1.5", id="prob"),
    case(lambda: checks.reals([0.1, NAN], "lrs"), r"lrs\[1\] must be a finite", id="reals-nan"),
]
CHECKS_TENSOR = [
    case(lambda: checks.tensor(C128, "x"), "x must be real, got complex dtype", id="complex"),
    case(lambda: checks.tensor(torch.ones(2, dtype=torch.bool), "m"), "boolean", id="bool"),
    case(lambda: checks.tensor(NANS, "W"), r"W contains non-finite entries", id="nan"),
    case(lambda: checks.tensor([[1, 2], [3]], "x"), "x must be a numeric tensor", id="ragged"),
    case(lambda: checks.tensor(None, "x"), "x must be a numeric tensor or array, got NoneType"),
    case(lambda: checks.tensor("abc", "x"), "x must be a numeric tensor or array, got str"),
    case(lambda: checks.tensor([1.0], "x", "float64"), "dtype must be a floating", id="dtype"),
    case(lambda: checks.tensor([1e6], "x", torch.float16), "x contains non-finite", id="f16-ovf"),
    case(lambda: checks.tensor(np.array([1, "a"], dtype=object), "x"), "numeric", id="object"),
    case(
        lambda: checks.square(torch.ones(2, 3), "W"), r"square \(D, D\) matrix, got shape \(2, 3\)"
    ),
    case(lambda: checks.square(torch.zeros(0, 0), "W"), "non-empty square", id="empty"),
    case(lambda: checks.square_list({"a": W}, "frozen"), "list of .* got dict", id="dict"),
    case(lambda: checks.square_list(W, "frozen"), "got a single matrix", id="single"),
    case(lambda: checks.square_list([], "frozen"), "at least one matrix", id="empty-list"),
    case(lambda: checks.square_list([W, torch.eye(2)], "w"), r"one width D, got widths \[2, 3\]"),
    case(lambda: checks.shape([1, 2], (2,), "b"), "b must be a tensor, got list", id="shape-list"),
    case(lambda: checks.shape(torch.ones(3), (4,), "b"), r"b must have shape \(4\), got \(3,\)"),
    case(lambda: checks.matrix(torch.ones(3), "a"), r"a must be a 2-D matrix, got shape \(3,\)"),
]
CHECKS_OTHER = [
    case(lambda: checks.choice("fast", "mode", ("quick",)), r"mode must be one of \('quick',\)"),
    case(lambda: checks.choice([1], "mode", ("quick",)), "got \\[1\\]", id="choice-list"),
    case(lambda: checks.choice(np.ones(2), "m", ("a",)), "m must be one of", id="choice-array"),
    case(lambda: checks.choice(True, "m", (1, 0)), "m must be one of", id="choice-bool"),
    case(lambda: checks.dtype(torch.float16), "float32 or torch.float64, got torch.float16 .half"),
    case(lambda: checks.dtype(torch.bfloat16), "half precision", id="dtype-bf16"),
    case(lambda: checks.dtype(torch.int64), "dtype must be torch.float32", id="dtype-int"),
    case(
        lambda: checks.dtype("float64"), "dtype must be torch.float32 .*'float64'", id="dtype-str"
    ),
    case(lambda: checks.generator(None), "generator must be a torch.Generator", id="gen-None"),
    case(lambda: checks.generator(np.random.default_rng(0), "g"), "g must be a torch.Generator"),
    case(lambda: checks.sequence("ab", "ranks"), "ranks must be a list of items, got str"),
    case(lambda: checks.sequence({1: 2}, "ranks"), "ranks must be a list of items, got dict"),
    case(lambda: checks.sequence(iter([1]), "xs"), "xs must be a list of items", id="iterator"),
    case(lambda: checks.sequence([], "seeds", "seeds"), "at least one of the seeds", id="empty"),
    case(lambda: checks.integers([1, 2.5], "ranks"), r"ranks\[1\] must be an integer"),
    case(lambda: checks.elements((10**6, 10**6), "box"), "at most 1073741824", id="elements"),
]


@pytest.mark.parametrize(("call", "exc", "match"), CHECKS_INTEGER)
def test_checks_integer_and_rank(call, exc, match):
    check(call, exc, match)


@pytest.mark.parametrize(("call", "exc", "match"), CHECKS_REAL)
def test_checks_real_and_probability(call, exc, match):
    check(call, exc, match)


@pytest.mark.parametrize(("call", "exc", "match"), CHECKS_TENSOR)
def test_checks_tensor_square_shape(call, exc, match):
    check(call, exc, match)


@pytest.mark.parametrize(("call", "exc", "match"), CHECKS_OTHER)
def test_checks_choice_dtype_generator_sequence(call, exc, match):
    check(call, exc, match)


def test_checks_accept_half_precision_by_converting_to_float64():
    out = checks.square(torch.eye(3, dtype=torch.float16) * 0.1, "W")
    assert out.dtype == torch.float64
    assert torch.equal(out, (torch.eye(3, dtype=torch.float16) * 0.1).double())


# --- linalg -----------------------------------------------------------------------------------

LINALG = [
    case(lambda: linalg.product([]), "empty list is undefined", id="product-empty"),
    case(lambda: linalg.product([[1, 2], [3, 4]]), r"mats\[0\] must be a 2-D matrix"),
    case(lambda: linalg.product([NANS]), r"mats\[0\] contains non-finite", id="product-nan"),
    case(lambda: linalg.product("W"), "mats must be a list of matrices, got str"),
    case(
        lambda: linalg.product([W, torch.eye(2)]), r"mats\[1\] of shape \(2, 2\) .* cannot follow"
    ),
    case(lambda: linalg.sigma(W, 0), "singular-value index i out of range", id="sigma-0"),
    case(lambda: linalg.sigma(W, 1.0), "singular-value index i must be an integer"),
    case(lambda: linalg.sigma(C128, 1), "a must be real, got complex", id="sigma-complex"),
    case(lambda: linalg.sigma(NANS, 1), "a contains non-finite", id="sigma-nan"),
    case(lambda: linalg.sigma(torch.ones(3), 1), "a must be a 2-D matrix", id="sigma-1d"),
    case(lambda: linalg.singular_values("a"), "a must be a numeric tensor", id="svals-str"),
    case(lambda: linalg.low_rank_approx(W, -1), "r out of range", id="lr-neg"),
    case(lambda: linalg.low_rank_approx(W, True), "r must be an integer, got True"),
    case(lambda: linalg.low_rank_approx(NANS, 1), "a contains non-finite", id="lr-nan"),
    case(lambda: linalg.numerical_rank(W, NAN), "tol must be a finite number", id="rank-nan"),
    case(lambda: linalg.numerical_rank(W, -1.0), "tol must be non-negative", id="rank-neg"),
    case(lambda: linalg.numerical_rank(W, "1e-9"), "tol must be a real number", id="rank-str"),
    case(
        lambda: linalg.condition_number(torch.ones(2, 3)), r"non-empty square matrix, got \(2, 3\)"
    ),
    case(lambda: linalg.condition_number(torch.zeros(0, 0)), "non-empty square", id="cond-empty"),
    case(lambda: linalg.Conditioning.of("W_1", NANS), "W_1 contains non-finite", id="cond-nan"),
    case(lambda: linalg.Conditioning.of(3, W), "name must be a string", id="cond-name"),
    case(lambda: linalg.difference_tol(), "at least one term", id="tol-empty"),
    case(lambda: linalg.difference_tol(W, NANS), r"terms\[1\] contains non-finite"),
    case(lambda: linalg.exact_rtol(torch.int64), "dtype must be a floating", id="rtol-int"),
    case(lambda: linalg.exact_rtol("float64"), "dtype must be a floating", id="rtol-str"),
    case(lambda: linalg.check_exact("x", "a", 0.0, 1.0, 1e-8), "achieved must be a real"),
    case(lambda: linalg.check_exact("x", 0.0, 0.0, 1.0, NAN), "rtol must be a finite number"),
    case(lambda: linalg.check_exact("x", 0.0, 0.0, -1.0, 1e-8), "scale must be non-negative"),
    case(
        lambda: linalg.check_exact("block 1", NAN, 0.0, 1.0, 1e-8),
        "block 1: the construction reached error nan",
        linalg.ExactnessError,
        id="exact-nan-achieved",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), LINALG)
def test_linalg_rejects(call, exc, match):
    check(call, exc, match)


# --- adapters ---------------------------------------------------------------------------------

B31, A13 = torch.ones(3, 1), torch.ones(1, 3)
ADAPTERS = [
    case(lambda: adapters.layer_ranks({"a": 1}, 1, 3), "rank must be a list of per-layer ranks"),
    case(lambda: adapters.layer_ranks(1.5, 1, 3), r"rank must be an integer, got 1.5"),
    case(lambda: adapters.layer_ranks([[1]], 1, 3), r"rank\[0\] must be an integer, got \[1\]"),
    case(lambda: adapters.layer_ranks([1, 1], 1, 3), "got 2 per-layer ranks for 1 layers"),
    case(
        lambda: adapters.layer_ranks([4], 1, 3), r"rank\[0\] out of range: need 0 ≤ rank\[0\] ≤ 3"
    ),
    case(lambda: adapters.layer_ranks(1, True, 3), "depth must be an integer, got True"),
    case(lambda: adapters.layer_ranks(1, 1, "3"), "width must be an integer, got '3'"),
    case(lambda: adapters.layer_ranks(torch.tensor(1.5), 2, 3), "rank must be an integer"),
    case(lambda: adapters.layer_ranks((r for r in [1]), 1, 3), "rank must be an integer"),
    case(lambda: adapters.layer_ranks("12", 2, 3), "rank must be an integer, got '12'"),
    case(lambda: adapters.n_lora_params(3, "ab"), "ranks must be a list of integers, got str"),
    case(lambda: adapters.n_lora_params(-3, [1]), "width out of range", id="nparams-neg"),
    case(lambda: adapters.n_lora_params(3, [1.5]), r"ranks\[0\] must be an integer"),
    case(lambda: adapters.check_factors((NANS[:, :1], A13), 3, "a"), "a.B contains non-finite"),
    case(lambda: adapters.check_factors(None, 3, "adapters[0]"), r"adapters\[0\] must be a pair"),
    case(lambda: adapters.check_factors("ab", 3, "a"), r"a must be a pair \(B, A\), got str"),
    case(lambda: adapters.check_factors(W, 3, "a"), r"a must be a pair \(B, A\), got Tensor"),
    case(lambda: adapters.check_factors((B31, torch.ones(2, 3)), 3, "a"), "inner dimensions"),
    case(lambda: adapters.check_factors((B31, A13), 4, "a"), r"B: \(4, r\) and A: \(r, 4\)"),
    case(
        lambda: adapters.check_factors((B31.to(torch.complex64), A13), 3, "a"), "a.B must be real"
    ),
    case(lambda: LoRAFactors.zeros(-1), "width out of range", id="zeros-neg"),
    case(lambda: LoRAFactors.zeros(1.5), "width must be an integer", id="zeros-float"),
    case(lambda: LoRAFactors.zeros(3, torch.float16), "dtype must be torch.float32"),
    case(lambda: LoRAFactors(torch.ones(3, 2), A13).delta(), r"B: \(3, 2\), A: \(1, 3\)"),
    case(lambda: LoRAFactors(B31, A13).merge(torch.eye(2)), r"weight must be a \(3, 3\) tensor"),
]


@pytest.mark.parametrize(("call", "exc", "match"), ADAPTERS)
def test_adapters_reject(call, exc, match):
    check(call, exc, match)


# --- linear -----------------------------------------------------------------------------------

SINGULAR = torch.zeros(3, 3, dtype=torch.float64)
LINEAR = [
    case(lambda: linear.construct(W, [W], 1, dtype=torch.float16), "computation dtype"),
    case(lambda: linear.construct(W, [W], 1, dtype="float64"), "dtype must be torch.float32"),
    case(lambda: linear.construct(W, [W], True), "rank must be an integer, got True"),
    case(lambda: linear.construct(W, [W], 1.0), r"rank must be an integer, got 1.0 \(float\)"),
    case(lambda: linear.construct(W, [W], "1"), "rank must be an integer, got '1'"),
    case(lambda: linear.construct(W, [W], 0), r"rank out of range: need 1 ≤ rank ≤ 3, got 0"),
    case(lambda: linear.construct(W, [W], 4), r"need 1 ≤ rank ≤ 3, got 4", id="construct-4"),
    case(lambda: linear.construct(W, [W], [1, 1]), "got 2 per-layer ranks for 1 layers"),
    case(lambda: linear.construct(W, {"a": W}, 1), "frozen must be a list .* got dict"),
    case(lambda: linear.construct(W, W, 1), "frozen must be a list .* single matrix"),
    case(lambda: linear.construct(W, [W], 1, rtol=NAN), "rtol must be a finite number"),
    case(lambda: linear.construct(W, [W], 1, rtol=0.0), "rtol must be positive"),
    case(lambda: linear.construct(C128, [W], 1), "target must be real, got complex"),
    case(lambda: linear.construct(W, [C128], 1), r"frozen\[0\] must be real, got complex"),
    case(lambda: linear.construct(NANS, [W], 1), "target contains non-finite"),
    case(lambda: linear.construct(torch.zeros(0, 0), [torch.zeros(0, 0)], 1), "non-empty square"),
    case(lambda: linear.construct(torch.eye(4), [W], 1), r"target has shape \(4, 4\) but"),
    case(lambda: linear.construct(W * 1e200, [W * 1e200, W * 1e200], 1), "overflows"),
    case(lambda: linear.construct(W, [SINGULAR, W], 1), "numerically singular", AssumptionError),
    case(lambda: linear.min_error(W, [W], -1), "rank out of range", id="min_error-neg"),
    case(lambda: linear.min_error(W, [W], 1, torch.bfloat16), "half precision", id="min-bf16"),
    case(lambda: linear.required_rank(W * 1e200, [W * 1e200] * 2), "overflows torch.float64"),
    case(lambda: linear.required_rank(None, [W]), "target must be a numeric tensor"),
    case(lambda: linear.population_mse(W, [W], [0.5]), r"rank\[0\] must be an integer"),
    case(lambda: linear.error_matrix("W", [W]), "target must be a numeric tensor or array"),
    case(lambda: linear.error_matrix(W, [W, torch.eye(2)]), "one width D"),
    case(lambda: linear.diagnose(W, [W], 0), "rank out of range", id="diagnose-0"),
    case(lambda: linear.construction_conditioning(W, [W], {"r": 1}), "per-layer ranks, got dict"),
    case(lambda: linear.adapted_product([W], []), "at least one of the .B, A. pairs"),
    case(lambda: linear.adapted_product([W], None), "adapters must be a list .* NoneType"),
    case(lambda: linear.adapted_product([W], [(torch.ones(2, 1), A13)]), r"adapters\[0\] must"),
    case(lambda: linear.adapted_product([W], [(NANS[:, :1], A13)]), "adapters.0..B contains"),
    case(lambda: linear.adapted_product([W, W], [(B31, A13)]), "2 frozen layers but 1 adapters"),
    case(lambda: linear.telescoping_terms([W, W], [W]), r"need one \(3, 3\) update per frozen"),
    case(lambda: linear.telescoping_terms([W], [W], torch.float16), "computation dtype"),
    case(lambda: linear.telescoping_terms([W], [NANS]), r"deltas\[0\] contains non-finite"),
]


@pytest.mark.parametrize(("call", "exc", "match"), LINEAR)
def test_linear_rejects(call, exc, match):
    check(call, exc, match)


def test_linear_half_precision_inputs_are_computed_in_float64():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(4, 4, generator=gen).to(torch.float16)
    frozen = [torch.randn(4, 4, generator=gen).to(torch.bfloat16) for _ in range(2)]
    ads = linear.construct(target, frozen, 2)
    assert all(b.dtype == torch.float64 for b, _ in ads)
    exact = linear.adapted_product([w.double() for w in frozen], ads)
    assert torch.allclose(exact, target.double(), atol=1e-10)


# --- runtime ----------------------------------------------------------------------------------

RUNTIME = [
    case(lambda: runtime.device("tpu"), "device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    case(lambda: runtime.device("cuda:x"), "device must be 'cpu', 'cuda' or 'cuda:N'"),
    case(lambda: runtime.device(3), r"device must be .* \(or None\), got 3 \(int\)"),
    case(lambda: runtime.device(True), "got True", id="device-bool"),
    case(lambda: runtime.device(""), "device must be", id="device-empty"),
    case(lambda: runtime.device("meta"), "got 'meta'", id="device-meta"),
    case(lambda: runtime.device("cuda:99"), "cuda", id="device-cuda-99"),
    case(lambda: runtime.set_seed(-1), r"seed out of range: need 0 ≤ seed"),
    case(lambda: runtime.set_seed(2**64), "seed out of range", id="seed-huge"),
    case(lambda: runtime.set_seed(1.0), "seed must be an integer, got 1.0"),
    case(lambda: runtime.generator(0, ""), "stream must be a non-empty string"),
    case(lambda: runtime.generator(0, 3), "stream must be a non-empty string, got 3"),
    case(lambda: runtime.generator(True, "x"), "seed must be an integer, got True"),
    case(lambda: runtime.mode(3), r"mode must be one of \('quick', 'full'\), got 3"),
    case(lambda: runtime.mode("fast"), "got 'fast'", id="mode-fast"),
    case(lambda: runtime.check_mode(None), "mode must be one of", id="check_mode-None"),
]


@pytest.mark.parametrize(("call", "exc", "match"), RUNTIME)
def test_runtime_rejects(call, exc, match):
    check(call, exc, match)


def test_runtime_device_none_and_cpu():
    assert runtime.device("cpu") == torch.device("cpu")
    assert runtime.device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.device(None).type == expected


# --- rank tolerances are absolute in scale ------------------------------------------------------


def _orders(ws: list[torch.Tensor]) -> torch.Tensor:
    """``W_L ⋯ W_1`` multiplied from the left end (another order than :func:`linalg.product`)."""
    out = ws[-1]
    for w in reversed(ws[:-1]):
        out = out @ w
    return out


@pytest.mark.parametrize("width", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_linear_round_off_target_has_rank_zero_and_tiny_rank_k_discrepancy_keeps_rank_k(
    width, depth, scale
):
    gen = torch.Generator().manual_seed(100 * width + depth)
    ws = [torch.randn(width, width, generator=gen, dtype=torch.float64) for _ in range(depth)]
    ws[0] = ws[0] * scale
    prod = linalg.product(ws)
    assert linear.required_rank(prod * (1 + 1e-15), ws) == 0
    assert linear.required_rank(prod * (1 - 1e-15), ws) == 0
    assert linear.required_rank(_orders(ws), ws) == 0
    k = min(2, width)
    u = torch.randn(width, k, generator=gen, dtype=torch.float64)
    v = torch.randn(k, width, generator=gen, dtype=torch.float64)
    bump = u @ v
    bump = bump * (1e-6 * float(torch.linalg.matrix_norm(prod, 2)) / float(linalg.sigma(bump, k)))
    assert linear.required_rank(prod + bump, ws) == math.ceil(k / depth)


@pytest.mark.parametrize("width", [2, 3, 8, 16])
@pytest.mark.parametrize(("target_depth", "depth"), [(1, 1), (1, 2), (2, 4), (2, 3)])
def test_fnn_round_off_target_has_rank_zero_and_tiny_rank_k_discrepancy_keeps_rank_k(
    width, target_depth, depth
):
    gen = torch.Generator().manual_seed(width + 10 * depth)
    frozen = fnn.FNN.random(width, depth, gen)
    blocks = fnn.uniform_partition(depth, target_depth)
    biases = fnn.FNN.random(width, target_depth, gen).biases
    products = [linalg.product([frozen.weights[k] for k in b]) for b in blocks]
    for perturb in (
        lambda p, b: p * (1 + 1e-15),
        lambda p, b: _orders([frozen.weights[k] for k in b]),
    ):
        target = fnn.FNN([perturb(p, b) for p, b in zip(products, blocks, strict=True)], biases)
        assert fnn.required_rank(target, frozen) == 0
        assert fnn.optimal_partition(target, frozen).rank == 0
    k = min(2, width)
    bumped = []
    for p in products:
        u = torch.randn(width, k, generator=gen, dtype=torch.float64)
        v = torch.randn(k, width, generator=gen, dtype=torch.float64)
        bump = u @ v
        bumped.append(p + bump * (1e-6 / float(linalg.sigma(bump, k))))
    target = fnn.FNN(bumped, biases)
    expected = max(math.ceil(k / len(b)) for b in blocks)
    assert fnn.required_rank(target, frozen) == expected
    assert fnn.optimal_partition(target, frozen).rank <= expected
    assert fnn.optimal_partition(target, frozen).rank >= 1


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    special=st.sampled_from([None, math.nan, math.inf, -math.inf, 1e308]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 1000),
)
def test_all_finite_is_the_entrywise_check(shape, special, dtype, seed):
    """The sum's shortcut never changes the answer: NaN, ±inf and entries whose sum overflows."""
    t = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if special == 1e308:  # finite float64 entries whose sum may overflow
        t = t * 1e307
    if special is not None:
        t.view(-1)[seed % t.numel()] = special
    t = t.to(dtype)
    assert checks.all_finite(t) == bool(torch.isfinite(t).all())


def test_all_finite_refuses_what_is_not_a_floating_tensor():
    with pytest.raises(ValueError, match="t must be a floating or complex tensor"):
        checks.all_finite([1.0, 2.0])
