"""Starting process groups: under ``torchrun`` (environment variables) or from Python with `spawn`.

`spawn(fn, nproc)` starts `nproc` fresh interpreters, joins each to one process group (gloo on CPU,
NCCL when every rank has its own GPU), calls ``fn(rank, world_size, *args)`` and returns the results
in rank order. Worker functions must be importable (defined at module level in an installed module),
because each process is a fresh interpreter. The tests and ``bench/dist.py`` use it; users launch the
same code with ``torchrun --nproc-per-node N``.

Signals reach the ranks through the launcher, as under torchrun: each rank leaves the launcher's process
group, and the launcher passes on the SIGINT, SIGTERM, SIGHUP and SIGQUIT it gets. A SIGINT sent to the
launcher alone (``kill -INT``, a supervisor) then stops the ranks as Ctrl-C does, each saving its
checkpoint; and Ctrl-C, which the terminal sends to the launcher's group, reaches each rank once: had
they stayed in the group they would get it twice, and a trainer takes a second interrupt as "stop now,
without saving".
"""

from __future__ import annotations

import contextlib
import os
import queue as queue_mod
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from llmlab.core.errors import InputError


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def device_for(rank: int, backend: str) -> torch.device:
    """The device this rank computes on: its own GPU under NCCL, the CPU under gloo."""
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT); (rank, world).

    Without those variables this is a one-process run and nothing is initialised: (0, 1).
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend or default_backend())
    return dist.get_rank(), dist.get_world_size()


FORWARDED = (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None), getattr(signal, "SIGQUIT", None))


def _worker(rank: int, world: int, rendezvous: str, backend: str, threads: int, fn: Callable, args: tuple,
            results) -> None:
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # out of the terminal's reach: signals come from the launcher, once (module docstring)
    try:
        torch.set_num_threads(threads)
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        # a file the ranks meet at, not a port: a port found free in the parent could be taken by another
        # process before rank 0 binds it
        dist.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank, world_size=world)
        out = fn(rank, world, *args)
        results.put((rank, "ok", out))
    except InputError as e:  # bad input: the parent raises it again, as the one-line error it is
        results.put((rank, "input", str(e)))
    except KeyboardInterrupt:  # Ctrl-C reaches every rank: the parent stops as interrupted, not failed
        results.put((rank, "interrupted", None))
    except BaseException:  # reported before the group closes, so the root cause arrives first
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


POLL_SECONDS = 0.2  # how often the parent looks at the ranks while the result queue is empty
GRACE_SECONDS = 2.0  # how long an exited rank's report may still be in flight before it counts as lost


def exit_reason(exitcode: int) -> str:
    """A process's exit code in words (multiprocessing gives -N for death by signal N).

    >>> exit_reason(3), exit_reason(-9)
    ('exit code 3', 'killed by signal SIGKILL')
    """
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


def _silent_deaths(procs: list, got: dict, seen: dict[int, float], now: float) -> list[str]:
    """The ranks that exited without a report, each at least GRACE_SECONDS ago, with how they ended;
    `seen` records when each was first found exited (its report, if any, has had time to arrive)."""
    for r, p in enumerate(procs):
        if r not in got and p.exitcode is not None:
            seen.setdefault(r, now)
    return [f"rank {r} ({exit_reason(procs[r].exitcode)})" for r, t in sorted(seen.items())
            if r not in got and now - t >= GRACE_SECONDS]


def spawn(fn: Callable, nproc: int, *args, backend: str | None = None, timeout: float = 300.0) -> list:
    """Run ``fn(rank, nproc, *args)`` in `nproc` processes of one group; their return values by rank.

    Raises RuntimeError with the first failing rank's traceback, as soon as a rank has exited without
    reporting (killed by a signal or the OOM killer, os._exit: named with its exit code or signal), or
    after `timeout` seconds in all; every rank left is then killed. A rank that raised InputError (a bad
    setting found once the model exists) gives InputError, and one interrupted (Ctrl-C) KeyboardInterrupt.
    """
    if nproc < 1:
        raise InputError(f"nproc must be >= 1, got {nproc}")
    backend = backend or default_backend()
    threads = max(1, (os.cpu_count() or 1) // nproc)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="llmlab-spawn-") as tmp:
        rendezvous = os.path.join(tmp, "rendezvous")
        return _start_and_collect(ctx, fn, nproc, args, backend, threads, rendezvous, results, timeout)


@contextlib.contextmanager
def _forwarding_signals(procs: list, interrupts: list):
    """While the ranks run, pass each of the FORWARDED signals the launcher gets on to every live rank.

    A first SIGINT is only passed on (`interrupts` counts them): the ranks stop at a step's end, save,
    and report "interrupted", which ends the launcher. A second one also stops the launcher's wait, as
    it stops the ranks at once. Any other signal ends the launcher as it would have without the ranks.
    A signal the launcher ignores stays ignored, and is not passed on; outside the main thread (where no
    handler can be set) nothing is forwarded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum, frame):
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)
        if signum != signal.SIGINT:
            signal.signal(signum, old[signum])
            signal.raise_signal(signum)
            return
        interrupts.append(signum)
        if len(interrupts) > 1:
            raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in FORWARDED if s is not None}
    old = {s: h for s, h in old.items() if h is not signal.SIG_IGN and h is not None}
    for s in old:
        signal.signal(s, forward)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _start_and_collect(ctx, fn: Callable, nproc: int, args: tuple, backend: str, threads: int, rendezvous: str,
                       results, timeout: float) -> list:
    procs = [ctx.Process(target=_worker, args=(r, nproc, rendezvous, backend, threads, fn, args, results),
                         daemon=True) for r in range(nproc)]
    interrupts: list[int] = []
    with _forwarding_signals(procs, interrupts):
        return _collect(procs, nproc, results, timeout, interrupts)


def _collect(procs: list, nproc: int, results, timeout: float, interrupts: list) -> list:
    for p in procs:
        p.start()
    got: dict[int, object] = {}
    exited: dict[int, float] = {}  # rank -> when it was first seen exited without a report
    deadline = time.monotonic() + timeout
    patience = 10.0  # seconds each rank gets to exit on its own at the end before it is killed
    try:
        while len(got) < nproc:
            try:  # short waits: a rank that died silently is noticed within seconds, not at the deadline
                rank, status, out = results.get(timeout=POLL_SECONDS)
            except queue_mod.Empty:
                now = time.monotonic()
                dead = _silent_deaths(procs, got, exited, now)
                if dead and interrupts:  # e.g. a rank the interrupt reached while its interpreter started
                    raise KeyboardInterrupt from None
                if dead:
                    patience = 1.0  # the ranks left may wait forever on the lost one
                    raise RuntimeError(f"{', '.join(dead)} exited without reporting a result or an error "
                                       "(killed, out of memory, or a crash in native code)") from None
                if now >= deadline:
                    raise RuntimeError(f"distributed run timed out after {timeout:.0f} s") from None
                continue
            if status == "input":
                raise InputError(f"rank {rank}: {out}")
            if status == "interrupted":
                raise KeyboardInterrupt
            if status != "ok":
                # a rank that died silently makes the others fail on the broken links: name it as the cause
                died = [f"rank {r} ({exit_reason(p.exitcode)})" for r, p in enumerate(procs)
                        if r not in got and r != rank and p.exitcode not in (None, 0)]
                cause = f"; {', '.join(died)} had exited without reporting before it" if died else ""
                raise RuntimeError(f"rank {rank} failed (first to fail; others may fail after it{cause}):\n{out}")
            got[rank] = out
    finally:
        for p in procs:
            p.join(timeout=patience)
            if p.is_alive():
                p.kill()
    return [got[r] for r in range(nproc)]
