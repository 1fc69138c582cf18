"""Fixtures shared by the adaptation tests."""

import pytest

from llmlab.core.threads import torch_threads


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny matrices: extra threads only contend (a 32-wide model runs several times faster on one, and the
    machine is shared). Session-wide, so module fixtures that train do so on one thread too."""
    with torch_threads(1):
        yield
