"""Configs are frozen dataclasses; these helpers turn them into JSON and back, strictly."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable
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


def check_applies(cfg, names: Iterable[str]) -> None:
    """InputError for the first of `names` (settings given; a nested one dotted, "forgetting.ewc") that does
    nothing in the run of `cfg`: ``type(cfg).APPLIES`` maps such a setting to (whether it applies to a config,
    the rule that says when). The configs check the settings changed from their defaults (`changed_settings`);
    the CLI also those given at their default, which the config cannot tell apart.

    >>> @dataclasses.dataclass
    ... class Run:
    ...     lora_r: int = 0
    ...     lora_alpha: float = 16.0
    ...     APPLIES = {"lora_alpha": (lambda c: c.lora_r > 0, "with LoRA (--lora-r N)")}
    >>> changed_settings(Run(lora_alpha=8.0)), changed_settings(Run())
    (['lora_alpha'], [])
    >>> check_applies(Run(), ["lora_alpha"])
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: --lora-alpha applies with LoRA (--lora-r N): leave it out
    """
    for name in names:
        applies, rule = type(cfg).APPLIES.get(name, (None, ""))
        if applies is not None and not applies(cfg):
            flag = ("--[no-]" if isinstance(_setting(cfg, name), bool) else "--") + name.rpartition(".")[2]
            raise InputError(f"{flag.replace('_', '-')} applies {rule.format(cfg=cfg)}: leave it out")


def changed_settings(cfg) -> list[str]:
    """The settings of ``type(cfg).APPLIES`` whose value in `cfg` is not their field's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return [name for name in type(cfg).APPLIES if _setting(cfg, name) != _setting(defaults, name)]


def _setting(obj, name: str):
    """`obj`'s (a config's, or a dict of its fields') setting `name`, dotted for a nested config's."""
    head, _, rest = name.partition(".")
    v = obj[head] if isinstance(obj, dict) else getattr(obj, head)
    return functools.reduce(getattr, rest.split("."), v) if rest else v
