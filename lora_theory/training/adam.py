"""Adam for many configurations at once, each with its own learning rate and weight decay.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import math

import torch

#: Adam's defaults, as in ``torch.optim.Adam``.
BETAS = (0.9, 0.999)
EPS = 1e-8


class BatchedAdam:
    """``torch.optim.Adam`` for ``C`` stacked configs, with a per-config ``lr`` and weight decay.

    For the parameter ``θ`` (leading dim ``C``) and step ``t``:
    ``g ← ∇θ + wd·θ``, ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``,
    ``θ ← θ − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)``, applied only where ``mask`` (broadcastable
    to ``θ``) is true and the config is active; elsewhere ``θ`` is left bit-for-bit unchanged.
    Same operation order as PyTorch's implementation.

    Introduced in :ref:`sec-fig1`.
    """

    def __init__(
        self, param: torch.Tensor, mask: torch.Tensor, lr: torch.Tensor, weight_decay: torch.Tensor
    ) -> None:
        if not isinstance(param, torch.Tensor) or not param.is_floating_point() or param.ndim < 1:
            raise ValueError(f"param must be a floating tensor (C, …), got {_describe(param)}")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a boolean tensor, got {_describe(mask)}")
        try:
            torch.broadcast_shapes(mask.shape, param.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to param "
                f"{tuple(param.shape)}"
            ) from exc
        for name, t in (("lr", lr), ("weight_decay", weight_decay)):
            if not isinstance(t, torch.Tensor) or t.shape != (len(param),) or t.is_complex():
                raise ValueError(
                    f"{name} must be a tensor of shape ({len(param)},), one per config; got "
                    f"{_describe(t)}"
                )
            if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
                raise ValueError(f"{name} must be finite and non-negative, got {t.tolist()}")
        per_config = (-1,) + (1,) * (param.ndim - 1)
        self.param, self.fixed = param, ~mask
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)
        self.lr, self.wd = lr.reshape(per_config), weight_decay.reshape(per_config)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One update with ``grad`` (shape of the parameter, overwritten); ``active``: ``(C,)``."""
        if (
            not isinstance(grad, torch.Tensor)
            or grad.shape != self.param.shape
            or grad.dtype != self.param.dtype
        ):
            raise ValueError(
                f"grad must have the parameter's shape {tuple(self.param.shape)} and dtype "
                f"{self.param.dtype}, got {_describe(grad)}"
            )
        if active is not None and (
            not isinstance(active, torch.Tensor)
            or active.dtype != torch.bool
            or active.shape != (len(self.param),)
        ):
            raise ValueError(
                f"active must be a boolean tensor of shape ({len(self.param)},), got "
                f"{_describe(active)}"
            )
        self.t += 1
        beta1, beta2 = BETAS
        bc1, bc2_sqrt = 1 - beta1**self.t, math.sqrt(1 - beta2**self.t)
        g = grad.addcmul_(self.param, self.wd)  # in place: ``grad`` is not used afterwards
        self.m.lerp_(g, 1 - beta1)
        self.v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        update = self.v.sqrt().div_(bc2_sqrt).add_(EPS)  # the denominator, then the update
        torch.div(self.m, update, out=update).mul_(self.lr / bc1)
        fixed = self.fixed if active is None else self.fixed | ~active.reshape(self.lr.shape)
        self.param.sub_(update.masked_fill_(fixed, 0.0))


def _describe(t: object) -> str:
    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}"
    return type(t).__name__
