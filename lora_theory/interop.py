r"""The book's adapted FNNs as real PEFT models, and the book's trainer checked against PEFT's.

:func:`to_peft` turns an :class:`~lora_theory.fnn.FNN` (frozen weights ``W_l``, LoRA factors
``(B_l, A_l)``, re-tuned biases ``b̂_l``) into a ``peft.PeftModel`` over

    nn.Sequential(Linear_1, ReLU, Linear_2, ReLU, …, Linear_L, ReLU)

(ReLU after every layer including the last, as the book's FNN; no ReLU for the identity
activation). Layer ``l``'s PEFT ``lora_B`` / ``lora_A`` weights are exactly ``B_l: (D, r_l)`` and
``A_l: (r_l, D)`` — the book uses PEFT's orientation, so nothing is transposed — with
``lora_alpha = r_l`` per layer (``rank_pattern`` / ``alpha_pattern``), i.e. PEFT's scaling
``α / r = 1``, the paper's unscaled ``ΔW = B A``. PEFT computes
``W_l z + b̂_l + B_l (A_l z)``, the book ``(W_l + B_l A_l) z + b̂_l``: equal up to float64
round-off. A layer of rank 0 (or a network without adapters) has no LoRA module in PEFT, which
refuses ``r = 0``; a network with no adapted layer at all uses PEFT's dummy target modules.
:func:`from_peft` reads such a model back (any ``lora_alpha``: PEFT's scaling is folded into ``B``).

:func:`compare_training` trains one configuration of the "LoRA vs final layers" experiment twice
from the same initialisation on the same data: with the book's batched engine
(:func:`~lora_theory.training.fit` with :class:`~lora_theory.experiments.families.fnn.FNNStack`,
whose backward pass is written by hand) and with PEFT's own ``LoraModel`` and
``torch.optim.Adam``. LoRA runs use PEFT LoRA modules (``bias="all"`` when biases are tuned);
final-layer runs use PEFT's ``modules_to_save`` on the last ``k`` layers.

Introduced in :ref:`ch-final-layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer, LoraModel
from peft.utils import ModulesToSaveWrapper
from peft.utils.constants import DUMMY_TARGET_MODULES
from torch import nn

from . import checks
from .adapters import LoRAFactors
from .experiments.families.fnn import FNNStack, Trainable
from .fnn import FNN
from .runtime import generator
from .training import FitResult, FitSettings, Run, Task, fit, lora_init


def layer_names(depth: int, activation: str) -> list[str]:
    """The ``nn.Sequential`` names of the ``L`` linear layers: ``"0", "2", …`` with ReLU,
    ``"0", "1", …`` with the identity activation.

    Introduced in :ref:`ch-final-layers`.
    """
    depth = checks.integer(depth, "depth", 1, checks.MAX_LENGTH)
    checks.choice(activation, "activation", ("relu", "identity"))
    step = 2 if activation == "relu" else 1
    return [str(step * k) for k in range(depth)]


def _build(net: FNN, bias_trainable: bool, modules_to_save: Sequence[str] = ()) -> PeftModel:
    """The PEFT model of ``net`` (see :func:`to_peft`), float64."""
    width, dtype = net.width, torch.float64
    layers: list[nn.Module] = []
    for w, b in zip(net.weights, net.biases, strict=True):
        linear = nn.Linear(width, width, bias=net.has_bias, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(w)
            if net.has_bias:
                linear.bias.copy_(b)
        layers.append(linear)
        if net.activation == "relu":
            layers.append(nn.ReLU())
    names = layer_names(net.depth, net.activation)
    adapters = net.adapters or [LoRAFactors.zeros(width)] * net.depth
    ranks = {n: a.inner_dim for n, a in zip(names, adapters, strict=True) if a.inner_dim}
    config = LoraConfig(
        r=max(ranks.values(), default=1),
        lora_alpha=max(ranks.values(), default=1),
        target_modules=list(ranks) if ranks else DUMMY_TARGET_MODULES,
        rank_pattern=ranks,
        alpha_pattern=ranks,  # α_l = r_l: PEFT's scaling α/r is 1 on every layer
        lora_dropout=0.0,
        bias="all" if bias_trainable else "none",
        modules_to_save=list(modules_to_save) or None,
    )
    model = get_peft_model(nn.Sequential(*layers), config)
    adapter = model.active_adapter
    sequential = model.base_model.model
    for name, factors in zip(names, adapters, strict=True):
        if not factors.inner_dim:
            continue
        layer = sequential.get_submodule(name)
        if layer.scaling[adapter] != 1.0 or layer.r[adapter] != factors.inner_dim:
            raise RuntimeError(
                f"PEFT built layer {name} with r = {layer.r[adapter]}, scaling "
                f"{layer.scaling[adapter]}; expected r = {factors.inner_dim}, scaling 1"
            )
        with torch.no_grad():
            layer.lora_A[adapter].weight.copy_(factors.A)
            layer.lora_B[adapter].weight.copy_(factors.B)
    return model


def to_peft(net: FNN) -> PeftModel:
    r"""``net`` as a ``peft.PeftModel`` with the same forward: ``model(x) = net(x)`` for ``x`` of
    shape ``(n, D)``, to float64 round-off.

    The base model is ``nn.Sequential`` of ``nn.Linear(D, D)`` (``bias=False`` when ``net`` has
    no biases), each followed by ``nn.ReLU`` unless the activation is the identity; its weights are
    the frozen ``W_l`` and its biases ``net``'s (tuned) ``b̂_l``. Every layer with an adapter of
    inner dimension ``r_l ≥ 1`` becomes a PEFT LoRA layer with ``lora_A = A_l`` ``(r_l, D)``,
    ``lora_B = B_l`` ``(D, r_l)`` and scaling ``α_l / r_l = 1`` (checked); rank-0 layers stay plain
    ``nn.Linear``. All biases are trainable (``bias="all"``): the paper re-tunes every bias.
    Parameters are float64 whatever ``net``'s dtype.

    Introduced in :ref:`ch-final-layers`.
    """
    if not isinstance(net, FNN):
        raise ValueError(f"net must be an fnn.FNN, got {type(net).__name__}")
    return _build(net, bias_trainable=net.has_bias)


def _linear(module: nn.Module, adapter: str, where: str) -> tuple[nn.Linear, LoRAFactors | None]:
    """The effective ``nn.Linear`` of one layer and its LoRA factors (``B`` scaled) if any."""
    if isinstance(module, ModulesToSaveWrapper):
        if module.disable_adapters or adapter not in module.modules_to_save:
            module = module.original_module
        else:
            module = module.modules_to_save[adapter]
    if isinstance(module, LoraLayer):
        if module.merged:
            raise ValueError(f"{where}: LoRA weights are merged; call unmerge_adapter() first")
        if module.disable_adapters:
            raise ValueError(f"{where}: adapters are disabled; enable them first")
        variant = adapter in getattr(module, "lora_variant", {}) or getattr(
            module, "use_dora", {}
        ).get(adapter, False)
        if variant or getattr(module, "lora_bias", {}).get(adapter, False):
            raise ValueError(f"{where}: only plain LoRA (no DoRA or other variants, no lora_bias)")
        base = module.get_base_layer()
        if adapter not in module.lora_A:
            return _linear(base, adapter, where)
        a = module.lora_A[adapter].weight.detach().to(torch.float64)
        b = module.lora_B[adapter].weight.detach().to(torch.float64) * module.scaling[adapter]
        linear, _ = _linear(base, adapter, where)
        return linear, LoRAFactors(b, a)
    if type(module) is not nn.Linear:
        raise ValueError(f"{where} must be nn.Linear (or its PEFT LoRA wrapper), got {module!r}")
    return module, None


def from_peft(model: PeftModel) -> FNN:
    r"""The :class:`~lora_theory.fnn.FNN` of a PEFT LoRA model over ``nn.Sequential`` of
    ``Linear(D, D)`` / ``ReLU``: the reverse of :func:`to_peft`.

    The structure must be ``Linear, ReLU, Linear, ReLU, …`` (ReLU after every layer, including
    the last: activation ``"relu"``) or ``Linear, Linear, …`` (``"identity"``), all layers
    ``D × D`` with one ``D`` and all with or all without biases. LoRA layers of the active adapter
    give ``adapters[l] = (scaling · lora_B, lora_A)`` (in float64, so ``ΔW = B A`` is PEFT's
    update for any ``lora_alpha``); layers without LoRA get rank-0 factors; a model without any
    LoRA layer gives ``adapters=None``. A layer in ``modules_to_save`` contributes its trained
    copy (the one PEFT's forward uses). Dropout is ignored: the function is the model in
    evaluation mode. Raises ``ValueError`` naming the problem for anything else (not a
    ``PeftModel``, another PEFT method, several active adapters, merged or disabled adapters,
    DoRA, another layer type or order).

    Introduced in :ref:`ch-final-layers`.
    """
    if not isinstance(model, PeftModel):
        raise ValueError(f"model must be a peft.PeftModel, got {type(model).__name__}")
    if not isinstance(model.base_model, LoraModel):
        raise ValueError(
            f"model must use PEFT's LoRA, got {type(model.base_model).__name__} "
            f"({model.peft_config[model.active_adapter].peft_type})"
        )
    active = model.active_adapters
    if len(active) != 1:
        raise ValueError(f"model must have exactly one active adapter, got {active}")
    adapter = active[0]
    sequential = model.base_model.model
    if type(sequential) is not nn.Sequential:
        raise ValueError(f"the base model must be nn.Sequential, got {type(sequential).__name__}")
    modules = list(sequential)
    relu = any(isinstance(m, nn.ReLU) for m in modules)
    step = 2 if relu else 1
    if not modules or len(modules) % step:
        raise ValueError(
            f"the base model must be Linear{', ReLU' if relu else ''} repeated, got {len(modules)} "
            "modules"
        )
    weights, biases, factors = [], [], []
    for k in range(len(modules) // step):
        where = f"layer {k + 1} (module {step * k})"
        if relu and not isinstance(modules[2 * k + 1], nn.ReLU):
            raise ValueError(
                f"module {2 * k + 1} must be nn.ReLU (a ReLU after every Linear), got "
                f"{modules[2 * k + 1]!r}"
            )
        linear, lora = _linear(modules[step * k], adapter, where)
        weights.append(linear.weight.detach().to(torch.float64))
        biases.append(None if linear.bias is None else linear.bias.detach().to(torch.float64))
        factors.append(lora)
    if len({b is None for b in biases}) != 1:
        raise ValueError("all layers must have biases or none must (a mix has no book FNN)")
    width = weights[0].shape[0]
    for k, w in enumerate(weights):
        if tuple(w.shape) != (width, width):
            raise ValueError(
                f"layer {k + 1} must be Linear({width}, {width}), got weight shape {tuple(w.shape)}"
            )
    adapters = None
    if any(f is not None for f in factors):
        adapters = [f if f is not None else LoRAFactors.zeros(width) for f in factors]
    return FNN(
        weights,
        None if biases[0] is None else biases,
        activation="relu" if relu else "identity",
        adapters=adapters,
    )


@dataclass(frozen=True)
class TrainingComparison:
    r"""One configuration trained by the book's engine and by PEFT + ``torch.optim.Adam``.

    ``eval_steps`` ``(E,)``: the updates after which the validation MSE was measured (``0`` is the
    initialisation); ``engine_val``, ``peft_val`` ``(E,)``: the validation MSE curves (the same
    ``n_val`` points); ``peft_train`` ``(steps,)``: PEFT's training loss of every step (the
    engine reports only its last, ``engine_final_train``); ``n_params``: PEFT's trainable
    parameter count; ``engine``: the engine's :class:`~lora_theory.training.FitResult`;
    ``model``: the trained PEFT model.

    Introduced in :ref:`ch-final-layers`.
    """

    eval_steps: torch.Tensor
    engine_val: torch.Tensor
    peft_val: torch.Tensor
    peft_train: torch.Tensor
    engine_final_train: float
    n_params: int
    engine: FitResult
    model: PeftModel

    @property
    def max_rel_diff(self) -> float:
        """``max_s |engine_val(s) − peft_val(s)| / engine_val(s)`` over the curve, and the same
        for the last training loss."""
        curve = ((self.engine_val - self.peft_val).abs() / self.engine_val.abs()).max()
        last = abs(self.engine_final_train - float(self.peft_train[-1])) / self.engine_final_train
        return max(float(curve), last)


def compare_training(
    task: Task, trainable: Trainable, lr: float, settings: FitSettings, weight_decay: float = 0.0
) -> TrainingComparison:
    r"""Train ``trainable`` on ``task`` with the engine and with PEFT, identically, in float64.

    ``task``: a :class:`~lora_theory.training.Task` whose ``frozen`` is an
    :class:`~lora_theory.fnn.FNN` (e.g. a random task of the ``flt`` experiment);
    ``trainable``: LoRA of rank ``R`` on every layer (``tune_bias`` optional) **or** the last
    ``k`` layers in full (:class:`~lora_theory.experiments.families.fnn.Trainable`; not both:
    PEFT cannot put a LoRA module and a trained copy on one layer). Both runs start from
    ``A_l ~ N(0, init_std²)`` from the seed's ``"lora-init"`` stream
    (:func:`~lora_theory.training.lora_init`), ``B_l = 0``; both minimise the MSE (mean over the
    batch and the ``D`` outputs) on the batches of the seed's ``settings.train_stream``, drawn
    ``(chunk, batch_size)`` at a time exactly as the engine draws them, with Adam
    (``torch.optim.Adam``'s defaults, coupled weight decay ``weight_decay``) at learning rate
    ``lr``; both validate on the same ``n_val`` points after every ``eval_every`` steps. The
    engine runs one CPU shard. ``settings.n_val ≥ 1`` (the curves are validation curves) and
    ``stop_ratio=None`` are required. The curves agree to float64 round-off
    (:attr:`TrainingComparison.max_rel_diff`), growing slowly with the number of steps.

    Introduced in :ref:`ch-final-layers`.
    """
    if not isinstance(task, Task) or not isinstance(task.frozen, FNN):
        raise ValueError("task must be a training.Task whose frozen model is an fnn.FNN")
    if not isinstance(trainable, Trainable):
        raise ValueError(f"trainable must be a Trainable, got {type(trainable).__name__}")
    if not isinstance(settings, FitSettings):
        raise ValueError(f"settings must be FitSettings, got {type(settings).__name__}")
    frozen = task.frozen
    width, depth = frozen.width, frozen.depth
    trainable.check(width, depth, frozen.has_bias)
    if trainable.lora_rank and trainable.final_layers:
        raise ValueError(
            "trainable: LoRA together with final-layer tuning has no PEFT counterpart here "
            f"(lora_rank={trainable.lora_rank}, final_layers={trainable.final_layers})"
        )
    if settings.n_val < 1 or settings.stop_ratio is not None:
        raise ValueError("settings need n_val ≥ 1 and stop_ratio=None for a comparison of curves")
    run = Run(0, trainable, lr, weight_decay)
    engine = fit([task], [run], settings, stacked=FNNStack, device="cpu", workers=1)

    rank = trainable.lora_rank
    a = lora_init(task, rank, rank, (depth, width), settings.init_std)
    start = FNN(
        frozen.effective_weights,
        frozen.biases if frozen.has_bias else None,
        frozen.activation,
        [LoRAFactors(torch.zeros(width, rank, dtype=torch.float64), a_l) for a_l in a]
        if rank
        else None,
    )
    names = layer_names(depth, frozen.activation)
    model = _build(
        start,
        bias_trainable=trainable.tune_bias and frozen.has_bias,
        modules_to_save=names[depth - trainable.final_layers :],
    )
    params = [p for p in model.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=run.lr, weight_decay=run.weight_decay)
    val_x, val_y = task.sample((settings.n_val,), generator(task.seed, "val"))
    train = generator(task.seed, settings.train_stream)
    peft_val, peft_train, steps = [], [], []
    for step in range(settings.steps + 1):
        if step % settings.eval_every == 0 or step == settings.steps:
            with torch.no_grad():
                peft_val.append(float(nn.functional.mse_loss(model(val_x), val_y)))
            steps.append(step)
        if step == settings.steps:
            break
        if step % settings.chunk == 0:
            shape = (min(settings.chunk, settings.steps - step), settings.batch_size)
            xs, ys = task.sample(shape, train)
        loss = nn.functional.mse_loss(model(xs[step % settings.chunk]), ys[step % settings.chunk])
        adam.zero_grad()
        loss.backward()
        adam.step()
        peft_train.append(float(loss.detach()))
    return TrainingComparison(
        eval_steps=torch.tensor(steps),
        engine_val=engine.val_curve[0],
        peft_val=torch.tensor(peft_val, dtype=torch.float64),
        peft_train=torch.tensor(peft_train, dtype=torch.float64),
        engine_final_train=float(engine.final_train_mse[0]),
        n_params=sum(p.numel() for p in params),
        engine=engine,
        model=model,
    )
