"""Configs are frozen dataclasses; these helpers turn them into JSON and back, strictly."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, read_json

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict, what: str = "config") -> T:
    """Build `cls` from a dict, refusing unknown keys (a typo should not be silently ignored).

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class C:
    ...     a: int = 1
    >>> config_from_dict(C, {"a": 2})
    C(a=2)
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{what}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            v = data[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    atomic_write_json(path, config_to_dict(cfg))


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    data = read_json(path, "config file")
    return config_from_dict(cls, data, what=str(path))
