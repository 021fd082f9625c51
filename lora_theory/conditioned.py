r"""Beyond the paper: an exact solution of Lemma 1 at the threshold that stays exact in float64.

At the threshold (``Σ_l R_l ≥ D`` and ``E = W̄ − ∏_l W_l`` of full rank) the exact solutions of
``∏_l (W_l + B_l A_l) = W̄`` with ``rank(B_l A_l) ≤ R_l`` form a family, and Lemma 1's SVD-ordered
member (:func:`~lora_theory.linear.construct` with ``method="sequential"``) is only one of them:
its factors inherit the conditioning of the frozen products, and for deep ``nn.Linear``-initialised
models even its exactly computed factors, rounded to float64, miss the target by ``10⁻²`` or more.

**The family.** Choose an input basis ``Z = [Z_1, …, Z_L]`` (block ``Z_l`` of ``n_l`` columns, the
directions "switched" at layer ``l``, ``Σ n_l = D``). Column block ``k`` passes the frozen layers
below ``k`` unchanged (state ``W_{k−1} ⋯ W_1 Z_k``), is replaced at layer ``k`` by the state
``V_k`` that the frozen layers above map onto the target, ``W_L ⋯ W_{k+1} V_k = W̄ Z_k``, and then
passes the frozen layers above. The states of all ``D`` columns after layer ``m`` form
``Φ_m = M_m Z`` (``M_m`` the adapted partial product), ``Φ_m`` equals ``W_m Φ_{m−1}`` except in
block ``m``, so ``W'_m = Φ_m Φ_{m−1}^{-1} = W_m + B_m A_m`` with

    ``B_m = V_m − W_m Φ_{m−1}[:, J_m]``,   ``A_m = (Φ_{m−1}^{-1})[J_m, :]``,   rank ``≤ n_m``,

and ``∏_l W'_l = Φ_L Φ_0^{-1} = W̄ Z Z^{-1} = W̄`` exactly, for **every** choice of the states
``V = [V_1, …, V_L]`` (then ``Z_k = W̄^{-1} W_L ⋯ W_{k+1} V_k``). Nothing is inverted but ``W̄``
and the state matrices ``Φ_m``.

**The choice.** Round-off in ``∏_l W'_l`` is about ``eps · Σ_m ‖N_m‖ ‖W'_m‖ ‖M_{m−1}‖`` with
``N_m = W'_L ⋯ W'_{m+1}``, so :func:`adapters` picks ``V`` in two steps: a greedy start
(**rank placement**: the directions switched at layer ``m`` are those the frozen layers above
amplify most, the ones kept are those the frozen layers below amplify most), then L-BFGS on
``log Σ_m ‖N_m‖_F ‖W'_m‖_F ‖M_{m−1}‖_F`` over ``V``, the logarithm of that bound itself (Frobenius
norms bound the spectral ones). Every iterate is an exact solution with the same ranks; the
optimisation only moves along the family. (A sum of the logarithms instead minimises the product
of the layers' amplifications, not their sum, and leaves more of it in the worst layer: ``D = 64``,
``L = 8``, 200 iterations, seeds 0–4, :func:`roundoff_amplification` ``1.8e6, 6.5e6, 8.5e3, 4.2e3,
2.0e4`` against ``8.0e4, 9.8e5, 3.3e3, 2.4e3, 9.1e3`` with the sum.)

Introduced in :ref:`ch-multilayer`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

from . import checks
from .adapters import LoRAFactors, check_factors, layer_ranks
from .linalg import (
    AssumptionError,
    Conditioning,
    difference_tol,
    linear_pair,
    numerical_rank,
    product,
)

#: L-BFGS iterations of :func:`adapters`, restarts included (Gaussian ``N(0, 1/D)`` factors,
#: threshold rank, seeds 0–4: ``D = 64``, ``L = 8`` ends at ``1.3e-13 … 1.5e-11`` relative; see
#: ``benchmarks/bench_exact.py``).
REFINE_STEPS = 200
#: Widest ``D`` refined by default: a step costs ``O(L D³)``, so wider problems get the greedy
#: start unless ``steps`` is passed explicitly. ``D = 256`` (Gaussian ``N(0, 1/D)`` factors, two
#: cores; seeds 0–4): ``linear.construct(method="auto")``, which stops refining at its tolerance,
#: reaches ``L = 4`` worst ``2.2e-11``, ``L = 8`` worst ``2.0e-10``; all 200 iterations at
#: ``L = 8`` take 12–14 s. ``D = 1024``, seed 0, ``L = 8``: 1e-3 → 1.4e-9 in 100 steps (319 s);
#: minutes per problem, so not by default here (``linear.construct(method="auto")`` refines such
#: problems only until its ``WIDE_REFINE_RTOL``).
#: Three Gauss–Newton steps on the greedy start's factors instead (``linear.gauss_newton``, 50
#: LSQR iterations each; seed 0) keep its amplification: ``L = 4`` 4.3e-7 → 1.2e-7 in 54 s,
#: ``L = 8`` 1.3e-3, no gain, in 65 s.
REFINE_MAX_WIDTH = 256
#: Iterations between two calls of ``accept`` in :func:`adapters` (``method="auto"`` of
#: :func:`~lora_theory.linear.construct` stops there once the adapters meet its tolerance; the
#: wide trajectory at ``D = 1024`` is in ``linear.construction``'s ``WIDE_REFINE_STEPS``).
CHECK_EVERY = 20
#: Least decrease of the objective (the logarithm of the amplification: 1e-3 is a 0.1% smaller
#: amplification) for which :func:`adapters` restarts L-BFGS after it stopped early.
RESTART_GAIN = 1e-3


def _inputs(
    wbar: object, ws: object, names: tuple[str, str] = ("wbar", "ws")
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(W̄, [W_1, …, W_L])`` validated: real, finite, square, one width ``D``, their difference
    ``W̄ − ∏_l W_l`` finite; float32 input stays float32, anything else becomes float64."""
    keep = isinstance(wbar, torch.Tensor) and wbar.dtype in checks.COMPUTE_DTYPES
    dtype = wbar.dtype if keep else torch.float64  # type: ignore[union-attr]
    return linear_pair(wbar, ws, dtype, names)


def _target_conditioning(wbar: torch.Tensor) -> Conditioning:
    """The conditioning of ``W̄``; :class:`~lora_theory.linalg.AssumptionError` if singular."""
    record = Conditioning.of("W̄", wbar)
    if record.singular:
        raise AssumptionError(f"the conditioned construction solves with the target: {record}")
    return record


def _orth(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(a)[0]


def _greedy_states(wbar: torch.Tensor, ws: list[torch.Tensor], bounds: list[int]) -> torch.Tensor:
    """Rank placement: the states ``V`` (``D × D``) of the greedy start (module docstring)."""
    width = wbar.shape[0]
    eye = torch.eye(width, dtype=wbar.dtype)
    above = _above(ws)
    kept, image = eye, eye  # basis O of the unswitched inputs G_m and its image W_m ⋯ W_1 O
    keeps = [eye]
    for m, w in enumerate(ws[:-1], start=1):
        u, s, vh = torch.linalg.svd(w @ image, full_matrices=False)
        dim = width - bounds[m]
        kept, image = kept @ vh[:dim].T, u[:, :dim] * s[:dim]
        keeps.append(kept)
    states = torch.zeros(width, 0, dtype=wbar.dtype)  # preimages H_m of the switched outputs
    blocks = []
    for m, w in enumerate(ws, start=1):
        states = w @ states
        new = bounds[m] - bounds[m - 1]
        if not new:
            continue
        out = _orth(above[m] @ states) if states.shape[1] else states
        free = above[m] - out @ (out.T @ above[m])  # P_m with the switched outputs projected out
        states = torch.cat([states, torch.linalg.svd(free)[2][:new].T], 1)
        inputs = torch.linalg.solve(wbar, above[m] @ states)
        # the new block's inputs must lie in G_{m−1}: null space of the part outside it
        outside = inputs - keeps[m - 1] @ (keeps[m - 1].T @ inputs)
        blocks.append(states @ torch.linalg.svd(outside)[2][-new:].T if bounds[m - 1] else states)
    return torch.cat(blocks, 1)


def _above(ws: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[P_0, …, P_L]`` with ``P_m = W_L ⋯ W_{m+1}`` (``P_L = I``)."""
    out = [torch.eye(ws[0].shape[0], dtype=ws[0].dtype)] * (len(ws) + 1)
    for m in range(len(ws), 0, -1):
        out[m - 1] = out[m] @ ws[m - 1]
    return out


def _states(
    v: torch.Tensor,
    wbar: torch.Tensor,
    ws: list[torch.Tensor],
    bounds: list[int],
    above: list[torch.Tensor],
) -> list[torch.Tensor]:
    """``[Φ_0, …, Φ_L]`` for the states ``v`` (``Φ_0 = Z``, ``above`` from :func:`_above`)."""
    cols = [above[m] @ v[:, bounds[m - 1] : bounds[m]] for m in range(1, len(ws) + 1)]
    phis = [torch.linalg.solve(wbar, torch.cat(cols, 1))]
    for m, w in enumerate(ws, start=1):
        nxt = w @ phis[-1]
        phis.append(torch.cat([nxt[:, : bounds[m - 1]], v[:, bounds[m - 1] : bounds[m]],
                               nxt[:, bounds[m] :]], 1))  # fmt: skip
    return phis


def _pairs(
    v: torch.Tensor,
    wbar: torch.Tensor,
    ws: list[torch.Tensor],
    bounds: list[int],
    above: list[torch.Tensor],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(B_m, A_m)`` of the states ``v`` (module docstring), differentiable in ``v``:
    ``B_m = V_m − W_m Φ_{m−1}[:, J_m]`` (``D × n_m``) and ``A_m`` the rows ``J_m`` of
    ``Φ_{m−1}^{-1}`` (``n_m × D``, one solve with ``Φ_{m−1}ᵀ``; none for an empty block)."""
    phis = _states(v, wbar, ws, bounds, above)
    eye = torch.eye(wbar.shape[0], dtype=wbar.dtype)
    out = []
    for m, w in enumerate(ws, start=1):
        lo, hi = bounds[m - 1], bounds[m]
        b = phis[m][:, lo:hi] - w @ phis[m - 1][:, lo:hi]
        a = torch.linalg.solve(phis[m - 1].mT, eye[:, lo:hi]).mT if hi > lo else eye[lo:hi]
        out.append((b, a))
    return out


def _log_amplification(
    ws: list[torch.Tensor], pairs: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """``log Σ_m ‖N_m‖_F ‖W'_m‖_F ‖M_{m−1}‖_F`` for the adapters ``pairs`` (from :func:`_pairs`):
    ``W'_m = W_m + B_m A_m``, ``M_{m−1} = W'_{m−1} ⋯ W'_1`` and ``N_m = W'_L ⋯ W'_{m+1}`` as
    running products (``2(L − 2)`` matrix products, no inverse), each term in logarithms
    (``logsumexp``), so that no product of norms overflows."""
    merged = [w + b @ a for w, (b, a) in zip(ws, pairs, strict=True)]
    depth = len(merged)
    below = [merged[0]]  # M_1, …, M_{L−1}
    for w in merged[1:-1]:
        below.append(w @ below[-1])
    upper = [merged[-1]]  # N_{L−1}, …, N_1
    for w in merged[-2:0:-1]:
        upper.append(upper[-1] @ w)
    root = 0.5 * math.log(merged[0].shape[0])  # log ‖I‖_F
    terms = [
        (upper[depth - 1 - m].norm().log() if m < depth else root)
        + merged[m - 1].norm().log()
        + (below[m - 2].norm().log() if m > 1 else root)
        for m in range(1, depth + 1)
    ]
    return torch.logsumexp(torch.stack(terms), 0)


def _refine(
    v: torch.Tensor,
    steps: int,
    objective: Callable[[], torch.Tensor],
    accept: Callable[[], bool] | None = None,
) -> None:
    """L-BFGS on ``objective`` over ``v`` (in place) for ``steps`` iterations in all, restarted
    with a fresh history when a run stops early but still gained more than :data:`RESTART_GAIN`
    (from a badly scaled greedy start the first line searches can fail after a few steps: D =
    256, L = 8, seed 1 stopped after 6 iterations at 5e-6 and reaches 1e-9 once restarted).
    With ``accept``, every :data:`CHECK_EVERY` iterations (the L-BFGS history kept across the
    checks) it stops as soon as ``accept()`` holds."""

    def closure() -> torch.Tensor:
        v.grad = None
        loss = objective()
        loss.backward()
        return loss

    remaining = steps
    while remaining > 0:
        # tolerance_change=0: never stop on a small step. With torch's default (1e-9), on a fresh
        # machine's BLAS D = 256, L = 8, seed 1 stopped after 6, 3, 1, 2 and 1 iterations at
        # 5.9e-6; with 0 it uses its budget and reaches 4.4e-10 (27 s against 12 s).
        opt = torch.optim.LBFGS([v], line_search_fn="strong_wolfe", tolerance_change=0.0)
        first = None
        while remaining > 0:
            size = min(remaining, CHECK_EVERY) if accept else remaining
            # the evaluations of the whole remaining run (torch's default 5/4 per iteration), so
            # that a check never cuts a run short: it ends early only on its own criteria
            opt.param_groups[0].update(max_iter=size, max_eval=remaining * 5 // 4)
            before = opt.state[v].get("n_iter", 0)
            loss = float(opt.step(closure).detach())
            first = loss if first is None else first
            done = opt.state[v]["n_iter"] - before
            remaining -= done
            if accept is not None and accept():
                return
            if done < size:  # this run stopped early: restart or stop below
                break
        if remaining <= 0:  # the budget is spent: no restart to decide on
            return
        with torch.no_grad():
            if not float(objective()) < first - RESTART_GAIN:
                return


def _factors(
    v: torch.Tensor,
    wbar: torch.Tensor,
    ws: list[torch.Tensor],
    bounds: list[int],
    above: list[torch.Tensor],
) -> list[LoRAFactors]:
    """The adapters ``(B_m, A_m)`` of the states ``v`` (module docstring), gauge balanced."""
    with torch.no_grad():  # balanced: ‖B e_j‖ = ‖e_jᵀA‖
        return [
            LoRAFactors(b, a).balanced() for b, a in _pairs(v.detach(), wbar, ws, bounds, above)
        ]


def adapters(
    wbar: torch.Tensor,
    ws: Sequence[torch.Tensor],
    bounds: Sequence[int],
    steps: int = REFINE_STEPS,
    accept: Callable[[list[LoRAFactors]], bool] | None = None,
) -> list[LoRAFactors]:
    """The well-conditioned exact adapters (module docstring).

    ``wbar`` ``(D, D)`` non-singular; ``ws`` ``L`` frozen ``(D, D)`` matrices, input first;
    ``bounds`` the block boundaries ``0 = r_0 ≤ … ≤ r_L = D`` (layer ``l`` adapts with rank
    ``r_l − r_{l−1}``); ``steps`` L-BFGS iterations after the greedy start (``0``: greedy only);
    ``accept`` (optional) is called with the adapters every :data:`CHECK_EVERY` iterations, and
    the refinement stops as soon as it returns ``True``.
    Returns ``[(B_l, A_l)]`` with ``B_l`` ``(D, r_l − r_{l−1})``, in float32 for float32 ``wbar``
    and in float64 otherwise. Malformed input raises ``ValueError``, a singular ``W̄``
    :class:`~lora_theory.linalg.AssumptionError`; the caller checks exactness.

    Introduced in :ref:`ch-multilayer`.
    """
    wbar, ws = _inputs(wbar, ws)
    width = wbar.shape[0]
    bounds = list(checks.integers(bounds, "bounds", low=0, high=width))
    steps = checks.integer(steps, "steps", low=0, high=checks.MAX_LENGTH)
    monotone = all(a <= b for a, b in itertools.pairwise(bounds))
    if bounds[0] != 0 or bounds[-1] != width or len(bounds) != len(ws) + 1 or not monotone:
        raise ValueError(
            f"bounds must run from 0 to D={width} in {len(ws)} non-decreasing steps, got {bounds}"
        )
    if accept is not None and not callable(accept):
        raise ValueError(f"accept must be a callable or None, got {type(accept).__name__}")
    _target_conditioning(wbar)
    above = _above(ws)
    v = _greedy_states(wbar, ws, bounds).clone().requires_grad_(steps > 0)
    done = None if accept is None else lambda: bool(accept(_factors(v, wbar, ws, bounds, above)))
    _refine(v, steps, lambda: _log_amplification(ws, _pairs(v, wbar, ws, bounds, above)), done)
    out = _factors(v, wbar, ws, bounds, above)
    if not all(torch.isfinite(t).all() for f in out for t in f):
        raise AssumptionError(
            f"the conditioned construction overflows {wbar.dtype}: the entries of wbar and ws "
            "are too large (or their scales too far apart) for this dtype"
        )
    return out


def construct(
    wbar: torch.Tensor,
    ws: Sequence[torch.Tensor],
    ranks: int | Sequence[int],
    steps: int | None = None,
    accept: Callable[[list[LoRAFactors]], bool] | None = None,
) -> tuple[list[LoRAFactors], dict[str, Conditioning]]:
    """:func:`adapters` for layer ranks ``ranks`` (one ``R`` or one per layer, see
    :func:`~lora_theory.adapters.layer_ranks`) after checking that it applies (``Σ R_l ≥ D``,
    ``E`` of rank ``D``, ``W̄`` non-singular, else :class:`~lora_theory.linalg.AssumptionError`),
    and the conditioning of ``W̄``, the one given matrix it solves with. ``steps=None``:
    :data:`REFINE_STEPS` up to ``D =`` :data:`REFINE_MAX_WIDTH`, none above; ``accept`` as in
    :func:`adapters`.

    Introduced in :ref:`ch-multilayer`.
    """
    wbar, ws = _inputs(wbar, ws)
    width, prod = wbar.shape[0], product(ws)
    ranks = layer_ranks(ranks, len(ws), width)
    bounds = [min(sum(ranks[:m]), width) for m in range(len(ranks) + 1)]
    if bounds[-1] < width or numerical_rank(wbar - prod, difference_tol(wbar, prod)) < width:
        raise AssumptionError("the conditioned construction needs Σ_l R_l ≥ D and rank(E) = D")
    record = {"W̄": _target_conditioning(wbar)}
    if steps is None:
        steps = REFINE_STEPS if width <= REFINE_MAX_WIDTH else 0
    return adapters(wbar, ws, bounds, steps, accept), record


def roundoff_amplification(
    target: torch.Tensor, frozen: Sequence[torch.Tensor], adapters: Sequence[LoRAFactors]
) -> float:
    """``max_m ‖N_m‖₂ ‖W'_m‖₂ ‖M_{m−1}‖₂ / ‖W̄‖₂``: how much float64 round-off in one adapted
    layer ``W'_m = W_m + B_m A_m`` can grow in the product ``N_m W'_m M_{m−1} = ∏_l W'_l``.

    ``M_{m−1} = W'_{m−1} ⋯ W'_1`` and ``N_m = W'_L ⋯ W'_{m+1}``; the relative error of a float64
    construction is about ``D · eps`` times this number.

    Introduced in :ref:`ch-multilayer`.
    """
    wbar, ws = _inputs(target, frozen, ("target", "frozen"))
    pairs = checks.sequence(adapters, "adapters", "(B, A) pairs")
    if len(pairs) != len(ws):
        raise ValueError(f"got {len(ws)} frozen layers but {len(pairs)} adapters")
    width = wbar.shape[0]
    merged = [
        check_factors(a, width, f"adapters[{i}]").merge(w)
        for i, (w, a) in enumerate(zip(ws, pairs, strict=True))
    ]
    if not torch.linalg.matrix_norm(wbar, 2) > 0:
        raise ValueError("target must be non-zero: the amplification is relative to ‖W̄‖₂")
    eye = torch.eye(width, dtype=wbar.dtype)
    worst = 0.0
    for m in range(len(merged)):
        below = product(merged[:m]) if m else eye
        above = product(merged[m + 1 :]) if m + 1 < len(merged) else eye
        norms = [float(torch.linalg.matrix_norm(t, 2)) for t in (above, merged[m], below)]
        worst = max(worst, norms[0] * norms[1] * norms[2])
    return worst / float(torch.linalg.matrix_norm(wbar, 2))
