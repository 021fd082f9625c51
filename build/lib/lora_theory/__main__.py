"""``python -m lora_theory …`` and the console script ``lora-theory``: :mod:`.experiments.cli`."""

from .experiments.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
