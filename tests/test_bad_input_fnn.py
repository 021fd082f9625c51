"""Bad input at the door: ``fnn`` (FNN, construct, certify, partitions, assumptions) and
``instances``. One parametrized test per function or group; see ``test_bad_input.py``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from lora_theory import fnn, instances
from lora_theory.adapters import LoRAFactors
from lora_theory.linalg import ExactnessError

NAN = math.nan
W = 2 * torch.eye(3, dtype=torch.float64)


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


T1, F2 = fnn.FNN.random(3, 1, gen()), fnn.FNN.random(3, 2, gen())
T2, F4 = fnn.FNN.random(3, 2, gen()), fnn.FNN.random(3, 4, gen())


def case(call, match, exc=ValueError, id=None):
    return pytest.param(call, exc, match, id=id or re.sub(r"[^\w]+", "-", match).strip("-")[:40])


def check(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


FNN_CLASS = [
    case(lambda: fnn.FNN([W], adapters=[(torch.ones(2, 1), torch.ones(1, 2))]), r"B: \(3, r\)"),
    case(
        lambda: fnn.FNN([W], adapters=[(torch.full((3, 1), NAN), torch.ones(1, 3))]),
        r"adapters\[0\].B contains non-finite",
    ),
    case(
        lambda: fnn.FNN([W], adapters=[(torch.ones(3, 1), torch.full((1, 3), math.inf))]),
        r"adapters\[0\].A contains non-finite",
    ),
    case(lambda: fnn.FNN([W], adapters={"a": 1}), "adapters must be a list .* got dict"),
    case(lambda: fnn.FNN([W], adapters="ab"), "adapters must be a list .* got str"),
    case(lambda: fnn.FNN([W], adapters=3), "adapters must be a list .* got int"),
    case(lambda: fnn.FNN([W], adapters=iter([LoRAFactors.zeros(3)])), "got list_iterator"),
    case(lambda: fnn.FNN([W, W], adapters=[LoRAFactors.zeros(3)]), "2 layers but 1 adapters"),
    case(lambda: fnn.FNN([W], biases={"a": 1}), r"biases must be a list of \(D,\) vectors"),
    case(lambda: fnn.FNN([W], biases=torch.ones(1, 3)), "got Tensor", id="biases-tensor"),
    case(lambda: fnn.FNN([W], biases=[torch.full((3,), NAN)]), r"biases\[0\] contains non-fin"),
    case(lambda: fnn.FNN([W], biases=[torch.ones(4)]), r"biases\[0\] must have shape \(3\)"),
    case(lambda: fnn.FNN([W], biases=[]), "got 1 weights but 0 biases"),
    case(lambda: fnn.FNN([W], activation=["relu"]), r"activation must be one of"),
    case(lambda: fnn.FNN([W], activation="tanh"), "got 'tanh'", id="activation-tanh"),
    case(lambda: fnn.FNN([W], dtype=torch.float16), "computation dtype", id="dtype-f16"),
    case(lambda: fnn.FNN([W], dtype=torch.int64), "dtype must be torch.float32", id="dtype-int"),
    case(lambda: fnn.FNN([W], dtype="float64"), "got 'float64'", id="dtype-str"),
    case(lambda: fnn.FNN([]), "weights must contain at least one matrix"),
    case(lambda: fnn.FNN(None), "weights must be a list .* got NoneType"),
    case(lambda: fnn.FNN([W.to(torch.complex128)]), r"weights\[0\] must be real"),
    case(lambda: fnn.FNN([W])(torch.ones(2, 4)), r"x must have shape \(n, 3\), got \(2, 4\)"),
    case(lambda: fnn.FNN([W])(torch.full((2, 3), NAN)), "x contains non-finite"),
    case(lambda: fnn.FNN([W])(torch.ones(3)), r"x must have shape \(n, 3\), got \(3,\)"),
    case(lambda: fnn.FNN([W])(torch.ones(2, 3, dtype=torch.complex64)), "x must be real"),
    case(lambda: fnn.FNN([W])("x"), "x must be a numeric tensor", id="call-str"),
    case(lambda: fnn.FNN([W]).roundoff_scale(torch.ones(0, 3)), "at least one point"),
    case(lambda: fnn.FNN.random(3, 1, None), "generator must be a torch.Generator"),
    case(lambda: fnn.FNN.random(3, 1, 5), "generator must be a torch.Generator .*, got int"),
    case(lambda: fnn.FNN.random(3, 1, gen(), bias="no"), "bias must be a bool, got 'no'"),
    case(lambda: fnn.FNN.random(3, 1, gen(), dtype=torch.bfloat16), "half precision"),
    case(lambda: fnn.FNN.random(10**12, 1, gen()), "at most 1073741824", id="random-huge"),
    case(lambda: fnn.FNN.random(0, 1, gen()), "width out of range", id="random-width-0"),
    case(lambda: fnn.FNN.random(3, 2.0, gen()), "depth must be an integer, got 2.0"),
    case(lambda: fnn.FNN.random(3, 1, gen(), activation="gelu"), "activation must be one of"),
]


@pytest.mark.parametrize(("call", "exc", "match"), FNN_CLASS)
def test_fnn_model_rejects(call, exc, match):
    check(call, exc, match)


def test_fnn_half_precision_weights_are_held_in_float64():
    net = fnn.FNN([W.half()], [torch.ones(3, dtype=torch.bfloat16)])
    assert net.dtype == torch.float64 and net.biases[0].dtype == torch.float64
    assert torch.equal(net(torch.ones(1, 3)), torch.full((1, 3), 3.0, dtype=torch.float64))


CONSTRUCT = [
    case(lambda: fnn.construct(T1, F2, True, 1.0), "rank must be an integer, got True"),
    case(lambda: fnn.construct(T1, F2, 1, NAN), "input_bound must be a finite number, got nan"),
    case(lambda: fnn.construct(T1, F2, 1, math.inf), "input_bound must be a finite number"),
    case(lambda: fnn.construct(T1, F2, 1, 0.0), "input_bound must be positive", id="c-0"),
    case(lambda: fnn.construct(T1, F2, 1, "1"), "input_bound must be a real number"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition="01"), "partition must be a list .* str"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition={0: [0, 1]}), "got dict"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[0.0, 1.0]]), "entry must be an int"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[[0], [1]]]), r"got \[0\] \(list\)"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=3), "partition must be a list .* int"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[0, 1]), "block 0 must be a list"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=["01"]), "block 0 must be a list .* str"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[False, True]]), "got False"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[1, 0]]), "once each, in order"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[0], [1]]), "has 2 blocks but"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, partition=[[0, 1], []]), "has 2 blocks"),
    case(lambda: fnn.construct(W, F2, 1, 1.0), "target must be an FNN, got Tensor"),
    case(lambda: fnn.construct(T1, [W], 1, 1.0), "frozen must be an FNN, got list"),
    case(lambda: fnn.construct(F2, T1, 1, 1.0), "exceeds frozen depth"),
    case(lambda: fnn.construct(T1, fnn.FNN.random(4, 2, gen()), 1, 1.0), "width mismatch"),
    case(lambda: fnn.construct(T1, F2, 1, 1.0, rtol="a"), "rtol must be a real number"),
    case(lambda: fnn.construct(T1, F2, [1, 1, 1], 1.0), "got 3 per-layer ranks for 2 layers"),
    case(lambda: fnn.construct(T1, F2, 4, 1.0), r"need 1 ≤ rank ≤ 3, got 4"),
]


@pytest.mark.parametrize(("call", "exc", "match"), CONSTRUCT)
def test_fnn_construct_rejects(call, exc, match):
    check(call, exc, match)


PARTITIONS = [
    case(lambda: fnn.certify(T1, F2, 1.0, 0), "rank out of range", id="certify-rank-0"),
    case(lambda: fnn.certify(T1, F2, -1.0, 1), "input_bound must be positive", id="certify-c"),
    case(lambda: fnn.certify(T1, F2, 1.0, 1), "not provably active", ExactnessError),
    case(lambda: fnn.certify(T1, "F2", 1.0, 1), "frozen must be an FNN, got str", id="certify-str"),
    case(lambda: fnn.required_rank(T1, F2, "ab"), "partition must be a list .* str"),
    case(lambda: fnn.required_rank(None, F2), "target must be an FNN, got NoneType"),
    case(lambda: fnn.check_assumption(T1, F2, "1"), "rank must be an integer, got '1'"),
    case(lambda: fnn.check_assumption(T1, F2, 1, [[0]]), "once each", id="assumption-part"),
    case(lambda: fnn.uniform_partition("4", 2), "L must be an integer, got '4'"),
    case(lambda: fnn.uniform_partition(0, 0), r"L out of range: need 1 ≤ L ≤ 1048576, got 0"),
    case(lambda: fnn.uniform_partition(10**12, 1), r"need 1 ≤ L ≤ 1048576", id="L-huge"),
    case(lambda: fnn.uniform_partition(2, 3), "L_bar=3 exceeds frozen depth L=2"),
    case(lambda: fnn.uniform_partition(4, True), "L_bar must be an integer, got True"),
    case(lambda: fnn.check_partition(None, 2, 1), "partition must be a list .* NoneType"),
    case(lambda: fnn.check_partition([0, 1], 2, 2), "block 0 must be a list .* int"),
    case(lambda: fnn.check_partition(torch.tensor([[0, 1]]), 2, 1), r"got tensor\(0\)"),
    case(lambda: fnn.check_partition(iter([[0, 1]]), 2, 1), "got list_iterator"),
    case(lambda: fnn.check_partition([[0], [1, 1]], 3, 2), "once each"),
    case(lambda: fnn.check_partition([[-1, 0]], 2, 1), "entry out of range"),
    case(lambda: fnn.theorem5_ranks(4, 2, 0), r"rank out of range: need rank ≥ 1"),
    case(lambda: fnn.theorem5_ranks(4, 2, 1.0), "rank must be an integer, got 1.0"),
    case(lambda: fnn.theorem5_ranks(2, 4, 1), "exceeds frozen depth"),
    case(lambda: fnn.discrepancies(None, F2), "target must be an FNN"),
    case(lambda: fnn.discrepancies(T1, F2, [[0], [1]]), "2 blocks but the target has L_bar=1"),
    case(lambda: fnn.corollary4_threshold(0, 2, 1), r"D out of range: need D ≥ 1"),
    case(lambda: fnn.corollary4_threshold(True, 2, 1), "D must be an integer, got True"),
    case(lambda: fnn.corollary4_threshold(4, 1, 2), "exceeds frozen depth"),
    case(lambda: fnn.parameter_counts(3, 2, 1, 0), r"need 1 ≤ rank ≤ 3, got 0"),
    case(lambda: fnn.parameter_counts(3, 2, 1, 5), r"need 1 ≤ rank ≤ 3, got 5"),
    case(lambda: fnn.parameter_counts(3.0, 2, 1), "D must be an integer, got 3.0"),
    case(lambda: fnn.optimal_partition("a", F2), "target must be an FNN, got str"),
    case(lambda: fnn.layer_ranks(None, 1, 3), "rank must be an integer, got None"),
    case(lambda: fnn.check_pair(T1, None), "frozen must be an FNN, got NoneType"),
    case(lambda: fnn.box_image([[1.0]], [0.0], [1.0], [-1.0]), "lo ≤ hi"),
    case(lambda: fnn.box_image(torch.ones(2, 2), torch.ones(3), torch.ones(2), torch.ones(2)), "h"),
    case(lambda: fnn.box_image(torch.ones(2, 2), torch.ones(2), [NAN, 0], [1, 1]), "lo contains"),
]


@pytest.mark.parametrize(("call", "exc", "match"), PARTITIONS)
def test_fnn_partitions_certify_assumptions_reject(call, exc, match):
    check(call, exc, match)


LEMMA3 = [
    case(lambda: fnn.lemma3_margins(3, 2, 1, 1, 0, gen()), r"n_draws out of range: need 1 ≤"),
    case(lambda: fnn.lemma3_margins(3, 2, 1, 1, -1, gen()), "n_draws out of range"),
    case(lambda: fnn.lemma3_margins(3, 2, 1, 1, 10**9, gen()), r"n_draws ≤ 100000"),
    case(lambda: fnn.lemma3_margins(3, 2, 1, 1, 1, None), "generator must be a torch.Generator"),
    case(lambda: fnn.lemma3_margins(3, 2, 1, 0, 1, gen()), r"need 1 ≤ rank ≤ 3, got 0"),
    case(lambda: fnn.lemma3_margins(3, 1, 2, 1, 1, gen()), "exceeds frozen depth"),
    case(lambda: fnn.lemma3_margins(1.5, 2, 1, 1, 1, gen()), "width must be an integer"),
    case(lambda: fnn.lemma3_margins(10**9, 2, 1, 1, 1, gen()), "width out of range"),
]


@pytest.mark.parametrize(("call", "exc", "match"), LEMMA3)
def test_fnn_lemma3_margins_rejects(call, exc, match):
    check(call, exc, match)


INSTANCES = [
    case(lambda: instances.box_sample(3, 1.0, 2, None), "generator must be a torch.Generator"),
    case(lambda: instances.box_sample(3, 1.0, 2, 5), "generator must be .* got int"),
    case(lambda: instances.box_sample(3, 1.0, 10**15, gen()), "box_sample asks for a tensor"),
    case(lambda: instances.box_sample(3, NAN, 2, gen()), "input_bound must be a finite number"),
    case(lambda: instances.box_sample(3, -1.0, 2, gen()), "input_bound must be positive"),
    case(lambda: instances.box_sample(3, 1.0, 0, gen()), r"n out of range: need n ≥ 1"),
    case(lambda: instances.box_sample(True, 1.0, 2, gen()), "width must be an integer, got True"),
    case(lambda: instances.truncated_normal_sample(3, 1.0, 5, None), "generator must be a"),
    case(lambda: instances.truncated_normal_sample(3, 1.0, 5, "g"), "got str", id="tn-gen-str"),
    case(
        lambda: instances.truncated_normal_sample(3, 1.0, 5, np.random.default_rng()),
        "generator must be a torch.Generator .*, got Generator",
    ),
    case(lambda: instances.truncated_normal_sample(3, math.inf, 5, gen()), "finite number"),
    case(lambda: instances.truncated_normal_sample(3, 0.0, 5, gen()), "must be positive"),
    case(lambda: instances.truncated_normal_sample(3, 1.0, 2**62, gen()), "asks for a tensor"),
    case(lambda: instances.truncated_normal_sample(3, 1.0, 2.5, gen()), "n must be an integer"),
    case(lambda: instances.flat_spectrum_target(None, F2), "target must be an FNN"),
    case(lambda: instances.flat_spectrum_target(T1, "F2"), "frozen must be an FNN"),
    case(lambda: instances.flat_spectrum_target(T1, F2, [[0]]), "once each, in order"),
    case(lambda: instances.example_partition_gap(None), "generator must be a torch.Generator"),
    case(lambda: instances.example_partition_gap(gen(), width="12"), "width must be an integer"),
    case(lambda: instances.example_partition_gap(gen(), width=0), "width out of range"),
    case(lambda: instances.example_partition_gap(gen(), block_sizes="13"), "block_sizes must be"),
    case(lambda: instances.example_partition_gap(gen(), block_sizes=()), "at least one"),
    case(lambda: instances.example_partition_gap(gen(), block_sizes=3), "block_sizes must be a"),
    case(lambda: instances.example_partition_gap(gen(), block_sizes=(1, 0)), "out of range"),
    case(lambda: instances.example_partition_gap(gen(), discrepancy_ranks="11"), "got str"),
    case(lambda: instances.example_partition_gap(gen(), discrepancy_ranks=[1, 13]), "≤ 12, got 13"),
    case(lambda: instances.example_partition_gap(gen(), discrepancy_ranks=1), "must be a list"),
    case(lambda: instances.example_partition_gap(gen(), discrepancy_ranks=[1]), "1 discrepancy"),
]


@pytest.mark.parametrize(("call", "exc", "match"), INSTANCES)
def test_instances_reject(call, exc, match):
    check(call, exc, match)


@pytest.mark.parametrize("c", [5e-324, 1e-300, 1e-12, 1.0, 40.0, 1e12, 1e300])
def test_samplers_never_hang_and_stay_in_the_box(c):
    for sample in (instances.truncated_normal_sample, instances.box_sample):
        x = sample(4, c, 500, gen())
        assert x.dtype == torch.float64 and torch.isfinite(x).all()
        assert float(x.abs().max()) <= c
