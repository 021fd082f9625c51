"""Lemma 1's construction for problems × ranks in one call (``linear.construct_batch``)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import linear
from lora_theory.adapters import LoRAFactors
from lora_theory.linalg import AssumptionError, ExactnessError
from lora_theory.linear.batched import _replace


def problems(seed: int, n: int, depth: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scale = 1 / math.sqrt(width)
    targets = torch.randn(n, width, width, generator=g, dtype=torch.float64) * scale
    frozen = torch.randn(n, depth, width, width, generator=g, dtype=torch.float64) * scale
    return targets + torch.eye(width, dtype=torch.float64), frozen + torch.eye(width)


def spectral(a: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a, 2))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 4),
    depth=st.integers(1, 4),
    width=st.integers(1, 10),
    data=st.data(),
)
def test_every_entry_is_the_single_construction(seed, n, depth, width, data):
    targets, frozen = problems(seed, n, depth, width)
    uniform = st.integers(1, width)
    per_layer = st.lists(st.integers(0, width), min_size=depth, max_size=depth)
    ranks = data.draw(st.lists(uniform | per_layer, min_size=1, max_size=4))
    out = linear.construct_batch(targets, frozen, ranks)
    assert out.B.shape[:3] == (n, len(ranks), depth)
    deltas = out.deltas()
    for i in range(n):
        for q, rank in enumerate(ranks):
            single = linear.construct(targets[i], list(frozen[i]), rank)
            got = out.problem(i, q)
            assert [f.inner_dim for f in got] == [f.inner_dim for f in single]
            adapted = linear.adapted_product(list(frozen[i]), got)
            optimum = linear.min_error(targets[i], list(frozen[i]), rank)
            scale = spectral(targets[i]) + spectral(linear.error_matrix(0 * targets[i], frozen[i]))
            assert abs(spectral(adapted - targets[i]) - optimum) <= 1e-9 * scale
            for k, f in enumerate(got):
                torch.testing.assert_close(deltas[i, q, k], f.delta(), rtol=0, atol=1e-12)


def test_a_sweep_shares_the_rank_independent_work():
    """Seeds × ranks in one call: the fig. 1 shape (D = 16, L = 2), ranks 1…16."""
    targets, frozen = problems(0, 5, 2, 16)
    ranks = list(range(1, 17))
    out = linear.construct_batch(targets, frozen, ranks)
    errors = torch.tensor(
        [
            [spectral(linear.adapted_product(list(frozen[i]), out.problem(i, q)) - targets[i])
             for q in range(len(ranks))]
            for i in range(5)
        ]
    )  # fmt: skip
    optima = torch.tensor(
        [[linear.min_error(targets[i], list(frozen[i]), r) for r in ranks] for i in range(5)]
    )
    torch.testing.assert_close(errors, optima, rtol=0, atol=1e-9)
    assert (errors[:, 7:] < 1e-9).all()  # exact from the threshold R = D / L = 8 on


def test_an_ill_conditioned_entry_is_refused_and_named():
    g = torch.Generator().manual_seed(1)
    targets = torch.randn(2, 16, 16, generator=g, dtype=torch.float64)
    frozen = torch.randn(2, 8, 16, 16, generator=g, dtype=torch.float64) / 4  # deep: cond ~1e15
    frozen[0] = torch.eye(16, dtype=torch.float64)
    with pytest.raises(ExactnessError, match=r"problem 1, rank setting 0") as info:
        linear.construct_batch(targets, frozen, [2])
    assert info.value.achieved > info.value.optimum + info.value.allowed


def test_auto_rebuilds_the_entry_the_batch_cannot_certify():
    """The deep entry above (D = 16, L = 8, rank 2: the threshold) is rebuilt by
    ``construct(method="auto")`` and exact; the certified entry is the batch's own."""
    g = torch.Generator().manual_seed(1)
    targets = torch.randn(2, 16, 16, generator=g, dtype=torch.float64)
    frozen = torch.randn(2, 8, 16, 16, generator=g, dtype=torch.float64) / 4
    frozen[0] = torch.eye(16, dtype=torch.float64)
    out = linear.construct_batch(targets, frozen, [2], method="auto")
    alone = linear.construct(targets[1], list(frozen[1]), 2, method="auto")
    for got, want in zip(out.problem(1), alone, strict=True):
        assert torch.equal(got.B, want.B) and torch.equal(got.A, want.A)
    assert linear.relative_error(targets[1], list(frozen[1]), out.problem(1)) < 1e-9
    sequential = linear.construct_batch(targets[:1], frozen[:1], [2])
    assert torch.equal(out.B[:1], sequential.B) and torch.equal(out.A[:1], sequential.A)


def test_auto_names_the_entry_it_cannot_build_either():
    """Below the threshold (rank 1 at D = 16, L = 8) no conditioned solution exists: auto refuses
    as the single construction does, naming the entry."""
    g = torch.Generator().manual_seed(1)
    targets = torch.randn(2, 16, 16, generator=g, dtype=torch.float64)
    frozen = torch.randn(2, 8, 16, 16, generator=g, dtype=torch.float64) / 4
    frozen[0] = torch.eye(16, dtype=torch.float64)
    with pytest.raises(ExactnessError, match=r"problem 1, rank setting 0: Lemma 1"):
        linear.construct_batch(targets, frozen, [1], method="auto")
    with pytest.raises(ValueError, match="method must be one of"):
        linear.construct_batch(targets, frozen, [1], method="conditioned")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3), depth=st.integers(1, 3))
def test_auto_keeps_every_entry_the_batch_certifies(seed, n, depth):
    targets, frozen = problems(seed, n, depth, 5)
    ranks = [1, 3, 5]
    auto = linear.construct_batch(targets, frozen, ranks, method="auto")
    plain = linear.construct_batch(targets, frozen, ranks)
    assert torch.equal(auto.B, plain.B) and torch.equal(auto.A, plain.A)
    assert torch.equal(auto.inner, plain.inner)


def test_a_rebuilt_entry_with_a_wider_block_widens_the_padding():
    batch = linear.BatchedAdapters(
        torch.ones(2, 1, 2, 3, 1), torch.ones(2, 1, 2, 1, 3), torch.ones(2, 1, 2, dtype=torch.long)
    )
    wide = [LoRAFactors(torch.full((3, 2), 2.0), torch.full((2, 3), 3.0)), LoRAFactors.zeros(3)]
    out = _replace(batch, {(1, 0): wide})
    assert out.B.shape == (2, 1, 2, 3, 2) and out.inner[1, 0].tolist() == [2, 0]
    assert torch.equal(out.problem(1)[0].B, wide[0].B) and out.problem(1)[1].inner_dim == 0
    assert torch.equal(out.problem(0)[0].B, torch.ones(3, 1)) and out.inner[0, 0].tolist() == [1, 1]


def test_a_singular_frozen_layer_is_an_assumption_error():
    targets, frozen = problems(2, 3, 2, 4)
    frozen[2, 1] = 0.0
    with pytest.raises(AssumptionError, match=r"problem 2, rank setting 0: W_2 .*zero pivot"):
        linear.construct_batch(targets, frozen, [1])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.ones(2, 3, 3), torch.ones(2, 1, 3, 4), [1]), r"frozen must be \(n, L, D, D\)"),
        ((torch.ones(3, 3), torch.ones(1, 1, 3, 3), [1]), r"targets must be \(n, D, D\)"),
        ((torch.eye(3)[None], torch.eye(3)[None, None], []), "at least one"),
        ((torch.eye(3)[None], torch.eye(3)[None, None], [4]), "rank"),
        ((torch.eye(3)[None], torch.eye(3)[None, None], [[1, 1]]), "2 per-layer ranks for 1"),
        ((torch.eye(3)[None] / 0, torch.eye(3)[None, None], [1]), "non-finite"),
    ],
)
def test_bad_input_is_refused_clearly(args, match):
    with pytest.raises(ValueError, match=match):
        linear.construct_batch(*args)


def test_an_overflowing_adapted_product_is_named_not_a_conditioning_failure():
    """``D = 1``: ``E = 10³⁰⁰`` is finite, but ``B_1 = W_2^{-1} E`` overflows float64."""
    targets = torch.tensor([[[1e300]]], dtype=torch.float64)
    frozen = torch.tensor([[[[1.0]], [[1e-10]]]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"problem 0, rank setting 0: the adapted product over"):
        linear.construct_batch(targets, frozen, [1])
    for method in linear.METHODS:
        with pytest.raises(ValueError, match=r"overflows torch.float64: the entries"):
            linear.construct(targets[0], list(frozen[0]), 1, method=method)


def test_a_singular_adapted_layer_with_nothing_above_it_is_not_solved_with():
    """``W̄ = diag(1, 0)``, ``W_1 = W_2 = I``, ranks ``[2, 0]``: ``W'_1 = diag(1, 0)`` is exactly
    singular, but no layer above has rows to solve with it, so the entry is exact (as in
    :func:`linear.construct`) and no NaN from a 0/0 in its solve reaches the other layers."""
    diagonals = torch.tensor([[1.0, 0.0], [2.0, 3.0]], dtype=torch.float64)
    targets = torch.diag_embed(diagonals)  # the second problem does solve with W'_1 at R = 1
    frozen = torch.eye(2, dtype=torch.float64).expand(2, 2, 2, 2).clone()
    out = linear.construct_batch(targets, frozen, [[2, 0], 1])
    assert bool(torch.isfinite(out.B).all() and torch.isfinite(out.A).all())
    for i in range(2):
        for q in range(2):
            adapted = linear.adapted_product(list(frozen[i]), out.problem(i, q))
            torch.testing.assert_close(adapted, targets[i], rtol=0, atol=1e-15)
