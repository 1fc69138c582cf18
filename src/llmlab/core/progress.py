"""Progress bars for long work, in one place so they can be silenced (tests, pipes)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars show on a terminal unless LLMLAB_PROGRESS=0; LLMLAB_PROGRESS=1 forces them on."""
    flag = os.environ.get("LLMLAB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", **kw) -> tqdm:
    disable = kw.pop("disable", False) or not progress_enabled()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kw)
