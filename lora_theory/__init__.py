"""lora_theory: the package behind the executable textbook on Zeng & Lee (ICLR 2024),
"The Expressive Power of Low-Rank Adaptation".

Modules mirror the book's concepts, imports go one way (top to bottom):

* ``runtime`` (seeds, random streams, devices, quick/full mode), ``checks`` (the one validation
  module), ``linalg`` (σ_i, LR_r, numerical rank, conditioning, the exactness check) and
  ``adapters`` (LoRA factors, per-layer ranks, parameter counts) — the primitives;
* ``linear`` (Lemma 1), ``fnn`` (the FNN model, partitions, Lemma 2, Theorem 3, Corollary 4,
  Assumption 1, Lemma 3, certificates), ``instances`` (random and planted instances),
  ``bounds`` (Lemma 2's and Theorem 5's error bounds), ``transformer`` (the paper's
  Transformer, the gaps ``G_i``, Assumption 4 and Theorem 7), ``final_layers`` (Lemma 4: LoRA vs
  tuning the final layers), ``allocation`` (the adaptive-allocation proposal and the optimal
  allocation) — the mathematics;
* ``training`` (the model-generic batched engine) and ``experiments`` (model families, the
  paper's experiments, their figures and the CLI); ``plotting`` (the book's figure style);
  ``interop`` (the book's adapted FNNs as PEFT models and back; imports ``peft``).

Import submodules explicitly, e.g. ``from lora_theory import linear``. Every public function
names, at the end of its docstring, the book section that introduces it.
"""

__version__ = "0.1.0"


def describe() -> str:
    """One line for a chapter's setup cell: the package version, the run mode and the device
    (:func:`lora_theory.runtime.mode`, :func:`lora_theory.runtime.device`), e.g.
    ``"lora_theory 0.1.0, mode quick, device cpu"``.

    Introduced in :ref:`ch-linear`.
    """
    from .runtime import device, mode

    return f"lora_theory {__version__}, mode {mode()}, device {device()}"
