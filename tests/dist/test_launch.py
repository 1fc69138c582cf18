import os
import signal
import time

import pytest
import torch
import torch.distributed as dist

from llmlab.core.errors import InputError
from llmlab.dist.launch import spawn


def _sum_ranks(rank, world):
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    return float(t)


def _fail(rank, world):
    if rank == 1:
        raise ValueError("boom on rank 1")
    dist.barrier()


def test_spawn_joins_one_group_and_returns_results_by_rank():
    assert spawn(_sum_ranks, 2) == [3.0, 3.0]


def _refuse(rank, world):
    if rank == 1:
        raise InputError("bad setting")
    dist.barrier()


def test_a_failing_rank_raises_with_its_traceback():
    with pytest.raises(RuntimeError, match="boom on rank 1"):
        spawn(_fail, 2, timeout=300)  # never reached when it passes: one run took 40 s on a loaded machine


def test_a_rank_refusing_its_input_is_an_input_error_in_the_parent():
    with pytest.raises(InputError, match="^rank 1: bad setting$"):
        spawn(_refuse, 2, timeout=300)


def _interrupted(rank, world):
    raise KeyboardInterrupt  # what Ctrl-C raises in every rank


def test_ctrl_c_in_the_ranks_is_an_interrupt_in_the_parent_not_a_failure():
    # the CLI prints KeyboardInterrupt as "llmlab: interrupted"; a RuntimeError would be a traceback
    with pytest.raises(KeyboardInterrupt):
        spawn(_interrupted, 2, timeout=300)


def _all_die_silently(rank, world):
    os._exit(3)  # what a segfault or the OOM killer looks like to the parent: no report


def _one_killed(rank, world):
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)  # rank 0 lives on, waiting (as in a collective) for the lost rank


@pytest.mark.parametrize("fn, says", [(_all_die_silently, r"rank 0 \(exit code 3\), rank 1 \(exit code 3\) exited"),
                                      (_one_killed, r"^rank 1 \(killed by signal SIGKILL\) exited")])
def test_ranks_dying_without_a_report_fail_at_once_not_at_the_timeout(fn, says):
    t = time.monotonic()
    with pytest.raises(RuntimeError, match=says):
        spawn(fn, 2, timeout=900)
    assert time.monotonic() - t < 300  # the start, the grace for a report in flight and joining (slow on a loaded
    # machine); not the 900 s timeout
