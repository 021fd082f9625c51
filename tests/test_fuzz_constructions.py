"""Property tests: every construction meets its promised tolerance or raises.

Random (target, frozen) pairs over widths 2–12, depths, ranks (one ``R`` or per-layer ranks),
partitions, input bounds over six orders of magnitude and two kinds of frozen weights
(``nn.Linear``'s initialisation, and orthogonal matrices). Whenever :func:`linear.construct` or
:func:`fnn.construct` returns, the result is checked here independently of the construction's own
self-check; whenever it raises, the exception must be one of the two documented refusals
(:class:`AssumptionError`, :class:`ExactnessError`).
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lora_theory import fnn, instances, linear
from lora_theory.linalg import AssumptionError, ExactnessError, product

EPS = torch.finfo(torch.float64).eps
#: Safety factor on the float64 round-off yardstick ``D · eps · roundoff_scale``.
SAFETY = 8.0
#: The tolerance both constructions promise in float64 (``linalg.EXACT_RTOL``), checked with
#: a factor 10 of slack for the independent re-measurement here.
PROMISED_RTOL = 1e-8


def weight(kind: str, width: int, gen: torch.Generator) -> torch.Tensor:
    """One ``(D, D)`` weight: ``nn.Linear``-style ``U(±1/√D)`` or a random orthogonal matrix."""
    if kind == "orthogonal":
        q, r = torch.linalg.qr(torch.randn(width, width, generator=gen, dtype=torch.float64))
        return q * torch.sign(torch.diagonal(r))
    return (torch.rand(width, width, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(width)


def network(kind: str, width: int, depth: int, gen: torch.Generator) -> fnn.FNN:
    """A ReLU FNN with ``kind`` weights and ``nn.Linear``-style biases."""
    biases = [
        (torch.rand(width, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(width)
        for _ in range(depth)
    ]
    return fnn.FNN([weight(kind, width, gen) for _ in range(depth)], biases)


def ranks_for(data, width: int, depth: int):
    """One rank ``R ∈ [1, D]`` or a list of per-layer ranks in ``[0, D]`` (not all zero)."""
    if data.draw(st.booleans(), label="per-layer ranks"):
        ranks = data.draw(st.lists(st.integers(0, width), min_size=depth, max_size=depth))
        return ranks if any(ranks) else [1, *ranks[1:]]
    return data.draw(st.integers(1, width), label="rank")


def partition_for(data, depth: int, target_depth: int):
    """``None`` (uniform) or a random ordered partition into ``target_depth`` consecutive blocks."""
    if data.draw(st.booleans(), label="uniform partition"):
        return None
    cuts = sorted(
        data.draw(
            st.lists(
                st.integers(1, depth - 1),
                min_size=target_depth - 1,
                max_size=target_depth - 1,
                unique=True,
            )
            if target_depth > 1
            else st.just([])
        )
    )
    bounds = [0, *cuts, depth]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    width=st.integers(2, 12),
    depth=st.integers(1, 4),
    kinds=st.tuples(
        st.sampled_from(["linear", "orthogonal"]), st.sampled_from(["linear", "orthogonal"])
    ),
    data=st.data(),
)
def test_linear_construct_meets_min_error_or_refuses(seed, width, depth, kinds, data):
    gen = torch.Generator().manual_seed(seed)
    target = weight(kinds[0], width, gen)
    frozen = [weight(kinds[1], width, gen) for _ in range(depth)]
    rank = ranks_for(data, width, depth)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapters = linear.construct(target, frozen, rank)
    except (AssumptionError, ExactnessError) as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("returned")
    ranks = [rank] * depth if isinstance(rank, int) else rank
    for (b, a), r in zip(adapters, ranks, strict=True):
        assert b.shape[1] == a.shape[0] <= r
        assert torch.isfinite(b).all() and torch.isfinite(a).all()
    adapted = product([w + b @ a for w, (b, a) in zip(frozen, adapters, strict=True)])
    achieved = float(torch.linalg.matrix_norm(adapted - target, 2))
    optimum = linear.min_error(target, frozen, rank)
    scale = float(
        torch.linalg.matrix_norm(target, 2) + torch.linalg.matrix_norm(product(frozen), 2)
    )
    assert abs(achieved - optimum) <= 10 * PROMISED_RTOL * scale


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    width=st.integers(2, 12),
    depths=st.integers(1, 3).flatmap(lambda lb: st.tuples(st.just(lb), st.integers(lb, 4))),
    kind=st.sampled_from(["linear", "orthogonal"]),
    log_c=st.floats(-3.0, 3.0),
    data=st.data(),
)
def test_fnn_construct_meets_its_certificate_or_refuses(seed, width, depths, kind, log_c, data):
    target_depth, depth = depths
    gen = torch.Generator().manual_seed(seed)
    target = fnn.FNN.random(width, target_depth, gen)
    frozen = network(kind, width, depth, gen)
    rank = ranks_for(data, width, depth)
    partition = partition_for(data, depth, target_depth)
    c = 10.0**log_c
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapted = fnn.construct(target, frozen, rank, c, partition=partition)
    except (AssumptionError, ExactnessError) as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("returned")
    x = instances.box_sample(width, c, 64, torch.Generator().manual_seed(seed + 1))
    err = float((adapted(x) - target(x)).abs().max())
    cert = fnn.certify(target, adapted, c, rank, partition)
    assert math.isfinite(cert.bound) and cert.bound >= 0
    roundoff = width * EPS * adapted.roundoff_scale(x)
    assert err <= cert.bound + SAFETY * roundoff, (err, cert.bound, roundoff)
    # At or above the threshold of every block the certificate proves exactness.
    blocks = partition or fnn.uniform_partition(depth, target_depth)
    ranks = [rank] * depth if isinstance(rank, int) else rank
    needed = [
        torch.linalg.matrix_rank(e).item() for e in fnn.discrepancies(target, frozen, partition)
    ]
    if all(sum(ranks[k] for k in b) >= n for b, n in zip(blocks, needed, strict=True)):
        event("at or above the threshold")
        output_scale = 1.0 + c + float(target(x).abs().max())
        assert cert.bound <= 1e-6 * output_scale, (cert.bound, output_scale)
