"""Policy-gradient losses against per-token references written out in Python, and the properties the
algorithms rely on: at ratio 1 the surrogate's gradient is the policy gradient, a clipped token gives
no gradient, clip-higher lets a positive token grow further, token and sequence aggregation weigh long
completions differently, k3 estimates the KL divergence without bias, value clipping is PPO's."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.rl.losses import kl_k3, masked_mean, nll_loss, policy_loss, value_loss


def _reference(logp, old, adv, lengths, lo, hi, aggregation):
    rows = []
    for b, n in enumerate(lengths):
        toks = []
        for t in range(n):
            r = math.exp(logp[b][t] - old[b][t])
            toks.append(-min(r * adv[b][t], min(max(r, 1 - lo), 1 + hi) * adv[b][t]))
        rows.append(toks)
    if aggregation == "token":
        flat = [x for row in rows for x in row]
        return sum(flat) / max(len(flat), 1)
    means = [sum(r) / len(r) for r in rows if r]
    return sum(means) / len(means) if means else 0.0


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_policy_loss_equals_per_token_reference(data):
    B, T = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6))
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    lo, hi = data.draw(st.sampled_from([(0.2, 0.2), (0.2, 0.28), (0.1, 0.5)]))
    aggregation = data.draw(st.sampled_from(["token", "sequence"]))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 10_000)))
    old = -torch.rand(B, T, generator=g) * 3
    logp = old + torch.randn(B, T, generator=g) * 0.4
    adv = torch.randn(B, T, generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    loss, stats = policy_loss(logp, old, adv, mask, lo, hi, aggregation)
    want = _reference(logp.tolist(), old.tolist(), adv.tolist(), lengths, lo, hi, aggregation)
    assert float(loss) == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert 0.0 <= stats["clip_fraction"] <= 1.0 and stats["approx_kl"] >= -1e-7


def test_gradient_at_ratio_one_is_the_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    adv = torch.tensor([[0.5, -1.0, 2.0]])
    loss, stats = policy_loss(logp, logp.detach().clone(), adv, torch.ones(1, 3))
    loss.backward()
    # d/dlogp of -(ratio * A) at ratio 1 is -A: REINFORCE with the advantage as the weight
    torch.testing.assert_close(logp.grad, -adv / 3)
    assert stats["clip_fraction"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)


def test_clipped_tokens_give_no_gradient_and_clip_higher_lets_them_grow():
    old = torch.zeros(1, 2)
    ratio = 1.25  # past 1 + 0.2, inside 1 + 0.28
    logp = torch.full((1, 2), math.log(ratio), requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])
    loss, stats = policy_loss(logp, old, adv, torch.ones(1, 2), 0.2, 0.2)
    loss.backward()
    # the positive token is clipped (no push further up); the negative one still gets pushed down
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] > 0
    assert stats["clip_fraction"] == 0.5
    logp.grad = None
    loss, stats = policy_loss(logp, old, adv, torch.ones(1, 2), 0.2, 0.28)
    loss.backward()
    assert logp.grad[0, 0] < 0 and stats["clip_fraction"] == 0.0  # DAPO: room to grow up to 1.28
    logp2 = torch.full((1, 1), math.log(0.7), requires_grad=True)  # below 1 - 0.2 with a negative advantage
    loss, _ = policy_loss(logp2, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1), 0.2, 0.28)
    loss.backward()
    assert logp2.grad[0, 0] == 0


def test_token_and_sequence_aggregation_weigh_long_completions_differently():
    logp = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    adv = torch.tensor([1.0, 1.0])
    tok, _ = policy_loss(logp, torch.zeros(2, 4), adv, mask, aggregation="token")
    (g_tok,) = torch.autograd.grad(tok, logp)
    seq, _ = policy_loss(logp, torch.zeros(2, 4), adv, mask, aggregation="sequence")
    (g_seq,) = torch.autograd.grad(seq, logp)
    assert g_tok[0, 0] == g_tok[1, 0] == pytest.approx(-1 / 5)  # every token weighs the same
    assert g_seq[0, 0] == pytest.approx(-1 / 8) and g_seq[1, 0] == pytest.approx(-1 / 2)  # the long one diluted
    assert g_tok[1, 1:].abs().sum() == 0 and g_seq[1, 1:].abs().sum() == 0  # padding gets nothing
    same = torch.ones(2, 4)
    a, _ = policy_loss(logp, torch.zeros(2, 4), torch.tensor([1.0, -2.0]), same, aggregation="token")
    b, _ = policy_loss(logp, torch.zeros(2, 4), torch.tensor([1.0, -2.0]), same, aggregation="sequence")
    assert float(a.detach()) == pytest.approx(float(b.detach()))  # equal lengths: the two agree


def test_policy_loss_refuses_bad_input():
    z = torch.zeros(1, 2)
    with pytest.raises(InputError, match="aggregation"):
        policy_loss(z, z, z, torch.ones(1, 2), aggregation="mean")
    with pytest.raises(InputError, match="clip range"):
        policy_loss(z, z, z, torch.ones(1, 2), clip_low=1.0)
    with pytest.raises(InputError, match="does not match"):
        policy_loss(z, z, torch.zeros(1, 3), torch.ones(1, 2))


def test_empty_batch_gives_zero_loss_and_zero_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    for aggregation in ("token", "sequence"):
        loss, _ = policy_loss(logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), aggregation=aggregation)
        (g,) = torch.autograd.grad(loss, logp)
        assert float(loss.detach()) == 0 and not g.isnan().any() and g.abs().sum() == 0
    assert float(masked_mean(torch.ones(3), torch.zeros(3))) == 0


def test_k3_estimates_the_kl_divergence_without_bias():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(6, generator=g) * 1.5, 0)
    q = torch.softmax(torch.randn(6, generator=g) * 1.5, 0)
    exact = float((p * (p / q).log()).sum())
    samples = torch.multinomial(p, 400_000, replacement=True, generator=g)
    k3 = kl_k3(p.log()[samples], q.log()[samples])
    assert float(k3.min()) >= 0
    assert float(k3.mean()) == pytest.approx(exact, rel=0.03)
    assert float(kl_k3(p.log(), p.log()).abs().max()) == 0


def test_value_loss_and_its_clipped_form():
    values = torch.tensor([[1.0, 2.0, 9.0]])
    returns = torch.tensor([[0.0, 2.5, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert float(value_loss(values, returns, mask)) == pytest.approx(0.5 * (1 + 0.25) / 2)
    old = torch.tensor([[0.0, 2.0, 0.0]])
    # token 0 moved 1.0 from the old value; clipped to 0.2 its error would be 0.04, smaller than 1: PPO keeps 1
    # token 1 did not move: both errors are 0.25
    assert float(value_loss(values, returns, mask, old, clip=0.2)) == pytest.approx(0.5 * (1 + 0.25) / 2)
    far = torch.tensor([[3.0, 2.0, 0.0]])  # old value 3, new 1: clipped to 2.8, error 7.84 > 1
    assert float(value_loss(values, returns, mask, far, clip=0.2)) == pytest.approx(0.5 * (7.84 + 0.25) / 2)
    with pytest.raises(InputError, match="old values"):
        value_loss(values, returns, mask, clip=0.2)


def test_nll_loss_is_the_token_mean():
    logp = torch.tensor([[-1.0, -2.0, -7.0], [-4.0, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert float(nll_loss(logp, mask)) == pytest.approx(7 / 3)
