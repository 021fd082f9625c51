"""What the book adds to an experiment's figure: the round-off floor and the run's budget.

* :func:`draw_roundoff_floor` — values below a floor (float64 round-off, not a measured error)
  are drawn on a grey band at the floor instead of scattering down to ``1e-30``;
* :func:`budget_caption` — the sentence a figure caption states about the run that produced it:
  mode, seeds, Adam steps, learning rates, weight decays, test points, and that training and
  evaluation run in float64 where the paper's code uses float32.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .. import checks
from ..plotting import STYLE
from ..runtime import Mode, check_mode
from .settings import Budget

#: Where the figures draw round-off: float64 errors of exact constructions sit far below it.
ROUNDOFF_FLOOR = 1e-20


def _is_axes_line(y: object) -> bool:
    """A vertical line in axes coordinates (``axvline``), which spans ``[0, 1]``."""
    return list(y) == [0, 1]


@plt.rc_context(STYLE)
def draw_roundoff_floor(figure: Figure, floor: float = ROUNDOFF_FLOOR) -> None:
    """Draw every plotted value below ``floor`` at ``floor``, on a grey band ``[floor/30, floor]``
    in each axes, and add the band to the first axes' legend (in place).

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(figure, Figure):
        raise ValueError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
    floor = checks.real(floor, "floor", positive=True)
    if not figure.axes:
        raise ValueError("figure has no axes to draw the floor in")
    for ax in figure.axes:
        for line in ax.get_lines():
            y = line.get_ydata()
            if not _is_axes_line(y):
                line.set_ydata([max(v, floor) for v in y])
        ax.axhspan(floor / 30, floor, color="0.88", zorder=0, lw=0)
        ax.set_ylim(bottom=floor / 30)
    label = f"round-off (< {floor:.0e}), drawn at the floor"
    figure.axes[0].axhspan(0, 0, color="0.88", label=label)
    figure.axes[0].legend()


def budget_caption(budget: Budget, mode: Mode | str, *, trained: bool = True) -> str:
    """The run's mode and budget as caption text, e.g. ``"quick mode: 3 seeds, 1000 Adam steps,
    learning rates 0.01, 0.001, weight decays 0, 1000 test points; training and evaluation in
    float64 (the paper's code uses float32)"``. With ``trained=False`` (a construction-only
    run) the steps and the grid are left out.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(budget, Budget):
        raise ValueError(f"budget must be an experiments.Budget, got {type(budget).__name__}")
    mode = check_mode(mode)
    if not isinstance(trained, bool):
        raise ValueError(f"trained must be a bool, got {trained!r}")
    if not trained:
        return (
            f"{mode} mode: {len(budget.seeds)} seeds, {budget.n_test} test points; evaluation "
            "in float64 (the paper's code uses float32)"
        )
    rates = ", ".join(f"{v:g}" for v in budget.lrs)
    decays = ", ".join(f"{v:g}" for v in budget.weight_decays)
    return (
        f"{mode} mode: {len(budget.seeds)} seeds, {budget.steps} Adam steps, learning rates "
        f"{rates}, weight decays {decays}, {budget.n_test} test points; training and "
        "evaluation in float64 (the paper's code uses float32)"
    )
