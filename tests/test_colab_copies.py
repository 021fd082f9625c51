"""The Colab-ready copies in colab/ are what tools/colab.py makes of the chapters, and every
chapter installs the package through the one install cell that names its source."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import colab  # noqa: E402


def test_colab_copies_are_up_to_date():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "colab.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_copies_have_no_myst_markup():
    for name in colab.toc_chapters():
        nb = json.loads((ROOT / "colab" / f"{name}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            assert not re.search(r"\{(prf:|cite:|eq\}|numref\}|ref\}|doc\})", text), (
                name,
                text[:200],
            )
            assert not re.search(r"^(```|:::)\{", text, re.M), (name, text[:200])
            assert not re.search(r"^\([\w-]+\)=$", text, re.M), (name, text[:200])


def test_every_chapter_uses_the_one_install_cell():
    for name in colab.toc_chapters():
        nb = json.loads((ROOT / f"{name}.ipynb").read_text())
        assert colab.install_cell_ok(nb), name
    assert colab.SOURCE in colab.INSTALL_CELL
