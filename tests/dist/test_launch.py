import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist

from llmlab.core.errors import InputError
from llmlab.dist.launch import spawn
from llmlab.train.trainer import StopFlag


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


def _steps_until_interrupted(rank, world, folder):
    """A trainer's loop: steps until Ctrl-C, then a save. A second SIGINT, in the middle of a step, gives
    up at once without saving (as every trainer's StopFlag does)."""
    flag = StopFlag()
    with flag.catching_sigint():
        while not flag.stop:
            time.sleep(0.05)  # a step
            pathlib.Path(folder, f"running-{rank}").write_text(str(os.getpid()))
    pathlib.Path(folder, f"saved-{rank}").touch()
    raise KeyboardInterrupt


LAUNCHER = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.dist.test_launch import _steps_until_interrupted
from llmlab.dist.launch import spawn
try:
    spawn(_steps_until_interrupted, 2, sys.argv[2], backend="gloo", timeout=300)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("to_group", [False, True])
def test_sigint_to_the_launcher_alone_or_its_group_stops_each_rank_once_and_it_saves(tmp_path, to_group):
    # to the launcher alone: `kill -INT`, a supervisor; to its group: Ctrl-C in a terminal (each rank must
    # get it once: a second one stops a trainer at once, without its checkpoint)
    root = pathlib.Path(__file__).resolve().parents[2]
    # SIGINT as the default: a shell without job control (`make test &`) ignores it, and an ignored signal
    # stays ignored across exec
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(root), str(tmp_path)], start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240  # two interpreters starting on a loaded machine
        while not all((tmp_path / f"running-{r}").exists() for r in range(2)):
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        (os.killpg if to_group else os.kill)(launcher.pid, signal.SIGINT)
        assert launcher.wait(timeout=240) == 130
    finally:  # a launcher still waiting, and its ranks (in process groups of their own), when the test failed
        if launcher.poll() is None:
            for pid in [int(f.read_text()) for f in tmp_path.glob("running-*") if f.read_text()] + [launcher.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            launcher.wait()
    assert (tmp_path / "saved-0").exists() and (tmp_path / "saved-1").exists()
