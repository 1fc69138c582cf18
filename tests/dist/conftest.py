"""Every test here spawns a process group; mark them so `pytest -m dist` (or `-m "not dist"`) selects them."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.dist)
