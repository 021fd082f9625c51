"""The conditioned exact construction (beyond the paper): exact in deep frozen models."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import box_inputs, random_pair
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_theory import conditioned, fnn, linear
from lora_theory.linalg import AssumptionError, ExactnessError, product
from lora_theory.linear import construction


def relative_error(target, frozen, adapters):
    diff = linear.adapted_product(frozen, adapters) - target
    return float(torch.linalg.matrix_norm(diff, 2) / torch.linalg.matrix_norm(target, 2))


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 9), depth=st.integers(6, 8), target_depth=st.integers(1, 2))
def test_deep_fnn_is_exact_to_1e9_with_auto(seed, depth, target_depth):
    """The depth/seed grid of the chapter (D = 16, nn.Linear init, threshold rank)."""
    target, frozen = random_pair(seed, 16, target_depth, depth)
    rank = fnn.required_rank(target, frozen)
    adapted = fnn.construct(target, frozen, rank, input_bound=1.0, method="auto")
    x = box_inputs(16, 1.0, 200, 7)
    ref = float(target(x).abs().max())
    cert = fnn.certify(target, adapted, 1.0, rank)
    assert cert.bound <= 1e-9 * ref
    assert float((adapted(x) - target(x)).abs().max()) <= 1e-9 * ref
    assert all(a.inner_dim <= rank for a in adapted.adapters)


@pytest.mark.filterwarnings("ignore::lora_theory.linear.ConditioningWarning")
def test_sequential_fails_where_conditioned_is_exact():
    """L̄ = 1, L = 8, seed 0: Lemma 1's own factors refuse; the conditioned ones are exact."""
    target, frozen = random_pair(0, 16, 1, 8)
    rank = fnn.required_rank(target, frozen)
    with pytest.raises((AssumptionError, ExactnessError)):
        fnn.construct(target, frozen, rank, input_bound=1.0, method="sequential")
    adapted = fnn.construct(target, frozen, rank, input_bound=1.0, method="conditioned")
    assert fnn.certify(target, adapted, 1.0, rank).bound <= 1e-9


def gaussian_instance(seed, width, depth):
    g = torch.Generator().manual_seed(seed)
    mats = [torch.randn(width, width, generator=g, dtype=torch.float64) for _ in range(depth + 1)]
    return mats[0] / math.sqrt(width), [w / math.sqrt(width) for w in mats[1:]]


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000), width=st.integers(2, 10), depth=st.integers(1, 5), data=st.data()
)
def test_every_state_choice_is_an_exact_solution_with_the_ranks(seed, width, depth, data):
    """Any states V give ∏(W_l + B_l A_l) = W̄ with rank(B_l A_l) ≤ R_l (module docstring)."""
    target, frozen = gaussian_instance(seed, width, depth)
    cuts = sorted(
        data.draw(st.lists(st.integers(0, width), min_size=depth - 1, max_size=depth - 1))
    )
    bounds = [0, *cuts, width]
    steps = data.draw(st.sampled_from([0, 5]))
    adapters = conditioned.adapters(target, frozen, bounds, steps)
    assert [a.inner_dim for a in adapters] == [b - a for a, b in itertools.pairwise(bounds)]
    amp = conditioned.roundoff_amplification(target, frozen, adapters)
    assert relative_error(target, frozen, adapters) <= 1e-13 * width * max(amp, 1.0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 8), depth=st.integers(1, 5))
def test_the_objective_is_the_log_of_the_summed_amplification(seed, width, depth):
    """What L-BFGS minimises is ``log Σ_m ‖N_m‖_F ‖W'_m‖_F ‖M_{m−1}‖_F`` of the adapters that the
    states give (module docstring); here formed from the state matrices instead, as
    ``N_m = W̄ Z Φ_m^{-1}``, ``W'_m = Φ_m Φ_{m−1}^{-1}``, ``M_{m−1} = Φ_{m−1} Z^{-1}``."""
    target, frozen = gaussian_instance(seed, width, depth)
    bounds = [min(math.ceil(width / depth) * m, width) for m in range(depth + 1)]
    v = conditioned._greedy_states(target, frozen, bounds)
    above = conditioned._above(frozen)
    value = conditioned._log_amplification(
        frozen, conditioned._pairs(v, target, frozen, bounds, above)
    )
    phis = conditioned._states(v, target, frozen, bounds, above)
    inv = [torch.linalg.inv(p) for p in phis]
    fro = torch.linalg.matrix_norm
    total = sum(
        float(fro(target @ phis[0] @ inv[m]) * fro(phis[m] @ inv[m - 1]))
        * float(fro(phis[m - 1] @ inv[0]))
        for m in range(1, depth + 1)
    )
    assert float(value) == pytest.approx(math.log(total), rel=1e-6, abs=1e-6)


def test_refinement_lowers_the_amplification():
    target, frozen = random_pair(1, 16, 1, 8)
    ws, wbar = frozen.weights, target.weights[0]
    bounds = [min(2 * m, 16) for m in range(9)]
    greedy = conditioned.adapters(wbar, ws, bounds, steps=0)
    refined = conditioned.adapters(wbar, ws, bounds)
    amp_greedy = conditioned.roundoff_amplification(wbar, ws, greedy)
    amp_refined = conditioned.roundoff_amplification(wbar, ws, refined)
    assert amp_refined < amp_greedy / 10
    assert relative_error(wbar, ws, refined) < relative_error(wbar, ws, greedy)
    assert relative_error(wbar, ws, refined) <= 1e-10


@pytest.mark.filterwarnings("ignore::lora_theory.linear.ConditioningWarning")
def test_linear_deep_gaussian_at_the_threshold_and_above():
    target, frozen = gaussian_instance(0, 32, 8)
    for rank in (4, 5):  # threshold ⌈32/8⌉ and one above
        with pytest.raises((AssumptionError, ExactnessError)):
            linear.construct(target, frozen, rank, method="sequential", rtol=1e-9)
        adapters = linear.construct(target, frozen, rank, rtol=1e-9, method="auto")
        assert relative_error(target, frozen, adapters) <= 1e-10
        assert all(a.inner_dim <= rank for a in adapters)


@pytest.mark.filterwarnings("ignore::lora_theory.linear.ConditioningWarning")
def test_auto_refines_wide_problems_to_the_spectral_target(monkeypatch):
    """Above ``REFINE_MAX_WIDTH`` (lowered here to 16) ``"auto"`` still refines, and stops once
    the spectral error is within ``WIDE_REFINE_RTOL · ‖W̄‖₂``."""
    target, frozen = gaussian_instance(0, 32, 8)
    narrow = linear.construct(target, frozen, 4, method="auto")
    calls = []
    real = conditioned.adapters

    def counted(*args, **kwargs):
        calls.append(kwargs.get("steps", args[3] if len(args) > 3 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(conditioned, "REFINE_MAX_WIDTH", 16)
    monkeypatch.setattr(conditioned, "adapters", counted)
    wide = linear.construct(target, frozen, 4, method="auto")
    assert calls[-1] == construction.WIDE_REFINE_STEPS  # the wide rung ran
    assert relative_error(target, frozen, wide) <= construction.WIDE_REFINE_RTOL
    assert relative_error(target, frozen, narrow) <= 1e-10


def test_wide_auto_keeps_a_solution_within_the_spectral_target(monkeypatch):
    """``D = 16``, ``L = 5``: the sequential solution misses ``AUTO_RTOL`` (certificate 7e-11 of
    the scale) but is within ``WIDE_REFINE_RTOL`` (1.6e-10 relative): above ``REFINE_MAX_WIDTH``
    auto keeps it and builds nothing else."""
    target, frozen = gaussian_instance(0, 16, 5)
    calls = []
    real = conditioned.adapters
    monkeypatch.setattr(conditioned, "REFINE_MAX_WIDTH", 8)
    monkeypatch.setattr(conditioned, "adapters", lambda *a, **k: calls.append(a) or real(*a, **k))
    auto = linear.construct(target, frozen, 4, method="auto")
    seq = linear.construct(target, frozen, 4)
    assert not calls
    for a, s in zip(auto, seq, strict=True):
        assert torch.equal(a.B, s.B) and torch.equal(a.A, s.A)


def test_auto_keeps_the_sequential_result_when_it_is_exact():
    target, frozen = gaussian_instance(3, 8, 2)
    auto = linear.construct(target, frozen, 4, method="auto")
    seq = linear.construct(target, frozen, 4)  # the default
    for a, s in zip(auto, seq, strict=True):
        assert torch.equal(a.B, s.B) and torch.equal(a.A, s.A)


def test_conditioned_needs_the_threshold_and_a_full_rank_error():
    target, frozen = gaussian_instance(4, 8, 2)
    with pytest.raises(AssumptionError, match="Σ_l R_l ≥ D"):
        linear.construct(target, frozen, 3, method="conditioned")  # 2·3 < 8
    low_rank = product(frozen) + torch.ones(8, 8, dtype=torch.float64)
    with pytest.raises(AssumptionError, match="rank"):
        linear.construct(low_rank, frozen, 4, method="conditioned")
    with pytest.raises(ValueError, match="method must be one of"):
        linear.construct(target, frozen, 4, method="qr")
    with pytest.raises(ValueError, match="bounds must run from 0 to D=8"):
        conditioned.adapters(target, frozen, [0, 4, 7])


def test_below_the_threshold_auto_is_the_sequential_construction():
    target, frozen = gaussian_instance(5, 10, 3)
    adapters = linear.construct(target, frozen, 2, method="auto")
    err = float(torch.linalg.matrix_norm(linear.adapted_product(frozen, adapters) - target, 2))
    assert err == pytest.approx(linear.min_error(target, frozen, 2), rel=1e-9)


def test_refine_keeps_its_budget_and_never_ends_worse():
    """``_refine`` on the Rosenbrock function: a budget of 3 iterations improves on the start
    and stops; a large one (with restarts) reaches the minimum at (1, 1)."""

    def rosenbrock(v: torch.Tensor) -> torch.Tensor:
        return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2

    start = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    short = start.clone().requires_grad_(True)
    conditioned._refine(short, 3, lambda: rosenbrock(short))
    assert float(rosenbrock(short.detach())) < float(rosenbrock(start))
    long = start.clone().requires_grad_(True)
    conditioned._refine(long, 500, lambda: rosenbrock(long))
    torch.testing.assert_close(long.detach(), torch.ones(2, dtype=torch.float64), atol=1e-4, rtol=0)


def test_accept_stops_the_refinement_at_the_first_check_it_passes():
    """``accept`` is called with the adapters every ``CHECK_EVERY`` iterations: always true, the
    refinement stops at the first check; never true, it is the refinement without checks (the
    L-BFGS history is kept across them); the Rosenbrock run stops where it is told."""
    target, frozen = random_pair(1, 16, 1, 8)
    ws, wbar = frozen.weights, target.weights[0]
    bounds = [min(2 * m, 16) for m in range(9)]
    seen = []

    def accept(adapters) -> bool:
        seen.append([a.inner_dim for a in adapters])
        return True

    early = conditioned.adapters(wbar, ws, bounds, accept=accept)
    assert seen == [[2] * 8]
    steps = 3 * conditioned.CHECK_EVERY
    never = conditioned.adapters(wbar, ws, bounds, steps, accept=lambda adapters: False)
    full = conditioned.adapters(wbar, ws, bounds, steps)
    for a, b in zip(never, full, strict=True):
        assert torch.equal(a.B, b.B) and torch.equal(a.A, b.A)
    assert not torch.equal(early[0].B, full[0].B)
    v = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    calls = []

    def objective() -> torch.Tensor:
        return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2

    conditioned._refine(v, 500, objective, lambda: calls.append(1) or len(calls) == 2)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="accept must be a callable"):
        conditioned.adapters(wbar, ws, bounds, accept=1)
