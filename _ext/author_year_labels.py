"""Author–year labels for the references page (a local Sphinx extension, see ``_config.yml``).

sphinxcontrib-bibtex cites in the text in author–year form (``bibtex_reference_style:
author_year``: "Zeng and Lee [2024]"), but the labels of the bibliography itself come from the
pybtex formatting style, and pybtex's ``plain`` style numbers them ([1], [2], …). This extension
registers the formatting style ``author_year``: pybtex's ``plain`` entries, sorted by author, year
and title, labelled like the citations — "Mirsky, 1960", "Eckart and Young, 1936",
"Hu et al., 2022" — with "a", "b", … appended to the year when two labels coincide.
"""

from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _last_names(person) -> str:
    return " ".join(person.last_names).replace("{", "").replace("}", "")


def author_year(entry) -> str:
    """``"Last, year"``, ``"Last and Last, year"`` or ``"Last et al., year"`` of a pybtex entry
    (its editors when it has no authors)."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_names(p) for p in persons]
    if not names:
        who = entry.fields.get("key", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels ``author_year(entry)``, disambiguated by a letter after the year."""

    def format_labels(self, sorted_entries):
        labels = [author_year(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + chr(ord("a") + seen[label])
                seen[label] += 1


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` style with author–year labels and author–year–title order."""

    default_label_style = "author_year"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
