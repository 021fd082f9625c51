"""Colab-ready copies of the chapters: ``python tools/colab.py [--check]``.

The chapters in ``book/`` are written for Jupyter Book: their Markdown uses MyST directives
(``{prf:lemma}``, ``{exercise}``, ``{admonition}``, ...) and roles (``{prf:ref}``, ``{eq}``,
``{cite:t}``, ...), which Colab and plain Jupyter show as raw markup. This script writes a copy of
every chapter listed in ``_toc.yml`` to ``colab/book/<chapter>.ipynb`` with the Markdown rendered
to plain Markdown and MathJax: boxes become bold headings and quotes, one-cell solutions become
``<details>`` blocks, equation labels become ``\\tag{n}``, references become words, citations
become "Author (year)". Code cells and their outputs are copied unchanged. The book's launch
buttons open these copies (``repository.path_to_book: colab`` in ``_config.yml``).

``--check`` writes nothing and exits 1 if a committed copy differs from what the chapters give, or
if a chapter's install cell does not match :data:`INSTALL_CELL` (the one place that names the
package source; ``tests/test_colab_copies.py`` runs this check).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "colab"

#: The package source of every chapter's install cell, set here and nowhere else. The environment
#: variable ``LORA_THEORY_SOURCE`` overrides it at run time (``make colab-alone`` points it at a
#: locally built wheel).
SOURCE = "lora_theory @ git+https://github.com/lora-theory/lora-theory-book"

INSTALL_CELL = f"""# Use the installed package, or install it (Colab, a fresh environment).
try:
    import lora_theory
except ImportError:
    import os
    import subprocess
    import sys

    class InstallError(Exception):
        def _render_traceback_(self):  # IPython shows one line, no traceback
            return [str(self)]

    SOURCE = (
        "{SOURCE}"
    )
    source = os.environ.get("LORA_THEORY_SOURCE", SOURCE)
    pip = [sys.executable, "-m", "pip", "install", "-q", source]
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        msg = f"Could not install lora_theory ({{source}}): {{why}}"
        raise InstallError(msg) from None
    import lora_theory
"""

KINDS = {
    "definition": "Definition",
    "assumption": "Assumption",
    "lemma": "Lemma",
    "theorem": "Theorem",
    "corollary": "Corollary",
    "proposition": "Proposition",
    "remark": "Remark",
    "example": "Example",
}


def toc_chapters() -> list[str]:
    """The notebook chapters of _toc.yml (``book/<name>``), in reading order."""
    names = re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())
    return [n for n in names if re.match(r"book/\d", n) and (ROOT / f"{n}.ipynb").exists()]


def bib_names() -> dict[str, tuple[str, str]]:
    """citation key -> (authors as cited, year) from book/references.bib."""
    text = (ROOT / "book" / "references.bib").read_text()
    out = {}
    for m in re.finditer(r"@\w+\{([^,]+),(.*?)\n\}", text, re.S):
        key, body = m.group(1).strip(), m.group(2)
        author = re.search(r"author\s*=\s*\{(.*?)\},?\n", body, re.S)
        year = re.search(r"year\s*=\s*\{?(\d{4})", body)
        people = [
            a.split(",")[0].strip() for a in (author.group(1) if author else "").split(" and ")
        ]
        people = [re.sub(r"[{}]", "", p) for p in people if p]
        if len(people) > 2:
            who = f"{people[0]} et al."
        elif len(people) == 2:
            who = f"{people[0]} and {people[1]}"
        else:
            who = people[0] if people else key
        out[key] = (who, year.group(1) if year else "")
    return out


class Labels:
    """Titles and numbers of the book's labelled objects, collected over all chapters."""

    def __init__(self, chapters: list[str]) -> None:
        self.titles: dict[str, str] = {}
        self.equations: dict[str, str] = {}
        for number, name in enumerate(chapters, start=1):
            nb = json.loads((ROOT / f"{name}.ipynb").read_text())
            text = "\n".join("".join(c["source"]) for c in nb["cells"])
            for m in re.finditer(r"\{prf:(\w+)\}\s*([^\n]*)\n:label:\s*(\S+)", text):
                kind, title, label = m.groups()
                self.titles[label] = f"{KINDS.get(kind, kind.title())} ({_plain(title)})"
            for m in re.finditer(r"\{exercise\}[^\n]*\n:label:\s*(\S+)", text):
                self.titles[m.group(1)] = "the exercise"
            for m in re.finditer(r"\(([a-z][\w-]*)\)=\n#+ ([^\n]+)", text):
                self.titles[m.group(1)] = f"“{_plain(m.group(2))}”"
            for k, m in enumerate(re.finditer(r"\$\$ ?\((eq-[\w-]+)\)", text), start=1):
                self.equations[m.group(1)] = f"{number}.{k}"
            for c in nb["cells"]:
                fig = c.get("metadata", {}).get("mystnb", {}).get("figure")
                if fig and fig.get("name"):
                    self.titles[fig["name"]] = "the figure"


def _plain(title: str) -> str:
    """A directive title without roles: {cite:t}`key` -> its authors."""
    return re.sub(r"\s*\(?(of )?\{cite:[tp]\}`[^`]*`\)?", "", title).strip()


def render_roles(text: str, labels: Labels, bib: dict[str, tuple[str, str]]) -> str:
    def cite_t(m: re.Match[str]) -> str:
        keys = [k.strip() for k in m.group(1).split(",")]
        return "; ".join(f"{bib[k][0]} ({bib[k][1]})" if k in bib else k for k in keys)

    def cite_p(m: re.Match[str]) -> str:
        keys = [k.strip() for k in m.group(1).split(",")]
        return "(" + "; ".join(f"{bib[k][0]}, {bib[k][1]}" if k in bib else k for k in keys) + ")"

    def ref(m: re.Match[str]) -> str:
        body = m.group(2)
        named = re.match(r"(.*?)\s*<([^>]+)>$", body, re.S)
        if named:
            return named.group(1)
        return labels.titles.get(body, body)

    text = re.sub(r"\{cite:t\}`([^`]+)`", cite_t, text)
    text = re.sub(r"\{cite:p\}`([^`]+)`", cite_p, text)
    text = re.sub(r"\{eq\}`([^`]+)`", lambda m: f"({labels.equations.get(m.group(1), '?')})", text)
    text = re.sub(r"\{(prf:ref|ref|numref)\}`([^`]+)`", ref, text)
    text = re.sub(r"\{doc\}`([^`]+)`", lambda m: f"the page “{m.group(1).title()}”", text)
    return text


FENCE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n"
    r"(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.M | re.S,
)


def _options(body: str) -> tuple[dict[str, str], str]:
    opts, lines = {}, body.split("\n")
    while lines and re.match(r"^:[\w-]+:", lines[0]):
        key, _, value = lines.pop(0)[1:].partition(":")
        opts[key] = value.strip()
    return opts, "\n".join(lines).strip("\n")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def render_directives(text: str, labels: Labels) -> str:
    def one(m: re.Match[str]) -> str:
        name, arg = m.group("name"), m.group("arg").strip()
        opts, body = _options(m.group("body"))
        body = render_directives(body, labels)
        if name.startswith("prf:"):
            kind = name[4:]
            if kind == "proof":
                return f"*Proof.* {body} ∎"
            title = labels.titles.get(opts.get("label", ""), KINDS.get(kind, kind.title()))
            return _quote(f"**{title}.** {body}")
        if name == "admonition":
            return _quote(f"**{arg}**\n\n{body}")
        if name in ("note", "tip", "warning", "important"):
            return _quote(f"**{name.title()}.** {body}")
        if name == "exercise":
            return _quote(f"**Exercise.** {body}")
        if name == "solution":
            return f"<details><summary>Solution</summary>\n\n{body}\n\n</details>"
        if name == "include":
            inc = (ROOT / "book" / arg).read_text()
            return render_directives(inc, labels)
        return body

    return FENCE.sub(one, text)


def render_markdown(text: str, labels: Labels, bib: dict[str, tuple[str, str]]) -> str:
    """One Markdown cell of a chapter, without MyST: equations, solutions, boxes, targets, roles."""
    text = re.sub(
        r"\$\$\n(.*?)\n\$\$ ?\((eq-[\w-]+)\)",
        lambda m: f"$$\n{m.group(1)}\n\\tag{{{labels.equations.get(m.group(2), '?')}}}\n$$",
        text,
        flags=re.S,
    )
    start = r"^```\{solution-start\}[^\n]*\n(:[\w-]+:[^\n]*\n)*```\n?"
    # A solution that spans cells (it runs code) cannot fold in Jupyter: it gets a heading.
    text = re.sub(start, "**Solution.**\n\n", text, flags=re.M)
    text = re.sub(r"^```\{solution-end\}\n```\n?", "", text, flags=re.M)
    text = render_directives(text, labels)
    text = re.sub(r"^\(([\w-]+)\)=\n", "", text, flags=re.M)
    return render_roles(text, labels, bib)


def install_cell_ok(nb: dict) -> bool:
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    return "".join(first["source"]).startswith(INSTALL_CELL.rstrip("\n"))


def colab_copy(name: str, labels: Labels, bib: dict[str, tuple[str, str]]) -> dict:
    nb = json.loads((ROOT / f"{name}.ipynb").read_text())
    out = copy.deepcopy(nb)
    for c in out["cells"]:
        if c["cell_type"] == "markdown":
            text = render_markdown("".join(c["source"]), labels, bib)
            c["source"] = text.splitlines(keepends=True)
        c.get("metadata", {}).pop("mystnb", None)
    out["metadata"]["colab"] = {"provenance": [], "name": Path(name).name + ".ipynb"}
    return out


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args()
    chapters = toc_chapters()
    labels, bib = Labels(chapters), bib_names()
    bad = []
    for name in chapters:
        if not install_cell_ok(json.loads((ROOT / f"{name}.ipynb").read_text())):
            bad.append(f"{name}.ipynb: its first code cell does not start with INSTALL_CELL")
        target = OUT / f"{name}.ipynb"
        text = dumps(colab_copy(name, labels, bib))
        if args.check:
            if not target.exists() or target.read_text() != text:
                bad.append(
                    f"{target.relative_to(ROOT)} is out of date: run `python tools/colab.py`"
                )
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
