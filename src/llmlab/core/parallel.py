"""Work on a stream of items in several processes, results in the order of the items (``llmlab seg cut
--jobs``, ``llmlab pos tag --jobs``; jieba's ``enable_parallel`` and pkuseg's ``nthread`` do the same).

Each worker process is spawned (no fork of a parent that may hold torch's or numba's threads), runs
`initializer` once to load what it needs (models load from their folders: only the items and results
cross between processes), then takes items as they come. At most two items per worker are in flight,
so a stream of any length is handled in bounded memory, and results come back in input order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from llmlab.core.errors import InputError, LlmlabError

T = TypeVar("T")
R = TypeVar("R")

_start_error: BaseException | None = None  # in a worker: what its initializer raised, raised on its first item


def job_count(jobs: int) -> int:
    """`jobs` checked: a whole number >= 1, or 0 for one per CPU core this process may use."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0:
        raise InputError(f"jobs must be a whole number >= 0 (0: one per CPU core), got {jobs!r}")
    if jobs:
        return jobs
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ordered_map(fn: Callable[[T], R], items: Iterable[T], jobs: int = 1,
                initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Iterator[R]:
    """``fn(item)`` for each of `items`, in order. With `jobs` 1 in this process (after
    ``initializer(*initargs)``); with more, in that many worker processes, each of which runs the
    initializer first. `fn` and `initializer` must be module-level functions; `items`, `initargs` and
    the results are pickled. An exception in a worker is raised here, at its item. An exception from
    `items` itself (a bad input line) is raised after the results of the items before it: their output
    is not thrown away, with any number of jobs as with one."""
    jobs = job_count(jobs)
    if initializer is not None:  # here too: a bad model or setting fails before any worker starts
        initializer(*initargs)
    if jobs == 1:
        yield from map(fn, items)
        return
    pool = ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"), _start, (initializer, initargs))
    try:
        pending: deque[Future] = deque()
        it = iter(items)
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            except Exception:
                while pending:  # the items read before the bad one are done first, in order
                    yield pending.popleft().result()
                raise
            pending.append(pool.submit(_call, fn, item))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as e:  # a worker died (killed, out of memory): the pool says so, never hangs
        raise LlmlabError(f"a worker process ended before its work was done (killed, or out of memory?); "
                          f"{jobs} jobs were running") from e
    finally:
        pool.shutdown(cancel_futures=True)


def _start(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    """A worker's start: one torch thread (the workers share the cores), then the initializer. What it
    raises is kept for the first item, so the parent sees that error itself, not a broken pool."""
    global _start_error
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        if initializer is not None:
            initializer(*initargs)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    except BaseException as e:  # noqa: BLE001 - handed to the parent at the first item
        _start_error = e


def _call(fn: Callable[[T], R], item: T) -> R:
    if _start_error is not None:
        raise _start_error
    return fn(item)


__all__ = ["job_count", "ordered_map"]
