"""Name -> class tables whose entries are "module:Class" strings, imported only when asked for, so a
table can name torch-backed or slow-to-import classes without loading them."""

from __future__ import annotations

import importlib

from llmlab.core.errors import InputError


def load_class(table: dict[str, str], kind: str, what: str) -> type:
    """The class `table[kind]` names.

    >>> load_class({"od": "collections:OrderedDict"}, "od", "mapping").__name__
    'OrderedDict'
    """
    if kind not in table:
        raise InputError(f"unknown {what} {kind!r}; choose one of {sorted(table)}")
    module, name = table[kind].split(":")
    return getattr(importlib.import_module(module), name)
