"""The figures of the experiments: MSE against rank per panel, drawn from result rows.

:func:`plot_mse_vs_rank` takes the tidy rows of :func:`lora_theory.experiments.run` (or of a CSV
written by the CLI) and plots, per panel, the median test MSE over seeds of every method against
the LoRA rank (log scale), with a dashed line at the rank threshold where the construction becomes
exact, in the book's style (``lora_theory.plotting``).

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import checks
from ..plotting import PANEL_HEIGHT, PANEL_WIDTH, STYLE, method_style
from .results import Row, median_curve


def _panels(rows: Sequence[Row], panels: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(r.panel for r in rows))
    if panels is None:
        return present
    missing = [p for p in panels if p not in present]
    if missing:
        raise ValueError(f"no rows for panels {missing}; the rows have {present}")
    return list(panels)


@plt.rc_context(STYLE)
def plot_mse_vs_rank(
    rows: Sequence[Row],
    panels: Sequence[str] | None = None,
    *,
    threshold: int | Mapping[str, int] | None = None,
    x: str = "rank",
    titles: Mapping[str, str] | None = None,
    axes: Sequence[Axes] | None = None,
    floor: float | None = None,
) -> Figure:
    """One log-scale panel per ``panels`` entry (default: every panel in ``rows``, in order).

    Each method present is drawn as the median ``test_mse`` over seeds against ``x`` (``"rank"`` or
    ``"n_params"``). ``threshold`` (one rank for all panels or ``{panel: rank}``) adds a dashed
    vertical line (only when ``x == "rank"``). Pass ``axes`` to draw into existing axes.
    ``floor`` (a positive MSE, e.g. float64 round-off) draws every value below it at the floor, on
    a grey band labelled in the legend, instead of as round-off noise. Returns the matplotlib
    figure.

    Introduced in :ref:`sec-fig1`.
    """
    rows = checks.sequence(rows, "rows", "result Rows", empty=True)
    checks.instances(rows, "rows", Row, "a Row")
    if panels is not None:
        panels = checks.sequence(panels, "panels", "panel names")
        checks.instances(panels, "panels", str, "a panel name (str)")
    checks.choice(x, "x", ("rank", "n_params"))
    if isinstance(threshold, Mapping):
        for panel, limit in threshold.items():
            checks.integer(limit, f"threshold[{panel!r}]", low=0)
    elif threshold is not None:
        checks.integer(threshold, "threshold", low=0)
    if floor is not None:
        floor = checks.real(floor, "floor", positive=True)
    if titles is not None and not isinstance(titles, Mapping):
        raise ValueError(f"titles must be a mapping panel → title, got {type(titles).__name__}")
    if axes is not None:
        axes = checks.sequence(axes, "axes", "matplotlib Axes")
        checks.instances(axes, "axes", Axes, "a matplotlib Axes")
    names = _panels(rows, panels)
    axes = panel_axes(names, axes)
    for ax, panel in zip(axes, names, strict=True):
        for method in dict.fromkeys(r.method for r in rows):
            xs, ys = median_curve(rows, panel, method, x=x)
            if floor is not None:
                ys = [max(v, floor) for v in ys]
            if xs:
                ax.plot(xs, ys, markersize=4, linewidth=1.5, **method_style(method))
        limit = threshold.get(panel) if isinstance(threshold, Mapping) else threshold
        decorate(ax, (titles or {}).get(panel, panel), limit if x == "rank" else None)
        ax.set_yscale("log")
        if floor is not None:
            label = f"round-off (< {floor:.0e}), drawn at the floor" if ax is axes[0] else None
            ax.axhspan(floor / 30, floor, color="0.88", zorder=0, lw=0, label=label)
        ax.set_xlabel("LoRA rank $R$" if x == "rank" else "trainable parameters")
    if floor is not None:  # after every panel is drawn: shared y axes autoscale together
        for ax in axes:
            ax.set_ylim(bottom=floor / 30)
    axes[0].set_ylabel("test MSE (median over seeds)")
    axes[0].legend()
    return axes[0].figure


def panel_axes(names: Sequence[str], axes: Sequence[Axes] | None) -> list[Axes]:
    """``axes`` (one per name, checked), or a new row of shared-y panels, one per name.

    Introduced in :ref:`sec-fig1`.
    """
    if not names:
        raise ValueError("no rows to plot")
    if axes is None:
        _, created = plt.subplots(
            1,
            len(names),
            figsize=(PANEL_WIDTH * len(names), PANEL_HEIGHT),
            sharey=True,
            squeeze=False,
            layout="constrained",
        )
        return list(created[0])
    if len(axes) != len(names):
        raise ValueError(f"got {len(axes)} axes for {len(names)} panels")
    return list(axes)


def decorate(ax: Axes, title: str, threshold: int | None = None) -> None:
    """The book's panel: ``title``, a grid, integer x ticks, and a dashed line at the rank
    ``threshold`` (when given).

    Introduced in :ref:`sec-fig1`.
    """
    if threshold is not None:
        ax.axvline(
            threshold, color="0.4", linestyle="--", linewidth=1, label=f"threshold $R={threshold}$"
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
