"""The figures of the appendix experiments (``curves``, ``generalization``, ``classification``,
``rank-schedule``) and the caption text that states the budget a figure ran with.

Each function takes the tidy rows of :func:`lora_theory.experiments.run` (or of a CSV written by
the CLI), draws medians over seeds in the book's style and returns the matplotlib figure.

Introduced in :ref:`ch-partitions-depth`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import checks
from ..plotting import method_style
from ..runtime import Mode, check_mode
from .plots import _panels, decorate, panel_axes
from .results import OPTIONAL_COLUMNS, Row, median_curve
from .settings import Experiment

#: Legend words and line style of the columns a figure can draw against the rank.
COLUMN_STYLE: dict[str, tuple[str, str]] = {
    "test_mse": ("test", "-"),
    "train_loss": ("train", ":"),
    "test_accuracy": ("test", "-"),
    "shift_mse": ("shifted test (5×)", "--"),
    "shift_accuracy": ("shifted test (5×)", "--"),
}


def caption(exp: Experiment, mode: Mode | str) -> str:
    """The budget ``exp`` runs with in ``mode``, as caption text: :meth:`Budget.describe
    <lora_theory.experiments.Budget.describe>` (seeds, steps, the lr × wd grid, test points,
    precision), the ranks, and what the experiment sets beyond the main protocol.

    Introduced in :ref:`ch-partitions-depth`.
    """
    if not isinstance(exp, Experiment):
        raise ValueError(f"exp must be an Experiment, got {type(exp).__name__}")
    mode = check_mode(mode)
    ranks = exp.in_mode(mode).ranks
    parts = [exp.budget(mode).describe(mode), f"ranks {', '.join(map(str, ranks))}"]
    sizes = sorted({p.n_train for p in exp.panels if p.n_train is not None})
    if sizes:
        parts.append(f"fixed training sets of {' and '.join(map(str, sizes))} points, full batch")
    if exp.keep == "final":
        parts.append("the final iterate reported")
    if exp.curve_every:
        parts.append(f"training loss recorded every {exp.curve_every} steps")
    if exp.test_shift is not None:
        parts.append(f"shifted test inputs {exp.test_shift:g}·N(0, I)")
    return "; ".join(parts)


def _check(rows: Sequence[Row], panels: Sequence[str] | None) -> tuple[list[Row], list[str]]:
    rows = checks.sequence(rows, "rows", "result Rows", empty=True)
    checks.instances(rows, "rows", Row, "a Row")
    if panels is not None:
        panels = checks.sequence(panels, "panels", "panel names")
        checks.instances(panels, "panels", str, "a panel name (str)")
    return rows, _panels(rows, panels)


def plot_vs_rank(
    rows: Sequence[Row],
    panels: Sequence[str] | None = None,
    *,
    columns: Sequence[str] = ("test_mse",),
    log: bool = True,
    threshold: int | Mapping[str, int] | None = None,
    titles: Mapping[str, str] | None = None,
    ylabel: str = "median over seeds",
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Per panel, the median over seeds of each of ``columns`` (``"test_mse"`` or optional
    columns such as ``"train_loss"``, ``"test_accuracy"``, ``"shift_accuracy"``) against the
    rank, for every method present: colour by method, line style by column (``COLUMN_STYLE``).
    ``log``: log-scale y axis; ``threshold`` adds a dashed line (one rank, or per panel).

    Introduced in :ref:`ch-partitions-depth`.
    """
    rows, names = _check(rows, panels)
    for c in columns:
        checks.choice(c, "columns entry", ("test_mse", *OPTIONAL_COLUMNS[1:]))
    axes = panel_axes(names, axes)
    for ax, panel in zip(axes, names, strict=True):
        for method in dict.fromkeys(r.method for r in rows):
            style = method_style(method)
            for c in columns:
                xs, ys = median_curve(rows, panel, method, y=c)
                if xs:
                    word, line = COLUMN_STYLE[c]
                    label = f"{style['label']}, {word}" if len(columns) > 1 else style["label"]
                    kw = {"color": style["color"], "marker": style["marker"], "label": label}
                    ax.plot(xs, ys, linestyle=line, markersize=4, linewidth=1.5, **kw)
        limit = threshold.get(panel) if isinstance(threshold, Mapping) else threshold
        decorate(ax, (titles or {}).get(panel, panel), limit)
        ax.set_yscale("log" if log else "linear")
        ax.set_xlabel("LoRA rank $R$")
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize="small")
    return axes[0].figure


def plot_curves(
    rows: Sequence[Row],
    panels: Sequence[str] | None = None,
    *,
    threshold: int | Mapping[str, int] | None = None,
    titles: Mapping[str, str] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Per panel, the training loss against the step (log scale), one line per rank: the
    median over seeds of the selected runs' curves (rows with a ``step``). Ranks at or above
    ``threshold`` are drawn solid, those below dashed.

    Introduced in :ref:`ch-partitions-depth`.
    """
    rows, names = _check(rows, panels)
    curve_rows = [r for r in rows if r.step is not None]
    if not curve_rows:
        raise ValueError("no curve rows (rows with a step): run an experiment with curve_every")
    ranks = sorted({r.rank for r in curve_rows})
    colours = plt.get_cmap("viridis")
    axes = panel_axes(names, axes)
    for ax, panel in zip(axes, names, strict=True):
        limit = threshold.get(panel) if isinstance(threshold, Mapping) else threshold
        for k, rank in enumerate(ranks):
            xs, ys = median_curve(curve_rows, panel, "gradient", "step", y="train_loss", rank=rank)
            below = limit is not None and rank < limit
            colour = colours(k / max(1, len(ranks) - 1))
            ax.plot(xs, ys, linestyle="--" if below else "-", color=colour, label=f"$R={rank}$")
        decorate(ax, (titles or {}).get(panel, panel))
        ax.set_yscale("log")
        ax.set_xlabel("Adam step")
    axes[0].set_ylabel("training loss (median over seeds)")
    axes[0].legend(fontsize="small")
    return axes[0].figure


def schedule_curves(
    rows: Sequence[Row], exp: Experiment, frozen: str, schedule: str, method: str
) -> tuple[list[int], list[float]]:
    """``(steps s, median test MSE)`` of the ``rank-schedule`` panels of one frozen model
    (``"random"``/``"pretrained"``) and ``schedule``, for ``method``.

    Introduced in :ref:`ch-partitions-depth`.
    """
    if not isinstance(exp, Experiment):
        raise ValueError(f"exp must be an Experiment, got {type(exp).__name__}")
    checks.choice(frozen, "frozen", ("random", "pretrained"))
    xs, ys = [], []
    for p in exp.panels:
        if p.schedule == schedule and p.pretrained == (frozen == "pretrained"):
            _, mse = median_curve(rows, p.name, method)
            if mse:
                xs.append(p.rank_step)
                ys.append(mse[0])
    order = sorted(range(len(xs)), key=xs.__getitem__)
    return [xs[i] for i in order], [ys[i] for i in order]


def plot_rank_schedule(
    rows: Sequence[Row], exp: Experiment, *, axes: Sequence[Axes] | None = None
) -> Figure:
    """The ``rank-schedule`` figure: per frozen model (random, pretrained) the median test MSE
    against the rank step ``s``, for the gradient update with the paper's, the official code's
    and the balanced schedule, and for the construction with the paper's schedule.

    Introduced in :ref:`ch-partitions-depth`.
    """
    rows, _ = _check(rows, None)
    axes = panel_axes(["random", "pretrained"], axes)
    lines = (
        ("paper", "gradient", "-", "Gradient Update, paper's schedule"),
        ("code", "gradient", "--", "Gradient Update, official code's schedule"),
        ("balanced", "gradient", ":", "Gradient Update, balanced within blocks"),
        ("paper", "construction", "-", "Our Construction, paper's schedule"),
    )
    for ax, frozen in zip(axes, ("random", "pretrained"), strict=True):
        for schedule, method, line, label in lines:
            xs, ys = schedule_curves(rows, exp, frozen, schedule, method)
            style = method_style(method)
            kw = {"color": style["color"], "marker": style["marker"], "linestyle": line}
            ax.plot(xs, ys, markersize=4, linewidth=1.5, label=label, **kw)
        decorate(ax, f"{frozen} frozen model")
        ax.set_yscale("log")
        ax.set_xlabel("rank step $s$")
    axes[0].set_ylabel("test MSE (median over seeds)")
    axes[0].legend(fontsize="x-small")
    return axes[0].figure
