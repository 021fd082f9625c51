"""The book's figure style: one colour, marker and legend label per method, panel sizes, fonts.

Only the style lives here; the figure-drawing functions live next to the experiments
(``lora_theory.experiments.plots``) and draw inside ``matplotlib.rc_context(STYLE)``.

**Readable at page width.** A figure is saved as a PNG of ``w × DPI`` pixels for a width of ``w``
inches, and the page shrinks it to its content column when it is wider (the column is about
700–800 CSS px on a desktop, about 390 on a phone; images never grow). A font of ``s`` points is
``s · DPI / 72`` pixels in the PNG, so on the page it is

    s · DPI / 72 · min(1, COLUMN_PX / (w · DPI))   CSS px,

which for a figure wider than the column is ``s · COLUMN_PX / (72 w)``: independent of the DPI,
and smaller the wider the figure. :data:`STYLE`'s font sizes are chosen so that every text of a
figure up to :data:`MAX_FIGURE_WIDTH` inches (two panels side by side) is at least
:data:`MIN_FONT_PX` pixels at the narrow end of the desktop column (:func:`rendered_px`);
``tests/test_plotting.py`` fails when they fall below.

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

from . import checks

#: Legend label, colour and marker of each method (the paper's names).
METHOD_STYLE: dict[str, dict[str, str]] = {
    "construction": {"label": "Our Construction", "color": "tab:red", "marker": "o"},
    "gradient": {"label": "Gradient Update", "color": "tab:blue", "marker": "s"},
    "final_layers": {"label": "Final Layers Tuning", "color": "tab:green", "marker": "^"},
}
#: Size of one panel in inches.
PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2
#: Widest figure in inches: two panels side by side (wider ones shrink their fonts on the page).
MAX_FIGURE_WIDTH = 2 * PANEL_WIDTH
#: Resolution of the figures' PNGs, pixels per inch (matplotlib's default, kept explicit).
DPI = 100
#: Width of the book's content column at desktop width, CSS px (the narrow end of 700–800).
COLUMN_PX = 700
#: Smallest text a figure may show at :data:`COLUMN_PX`, CSS px.
MIN_FONT_PX = 10.0
#: Matplotlib rc settings of every figure: resolution and font sizes in points (absolute sizes
#: only, so that :func:`rendered_px` can check them).
STYLE: dict[str, float] = {
    "figure.dpi": DPI,
    "font.size": 10.5,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 10.0,
    "ytick.labelsize": 10.0,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 11.0,
}
_SPARE = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def method_style(method: str) -> dict[str, str]:
    """The style of ``method``: ``METHOD_STYLE``'s entry, or a stable spare colour and its
    own name as the label for a method that a later family adds.

    Introduced in :ref:`sec-fig1`.
    """
    if not isinstance(method, str) or not method:
        raise ValueError(f"method must be a non-empty string, got {method!r}")
    if method in METHOD_STYLE:
        return METHOD_STYLE[method]
    colour = _SPARE[sum(map(ord, method)) % len(_SPARE)]
    return {"label": method, "color": colour, "marker": "D"}


def rendered_px(
    points: float, figure_width: float, column_px: float = COLUMN_PX, dpi: float = DPI
) -> float:
    """Size on the page, in CSS px, of a ``points``-point font in a figure ``figure_width`` inches
    wide saved at ``dpi``, in a content column ``column_px`` wide:
    ``points · dpi / 72 · min(1, column_px / (figure_width · dpi))``.

    Introduced in :ref:`sec-fig1`.
    """
    values = {"points": points, "figure_width": figure_width, "column_px": column_px, "dpi": dpi}
    for name, value in values.items():
        checks.real(value, name, positive=True)
    natural = figure_width * dpi
    return points * dpi / 72 * min(1.0, column_px / natural)
