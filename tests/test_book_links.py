"""Code ↔ book links: every public function and class of ``lora_theory`` ends its docstring with
``Introduced in :ref:`label`.``, and every cited label exists in the book."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import lora_theory

BOOK = Path(__file__).resolve().parent.parent / "book"
CITATION = re.compile(r"Introduced in :ref:`([a-z0-9-]+)`\.\s*$")
TARGET = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.MULTILINE)
MODULES = ["lora_theory"] + [
    m.name for m in pkgutil.walk_packages(lora_theory.__path__, "lora_theory.")
]


def book_labels() -> set[str]:
    """The MyST targets ``(label)=`` of the book's Markdown pages and notebook Markdown cells."""
    texts = [p.read_text() for p in BOOK.rglob("*.md")]
    for nb in BOOK.rglob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        texts += ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return {label for text in texts for label in TARGET.findall(text)}


def public_objects() -> list[tuple[str, str, object]]:
    out = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            defined_here = getattr(obj, "__module__", None) == name
            if attr.startswith("_") or not defined_here:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                out.append((name, attr, obj))
    return out


LABELS = book_labels()
#: Chapters whose modules landed before their text: the label the modules cite and the issue that
#: writes the chapter. A pending label must not exist yet, so this test fails as soon as the chapter
#: defines it, and the entry goes.
PENDING: dict[str, str] = {}


def test_pending_chapters_are_really_pending():
    assert not set(PENDING) & LABELS, "a pending chapter exists now: remove it from PENDING"


@pytest.mark.parametrize(("module", "name", "obj"), public_objects(), ids=lambda v: str(v)[:40])
def test_public_docstring_cites_a_book_section(module, name, obj):
    doc = inspect.getdoc(obj) or ""
    match = CITATION.search(doc)
    assert match, f"{module}.{name}: docstring must end with 'Introduced in :ref:`label`.'"
    label = match.group(1)
    assert label in LABELS or label in PENDING, f"{module}.{name} cites {label!r}, not in book/"


@pytest.mark.parametrize("module", MODULES)
def test_module_docstrings_cite_existing_sections_and_no_private_files(module):
    mod = importlib.import_module(module)
    texts = [inspect.getdoc(mod) or ""] + [
        inspect.getdoc(obj) or "" for _, _, obj in public_objects() if obj.__module__ == module
    ]
    for text in texts:
        assert "PAPER_SPEC" not in text and "seeds/" not in text
        for label in re.findall(r":ref:`(?:[^<`]*<)?([a-z0-9-]+)>?`", text):
            assert label in LABELS or label in PENDING, f"{module} cites {label!r}, not in book/"


def test_the_book_defines_the_labels_the_package_uses():
    assert {"ch-linear", "sec-fig1", "ch-fnn-one-layer", "ch-multilayer"} <= LABELS
