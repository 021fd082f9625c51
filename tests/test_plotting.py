"""The figure style: fonts readable at page width, and the package's figures keep to it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text

from lora_theory import experiments, plotting
from lora_theory.experiments import Row

FONT_KEYS = [k for k in plotting.STYLE if k.endswith("size") and "figsize" not in k]


def test_rendered_px_is_the_png_size_scaled_to_the_column():
    # a 4.2 in figure at 100 dpi is 420 px: narrower than the column, shown at natural size
    assert plotting.rendered_px(10, 4.2, column_px=700, dpi=100) == pytest.approx(1000 / 72)
    # an 8.4 in figure is 840 px, shrunk by 700/840; the DPI cancels out
    for dpi in (100, 200, 300):
        assert plotting.rendered_px(10, 8.4, 700, dpi) == pytest.approx(10 * 700 / (72 * 8.4))
    with pytest.raises(ValueError, match="figure_width"):
        plotting.rendered_px(10, 0.0)


@pytest.mark.parametrize("key", FONT_KEYS)
def test_style_fonts_are_readable_at_the_widest_figure(key):
    size = plotting.STYLE[key]
    assert isinstance(size, (int, float)), f"{key} must be an absolute size in points"
    px = plotting.rendered_px(size, plotting.MAX_FIGURE_WIDTH)
    assert px >= plotting.MIN_FONT_PX, f"{key} = {size} pt renders at {px:.1f} px"


def test_matplotlib_defaults_would_fail_the_check():
    # the legend's default "small" (0.833 × 10 pt) is below 10 px in a two-panel figure
    assert plotting.rendered_px(10 * 0.833, plotting.MAX_FIGURE_WIDTH) < plotting.MIN_FONT_PX


def rows() -> list[Row]:
    out = []
    for panel in ("a", "b"):
        for rank in range(1, 5):
            for method in ("construction", "gradient"):
                mse = 10.0 ** (-rank) if rank < 3 or method == "gradient" else 1e-30
                out.append(Row(panel, method, rank, 0, mse, 2 * rank))
    return out


def test_the_books_figures_meet_the_font_floor_when_drawn():
    figure = experiments.plot_mse_vs_rank(rows(), threshold=3, floor=1e-20)
    figure.canvas.draw()  # outside the style's rc_context, as in a notebook
    width = figure.get_size_inches()[0]
    assert width <= plotting.MAX_FIGURE_WIDTH
    texts = [t for t in figure.findobj(Text) if t.get_text() and t.get_visible()]
    assert len(texts) > 10  # titles, labels, ticks, legend
    smallest = min(plotting.rendered_px(t.get_fontsize(), width) for t in texts)
    assert smallest >= plotting.MIN_FONT_PX
    plt.close(figure)
