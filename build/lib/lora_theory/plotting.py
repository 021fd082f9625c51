"""The book's figure style: the paper's MSE-vs-rank panels, drawn from result rows.

Plotting only draws the data it is given: :func:`plot_mse_vs_rank` takes the tidy rows of
:func:`lora_theory.experiments.run` (or of a CSV written by the CLI) and plots, per panel, the
median test MSE over seeds of every method against the LoRA rank (log scale), with a dashed line at
the rank threshold where the construction becomes exact. First used in the chapter "Linear models"
(Figure 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .experiments.results import Row, median_curve

#: Legend label, colour and marker of each method (the paper's names).
METHOD_STYLE: dict[str, dict[str, str]] = {
    "construction": {"label": "Our Construction", "color": "tab:red", "marker": "o"},
    "gradient": {"label": "Gradient Update", "color": "tab:blue", "marker": "s"},
    "final_layers": {"label": "Final Layers Tuning", "color": "tab:green", "marker": "^"},
}
PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2


def _panels(rows: Sequence[Row], panels: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(r.panel for r in rows))
    if panels is None:
        return present
    missing = [p for p in panels if p not in present]
    if missing:
        raise ValueError(f"no rows for panels {missing}; the rows have {present}")
    return list(panels)


def plot_mse_vs_rank(
    rows: Sequence[Row],
    panels: Sequence[str] | None = None,
    *,
    threshold: int | Mapping[str, int] | None = None,
    x: str = "rank",
    titles: Mapping[str, str] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """One log-scale panel per ``panels`` entry (default: every panel in ``rows``, in order).

    Each method present is drawn as the median ``test_mse`` over seeds against ``x`` (``"rank"`` or
    ``"n_params"``). ``threshold`` (one rank for all panels or ``{panel: rank}``) adds a dashed
    vertical line (only when ``x == "rank"``). Pass ``axes`` to draw into existing axes. Returns
    the matplotlib figure.
    """
    names = _panels(rows, panels)
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
        axes = list(created[0])
    elif len(axes) != len(names):
        raise ValueError(f"got {len(axes)} axes for {len(names)} panels")
    for ax, panel in zip(axes, names, strict=True):
        for method, style in METHOD_STYLE.items():
            xs, ys = median_curve(rows, panel, method, x=x)
            if xs:
                ax.plot(xs, ys, markersize=4, linewidth=1.5, **style)
        limit = threshold.get(panel) if isinstance(threshold, Mapping) else threshold
        if limit is not None and x == "rank":
            ax.axvline(
                limit, color="0.4", linestyle="--", linewidth=1, label=f"threshold $R={limit}$"
            )
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("LoRA rank $R$" if x == "rank" else "trainable parameters")
        ax.set_title((titles or {}).get(panel, panel))
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("test MSE (median over seeds)")
    axes[0].legend(fontsize="small")
    return axes[0].figure
