"""Figure annotations of the experiments: budgets in words, captions, the round-off band."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pytest

from lora_theory import experiments
from lora_theory.experiments import annotate


def test_describe_fits_the_page_and_names_the_budget():
    text = annotate.describe(experiments.budget("full"), "the paper's protocol: ")
    assert all(len(line) <= 79 for line in text.splitlines())
    assert "5000 Adam steps" in text and "0.01, 0.001, 0.0001" in " ".join(text.split())


def test_bad_budgets_and_names():
    with pytest.raises(ValueError, match="budget"):
        annotate.describe("quick")
    with pytest.raises(ValueError, match="name"):
        annotate.glue_caption("", "text")


def test_glue_caption_without_a_book_build_prints(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails as in plain Jupyter
    annotate.glue_caption("fig-budget", "quick mode: 3 seeds")
    assert capsys.readouterr().out == "quick mode: 3 seeds\n"
