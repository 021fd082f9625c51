"""The paper's synthetic experiments: settings as data, model families, batched runners, tidy
rows, their figures and the CLI.

Typical use::

    from lora_theory import experiments
    rows = experiments.run("fig1")          # quick on a CPU, the paper's protocol on a GPU
    experiments.plot_mse_vs_rank(rows, threshold=8)

``python -m lora_theory reproduce fig1 --mode quick --out out/`` runs the same code and writes
``out/fig1.csv``.

Introduced in :ref:`sec-fig1`.
"""

from . import appendix  # noqa: F401  (registers E6-E8 and E10 in EXPERIMENTS)
from .budgets import BUDGETS, Budget, budget
from .families import FAMILIES, Family, family, register, unregister
from .plots import plot_mse_vs_rank
from .results import COLUMNS, Row, median_curve, read_csv, write_csv
from .runners import run
from .settings import EXPERIMENTS, Experiment, Panel, experiment
from .tasks import random_task

__all__ = [
    "BUDGETS",
    "COLUMNS",
    "EXPERIMENTS",
    "FAMILIES",
    "Budget",
    "Experiment",
    "Family",
    "Panel",
    "Row",
    "budget",
    "experiment",
    "family",
    "median_curve",
    "plot_mse_vs_rank",
    "random_task",
    "read_csv",
    "register",
    "run",
    "unregister",
    "write_csv",
]
