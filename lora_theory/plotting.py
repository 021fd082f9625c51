"""The book's figure style: one colour, marker and legend label per method, panel sizes.

Only the style lives here; the figure-drawing functions live next to the experiments
(``lora_theory.experiments.plots``).

Introduced in :ref:`sec-fig1`.
"""

from __future__ import annotations

#: Legend label, colour and marker of each method (the paper's names).
METHOD_STYLE: dict[str, dict[str, str]] = {
    "construction": {"label": "Our Construction", "color": "tab:red", "marker": "o"},
    "gradient": {"label": "Gradient Update", "color": "tab:blue", "marker": "s"},
    "final_layers": {"label": "Final Layers Tuning", "color": "tab:green", "marker": "^"},
}
#: Size of one panel in inches.
PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2
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
