"""The paper's synthetic experiments: settings as data, batched runners, tidy rows, the CLI.

Typical use (chapter "Linear models")::

    from lora_theory import experiments, plotting
    rows = experiments.run("fig1")          # quick on a CPU, the paper's protocol on a GPU
    plotting.plot_mse_vs_rank(rows, threshold=8)

``python -m lora_theory reproduce fig1 --mode quick --out out/`` runs the same code and writes
``out/fig1.csv``.
"""

from .results import COLUMNS, Row, median_curve, read_csv, write_csv
from .runners import run
from .settings import BUDGETS, FIGURES, Budget, Figure, Panel, budget, figure
from .tasks import random_task

__all__ = [
    "BUDGETS",
    "COLUMNS",
    "FIGURES",
    "Budget",
    "Figure",
    "Panel",
    "Row",
    "budget",
    "figure",
    "median_curve",
    "random_task",
    "read_csv",
    "run",
    "write_csv",
]
