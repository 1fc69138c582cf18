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
        spawn(_fail, 2, timeout=60)


def test_a_rank_refusing_its_input_is_an_input_error_in_the_parent():
    with pytest.raises(InputError, match="^rank 1: bad setting$"):
        spawn(_refuse, 2, timeout=60)


def _interrupted(rank, world):
    raise KeyboardInterrupt  # what Ctrl-C raises in every rank


def test_ctrl_c_in_the_ranks_is_an_interrupt_in_the_parent_not_a_failure():
    # the CLI prints KeyboardInterrupt as "llmlab: interrupted"; a RuntimeError would be a traceback
    with pytest.raises(KeyboardInterrupt):
        spawn(_interrupted, 2, timeout=60)
