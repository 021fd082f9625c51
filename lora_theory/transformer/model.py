r"""The paper's Transformer network ``TFN_{L,D}`` and its LoRA adapters.

Input ``X ∈ R^{D×N}`` (columns are the ``N`` tokens), ``Z_0 = X`` and for ``l = 1..L``

    Attn_l(Z) = Σ_{h=1}^{H} W^h_{Ol} W^h_{Vl} Z softmax((W^h_{Kl} Z)ᵀ (W^h_{Ql} Z)),
    H_l = Attn_l(Z_{l−1}),   Z_l = W_{2l} ReLU(W_{1l} H_l + b_{1l} 1ᵀ) + b_{2l} 1ᵀ,
    TFN(X) = W_o Z_L.

Every head has full ``D × D`` matrices, heads are summed, the softmax is column-wise (each query
column ``b`` is normalised over the keys ``a``: entry ``(a, b)`` of the score matrix is
``k_aᵀ q_b``), and there is no residual connection, LayerNorm, ``1/√d`` scaling or final softmax.

Introduced in :ref:`ch-transformer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import checks
from ..adapters import LoRAFactors, check_factors
from ..checks import ArrayLike

#: The attention matrices of a block, in the order the paper's code draws them per head.
ATTENTION = ("w_q", "w_k", "w_v", "w_o")


@dataclass(frozen=True)
class TFNAdapters:
    """LoRA on a ``TFN``: the set the paper adapts (its Section 5).

    ``w_q``, ``w_k``, ``w_v``, ``w_o``: ``L`` tuples of ``H``
    :class:`~lora_theory.adapters.LoRAFactors` (``B: (D, r)``,
    ``A: (r, D)``, ``ΔW = B A``), one per block and head; ``w_2``: the adapter of the **last**
    block's ``W_{2L}``; ``w_out``: the adapter of the output layer ``W_o``. The other feed-forward
    matrices stay frozen; the feed-forward biases are re-tuned in the :class:`TFN` itself.

    Introduced in :ref:`ch-transformer`.
    """

    w_q: tuple[tuple[LoRAFactors, ...], ...]
    w_k: tuple[tuple[LoRAFactors, ...], ...]
    w_v: tuple[tuple[LoRAFactors, ...], ...]
    w_o: tuple[tuple[LoRAFactors, ...], ...]
    w_2: LoRAFactors
    w_out: LoRAFactors

    def named(self) -> list[tuple[str, LoRAFactors]]:
        """``[(name, factors), …]``, e.g. ``("W_Q^2 (block 1)", …)``, ``("W_2 (block L)", …)``."""
        out = []
        for block in range(len(self.w_q)):
            for name in ATTENTION:
                for head, f in enumerate(getattr(self, name)[block]):
                    out.append((f"W_{name[-1].upper()}^{head + 1} (block {block + 1})", f))
        out.append((f"W_2 (block {len(self.w_q)})", self.w_2))
        out.append(("W_o (output)", self.w_out))
        return out

    def n_params(self) -> int:
        """Trainable LoRA weights: ``2 r D`` per adapter, ``(4LH + 2)`` adapters."""
        return sum(f.n_params() for _, f in self.named())

    def __str__(self) -> str:
        return "\n".join(
            f"{name:<22} B {tuple(f.B.shape)}  A {tuple(f.A.shape)}  rank {f.rank()}"
            for name, f in self.named()
        )


def _stacked(x: ArrayLike, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    t = checks.tensor(x, name, dtype)
    return checks.shape(t, shape, name)


class TFN:
    """``TFN_{L,D}`` with ``H`` heads (see the module docstring), parameters stacked by block.

    Parameters (shapes with ``L`` blocks, ``H`` heads, width ``D``)
    ----------------------------------------------------------------
    w_q, w_k, w_v, w_o
        ``(L, H, D, D)``: the query, key, value and output matrices of every block and head.
    w_1, w_2
        ``(L, D, D)``: the feed-forward matrices; ``b_1``, ``b_2``: ``(L, D)`` their biases.
    w_out
        ``(D, D)``: the linear output layer ``W_o`` (no bias).
    adapters
        Optional :class:`TFNAdapters`; the adapted matrices are then ``W + B A``.

    ``net(X)`` maps ``X: (n, D, N) → (n, D, N)``. float64 unless ``dtype`` says otherwise.

    Introduced in :ref:`ch-transformer`.
    """

    def __init__(
        self,
        w_q: ArrayLike,
        w_k: ArrayLike,
        w_v: ArrayLike,
        w_o: ArrayLike,
        w_1: ArrayLike,
        b_1: ArrayLike,
        w_2: ArrayLike,
        b_2: ArrayLike,
        w_out: ArrayLike,
        adapters: TFNAdapters | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        first = checks.tensor(w_q, "w_q", dtype)
        if first.ndim != 4 or first.shape[2] != first.shape[3] or 0 in first.shape:
            raise ValueError(f"w_q must have shape (L, H, D, D), got {tuple(first.shape)}")
        depth, heads, width, _ = first.shape
        per_head = (depth, heads, width, width)
        self.w_q = first
        self.w_k = _stacked(w_k, "w_k", per_head, dtype)
        self.w_v = _stacked(w_v, "w_v", per_head, dtype)
        self.w_o = _stacked(w_o, "w_o", per_head, dtype)
        self.w_1 = _stacked(w_1, "w_1", (depth, width, width), dtype)
        self.w_2 = _stacked(w_2, "w_2", (depth, width, width), dtype)
        self.b_1 = _stacked(b_1, "b_1", (depth, width), dtype)
        self.b_2 = _stacked(b_2, "b_2", (depth, width), dtype)
        self.w_out = _stacked(w_out, "w_out", (width, width), dtype)
        self.adapters = None if adapters is None else self._check_adapters(adapters, dtype)

    def _check_adapters(self, adapters: TFNAdapters, dtype: torch.dtype) -> TFNAdapters:
        if not isinstance(adapters, TFNAdapters):
            raise ValueError(f"adapters must be TFNAdapters, got {type(adapters).__name__}")

        def one(f: object, name: str) -> LoRAFactors:
            return LoRAFactors(*(t.to(dtype) for t in check_factors(f, self.width, name)))

        grids = {}
        for name in ATTENTION:
            grid = getattr(adapters, name)
            if len(grid) != self.depth or any(len(row) != self.heads for row in grid):
                raise ValueError(
                    f"adapters.{name} must hold {self.depth} blocks × {self.heads} heads"
                )
            grids[name] = tuple(
                tuple(one(f, f"adapters.{name}[{b}][{h}]") for h, f in enumerate(row))
                for b, row in enumerate(grid)
            )
        return TFNAdapters(
            **grids,
            w_2=one(adapters.w_2, "adapters.w_2"),
            w_out=one(adapters.w_out, "adapters.w_out"),
        )

    @property
    def depth(self) -> int:
        """Number of blocks ``L``."""
        return self.w_q.shape[0]

    @property
    def heads(self) -> int:
        """Number of heads ``H``."""
        return self.w_q.shape[1]

    @property
    def width(self) -> int:
        """Embedding size ``D``."""
        return self.w_q.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters."""
        return self.w_q.dtype

    def effective(self) -> dict[str, torch.Tensor]:
        """All parameters with the adapters merged (``W + B A``), by name, shapes as stored."""
        p = {n: getattr(self, n) for n in (*ATTENTION, "w_1", "b_1", "w_2", "b_2", "w_out")}
        a = self.adapters
        if a is None:
            return p
        for name in ATTENTION:
            delta = torch.stack([torch.stack([f.delta() for f in row]) for row in getattr(a, name)])
            p[name] = p[name] + delta
        p["w_2"] = torch.cat([p["w_2"][:-1], a.w_2.merge(p["w_2"][-1])[None]])
        p["w_out"] = a.w_out.merge(p["w_out"])
        return p

    def merged(self) -> TFN:
        """The same function without adapters (adapted matrices ``W + B A`` stored as weights)."""
        return TFN(**self.effective(), dtype=self.dtype)

    def scores(self, x: ArrayLike) -> list[torch.Tensor]:
        """The attention logits ``Z_{l−1}ᵀ W_Kᵀ W_Q Z_{l−1}`` of every block, ``(n, H, N, N)``.

        Their magnitude is the round-off yardstick of a forward pass: an absolute error ``δ`` in a
        logit moves the softmax weights by up to about ``2δ`` (relative), and float64 forms the
        logits with an absolute error of about ``D · eps`` times their magnitude.
        """
        return self._forward(x)[1]

    def __call__(self, x: ArrayLike) -> torch.Tensor:
        """``TFN(X)`` for ``X: (n, D, N)``; returns ``(n, D, N)``."""
        return self._forward(x)[0]

    def _forward(self, x: ArrayLike) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = checks.tensor(x, "X", self.dtype)
        if z.ndim != 3 or z.shape[1] != self.width or z.shape[2] == 0:
            raise ValueError(
                f"X must have shape (n, D={self.width}, N) with N ≥ 1 tokens, got {tuple(z.shape)}"
            )
        out, logits = forward({k: v[None] for k, v in self.effective().items()}, z[None])
        return out[0], [s[0] for s in logits]

    @classmethod
    def random(
        cls,
        width: int,
        heads: int,
        depth: int,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float64,
    ) -> TFN:
        """A random ``TFN`` initialised like the paper's code.

        Attention matrices: i.i.d. ``N(0, 1)`` entries (``torch.randn``, unscaled), so the logits
        are large and the softmax nearly one-hot. Feed-forward weights and biases and the output
        layer: ``torch.nn.Linear``'s default, ``U(−1/√D, 1/√D)``. Drawn from ``generator`` block by
        block (per head ``W_Q, W_K, W_V, W_O``; then ``W_1, b_1, W_2, b_2``), then ``W_o``.
        """
        width = checks.integer(width, "width", low=1)
        heads = checks.integer(heads, "heads", low=1)
        depth = checks.integer(depth, "depth", low=1)
        checks.elements((depth, heads, 4, width, width), "TFN.random")
        checks.generator(generator)
        dtype = checks.dtype(dtype)
        bound = 1.0 / math.sqrt(width)

        def uniform(*shape: int) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound

        attn, ff = [], []
        for _ in range(depth):
            attn.append(torch.randn(heads, 4, width, width, generator=generator, dtype=dtype))
            w_1, b_1 = uniform(width, width), uniform(width)
            ff.append((w_1, b_1, uniform(width, width), uniform(width)))
        a = torch.stack(attn)  # (L, H, 4, D, D)
        w_1, b_1, w_2, b_2 = (torch.stack(t) for t in zip(*ff, strict=True))
        return cls(*a.unbind(2), w_1, b_1, w_2, b_2, uniform(width, width), dtype=dtype)


def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The forward pass of ``C`` stacked TFNs at once: ``(outputs, logits per block)``.

    ``p`` holds the effective parameters with a leading config dimension ``C``
    (``w_q: (C, L, H, D, D)``, ``w_1: (C, L, D, D)``, ``b_1: (C, L, D)``, ``w_out: (C, D, D)``, …);
    ``x`` is ``(C, n, D, N)``; the output is ``(C, n, D, N)`` and the logits ``(C, n, H, N, N)``.
    The heads are evaluated through the products ``W_Kᵀ W_Q`` and ``W_O W_V`` (the same function:
    ``(W_K Z)ᵀ (W_Q Z) = Zᵀ (W_Kᵀ W_Q) Z``), which halves the work on ``(D, N)`` activations.
    The one implementation behind :class:`TFN` and the training family.

    Introduced in :ref:`ch-transformer`.
    """
    z, logits = x, []
    for layer in range(p["w_q"].shape[1]):
        kq = p["w_k"][:, layer].mT @ p["w_q"][:, layer]  # (C, H, D, D): W_Kᵀ W_Q per head
        ov = p["w_o"][:, layer] @ p["w_v"][:, layer]  # W_O W_V per head
        s = z[:, :, None].mT @ torch.einsum("chij,cnjk->cnhik", kq, z)  # (C, n, H, N, N)
        weights = torch.softmax(s, dim=-2)  # column-wise: each query b over the keys a
        h = (torch.einsum("chij,cnjk->cnhik", ov, z) @ weights).sum(2)  # (C, n, D, N)
        pre = torch.einsum("cij,cnjk->cnik", p["w_1"][:, layer], h)
        hidden = torch.relu(pre + p["b_1"][:, None, layer, :, None])
        z = torch.einsum("cij,cnjk->cnik", p["w_2"][:, layer], hidden)
        z = z + p["b_2"][:, None, layer, :, None]
        logits.append(s)
    return torch.einsum("cij,cnjk->cnik", p["w_out"], z), logits


def check_tfn_pair(target: TFN, frozen: TFN) -> None:
    """Raise ``ValueError`` unless ``target`` and ``frozen`` are :class:`TFN` of one
    architecture (width ``D``, heads ``H``, depth ``L``): Theorem 7 adapts a Transformer to one of
    the same size.

    Introduced in :ref:`ch-transformer`.
    """
    for name, net in (("target", target), ("frozen", frozen)):
        if not isinstance(net, TFN):
            raise ValueError(f"{name} must be a TFN, got {type(net).__name__}")
    for attr, sym in (("width", "D"), ("heads", "H"), ("depth", "L")):
        t, f = getattr(target, attr), getattr(frozen, attr)
        if t != f:
            raise ValueError(
                f"{attr} mismatch: target has {sym}={t}, frozen has {sym}={f}; Theorem 7 needs "
                "one architecture"
            )
