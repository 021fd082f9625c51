"""The references page labels its entries author–year, like the in-text citations."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pybtex = pytest.importorskip("pybtex")
sys.path.insert(0, str(ROOT / "_ext"))
import author_year_labels  # noqa: E402
from pybtex.database import parse_file  # noqa: E402
from pybtex.plugin import find_plugin  # noqa: E402


def test_config_uses_the_author_year_style():
    config = (ROOT / "_config.yml").read_text()
    assert re.search(r"^\s+bibtex_default_style: author_year\b", config, re.M)
    assert re.search(r"^\s+author_year_labels: _ext\s*$", config, re.M)


def test_bibliography_labels_are_author_year_and_unique():
    author_year_labels.setup(None)
    style = find_plugin("pybtex.style.formatting", "author_year")()
    data = parse_file(str(ROOT / "book" / "references.bib"))
    entries = list(style.format_entries(data.entries.values()))
    labels = {e.key: e.label for e in entries}
    assert labels["zeng2024expressive"] == "Zeng and Lee, 2024"
    assert labels["mirsky1960symmetric"] == "Mirsky, 1960"
    assert labels["hu2022lora"] == "Hu et al., 2022"
    assert len(set(labels.values())) == len(labels)
    assert all(re.fullmatch(r".+, \d{4}[a-z]?", label) for label in labels.values())
    assert len(entries) == len(data.entries)


def test_coinciding_labels_get_letters():
    style = author_year_labels.AuthorYearLabelStyle()
    data = parse_file(str(ROOT / "book" / "references.bib"))
    entry = data.entries["zeng2024expressive"]
    assert list(style.format_labels([entry, entry])) == [
        "Zeng and Lee, 2024a",
        "Zeng and Lee, 2024b",
    ]
