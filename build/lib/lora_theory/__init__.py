"""lora_theory: the package behind the executable textbook on Zeng & Lee (ICLR 2024),
"The Expressive Power of Low-Rank Adaptation".

Modules mirror the book's concepts (see the book's introduction for the chapter map):
``linalg`` and ``adapters`` (primitives), ``linear`` (Lemma 1), ``fnn`` (Lemma 2, Theorem 3,
Corollary 4), ``bounds`` (error bounds), ``training`` (batched gradient-based LoRA fitting),
``experiments`` (the paper's experiments and the CLI), ``plotting`` and ``runtime``.
Import submodules explicitly, e.g. ``from lora_theory import linear``.
"""

__version__ = "0.1.0"
