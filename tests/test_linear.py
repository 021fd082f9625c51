"""Lemma 1 (chapter "Linear models"): the construction attains σ_{RL+1}(E); exact at threshold."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import linalg, linear
from lora_theory.linalg import AssumptionError, low_rank_approx, sigma, singular_values
from lora_theory.linalg import numerical_rank as linalg_rank
from lora_theory.linear import construction


def spectral(a: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a, 2))


def random_instance(seed: int, width: int, depth: int, rank_e: int | None = None):
    """Gaussian frozen factors and a target whose error matrix has rank ``rank_e`` (default D)."""
    g = torch.Generator().manual_seed(seed)
    frozen = [torch.randn(width, width, generator=g, dtype=torch.float64) for _ in range(depth)]
    rank_e = width if rank_e is None else rank_e
    e = torch.randn(width, rank_e, generator=g, dtype=torch.float64) @ torch.randn(
        rank_e, width, generator=g, dtype=torch.float64
    )
    target = linear.error_matrix(torch.zeros(width, width), frozen).neg() + e  # ∏W + E
    return target, frozen


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(2, 12),
    depth=st.integers(1, 4),
    data=st.data(),
)
def test_construction_attains_sigma_rl_plus_one(seed, width, depth, data):
    rank_e = data.draw(st.integers(0, width), label="rank(E)")
    rank = data.draw(st.integers(1, width), label="R")
    target, frozen = random_instance(seed, width, depth, rank_e)
    adapters = linear.construct(target, frozen, rank)
    err = spectral(linear.adapted_product(frozen, adapters) - target)
    scale = max(1.0, spectral(target))
    assert err == pytest.approx(linear.min_error(target, frozen, rank), abs=1e-8 * scale)
    assert all(a.rank() <= rank for a in adapters)
    if rank * depth >= rank_e:  # at or above ⌈rank(E)/L⌉: exact representation
        assert err <= 1e-8 * scale


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 10), depth=st.integers(1, 4))
def test_no_adapter_beats_the_bound(seed, width, depth):
    """Lower bound of Lemma 1: random rank-R adapters never get below σ_{RL+1}(E)."""
    target, frozen = random_instance(seed, width, depth)
    g = torch.Generator().manual_seed(seed + 1)
    rank = max(1, width // (depth + 1))
    deltas = [
        torch.randn(width, rank, generator=g, dtype=torch.float64)
        @ torch.randn(rank, width, generator=g, dtype=torch.float64)
        for _ in frozen
    ]
    prod = frozen[0] + deltas[0]
    for w, d in zip(frozen[1:], deltas[1:], strict=True):
        prod = (w + d) @ prod
    assert spectral(prod - target) >= linear.min_error(target, frozen, rank) - 1e-9


def test_required_rank_is_the_exactness_threshold():
    target, frozen = random_instance(0, 16, 3, rank_e=10)
    assert linear.required_rank(target, frozen) == math.ceil(10 / 3)
    r = linear.required_rank(target, frozen)
    below = linear.construct(target, frozen, r - 1)
    at = linear.construct(target, frozen, r)
    assert spectral(linear.adapted_product(frozen, below) - target) > 1e-3
    assert spectral(linear.adapted_product(frozen, at) - target) < 1e-9


def test_min_error_is_zero_when_rl_reaches_d():
    target, frozen = random_instance(1, 8, 2)
    assert linear.min_error(target, frozen, 4) == 0.0
    assert linear.min_error(target, frozen, 3) == pytest.approx(
        float(sigma(linear.error_matrix(target, frozen), 7))
    )


def test_per_layer_ranks_only_the_sum_matters():
    target, frozen = random_instance(2, 12, 3)
    errs = []
    for ranks in ([1, 2, 3], [3, 2, 1], [2, 2, 2], [4, 1, 1]):
        ads = linear.construct(target, frozen, ranks)
        assert [a.inner_dim for a in ads] == ranks
        errs.append(spectral(linear.adapted_product(frozen, ads) - target))
    assert np.ptp(errs) < 1e-8
    assert errs[0] == pytest.approx(float(sigma(linear.error_matrix(target, frozen), 7)), rel=1e-9)


def test_population_mse_is_the_frobenius_tail():
    target, frozen = random_instance(3, 10, 2)
    e = linear.error_matrix(target, frozen)
    for rank in (1, 3, 5):
        resid = e - low_rank_approx(e, 2 * rank)
        assert linear.population_mse(target, frozen, rank) == pytest.approx(
            float((resid**2).sum() / 10)
        )
        ads = linear.construct(target, frozen, rank)
        diff = linear.adapted_product(frozen, ads) - target
        assert float((diff**2).sum() / 10) == pytest.approx(
            linear.population_mse(target, frozen, rank), rel=1e-8
        )


def test_accepts_numpy_and_float32_inputs():
    target, frozen = random_instance(4, 6, 2)
    ads = linear.construct(target.numpy().astype(np.float32), [w.numpy() for w in frozen], 3)
    assert ads[0].B.dtype == torch.float64
    ads32 = linear.construct(target, frozen, 3, dtype=torch.float32)
    assert ads32[0].A.dtype == torch.float32
    err32 = spectral(linear.adapted_product(frozen, ads32).double() - target)
    assert err32 < 1e-3 * spectral(target)


def test_frozen_model_already_equal_to_target_needs_no_adapter():
    _, frozen = random_instance(5, 5, 2)
    target = frozen[1] @ frozen[0]
    assert linear.required_rank(target, frozen) == 0
    assert all(a.inner_dim == 0 for a in linear.construct(target, frozen, 2))


def test_singular_frozen_layer_is_reported():
    target, frozen = random_instance(6, 6, 2)
    frozen[1][:, 0] = 0.0  # W_2 singular: P_1 = W_2 cannot be inverted
    with pytest.raises(AssumptionError, match=r"W_2.*every frozen W_l invertible"):
        linear.construct(target, frozen, 1)
    report = linear.diagnose(target, frozen, 1)
    assert not report.holds
    assert report.worst.name == "W_2"


def test_singular_corrected_product_is_reported():
    """∏W + LR_R(E) singular: the second layer's solve through W_1 + ΔW_1 must fail loudly."""
    width, rank = 4, 1
    frozen = [torch.eye(width, dtype=torch.float64), torch.eye(width, dtype=torch.float64)]
    # E = diag(-1, 0.5, 0.25, 0.125): LR_1(E) = diag(-1, 0, 0, 0) and I + LR_1(E) is singular.
    target = torch.diag(torch.tensor([0.0, 1.5, 1.25, 1.125], dtype=torch.float64))
    report = linear.diagnose(target, frozen, rank)
    assert not report.holds and "LR_1" in report.worst.name
    with pytest.raises(AssumptionError, match=r"assumption fails \(∏W \+ LR_1\(E\)"):
        linear.construct(target, frozen, rank)


def test_diagnose_lists_the_ranks_the_construction_uses():
    """``r = min(R_1 + … + R_j, rank(E))`` for ``j < L``, each ``r ≥ 1`` once; never ``∏W``."""

    def ranks_listed(target, frozen, rank):
        report = linear.diagnose(target, frozen, rank)
        assert str(report).startswith("Lemma 1 assumption holds; worst ")
        return [int(c.name.split("LR_")[1].split("(")[0]) for c in report.corrected]

    target, frozen = random_instance(3, 6, 4)
    assert ranks_listed(target, frozen, [2, 0, 3, 1]) == [2, 5]
    assert ranks_listed(target, frozen, [0, 0, 2, 6]) == [2]
    assert ranks_listed(target, frozen, 6) == [6]  # min(6, 12, 18, rank(E) = 6)
    low, _ = random_instance(3, 6, 4, rank_e=3)
    assert ranks_listed(low, frozen, [2, 0, 3, 1]) == [2, 3]
    assert ranks_listed(linalg.product(frozen), frozen, 2) == []  # E = 0
    assert ranks_listed(target, frozen[:1], 2) == []  # L = 1: nothing is inverted
    assert linear.diagnose(target, frozen[:1], 2).worst.name == "W_1"


def test_the_frozen_product_is_judged_by_its_factors():
    """Six factors ``diag(1, 1, 1, 10⁻³)`` (``cond = 10³`` each) whose float64 product has
    ``cond = 10¹⁸ > 1/ε``: ``∏W`` is never inverted and is non-singular with its factors, so
    :func:`~lora_theory.linear.diagnose` does not list it and Lemma 1's hypothesis holds. The
    sequential solve is refused (``W'_1`` inherits the conditioning of ``W_6 ⋯ W_2``), and
    ``method="auto"`` goes on to an exact solution; a singular ``∏W + LR_1(E)`` still stops it."""
    d = torch.tensor([1.0, 1.0, 1.0, 1e-3], dtype=torch.float64)
    frozen = [torch.diag(d)] * 6
    assert float(torch.linalg.cond(linalg.product(frozen))) > linalg.SINGULAR_CONDITION
    target, _ = random_instance(1, 4, 1)
    report = linear.diagnose(target, frozen, 1)
    assert report.holds and str(report).startswith("Lemma 1 assumption holds")
    assert [c.name for c in report.corrected] == [f"∏W + LR_{r}(E)" for r in (1, 2, 3, 4)]
    with pytest.raises(AssumptionError, match="inherits the conditioning of the frozen product"):
        linear.construct(target, frozen, 1)
    adapters = linear.construct(target, frozen, 1, method="auto")
    assert spectral(linear.adapted_product(frozen, adapters) - target) < 1e-7 * spectral(target)
    eye = [torch.eye(4, dtype=torch.float64)] * 2
    singular = torch.diag(torch.tensor([0.0, 1.5, 1.25, 1.125], dtype=torch.float64))
    q = construction._problem(singular, eye, eye[0], 2, 1e-7)
    assert construction._hypothesis_fails(q, [1, 1])
    with pytest.raises(AssumptionError, match=r"assumption fails \(∏W \+ LR_1\(E\)"):
        linear.construct(singular, eye, 1, method="auto")


@pytest.mark.parametrize(
    ("rank", "match"),
    [
        (0, "rank out of range"),
        (7, "rank out of range"),
        (2.5, "integer"),
        (True, "integer"),
        ([1, 2, 3], "per-layer ranks"),
        ([1, -1], r"rank\[1\] out of range"),
        ([1, 7], r"rank\[1\] out of range"),
    ],
)
def test_bad_rank(rank, match):
    target, frozen = random_instance(7, 6, 2)
    with pytest.raises(ValueError, match=match):
        linear.construct(target, frozen, rank)


def test_a_rank_zero_layer_keeps_its_frozen_weight():
    target, frozen = random_instance(7, 6, 2)
    adapters = linear.construct(target, frozen, [2, 0])
    assert adapters[1].inner_dim == 0
    achieved = torch.linalg.matrix_norm(linear.adapted_product(frozen, adapters) - target, 2)
    assert float(achieved) == pytest.approx(linear.min_error(target, frozen, [2, 0]), rel=1e-9)
    assert linear.min_error(target, frozen, [2, 0]) == linear.min_error(target, frozen, [1, 1])


def test_bad_shapes_and_values():
    target, frozen = random_instance(8, 5, 2)
    with pytest.raises(ValueError, match="square"):
        linear.construct(target[:, :4], frozen, 1)
    with pytest.raises(ValueError, match="target has shape"):
        linear.construct(torch.eye(4), frozen, 1)
    with pytest.raises(ValueError, match="share one width"):
        linear.construct(target, [frozen[0], torch.eye(4)], 1)
    with pytest.raises(ValueError, match="at least one"):
        linear.construct(target, [], 1)
    with pytest.raises(ValueError, match="single matrix"):
        linear.construct(target, frozen[0], 1)
    bad = target.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        linear.construct(bad, frozen, 1)
    with pytest.raises(ValueError, match="numeric"):
        linear.construct("W", frozen, 1)


def test_ill_conditioned_solve_warns():
    target, frozen = random_instance(9, 5, 2)
    frozen[1] = frozen[1] @ torch.diag(
        torch.tensor([1.0, 1.0, 1.0, 1.0, 1e-9], dtype=torch.float64)
    )
    with pytest.warns(linear.ConditioningWarning, match="W_2"):
        linear.construct(target, frozen, 1)


def test_singular_values_convention():
    a = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    assert float(sigma(a, 1)) == 3.0 and float(sigma(a, 4)) == 0.0
    assert singular_values(a).tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError):
        sigma(a, 0)


def test_deep_ill_conditioned_frozen_product_is_explained():
    """D = 32, L = 12: the assumption holds, but P_l^{-1} makes the solve hopeless in float64."""
    g = torch.Generator().manual_seed(0)
    scale = 1 / math.sqrt(32)
    frozen = [torch.randn(32, 32, generator=g, dtype=torch.float64) * scale for _ in range(12)]
    target = torch.randn(32, 32, generator=g, dtype=torch.float64) * scale
    with pytest.raises(AssumptionError, match=r"assumption holds.*frozen product"):
        linear.construct(target, frozen, 2)


def test_telescoping_identity():
    _, frozen = random_instance(10, 6, 3)
    g = torch.Generator().manual_seed(0)
    deltas = [
        torch.randn(6, 1, generator=g, dtype=torch.float64)
        @ torch.randn(1, 6, generator=g, dtype=torch.float64)
        for _ in frozen
    ]
    prod_adapted = (frozen[2] + deltas[2]) @ (frozen[1] + deltas[1]) @ (frozen[0] + deltas[0])
    terms = linear.telescoping_terms(frozen, deltas)
    assert torch.allclose(sum(terms), prod_adapted - frozen[2] @ frozen[1] @ frozen[0])
    assert all(linalg_rank(t) <= 1 for t in terms)
    with pytest.raises(ValueError, match="one"):
        linear.telescoping_terms(frozen, deltas[:2])


@pytest.mark.filterwarnings("ignore::lora_theory.linear.ConditioningWarning")
def test_a_wide_deep_construction_is_verified_by_its_spectral_error():
    """D = 256 > ``solves.NORM_EXACT_WIDTH``: the tolerances come from lower bounds and the
    conditioning from estimates. Here the adapted product is ~1e-5 (Frobenius) away from
    ``∏W + LR_k(E)``, so the cheap certificate is inconclusive and the spectral error decides;
    Lemma 1's claim (the spectral error equals ``σ_{RL+1}(E)``) still holds to 1e-7."""
    g = torch.Generator().manual_seed(0)
    mats = [torch.randn(256, 256, generator=g, dtype=torch.float64) / 16 for _ in range(5)]
    target, frozen = mats[0], mats[1:]
    adapters = linear.construct(target, frozen, 32)
    adapted = linear.adapted_product(frozen, adapters)
    scale = spectral(target) + spectral(linear.error_matrix(0 * target, frozen))
    intended = (
        target
        - linear.error_matrix(target, frozen)
        + low_rank_approx(linear.error_matrix(target, frozen), 128)
    )
    assert float(torch.linalg.matrix_norm(adapted - intended)) > 1e-7 * scale
    gap = abs(spectral(adapted - target) - linear.min_error(target, frozen, 32))
    assert gap <= 1e-7 * scale


@contextlib.contextmanager
def gram_route_at_every_width() -> Iterator[None]:
    """The Gram route also at the small widths of these tests (it is tried above ``GRAM_WIDTH``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(construction, "GRAM_WIDTH", 0)
        yield


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(1, 12),
    depth=st.integers(1, 4),
    data=st.data(),
)
def test_the_gram_route_is_the_svd_construction(seed, width, depth, data):
    """``V`` from ``eigh(EᵀE)``: the same error as from the SVD at every rank, and at the
    threshold the same ``ΔW_l`` (up to round-off), each within its rank."""
    target, frozen = random_instance(seed, width, depth)
    rank = data.draw(st.integers(1, math.ceil(width / depth)), label="R")
    with gram_route_at_every_width():
        gram = linear.construct(target, frozen, rank)
    svd = linear.construct(target, frozen, rank)
    scale = spectral(target) + spectral(linear.error_matrix(torch.zeros_like(target), frozen))
    errors = [spectral(linear.adapted_product(frozen, a) - target) for a in (gram, svd)]
    assert abs(errors[0] - errors[1]) <= 1e-9 * scale
    for a, b in zip(gram, svd, strict=True):
        assert a.inner_dim == b.inner_dim <= rank
        if rank * depth >= width:
            assert spectral(a.delta() - b.delta()) <= 1e-8 * scale


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(2, 12),
    depth=st.integers(1, 3),
    data=st.data(),
)
def test_the_gram_route_bounds_its_optimum(seed, width, depth, data):
    """Below the threshold the route's ``gap`` bounds both the error of its ``σ_{k+1}(E)`` and
    how far ``‖E − E V_k V_kᵀ‖₂`` is from it; where it cannot vouch, the SVD is used."""
    target, frozen = random_instance(seed, width, depth)
    k = data.draw(st.integers(1, width - 1), label="k")
    wbar, ws, prod = linalg.linear_problem(target, frozen, torch.float64)
    with gram_route_at_every_width():
        p = construction._problem(wbar, ws, prod, k, 1e-7)
    sigma_next = float(torch.linalg.svdvals(wbar - prod)[k])
    truncated = spectral(wbar - p.intended(k))
    assert abs(truncated - sigma_next) <= p.gap + 1e-14 * p.scale
    if p.gap:
        assert p.rank_e == k and p.gap <= construction.GRAM_SHARE * 1e-7 * p.scale
        assert abs(float(p.s[k]) - sigma_next) <= p.gap


@pytest.mark.parametrize("sigma_min", [0.0, 1e-7])
def test_a_nearly_singular_error_matrix_takes_the_svd(sigma_min):
    """``σ_D(E) / σ_1(E)`` below ``√GRAM_FLOOR``: the Gram matrix cannot tell rank ``D`` from
    ``D − 1``, so the SVD decides; with ``σ_D(E) = 0`` the last direction gets no adapter."""
    width, depth = 6, 2
    target, frozen = random_instance(3, width, depth)
    u, s, vh = torch.linalg.svd(linear.error_matrix(target, frozen))
    s[-1] = sigma_min * s[0]
    target = target - linear.error_matrix(target, frozen) + (u * s) @ vh
    with gram_route_at_every_width():
        adapters = linear.construct(target, frozen, width // depth)
    assert sum(a.inner_dim for a in adapters) == width - (sigma_min == 0.0)
    assert spectral(linear.adapted_product(frozen, adapters) - target) <= 1e-9 * spectral(target)
