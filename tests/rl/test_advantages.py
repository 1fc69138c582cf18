"""Advantages against their definitions written out element by element: GRPO's group statistics
(Python's statistics module, TRL's formula), GAE as the discounted sum of TD errors, VAPO's
length-adaptive lambda, InstructGPT's per-token KL rewards; and the invariants that make them useful
(lam = 1 gives Monte-Carlo returns, an all-equal group has no signal)."""

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.rl.advantages import (
    gae,
    group_advantages,
    informative_groups,
    kl_shaped_rewards,
    length_adaptive_lambda,
    terminal_rewards,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.5]), min_size=2, max_size=24))
def test_group_advantages_are_centred_scaled_rewards(group_size, rewards):
    n = len(rewards) // group_size * group_size
    if n == 0:
        return
    r = rewards[:n]
    got = group_advantages(torch.tensor(r), group_size).tolist()
    for start in range(0, n, group_size):
        g = r[start:start + group_size]
        mean, std = statistics.fmean(g), statistics.stdev(g)  # Bessel-corrected, as torch.std and TRL
        for i, x in enumerate(g):
            assert got[start + i] == pytest.approx((x - mean) / (std + 1e-4), rel=1e-5, abs=1e-5)
    unscaled = group_advantages(torch.tensor(r), group_size, scale=False).tolist()
    assert all(u == pytest.approx(x - statistics.fmean(r[i // group_size * group_size:][:group_size]), abs=1e-6)
               for i, (u, x) in enumerate(zip(unscaled, r)))


def test_group_advantages_match_trl_formula():
    torch.manual_seed(0)
    rewards = torch.rand(32)
    G = 8  # TRL's GRPOTrainer: (r - mean_grouped) / (std_grouped + 1e-4), std over each group of G
    mean = rewards.view(-1, G).mean(dim=1).repeat_interleave(G)
    std = rewards.view(-1, G).std(dim=1).repeat_interleave(G)
    torch.testing.assert_close(group_advantages(rewards, G), (rewards - mean) / (std + 1e-4))


def test_equal_groups_have_no_signal_and_are_dropped_by_dynamic_sampling():
    r = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    adv = group_advantages(r, 3)
    assert adv[:6].abs().max() == 0 and adv[6:].abs().sum() > 0
    assert informative_groups(r, 3).tolist() == [False, False, True]
    assert group_advantages(torch.tensor([0.0, 0.0]), 2, eps=0.0).tolist() == [0.0, 0.0]  # no 0/0


def test_group_shapes_are_checked():
    with pytest.raises(InputError, match="groups of 4"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(InputError, match="one score per completion"):
        informative_groups(torch.zeros(2, 2), 2)


def _gae_reference(rewards, values, length, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t, V past the end = 0."""
    v = values[:length] + [0.0]
    delta = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(length)]
    return [sum((gamma * lam) ** k * delta[t + k] for k in range(length - t)) for t in range(length)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_gae_equals_its_definition(data):
    B, T = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    gamma = data.draw(st.sampled_from([1.0, 0.99, 0.5, 0.0]))
    lams = data.draw(st.lists(st.sampled_from([1.0, 0.95, 0.5, 0.0]), min_size=B, max_size=B))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    rewards, values = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    adv, ret = gae(rewards, values, mask, gamma, torch.tensor(lams))
    for b in range(B):
        want = _gae_reference(rewards[b].tolist(), values[b].tolist(), lengths[b], gamma, lams[b])
        n = lengths[b]
        assert adv[b, :n].tolist() == pytest.approx(want, rel=1e-4, abs=1e-5)
        assert ret[b, :n].tolist() == pytest.approx([a + v for a, v in zip(want, values[b, :n].tolist())],
                                                    rel=1e-4, abs=1e-5)
        assert adv[b, n:].abs().sum() == 0 and ret[b, n:].abs().sum() == 0


def test_gae_with_lambda_one_gives_monte_carlo_returns():
    torch.manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    scores = torch.tensor([1.0, -0.5])
    rewards = terminal_rewards(scores, mask)
    values = torch.randn(2, 4)
    _, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # every real token's return is its completion's final score: the value targets VAPO pretrains on
    assert ret.tolist() == [[1.0, 1.0, 1.0, 1.0], [-0.5, -0.5, 0.0, 0.0]]
    adv0, _ = gae(rewards, values, mask, gamma=1.0, lam=0.0)  # one-step TD errors
    v = values * mask
    want = rewards + torch.cat([v[:, 1:], torch.zeros(2, 1)], dim=1) - v
    torch.testing.assert_close(adv0, want * mask)


def test_gae_refuses_bad_input():
    with pytest.raises(InputError, match="prefix"):
        gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([[1, 0, 1]]))
    with pytest.raises(InputError, match="does not match"):
        gae(torch.zeros(1, 3), torch.zeros(1, 2), torch.ones(1, 3))
    with pytest.raises(InputError, match="lam"):
        gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3), lam=1.5)
    with pytest.raises(InputError, match="gamma"):
        gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3), gamma=-0.1)


def test_terminal_rewards_sit_on_the_last_real_token():
    mask = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    out = terminal_rewards(torch.tensor([3.0, 9.0, -1.0]), mask)
    assert out.tolist() == [[0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]
    with pytest.raises(InputError, match="one per row"):
        terminal_rewards(torch.zeros(2), mask)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_kl_shaped_rewards_equal_instructgpts_formula_token_by_token(data):
    B, T = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    kl_coef = data.draw(st.sampled_from([0.05, 0.2, 1.0]))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    scores, old, ref = torch.randn(B, generator=g), -torch.rand(B, T, generator=g), -torch.rand(B, T, generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    got = kl_shaped_rewards(scores, old, ref, mask, kl_coef)
    for b in range(B):
        for t in range(T):
            want = 0.0
            if t < lengths[b]:  # r_t = -beta (log pi_old - log pi_ref), plus the score at the last token
                want = -kl_coef * (float(old[b, t]) - float(ref[b, t])) + (float(scores[b]) if t == lengths[b] - 1
                                                                            else 0.0)
            assert float(got[b, t]) == pytest.approx(want, rel=1e-5, abs=1e-6), (b, t)
    torch.testing.assert_close(kl_shaped_rewards(scores, old, ref, mask, 0.0), terminal_rewards(scores, mask))


def test_kl_shaped_rewards_refuse_bad_input():
    mask = torch.ones(1, 2)
    with pytest.raises(InputError, match="kl_coef"):
        kl_shaped_rewards(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2), mask, -0.1)
    with pytest.raises(InputError, match="does not match"):
        kl_shaped_rewards(torch.zeros(1), torch.zeros(1, 3), torch.zeros(1, 2), mask, 0.1)
    with pytest.raises(InputError, match="one per row"):
        kl_shaped_rewards(torch.zeros(2), torch.zeros(1, 2), torch.zeros(1, 2), mask, 0.1)


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=20), st.sampled_from([0.05, 0.01, 0.5]))
def test_length_adaptive_lambda(lengths, alpha):
    got = length_adaptive_lambda(torch.tensor(lengths), alpha).tolist()
    for n, lam in zip(lengths, got):
        assert lam == pytest.approx(min(1.0, max(0.0, 1 - 1 / (alpha * n))), abs=1e-6)
    # longer completions never get a smaller lambda (VAPO: less bias for long answers)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    assert all(got[a] <= got[b] + 1e-7 for a, b in zip(order, order[1:]))
    assert not math.isnan(sum(got))


def test_length_adaptive_lambda_refuses_bad_alpha():
    with pytest.raises(InputError, match="alpha"):
        length_adaptive_lambda(torch.tensor([3]), 0.0)
