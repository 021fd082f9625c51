"""Factorizations reused for many solves, and the cheap bounds of a construction's self-check."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import solves
from lora_theory.linalg import Conditioning


def gaussian(seed: int, shape: tuple[int, ...], decay: float = 0.0) -> torch.Tensor:
    """Gaussian matrices, optionally with singular values spread over ``10^-decay``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*shape, generator=g, dtype=torch.float64)
    if decay:
        a = a @ torch.diag(torch.logspace(0, -decay, shape[-1], dtype=torch.float64))
    return a


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(1, 40), decay=st.sampled_from([0, 4, 10]))
def test_lu_solves_match_a_direct_solve(seed, width, decay):
    a = gaussian(seed, (width, width), decay) + torch.eye(width, dtype=torch.float64)
    b = gaussian(seed + 1, (width, 3))
    f = solves.LUFactorization.of("A", a)
    torch.testing.assert_close(f.solve(b), torch.linalg.solve(a, b), rtol=1e-9, atol=1e-12)
    right = f.solve(b.T, left=False)
    torch.testing.assert_close(right, torch.linalg.solve(a, b.T, left=False), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(1, 60), decay=st.sampled_from([0, 3, 8, 12]))
def test_inverse_norm_is_a_lower_bound_and_usually_tight(seed, width, decay):
    a = gaussian(seed, (width, width), decay)
    exact = float(torch.linalg.matrix_norm(torch.linalg.inv(a), 1))
    estimate = float(solves.LUFactorization.of("A", a).inverse_norm1())
    assert estimate <= exact * (1 + 1e-9)
    assert estimate >= exact / 10  # Hager–Higham: within a factor 3 in practice


def test_a_batch_is_estimated_matrix_by_matrix():
    a = gaussian(0, (5, 30, 30), 6)
    batch = solves.LUFactorization.of("A", a).inverse_norm1()
    one_by_one = torch.stack([solves.LUFactorization.of("A", m).inverse_norm1() for m in a])
    torch.testing.assert_close(batch, one_by_one)


def test_a_zero_pivot_reads_singular():
    a = torch.zeros(3, 3, dtype=torch.float64)
    a[0, 0] = 1.0
    f = solves.LUFactorization.of("S", a)
    assert bool(f.zero_pivot)
    (c,) = solves.conditioning([solves.LUFactorization.of("S", a)])
    assert c.singular
    assert float(f.inverse_norm1()) == float("inf")


@pytest.mark.parametrize("width", [8, solves.EXACT_WIDTH])
def test_conditioning_is_exact_up_to_the_exact_width(width):
    mats = [gaussian(s, (width, width), 5) for s in range(3)]
    got = solves.conditioning([solves.LUFactorization.of(f"W_{k}", m) for k, m in enumerate(mats)])
    for c, m in zip(got, mats, strict=True):
        ref = Conditioning.of(c.name, m)
        assert not c.estimated
        assert c.condition == pytest.approx(ref.condition, rel=1e-10)


@pytest.mark.parametrize("width", [solves.EXACT_WIDTH + 32, solves.BATCH_WIDTH + 32])
def test_conditioning_is_estimated_above_the_exact_width(width):
    """All matrices at once up to ``BATCH_WIDTH``, one at a time above it: the same bounds."""
    mats = [gaussian(s, (width, width), 7) for s in (3, 4)]
    got = solves.conditioning([solves.LUFactorization.of(f"W_{k}", m) for k, m in enumerate(mats)])
    for c, m in zip(got, mats, strict=True):
        kappa_1 = float(torch.linalg.cond(m, 1))
        assert c.estimated and "estimate" in str(c)
        assert kappa_1 / 10 <= c.condition <= kappa_1 * (1 + 1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 300), cols=st.integers(1, 300))
def test_norm2_lower_never_exceeds_the_spectral_norm(seed, rows, cols):
    a = gaussian(seed, (rows, cols))
    exact = float(torch.linalg.matrix_norm(a, 2))
    lower = float(solves.norm2_lower(a))
    assert lower <= exact * (1 + 1e-12)
    if max(rows, cols) <= solves.NORM_EXACT_WIDTH:
        assert lower == pytest.approx(exact, rel=1e-12)
    else:
        assert lower >= 0.9 * exact  # power iteration, 30 steps, on a Gaussian matrix


def test_norm2_lower_of_a_zero_matrix_is_zero():
    assert float(solves.norm2_lower(torch.zeros(200, 200, dtype=torch.float64))) == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: solves.LUFactorization.of("A", torch.ones(2, 3)), "must be square"),
        (lambda: solves.LUFactorization.of("A", torch.full((2, 2), float("nan"))), "non-finite"),
        (lambda: solves.LUFactorization.of(3, torch.eye(2)), "name must be a string"),
        (lambda: solves.LUFactorization.of("A", torch.eye(2)).solve(torch.ones(3, 1)), "D = 2"),
        (lambda: solves.LUFactorization.of("A", torch.eye(2)).solve(torch.ones(2, 1), 1), "bool"),
        (lambda: solves.conditioning([torch.eye(2)]), "LUFactorization objects only"),
        (lambda: solves.norm2_lower(torch.ones(3)), "non-empty"),
    ],
)
def test_bad_input_is_refused_clearly(call, match):
    with pytest.raises(ValueError, match=match):
        call()
