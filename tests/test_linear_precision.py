"""Lemma 1's sequential solution in extended precision: where a deep construction loses accuracy."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import linear, verification
from lora_theory.linalg import AssumptionError


def gaussian(seed: int, width: int, depth: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    mats = torch.randn(depth + 1, width, width, generator=g, dtype=torch.float64)
    mats = mats / math.sqrt(width)
    return mats[0], list(mats[1:])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 6), depth=st.integers(1, 3))
def test_with_orthogonal_frozen_layers_every_version_is_exact(seed, width, depth):
    """Well-conditioned frozen products: the float64 construction, the rounded extended-precision
    factors (evaluated either way) and the conditioned construction all meet the target."""
    g = torch.Generator().manual_seed(seed)
    frozen = verification.orthogonal_layers(width, depth, g)
    target = torch.randn(width, width, generator=g, dtype=torch.float64) + 3 * torch.eye(width)
    check = linear.precision_check(target, frozen, math.ceil(width / depth), digits=30)
    errors = (check.float64, check.rounded, check.rounded_exact_product, check.conditioned)
    assert max(errors) <= 1e-11
    assert check.update_size > 0


def test_deep_sequential_solution_is_lost_in_the_float64_evaluation():
    """D = 16, L = 8: the 50-digit sequential factors, rounded to float64, are still nearly
    exact when multiplied exactly, but a float64 forward pass misses W̄ as badly as the float64
    construction does; the conditioned solution (same ranks) is exact."""
    target, frozen = gaussian(0, 16, 8)
    check = linear.precision_check(target, frozen, 2)
    assert check.float64 > 1e-7 and check.rounded > 1e-7  # far above 1e-9 both
    assert check.rounded_exact_product < 1e-3 * check.rounded
    assert check.conditioned < 1e-10
    assert check.update_size > 1e4  # the sequential updates are 1e5 times W̄ and cancel


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: linear.precision_check(*gaussian(0, 40, 2), 20), ValueError, "D ≤ 32"),
        (lambda: linear.precision_check(*gaussian(0, 4, 2), 1), ValueError, "threshold"),
        (lambda: linear.precision_check(*gaussian(0, 4, 2), 2, digits=10), ValueError, "digits"),
        (
            lambda: linear.precision_check(torch.eye(3), [torch.zeros(3, 3), torch.eye(3)], 2),
            AssumptionError,
            "singular",
        ),
    ],
)
def test_bad_input_is_refused_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()
