"""The seed's "singular-value-based adaptive rank allocation", examined, and optimal rank
allocation across matrices.

* ``.seed`` — :func:`seed_proposal` (the seed's code exactly as written), the seed's setting,
  and the measurements of what it computes (factors, symmetry, definiteness, re-allocation,
  objective, approximation errors);
* ``.optimal`` — :func:`optimal_ranks` (exact allocation of a rank budget over several error
  matrices), the uniform allocation and the residuals of an allocation;
* ``.inits`` — initialisations of ``(B, A)`` and the initial gradient norm under several
  readings;
* ``.dynamics`` — full-batch GD and Adam on the matrix problem, step-size search, and the
  correlation between initial gradient norm and final loss;
* ``.practice`` — PEFT's LoRA with a static ``rank_pattern``, PiSSA and AdaLoRA on a small
  network of independent linear layers (imports ``peft`` only when used).

Introduced in :ref:`ch-allocation`.
"""

from . import practice
from .dynamics import (
    Correlation,
    Stack,
    Tuned,
    gradient_loss_correlation,
    loss_floor,
    stack_starts,
    train,
    tune_step_size,
)
from .inits import (
    INIT_NAMES,
    LOSSES,
    WRTS,
    PiSSAInit,
    Reading,
    Start,
    direction_gradients,
    gaussian_init,
    gradient_norm,
    gradient_norm_table,
    gradients,
    initialise,
    lora_scale,
    loss_value,
    pissa_init,
    seed_init,
    seed_init_v,
    seed_uniform_init,
    standard_init,
)
from .optimal import (
    OBJECTIVES,
    Comparison,
    compare_allocations,
    optimal_ranks,
    residuals,
    spectrum,
    total_residual,
    uniform_ranks,
)
from .seed import (
    Errors,
    SeedReport,
    SeedSetting,
    analyse_seed_proposal,
    approximation_errors,
    columns_per_direction,
    definiteness,
    factor_basis,
    is_symmetric,
    random_orthogonal,
    seed_formula_delta,
    seed_objective,
    seed_objective_values,
    seed_proposal,
    seed_setting,
)

__all__ = [
    "INIT_NAMES",
    "LOSSES",
    "OBJECTIVES",
    "WRTS",
    "Comparison",
    "Correlation",
    "Errors",
    "PiSSAInit",
    "Reading",
    "SeedReport",
    "SeedSetting",
    "Stack",
    "Start",
    "Tuned",
    "analyse_seed_proposal",
    "approximation_errors",
    "columns_per_direction",
    "compare_allocations",
    "definiteness",
    "direction_gradients",
    "factor_basis",
    "gaussian_init",
    "gradient_loss_correlation",
    "gradient_norm",
    "gradient_norm_table",
    "gradients",
    "initialise",
    "is_symmetric",
    "lora_scale",
    "loss_floor",
    "loss_value",
    "optimal_ranks",
    "pissa_init",
    "practice",
    "random_orthogonal",
    "residuals",
    "seed_formula_delta",
    "seed_init",
    "seed_init_v",
    "seed_objective",
    "seed_objective_values",
    "seed_proposal",
    "seed_setting",
    "seed_uniform_init",
    "spectrum",
    "stack_starts",
    "standard_init",
    "total_residual",
    "train",
    "tune_step_size",
    "uniform_ranks",
]
