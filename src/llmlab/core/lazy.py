"""Package exports resolved on first use (PEP 562), so importing a light submodule (a config) does not
pull in the heavy ones (torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], list[str]]:
    """(``__getattr__``, ``__all__``) for `package`, whose public names live in the given modules.

    >>> getattr_, names = lazy_exports("pkg", {"dumps": "json"})
    >>> getattr_("dumps").__name__, names
    ('dumps', ['dumps'])
    """

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)
