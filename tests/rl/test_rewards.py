"""Rewards: exact-answer reward follows evaluate.tasks.exact_match; DAPO's overlong penalty is its
piecewise definition (free, linear over the cache, -1 beyond the budget)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.evaluate.tasks import exact_match
from llmlab.rl.rewards import answer_reward, overlong_penalty


@given(st.text(max_size=8), st.text(max_size=8))
def test_answer_reward_is_exact_match(completion, answer):
    assert answer_reward(completion, answer) == (1.0 if exact_match(completion, answer) else 0.0)
    assert answer_reward(answer, answer) == 1.0


@given(st.integers(1, 200), st.data())
def test_overlong_penalty_is_piecewise_linear(max_len, data):
    cache = data.draw(st.integers(1, max_len))
    lengths = data.draw(st.lists(st.integers(0, 2 * max_len + 5), min_size=1, max_size=30))
    got = overlong_penalty(torch.tensor(lengths), max_len, cache).tolist()
    for n, p in zip(lengths, got):
        if n <= max_len - cache:
            want = 0.0
        elif n <= max_len:
            want = (max_len - cache - n) / cache
        else:
            want = -1.0
        assert p == pytest.approx(want, abs=1e-6)
        assert -1.0 <= p <= 0.0


def test_overlong_penalty_refuses_bad_budgets():
    for max_len, cache in ((0, 1), (10, 0), (10, 11)):
        with pytest.raises(InputError, match="overlong"):
            overlong_penalty(torch.tensor([3]), max_len, cache)
