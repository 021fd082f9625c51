"""The seed's adaptive rank allocation, optimal allocation, initialisations, gradient readings and
the matrix-problem dynamics (lora_theory.allocation)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lora_theory import allocation as al
from lora_theory.linalg import low_rank_approx
from lora_theory.runtime import generator


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small matrices: one thread avoids thread contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# The seed's code, transcribed as literally as possible; it reads a global ``D``.
D = 0


def adaptive_rank_allocation(U, S, R_total):
    """특이값 기반 적응적 rank 할당"""
    R1 = int(R_total * 0.7)  # 큰 특이값 방향에 70% rank

    B = np.zeros((D, R_total))
    A = np.zeros((D, R_total))

    # 상위 R1개 특이값 방향에 더 많은 rank 할당
    for i in range(R1):
        B[:, i] = U[:, i] * np.sqrt(S[i])
        A[:, i] = U[:, i] * np.sqrt(S[i])

    # 나머지 방향에 적은 rank 할당
    for i in range(R1, R_total):
        if i < D:
            B[:, i] = U[:, i] * np.sqrt(S[i]) * 0.5
            A[:, i] = U[:, i] * np.sqrt(S[i]) * 0.5

    return B, A


def literal(U, S, R_total):
    global D
    D = U.shape[0]
    return adaptive_rank_allocation(U, S, R_total)


def orthogonal(width: int, seed: int) -> torch.Tensor:
    return al.random_orthogonal(width, torch.Generator().manual_seed(seed))


@given(
    width=st.integers(1, 8),
    extra=st.integers(-3, 3),
    r_total=st.integers(0, 13),
    seed=st.integers(0, 2**16),
    as_numpy=st.booleans(),
)
def test_seed_proposal_matches_the_literal_transcription(width, extra, r_total, seed, as_numpy):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((width, max(1, width + extra)))  # not necessarily square
    s = rng.exponential(size=max(1, width + extra))  # unsorted, as the code never sorts
    try:
        b_lit, a_lit = literal(u, s, r_total)
    except IndexError:
        with pytest.raises(ValueError, match="IndexError"):
            al.seed_proposal(u, s, r_total)
        return
    args = (u, s) if as_numpy else (torch.from_numpy(u), torch.from_numpy(s))
    b, a = al.seed_proposal(*args, r_total)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float64
    assert b.shape == (width, r_total) and a.shape == (r_total, width)  # PEFT orientation
    np.testing.assert_array_equal(b.numpy(), b_lit)
    np.testing.assert_array_equal(a.numpy(), a_lit.T)


def test_seed_proposal_beyond_d_keeps_zero_columns_like_the_code():
    u, s = orthogonal(5, 0).numpy(), np.arange(5.0, 0.0, -1.0)
    b, _ = al.seed_proposal(u, s, 7)  # R1 = 4, columns 5 and 6 skipped by `if i < D`
    b_lit, _ = literal(u, s, 7)
    np.testing.assert_array_equal(b.numpy(), b_lit)
    assert torch.count_nonzero(b[:, 5:]) == 0
    with pytest.raises(ValueError, match="IndexError"):
        al.seed_proposal(u, s, 9)  # R1 = 6 > D: the code's first loop reads U[:, 5]


@pytest.fixture(scope="module")
def setting() -> al.SeedSetting:
    return al.seed_setting(torch.Generator().manual_seed(0))


def test_seed_setting_is_the_seeds(setting):
    assert setting.E.shape == (64, 64)
    s = torch.linalg.svdvals(setting.E)
    torch.testing.assert_close(s, 10 * 0.7 ** torch.arange(64.0, dtype=torch.float64))
    assert not al.is_symmetric(setting.E, tol=1e-3)
    torch.testing.assert_close(setting.target - setting.frozen, setting.E)


def test_seed_proposal_with_no_rank(setting):
    rep = al.analyse_seed_proposal(setting.E, 0)
    assert rep.b_basis == rep.a_basis == "zero" and rep.rank == 0 and not rep.reallocated
    assert rep.fro.seed == rep.fro.zero == rep.fro.eckart_young


@pytest.mark.parametrize("r_total", [1, 8, 16, 64])
def test_what_the_seeds_code_computes(setting, r_total):
    rep = al.analyse_seed_proposal(setting.E, r_total)
    assert (rep.b_basis, rep.a_basis, rep.uses_v) == ("U", "U", False)
    assert rep.symmetric and rep.definiteness.startswith("positive")
    assert rep.rank == rep.truncation_rank == r_total
    assert not rep.reallocated  # one column per direction, on the truncation's directions
    assert torch.equal(rep.columns_per_direction[:r_total], torch.ones(r_total, dtype=torch.int64))
    r1 = int(r_total * 0.7)
    want = torch.tensor([1.0] * r1 + [0.25] * (r_total - r1) + [0.0] * (64 - r_total))
    s = torch.linalg.svdvals(setting.E)
    torch.testing.assert_close(rep.weights * s, want.double() * s, atol=1e-12, rtol=0)
    assert not rep.objective_depends
    for err in (rep.fro, rep.spectral):
        assert err.eckart_young < err.seed and err.eckart_young <= err.zero
    assert rep.fro.eckart_young == pytest.approx(float(s[r_total:].square().sum().sqrt()))


def test_factor_basis_and_definiteness_tell_the_factorisations_apart(setting):
    u, s, vh = torch.linalg.svd(setting.E)
    b = u[:, :4] * s[:4].sqrt()
    assert al.factor_basis(b, u, vh.T) == "U"
    assert al.factor_basis((s[:4].sqrt()[:, None] * vh[:4]).T, u, vh.T) == "V"
    assert al.factor_basis(torch.randn(64, 2, dtype=torch.float64), u, vh.T) == "other"
    assert al.factor_basis(torch.zeros(64, 2), u, vh.T) == "zero"
    assert al.definiteness(torch.diag(torch.tensor([1.0, -1.0]))) == "indefinite"
    assert al.definiteness(torch.eye(3)) == "positive definite"
    assert al.definiteness(-torch.diag(torch.tensor([1.0, 0.0]))) == "negative semidefinite"
    assert al.definiteness(torch.zeros(2, 2)) == "zero"


def test_seed_formula_is_truncation_and_objective_ignores_split(setting):
    for r1, r2 in [(0, 6), (3, 3), (6, 0), (40, 40)]:
        torch.testing.assert_close(
            al.seed_formula_delta(setting.E, r1, r2), low_rank_approx(setting.E, r1 + r2)
        )
    values = al.seed_objective_values(setting.E, 10)
    assert values.shape == (11,) and bool((values == values[0]).all())
    assert values[0] == pytest.approx(10 * 0.7**10)


# ---- optimal allocation --------------------------------------------------------------------

spectra_st = st.lists(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]) | st.floats(0, 5), min_size=1, max_size=4),
    min_size=1,
    max_size=3,
)


def brute_force(spectra, budget, objective):
    ranges = [range(len(s) + 1) for s in spectra]
    return min(
        al.total_residual(spectra, r, objective)
        for r in itertools.product(*ranges)
        if sum(r) == budget
    )


@given(spectra=spectra_st, frac=st.floats(0, 1), objective=st.sampled_from(al.OBJECTIVES))
def test_optimal_ranks_match_brute_force(spectra, frac, objective):
    budget = round(frac * sum(map(len, spectra)))
    ranks = al.optimal_ranks(spectra, budget, objective)
    assert sum(ranks) == budget and all(
        0 <= r <= len(s) for r, s in zip(ranks, spectra, strict=True)
    )
    got = al.total_residual(spectra, ranks, objective)
    assert got == pytest.approx(brute_force(spectra, budget, objective), rel=1e-12, abs=1e-12)
    assert al.optimal_ranks(spectra, budget, objective) == ranks  # deterministic
    uniform = al.uniform_ranks(spectra, budget)
    assert sum(uniform) == budget and got <= al.total_residual(spectra, uniform, objective) + 1e-12


def test_spectral_sum_needs_more_than_greedy():
    # pooled greedy takes 3 and 2: Σ σ_{r+1} = 1 + 2 = 3; the optimum (2, 0) gives 0 + 2 = 2
    spectra = [[3.0, 1.0], [2.0, 2.0]]
    assert al.optimal_ranks(spectra, 2, "frobenius") == [1, 1]
    assert al.total_residual(spectra, [1, 1], "spectral_sum") == 3.0
    assert al.optimal_ranks(spectra, 2, "spectral_sum") == [2, 0]
    assert al.total_residual(spectra, [2, 0], "spectral_sum") == 2.0


def test_allocation_ties_budget_and_matrices():
    assert al.optimal_ranks([[1.0, 1.0], [1.0, 1.0]], 1) == [1, 0]  # earlier matrix first
    assert al.optimal_ranks([[1.0], [5.0, 4.0]], 0) == [0, 0]
    assert al.optimal_ranks([[1.0], [5.0, 4.0]], 3) == [1, 2]
    assert al.uniform_ranks([[1.0], [5.0, 4.0, 3.0]], 3) == [1, 2]  # cap of matrix 0
    e = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert al.optimal_ranks([e, [2.0]], 2) == [1, 1]  # a matrix stands for its spectrum
    with pytest.raises(ValueError, match="budget=4 exceeds the total size"):
        al.optimal_ranks([[1.0], [5.0, 4.0]], 4)
    comp = al.compare_allocations([[8.0, 4.0, 2.0, 1.0], [1.0, 0.5, 0.25, 0.1]], 4)
    assert comp.optimal_ranks == [4, 0] and comp.uniform_ranks == [2, 2] and comp.gain > 1


BAD_STACK = al.Stack(torch.eye(2), torch.zeros(1, 2, 1), torch.zeros(1, 2, 2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: al.optimal_ranks([], 1), "at least one"),
        (lambda: al.optimal_ranks([[1.0]], -1), "budget"),
        (lambda: al.optimal_ranks([[1.0]], 1.0), "budget must be an integer"),
        (lambda: al.optimal_ranks([[-1.0]], 0), "non-negative"),
        (lambda: al.optimal_ranks([[1.0]], 1, "nuclear"), "objective"),
        (lambda: al.residuals([[1.0]], [2]), r"ranks\[0\]"),
        (lambda: al.residuals([[1.0]], [0, 0]), "one rank per matrix"),
        (lambda: al.seed_proposal(np.eye(3), np.ones(3), -1), "R_total"),
        (lambda: al.seed_proposal(np.eye(3), -np.ones(3), 2), "S must be non-negative"),
        (lambda: al.seed_proposal(np.ones(3), np.ones(3), 2), "U must be"),
        (lambda: al.seed_proposal(np.eye(3), np.full(3, np.nan), 2), "non-finite"),
        (lambda: al.standard_init(4, 5, torch.Generator(), 1.0), "rank"),
        (lambda: al.gaussian_init(4, 2, torch.Generator(), 0.0), "std"),
        (lambda: al.gradient_norm(torch.eye(3), (torch.zeros(3, 1), torch.zeros(2, 3))), "B"),
        (lambda: al.gradient_norm(torch.eye(2), al.seed_init(torch.eye(2), 1), "l1"), "loss"),
        (lambda: al.initialise("lora", torch.eye(2), torch.eye(2), 1, torch.Generator()), "name"),
        (lambda: al.train(BAD_STACK, "gd", 0.1, 3), "shapes disagree"),
        (lambda: al.gradient_loss_correlation([1.0, 2.0], [1.0, 2.0]), "paired"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- initialisations -----------------------------------------------------------------------


def test_initialisations(setting):
    g, r = torch.Generator().manual_seed(1), 8
    std = al.standard_init(64, r, g, 0.1)
    assert std.B.shape == (64, r) and std.A.shape == (r, 64)
    assert torch.count_nonzero(std.delta()) == 0 and std.A.std() == pytest.approx(0.1, rel=0.2)
    gau = al.gaussian_init(64, r, g, 0.1)
    assert gau.B.shape == (64, r) and torch.count_nonzero(gau.delta()) > 0
    u, s, vh = torch.linalg.svd(setting.E)
    c2 = torch.tensor([1.0] * 5 + [0.25] * 3, dtype=torch.float64)
    seed = al.seed_init(setting.E, r)
    torch.testing.assert_close(seed.delta(), (u[:, :r] * (c2 * s[:r])) @ u[:, :r].T)
    seed_v = al.seed_init_v(setting.E, r)
    torch.testing.assert_close(seed_v.B, seed.B)
    torch.testing.assert_close(seed_v.delta(), (u[:, :r] * (c2 * s[:r])) @ vh[:r])
    uni = al.seed_uniform_init(setting.E, r)
    torch.testing.assert_close(uni.delta(), (u[:, :r] * s[:r]) @ u[:, :r].T)
    p = al.pissa_init(setting.frozen, r)
    torch.testing.assert_close(p.residual + p.B @ p.A, setting.frozen)
    torch.testing.assert_close(p.B @ p.A, low_rank_approx(setting.frozen, r))
    start = al.initialise("pissa", setting.frozen, setting.target, r, g)
    torch.testing.assert_close(start.residual, setting.E + p.B @ p.A)
    for name in al.INIT_NAMES:
        st_ = al.initialise(name, setting.frozen, setting.target, r, g)
        assert st_.factors.B.shape == (64, r) and st_.factors.A.shape == (r, 64)


# ---- gradient readings ---------------------------------------------------------------------


@pytest.mark.parametrize("loss", al.LOSSES)
@pytest.mark.parametrize("alpha", [None, 16.0])
def test_gradient_readings_match_autograd(loss, alpha):
    g = torch.Generator().manual_seed(2)
    e = torch.randn(6, 6, generator=g, dtype=torch.float64)
    b0, a0 = al.gaussian_init(6, 3, g, 0.5)
    b, a = b0.clone().requires_grad_(), a0.clone().requires_grad_()
    w = torch.zeros(6, 6, dtype=torch.float64, requires_grad=True)
    s = 1.0 if alpha is None else alpha / 3
    c = {"half": 0.5, "sum": 1.0, "mean": 1 / 36}[loss]
    value = c * ((w + s * b @ a - e) ** 2).sum()
    gb, ga, gw = torch.autograd.grad(value, (b, a, w))
    assert al.loss_value(e, (b0, a0), loss, alpha) == pytest.approx(float(value.detach()))
    want = {"joint": math.hypot(gb.norm(), ga.norm()), "B": gb.norm(), "A": ga.norm()}
    for wrt, v in want.items():
        assert al.gradient_norm(e, (b0, a0), loss, wrt, alpha) == pytest.approx(float(v))
    u, _, vh = torch.linalg.svd(e)
    got = al.direction_gradients(e, (b0, a0), u, vh.T, loss, "weight", alpha)
    torch.testing.assert_close(got, torch.diagonal(u.T @ gw @ vh.T))
    tangent = s * (gb @ a0 + b0 @ ga)
    got = al.direction_gradients(e, (b0, a0), u, vh.T, loss, "update", alpha)
    torch.testing.assert_close(got, torch.diagonal(u.T @ tangent @ vh.T))


def test_gradient_norm_table_has_every_reading(setting):
    g = torch.Generator().manual_seed(3)
    starts = {
        n: al.initialise(n, setting.frozen, setting.target, 8, g) for n in ("standard", "seed")
    }
    rows = al.gradient_norm_table(starts, alphas=(None, 16.0))
    assert len(rows) == 2 * 3 * 3 * 2
    assert len({(r.init, r.loss, r.wrt, r.alpha) for r in rows}) == len(rows)
    zero_a = [r for r in rows if r.init == "standard" and r.wrt == "A"]
    assert all(r.value == 0 for r in zero_a)  # B = 0 ⇒ ∇_A = 0


# ---- dynamics ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_stack() -> al.Stack:
    s = al.seed_setting(torch.Generator().manual_seed(4), width=12)
    starts = [
        al.initialise("standard", s.frozen, s.target, 3, generator(k, "lora-init"), std=0.3)
        for k in range(4)
    ]
    return al.stack_starts(starts)


@pytest.mark.parametrize(("method", "lr"), [("gd", 0.005), ("adam", 0.01)])
def test_gd_and_adam_decrease_the_loss(small_stack, method, lr):
    curves = al.train(small_stack, method, lr, 300)
    assert curves.shape == (4, 301)
    assert bool((curves[:, -1] < 0.2 * curves[:, 0]).all())
    best = (torch.linalg.svdvals(small_stack.residual[0])[3:] ** 2).sum()
    torch.testing.assert_close(al.loss_floor(small_stack), best.expand(4))
    assert bool((curves[:, -1] >= best - 1e-9).all())  # Eckart–Young: never below the optimum


def test_divergence_reads_inf_and_tuning_picks_the_best_grid_point(small_stack):
    curves = al.train(small_stack, "gd", 10.0, 50)
    assert bool(torch.isinf(curves[:, -1]).all())
    tuned = al.tune_step_size(small_stack, "gd", [10.0, 1e-4, 0.005], 100)
    assert tuned.finals.shape == (3, 4) and tuned.lr == 0.005
    torch.testing.assert_close(tuned.curves, al.train(small_stack, "gd", 0.005, 100))


def test_gradient_loss_correlation():
    x = torch.arange(1.0, 6.0, dtype=torch.float64)
    corr = al.gradient_loss_correlation(x, 10.0 ** (-x))
    assert corr.pearson == pytest.approx(-1.0) and corr.spearman == pytest.approx(-1.0)
    tied = al.gradient_loss_correlation([1.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0], log_loss=False)
    assert -1.0 <= tied.spearman < -0.9


@pytest.mark.parametrize("method", al.dynamics.METHODS)
def test_train_matches_torch_optimisers(method):
    g = torch.Generator().manual_seed(5)
    e = torch.randn(5, 5, generator=g, dtype=torch.float64)
    b0, a0 = al.gaussian_init(5, 2, g, 0.3)
    b, a = b0.clone().requires_grad_(), a0.clone().requires_grad_()
    opt = (torch.optim.SGD if method == "gd" else torch.optim.Adam)([b, a], lr=0.01)
    want = []
    for _ in range(20):
        opt.zero_grad()
        loss = ((b @ a - e) ** 2).sum()
        want.append(float(loss.detach()))
        loss.backward()
        opt.step()
    got = al.train(al.Stack(e, b0[None], a0[None]), method, 0.01, 19, alpha=2.0)
    torch.testing.assert_close(got[0], torch.tensor(want, dtype=torch.float64))


# --- practice: PEFT's LoRA, PiSSA and AdaLoRA on independent linear layers -----------------------

from lora_theory.allocation import practice as pr  # noqa: E402


def small_task(seed=0):
    return pr.spectrum_task((0.5, 0.9), torch.Generator().manual_seed(seed), width=8)


def test_spectrum_task_has_the_requested_spectra():
    task = pr.spectrum_task((0.5, 0.8), torch.Generator().manual_seed(1), width=6, sigma_1=2.0)
    for d, w, t, e in zip((0.5, 0.8), *task, strict=True):
        torch.testing.assert_close(t - w, e)
        torch.testing.assert_close(
            torch.linalg.svdvals(e), 2.0 * d ** torch.arange(6, dtype=torch.float64)
        )


def test_base_model_reads_off_its_weights():
    task = small_task()
    model = pr.ParallelLinear(task.frozen, dtype=torch.float64)
    for w, f in zip(pr.effective_weights(model, 8), task.frozen, strict=True):
        torch.testing.assert_close(w, f)
    expected = torch.stack([torch.linalg.matrix_norm(e) ** 2 for e in task.discrepancies])
    torch.testing.assert_close(pr.layer_losses(model, task), expected)


def test_peft_lora_starts_at_zero_update_and_reaches_eckart_young():
    pytest.importorskip("peft")
    task = small_task()
    ranks = al.optimal_ranks(task.discrepancies, 4)
    torch.manual_seed(0)
    model = pr.peft_model(task, "lora", ranks)
    start = pr.layer_losses(model, task)
    zero = torch.stack([torch.linalg.matrix_norm(e) ** 2 for e in task.discrepancies])
    torch.testing.assert_close(start, zero, rtol=1e-5, atol=1e-6)
    curve = pr.fit(model, task, 400, 1e-2)
    floor = al.total_residual(task.discrepancies, ranks)
    assert curve[-1] == pytest.approx(floor, rel=1e-3, abs=1e-5)


def test_peft_pissa_leaves_the_model_unchanged_at_start():
    pytest.importorskip("peft")
    task = small_task()
    model = pr.peft_model(task, "pissa", [1, 2])
    for w, f in zip(pr.effective_weights(model, 8), task.frozen, strict=True):
        torch.testing.assert_close(w, f, rtol=1e-4, atol=1e-5)


def test_peft_adalora_keeps_the_budget():
    pytest.importorskip("peft")
    task = small_task()
    torch.manual_seed(0)
    model = pr.peft_model(task, "adalora", [2, 2], total_step=60)
    curve = pr.fit(model, task, 60, 1e-2, adalora=True)
    assert sum(pr.adalora_ranks(model)) <= 4
    assert curve[-1] < curve[0]


def test_practice_bad_input():
    with pytest.raises(ValueError, match="decays"):
        pr.spectrum_task((1.5,), torch.Generator())
    with pytest.raises(ValueError, match="decays"):
        pr.spectrum_task((), torch.Generator())
    pytest.importorskip("peft")
    with pytest.raises(ValueError, match="ranks"):
        pr.peft_model(small_task(), "lora", [0, 0])
    with pytest.raises(ValueError, match="divisible"):
        pr.peft_model(small_task(), "adalora", [1, 2], total_step=10)
