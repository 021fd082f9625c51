"""What a figure says about itself: the run's budget in words and its caption text.

Every figure of an experiment states the mode and the budget it was run with. :func:`describe`
writes a :class:`~lora_theory.experiments.Budget` in words, wrapped to the page;
:meth:`Budget.describe <lora_theory.experiments.Budget.describe>` is the one-line version for a
caption, and :func:`glue_caption` hands such a line to the book build (``myst_nb.glue``, read by
``{glue:text}`` in the caption) or, in plain Jupyter and Colab, prints it. (Round-off values
are drawn on a floor band by :func:`~lora_theory.experiments.plot_mse_vs_rank`'s ``floor``.)

Introduced in :ref:`sec-fig2`.
"""

from __future__ import annotations

import textwrap

from .. import checks
from ..texttable import PAGE_WIDTH
from .budgets import Budget

__all__ = ["describe", "glue_caption"]


def _numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def describe(budget: Budget, label: str = "") -> str:
    """The budget in words (steps, seeds, grid, test points, validation period), wrapped to
    :data:`~lora_theory.texttable.PAGE_WIDTH` columns and prefixed by ``label``.

    Introduced in :ref:`sec-fig2`.
    """
    checks.instances([budget], "budget", Budget, "a Budget")
    text = (
        f"{label}{budget.steps} Adam steps, seeds {_numbers(budget.seeds)}, learning rates "
        f"{_numbers(budget.lrs)}, weight decays {_numbers(budget.weight_decays)}, "
        f"{budget.n_test} test points, validation every {budget.eval_every} step(s)"
    )
    return textwrap.fill(text, PAGE_WIDTH, subsequent_indent="  ")


def glue_caption(name: str, text: str) -> None:
    """Store ``text`` under ``name`` for the book's ``{glue:text}`` role, or print it.

    In the book build ``myst_nb`` is installed and the text goes into the caption of the figure
    that follows; elsewhere (plain Jupyter, Colab) the reader sees it printed, wrapped to the page.

    Introduced in :ref:`sec-fig2`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    try:
        from myst_nb import glue
    except ImportError:
        print(textwrap.fill(str(text), PAGE_WIDTH))
    else:
        glue(name, text, display=False)
