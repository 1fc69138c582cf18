"""Settings for every pytest run of the project: the doctests under src/ and the tests under tests/."""

import os
import sys


def pytest_configure(config):
    # Under pytest-xdist each worker is one process among several on the machine's cores; torch's default of
    # one thread per core makes them oversubscribe the CPU, which slowed training tests several-fold (the tiny
    # speedrun: 33 s alone, 190 s beside another worker on 2 cores; 40 s on one thread each).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


try:  # a dev extra, as pytest is
    from hypothesis import settings
except ImportError:  # pragma: no cover
    pass
else:
    # no per-example deadline: a loaded CI machine makes some examples slow, and a slow example is no bug
    settings.register_profile("llmlab", deadline=None)
    settings.load_profile("llmlab")
