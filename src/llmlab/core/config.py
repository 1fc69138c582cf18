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
    if not isinstance(data, dict):
        raise InputError(f"{what}: {cls.__name__} must be a JSON object of fields, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{what}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            v = data[f.name]
            _check_scalar(f, v, f"{what}: {cls.__name__}.{f.name}")
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    try:
        return cls(**kwargs)
    except InputError as e:  # the config's own rule (n_head > 0, ...): say which file broke it
        raise InputError(f"{what}: {e}") from None


_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_scalar(f: dataclasses.Field, v: Any, what: str) -> None:
    """InputError when a field declared int, float, bool or str gets another JSON type (a quoted
    number, null, true for a count), which would fail later with a bare TypeError or, worse, work.

    >>> from dataclasses import dataclass, fields
    >>> @dataclass(frozen=True)
    ... class C:
    ...     dim: int = 64
    >>> _check_scalar(fields(C)[0], "64", "C.dim")
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: C.dim must be an int, got '64'
    """
    allowed = _SCALARS.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
    if allowed and (not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)):
        raise InputError(f"{what} must be {'an' if str(f.type) == 'int' else 'a'} {f.type}, got {v!r}")


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    atomic_write_json(path, config_to_dict(cfg))


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    data = read_json(path, "config file")
    return config_from_dict(cls, data, what=str(path))
