r"""Lemma 1: LoRA on a deep linear model, an Eckart–Young–Mirsky theorem for products.

Setting (chapter "Linear models"): a frozen model ``x ↦ W_L ⋯ W_1 x`` is adapted to a target
``x ↦ W̄ x`` by rank-``R`` updates ``ΔW_l = B_l A_l`` of every layer. With the error matrix
``E = W̄ − ∏_l W_l``, Lemma 1 states

    min_{rank ΔW_l ≤ R} ‖∏_l (W_l + ΔW_l) − W̄‖₂ = σ_{RL+1}(E),

provided every ``W_l`` and every ``∏_l W_l + LR_r(E)`` (``r ≤ R(L−1)``) is non-singular. The
construction (:func:`construct`) splits the top ``RL`` singular triplets of ``E`` into ``L``
consecutive blocks ``E_l`` and sets ``ΔW_l = P_l^{-1} E_l Q̃_{l-1}^{-1}`` with
``P_l = W_L ⋯ W_{l+1}`` and ``Q̃_{l-1} = (W_{l-1}+ΔW_{l-1}) ⋯ (W_1+ΔW_1)``; the telescoping identity
then makes the total change equal ``LR_{RL}(E)``.

``rank`` may be one integer ``R`` (every layer) or a list ``[R_1, …, R_L]`` of per-layer ranks;
only the sum ``Σ_l R_l`` matters (the error is ``σ_{ΣR_l + 1}(E)``).

* ``.model`` — ``E``, the optimum, the threshold, the adapted product, the telescoping identity;
* ``.assumptions`` — the non-singularity hypothesis, matrix by matrix (:func:`diagnose`);
* ``.construction`` — :func:`construct` (one LU factorization per matrix it solves with, one SVD
  of ``E``, a self-check that needs no further SVD unless it is inconclusive);
* ``.gram`` — ``E``'s right singular vectors from the eigendecomposition of ``EᵀE``, where that
  route can vouch for them (cheaper than the SVD above ``D = 64``);
* ``.batched`` — :func:`construct_batch`: problems × ranks in one call (``method="auto"``
  rebuilds an entry it cannot certify alone, with the conditioned construction);
* ``.precision`` — :func:`precision_check`: the sequential solution in extended precision,
  stored in float64 (does more precision in the design step help?);
* ``.refinement`` — :func:`gauss_newton`: rank-preserving Gauss–Newton steps on given factors
  (does Newton's method repair a float64 solution?).

Introduced in :ref:`ch-linear`.
"""

from .assumptions import AssumptionReport, diagnose
from .batched import BatchedAdapters, construct_batch
from .construction import (
    AUTO_RTOL,
    METHODS,
    ConditioningWarning,
    construct,
    construction_conditioning,
)
from .model import (
    adapted_product,
    check_inputs,
    error_matrix,
    min_error,
    population_mse,
    relative_error,
    required_rank,
    telescoping_terms,
)
from .precision import PrecisionCheck, precision_check
from .refinement import Refinement, gauss_newton

__all__ = [
    "AUTO_RTOL",
    "METHODS",
    "AssumptionReport",
    "BatchedAdapters",
    "ConditioningWarning",
    "PrecisionCheck",
    "Refinement",
    "adapted_product",
    "check_inputs",
    "construct",
    "construct_batch",
    "construction_conditioning",
    "diagnose",
    "error_matrix",
    "gauss_newton",
    "min_error",
    "population_mse",
    "precision_check",
    "relative_error",
    "required_rank",
    "telescoping_terms",
]
