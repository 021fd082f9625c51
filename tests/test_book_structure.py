"""Every chapter follows the book's spine: the same level-2 sections, with the same names, in the
same order (Overview, The statement, Intuition, Proof walk-through, Numerical verification, the
chapter's own sections and experiments, Takeaways, Exercises), and every exercise has a solution.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = [
    "01_linear_models",
    "02_one_layer_fnn",
    "03_multilayer_fnn",
    "03b_partitions_depth",
    "04_error_bound",
    "05_transformers",
    "06_final_layers",
    "07_adaptive_allocation",
]
#: The fixed sections before a chapter's own: (name, whether ``: subtitle`` may follow).
OPENING = [
    ("Overview", False),
    ("The statement", False),
    ("Intuition", True),
    ("Proof walk-through", False),
    ("Numerical verification", True),
]
CLOSING = ["Takeaways", "Exercises"]
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
EXERCISE = re.compile(r"^[`:]{3,}\{exercise\}")
SOLUTION = re.compile(r"^[`:]{3,}\{solution(?:-start)?\}\s+(\S+)")
LABEL = re.compile(r"^:label:\s*(\S+)")


def headings(cells: list[dict]) -> list[tuple[int, int, str]]:
    """``(cell index, level, title)`` of every Markdown heading outside code fences."""
    out = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        fence = None
        for line in "".join(cell["source"]).splitlines():
            match = FENCE.match(line)
            if match:
                marker = match.group(1)
                if fence is None:
                    fence = marker
                elif (
                    marker[0] == fence[0]
                    and len(marker) >= len(fence)
                    and not line.strip()[len(marker) :]
                ):
                    fence = None
                continue
            heading = re.match(r"^(#{1,6}) (.+?)\s*$", line)
            if heading and fence is None:
                out.append((index, len(heading.group(1)), heading.group(2)))
    return out


def load(chapter: str) -> list[dict]:
    return json.loads((BOOK / f"{chapter}.ipynb").read_text())["cells"]


def spine_problems(cells: list[dict]) -> list[str]:
    """What breaks the spine in a chapter's cells (empty when it follows it)."""
    found = headings(cells)
    titles = [t for _, level, t in found if level == 1]
    sections = [(i, t) for i, level, t in found if level == 2]
    names = [t for _, t in sections]
    problems = []
    if len(titles) != 1 or not found or found[0][1] != 1:
        problems.append(f"one '# ' title must come first, found {len(titles)} title(s)")
    if found and len(found) > 1 and found[1][1:] != (2, "Overview"):
        problems.append(f"the first heading after the title must be '## Overview', got {found[1]}")
    position = 0
    for name, subtitle in OPENING:
        here = names[position] if position < len(names) else None
        ok = here == name or (subtitle and here is not None and here.startswith(f"{name}: "))
        if not ok:
            problems.append(f"section {position + 1} must be '## {name}', got {here!r}")
            return problems
        position += 1
    own = names[position:-2]
    if not any(n.startswith("Experiment: ") for n in own):
        problems.append("no '## Experiment: …' section between the fixed ones")
    if names[-2:] != CLOSING:
        problems.append(f"the last sections must be {CLOSING}, got {names[-2:]}")
    overview_end = sections[1][0] if len(sections) > 1 else len(cells)
    setup = [
        c
        for c in cells[: overview_end + 1]
        if c["cell_type"] == "code" and "import lora_theory" in "".join(c["source"])
    ]
    if not setup:
        problems.append("the setup cell (import lora_theory) is not in the Overview")
    return problems


def exercises_without_solution(cells: list[dict]) -> list[str]:
    """Labels of the exercises that no solution refers to."""
    labels, solved = [], set()
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        lines = "".join(cell["source"]).splitlines()
        for k, line in enumerate(lines):
            if EXERCISE.match(line):
                label = next(
                    (m.group(1) for m in map(LABEL.match, lines[k + 1 : k + 4]) if m), None
                )
                labels.append(label or f"unlabelled exercise in {line!r}")
            solution = SOLUTION.match(line)
            if solution:
                solved.add(solution.group(1))
    return [label for label in labels if label not in solved]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_follows_the_spine(chapter):
    assert spine_problems(load(chapter)) == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_a_solution(chapter):
    assert exercises_without_solution(load(chapter)) == []


def test_the_checker_rejects_a_broken_spine():
    def md(text: str) -> dict:
        return {"cell_type": "markdown", "source": [text]}

    setup = {"cell_type": "code", "source": ["import lora_theory"]}
    good = [
        md("# T\n\n## Overview\n"),
        setup,
        md("## The statement\n```{prf:lemma} x\n## not a heading\n```\n"),
        md("## Intuition: a 2×2 case\n## Proof walk-through\n## Numerical verification\n"),
        md("## Experiment: a figure\n## Takeaways\n## Exercises\n"),
    ]
    assert spine_problems(good) == []
    swapped = [*good[:3], md("## Proof walk-through\n## Intuition\n"), good[4]]
    assert spine_problems(swapped)
    no_experiment = [*good[:4], md("## Takeaways\n## Exercises\n")]
    assert spine_problems(no_experiment)
    exercise = md("```{exercise}\n:label: ex-a\n\nQ.\n```\n")
    assert exercises_without_solution([exercise]) == ["ex-a"]
    solved = md("```{solution-start} ex-a\n:class: dropdown\n```\n")
    assert exercises_without_solution([exercise, solved]) == []
