"""Progress for long work, in one place so it can be silenced (tests, pipes).

On a terminal a tqdm bar redraws in place. Off one (a pipe, a log file, CI) a loop that is still running
after `HEARTBEAT` seconds writes one plain line every `HEARTBEAT` seconds, and a last one when it ends,
so a long run's log shows it is alive and how far it has got; shorter loops write nothing.
``LLMLAB_PROGRESS=0`` silences both, ``LLMLAB_PROGRESS=1`` forces the bar.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tqdm.auto import tqdm

T = TypeVar("T")
HEARTBEAT = 30.0  # seconds between progress lines off a terminal (and before the first)
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def progress_enabled() -> bool:
    """Bars show on a terminal unless LLMLAB_PROGRESS=0; LLMLAB_PROGRESS=1 forces them on."""
    flag = os.environ.get("LLMLAB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


class _Lines(io.TextIOBase):
    """tqdm's output as whole lines: each redraw (``\\r`` + status) becomes one line, repeats dropped."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text: str) -> int:
        line = text.strip("\r\n")
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", **kw) -> tqdm:
    # tqdm is imported here, not at import: tqdm.auto loads asyncio (60 ms), which a one-line cut never needs
    if kw.pop("disable", False) or os.environ.get("LLMLAB_PROGRESS") is not None and not progress_enabled():
        from tqdm.std import tqdm

        return tqdm(iterable, total=total, disable=True, **kw)
    if progress_enabled():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, **kw)
    return _line_bar()(iterable, total=total, desc=desc or "progress", file=_Lines(sys.stderr), delay=HEARTBEAT,
                       mininterval=HEARTBEAT, maxinterval=HEARTBEAT, bar_format=LINE_FORMAT, **kw)


@functools.cache
def _line_bar() -> type:
    """The bar off a terminal: a new postfix (a loss, a reward) shows in the next line, not at once, so a
    loop that sets one every step still writes a line per `HEARTBEAT` only."""
    from tqdm.std import tqdm

    class LineBar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def set_postfix_str(self, s="", refresh=True):
            super().set_postfix_str(s, refresh=False)

    return LineBar
