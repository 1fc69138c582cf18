"""Torch's CPU thread count for one piece of work, put back afterwards (it is process-wide)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on `n` torch CPU threads (0: leave torch as it is), then restore the old count.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)


# items (words, characters) of a forward pass small enough to run on one thread: a sentence or a line
SMALL_PASS = 512


def threads_for(items: int) -> contextlib.AbstractContextManager:
    """`torch_threads` for an inference pass over `items` words or characters: one thread for a small
    pass (under `SMALL_PASS`), torch's own count otherwise. Measured on 2 cores with the BiLSTM tagger
    and segmenter: one sentence at a time, one thread is as fast as two on an idle machine and three
    times faster when another process keeps a core busy (two threads then wait on each other); a
    batch of 32 sentences is 1.4-1.7 times faster on two threads when the machine is idle.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with threads_for(40):
    ...     torch.get_num_threads()
    1
    >>> with threads_for(SMALL_PASS):
    ...     torch.get_num_threads() == before
    True
    """
    return torch_threads(1 if items < SMALL_PASS else 0)
