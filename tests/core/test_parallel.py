"""`ordered_map`: results in input order from worker processes, a bounded number of items in flight,
and a worker's failure raised at its item."""

import os

import pytest

from llmlab.core import parallel
from llmlab.core.errors import InputError, LlmlabError
from llmlab.core.parallel import job_count, ordered_map


def test_results_keep_the_input_order_with_few_items_in_flight():
    drawn = []

    def items():
        for i in range(-30, 30):
            drawn.append(i)
            yield i

    out = []
    for k, r in enumerate(ordered_map(abs, items(), jobs=2)):
        assert len(drawn) <= k + 1 + 2 * 2  # never more than two items per worker ahead of the results
        out.append(r)
    assert out == [abs(i) for i in range(-30, 30)]
    assert list(ordered_map(abs, iter([]), jobs=2)) == []


def test_the_initializer_runs_here_first_and_a_worker_error_is_raised_at_its_item():
    with pytest.raises(ValueError, match="invalid literal"):  # a bad setting fails before any worker starts
        next(ordered_map(abs, [1], jobs=2, initializer=int, initargs=("x",)))
    results = ordered_map(int, ["1", "2", "x", "4"], jobs=2)
    assert [next(results), next(results)] == [1, 2]
    with pytest.raises(ValueError, match="'x'"):
        next(results)


def test_a_failed_worker_start_is_raised_at_the_first_item_not_retried(monkeypatch):
    monkeypatch.setattr(parallel, "_start_error", None)
    parallel._start(int, ("x",))  # what a worker runs first
    with pytest.raises(ValueError, match="invalid literal"):
        parallel._call(abs, -1)


def test_job_counts():
    assert job_count(3) == 3 and job_count(0) >= 1
    assert job_count(0) == len(os.sched_getaffinity(0))
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(InputError, match="jobs"):
            job_count(bad)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(LlmlabError, match="worker process ended before its work was done"):
        list(ordered_map(os._exit, [3, 3, 3], jobs=2))  # each item ends its worker's process at once


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_error_from_the_items_comes_after_the_results_of_the_items_before_it(jobs):
    def items():
        yield from range(7)
        raise InputError("line 8 is not UTF-8")

    out = []
    with pytest.raises(InputError, match="line 8"):
        for r in ordered_map(abs, items(), jobs=jobs):
            out.append(r)
    assert out == list(range(7))
