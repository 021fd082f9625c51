"""Test configuration: hypothesis runs derandomised by default, so `make test` is deterministic.

Set ``HYPOTHESIS_PROFILE=explore`` to draw fresh random examples on every run instead (useful when
changing a construction; a failure prints the example to add as a regression test).
"""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
