import math

import pytest
import torch
from torch import nn

from llmlab.core.errors import InputError
from llmlab.nn.ffn_variants import KINDS, FeedForward
from llmlab.nn.moe import (
    MoEConfig,
    MoEFeedForward,
    capacity_keep,
    expert_capacity,
    load_balancing_loss,
    route,
    router_z_loss,
)


class Scale(nn.Module):
    """A hand-built expert: multiplies its input by a constant and counts the tokens it was given."""

    def __init__(self, c: float):
        super().__init__()
        self.c, self.seen = c, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.c * x


def hand_moe(cfg: MoEConfig, scales=(1.0, 10.0, 100.0)) -> MoEFeedForward:
    """dim = n_experts = 3; router logits are the input itself (identity gate), experts scale by constants."""
    moe = MoEFeedForward(3, 4, cfg)
    with torch.no_grad():
        moe.gate.weight.copy_(torch.eye(3))
    moe.experts = nn.ModuleList(Scale(c) for c in scales)
    return moe


def logits_for(*probs):
    """Rows whose softmax is exactly `probs` (log of the probabilities)."""
    return torch.tensor(probs).log()


def test_switch_top1_output_by_hand():
    moe = hand_moe(MoEConfig(n_experts=3, top_k=1, router="switch"))
    x = logits_for([0.6, 0.1, 0.3], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7])  # (3 tokens, dim 3)
    y, aux = moe(x)
    expected = torch.stack([0.6 * 1 * x[0], 0.5 * 10 * x[1], 0.7 * 100 * x[2]])
    torch.testing.assert_close(y, expected)
    assert aux.tokens_per_expert.tolist() == [1, 1, 1]
    assert float(aux.dropped_fraction) == 0.0


def test_softmax_top2_output_by_hand():
    moe = hand_moe(MoEConfig(n_experts=3, top_k=2))
    x = logits_for([0.5, 0.2, 0.3], [0.1, 0.6, 0.3])
    y, _ = moe(x)
    # token 0: experts 0 and 2, weights 0.5/0.8 and 0.3/0.8; token 1: experts 1 and 2, 0.6/0.9 and 0.3/0.9
    expected = torch.stack([(0.5 * 1 + 0.3 * 100) / 0.8 * x[0], (0.6 * 10 + 0.3 * 100) / 0.9 * x[1]])
    torch.testing.assert_close(y, expected)


def test_unnormalized_top2_uses_raw_probabilities():
    moe = hand_moe(MoEConfig(n_experts=3, top_k=2, normalize_topk=False))
    x = logits_for([0.5, 0.2, 0.3])
    y, _ = moe(x)
    torch.testing.assert_close(y, (0.5 * 1 + 0.3 * 100) * x)


def test_capacity_drops_overflow_and_zeroes_it():
    cfg = MoEConfig(n_experts=3, top_k=1, router="switch", capacity_factor=1.0)
    moe = hand_moe(cfg)
    to_0, to_1 = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]
    x = logits_for(to_0, to_0, to_0, to_0, to_1, to_0)  # 6 tokens, capacity ceil(6 * 1 / 3) = 2
    y, aux = moe(x)
    assert expert_capacity(6, 3, 1, 1.0) == 2
    assert [e.seen for e in moe.experts] == [2, 1, 0]
    assert aux.tokens_per_expert.tolist() == [2, 1, 0]
    assert float(aux.dropped_fraction) == pytest.approx(3 / 6)
    kept = torch.tensor([True, True, False, False, True, False])
    assert torch.all(y[~kept] == 0)  # dropped tokens get nothing: the residual carries them
    torch.testing.assert_close(y[kept], torch.stack([0.8 * x[0], 0.8 * x[1], 8 * x[4]]))


def test_first_choices_are_served_before_second_choices():
    # 4 tokens, 2 experts, top-2: capacity ceil(4 * 2 * 0.5 / 2) = 2 per expert.
    # Tokens 0, 1 prefer expert 1, tokens 2, 3 prefer expert 0: expert 0's slots go to tokens 2, 3
    # (first choices) even though tokens 0, 1 come earlier and also chose it (second choice).
    experts = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]])
    keep = capacity_keep(experts, n_experts=2, capacity=2)
    assert keep.tolist() == [[True, False], [True, False], [True, False], [True, False]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("top_k,factor", [(1, 1.0), (2, 0.5), (2, 1.25), (3, 0.3)])
def test_capacity_is_never_exceeded_on_random_routing(seed, top_k, factor):
    g = torch.Generator().manual_seed(seed)
    T, E = 37, 4
    experts = torch.rand(T, E, generator=g).argsort(dim=-1)[:, :top_k]  # distinct experts per token
    cap = expert_capacity(T, E, top_k, factor)
    keep = capacity_keep(experts, E, cap)
    for e in range(E):
        wanted = int((experts == e).sum())
        assert int(((experts == e) & keep).sum()) == min(wanted, cap)  # fills up to capacity, drops the rest


def test_load_balancing_loss_by_hand():
    # 4 tokens, 2 experts; 3 tokens chose expert 0: f = (3/4, 1/4); mean probabilities P = (0.6, 0.4)
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    mask = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]])
    assert float(load_balancing_loss(probs, mask)) == pytest.approx(2 * (0.75 * 0.6 + 0.25 * 0.4))


def test_load_balancing_loss_is_one_when_uniform():
    probs = torch.full((8, 4), 0.25)
    mask = torch.eye(4).repeat(2, 1)
    assert float(load_balancing_loss(probs, mask)) == pytest.approx(1.0)


def test_load_balancing_loss_matches_hf_switch():
    switch = pytest.importorskip("transformers.models.switch_transformers.modeling_switch_transformers")
    torch.manual_seed(0)
    logits = torch.randn(1, 50, 6)  # one group, as our loss pools every token
    probs = logits.softmax(-1)
    _, experts = route(logits, 1)
    ours = load_balancing_loss(probs, nn.functional.one_hot(experts[..., 0], 6))
    torch.testing.assert_close(ours, switch.load_balancing_loss_func(probs, experts[..., 0]))


def test_load_balancing_loss_matches_hf_mixtral_top2():
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    torch.manual_seed(1)
    logits = torch.randn(40, 8)
    _, experts = route(logits, 2)
    mask = nn.functional.one_hot(experts, 8).amax(dim=1)
    ours = load_balancing_loss(logits.softmax(-1), mask)
    torch.testing.assert_close(ours, mixtral.load_balancing_loss_func((logits,), 8, top_k=2))


def test_z_loss_matches_hf_and_formula():
    switch = pytest.importorskip("transformers.models.switch_transformers.modeling_switch_transformers")
    torch.manual_seed(2)
    logits = torch.randn(2, 9, 5) * 3
    torch.testing.assert_close(router_z_loss(logits), switch.router_z_loss_func(logits))
    row = logits[0, 0]
    by_hand = math.log(sum(math.exp(v) for v in row.tolist())) ** 2
    assert float(router_z_loss(logits[:1, :1])) == pytest.approx(by_hand, rel=1e-5)


def test_aux_loss_combines_the_two_losses_with_their_coefficients():
    torch.manual_seed(3)
    moe = MoEFeedForward(8, 16, MoEConfig(n_experts=4, top_k=2, aux_loss_coef=0.1, z_loss_coef=0.01))
    x = torch.randn(2, 5, 8)
    _, aux = moe(x)
    logits = moe.gate(x.reshape(-1, 8))
    _, experts = route(logits, 2)
    lb = load_balancing_loss(logits.softmax(-1), nn.functional.one_hot(experts, 4).amax(dim=1))
    torch.testing.assert_close(aux.load_balancing_loss, lb)
    torch.testing.assert_close(aux.loss, 0.1 * lb + 0.01 * router_z_loss(logits))
    assert int(aux.tokens_per_expert.sum()) == 2 * 10  # no dropping: every assignment processed


def test_all_experts_no_capacity_equals_dense_mixture():
    torch.manual_seed(4)
    cfg = MoEConfig(n_experts=3, top_k=3, capacity_factor=0.0, normalize_topk=False)
    moe = MoEFeedForward(8, 12, cfg)
    x = torch.randn(2, 5, 8)
    y, aux = moe(x)
    probs = moe.gate(x).softmax(-1)  # (2, 5, 3)
    dense = sum(probs[..., e, None] * moe.experts[e](x) for e in range(3))
    torch.testing.assert_close(y, dense, atol=1e-6, rtol=1e-5)
    assert float(aux.dropped_fraction) == 0.0


def test_matches_hf_mixtral_sparse_moe_block():
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    from transformers import MixtralConfig

    torch.manual_seed(5)
    dim, hidden, E = 16, 24, 4
    moe = MoEFeedForward(dim, hidden, MoEConfig(n_experts=E, top_k=2))
    hf = mixtral.MixtralSparseMoeBlock(MixtralConfig(
        hidden_size=dim, intermediate_size=hidden, num_local_experts=E, num_experts_per_tok=2,
    ))
    with torch.no_grad():
        hf.gate.weight.copy_(moe.gate.weight)
        for e, ex in enumerate(moe.experts):
            hf.experts.gate_up_proj[e].copy_(torch.cat([ex.gate_proj.weight, ex.up_proj.weight]))
            hf.experts.down_proj[e].copy_(ex.down_proj.weight)
    x = torch.randn(2, 7, dim)
    out = hf(x)
    out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(moe(x)[0], out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_each_expert_is_a_dense_feed_forward_of_the_kind_on_its_tokens(kind):
    """An expert computes what a dense FeedForward of its kind, holding its weights, computes on the
    tokens routed to it; the output is the routing-weighted sum of those."""
    torch.manual_seed(10)
    moe = MoEFeedForward(8, 12, MoEConfig(n_experts=3, top_k=2, capacity_factor=0.0, expert_kind=kind))
    x = torch.randn(2, 7, 8)
    y, _ = moe(x)
    tokens = x.reshape(-1, 8)  # (T, d)
    weights, experts = route(moe.gate(tokens), top_k=2, normalize=True)  # (T, k) each
    expected = torch.zeros_like(tokens)
    for e, expert in enumerate(moe.experts):
        dense = FeedForward(8, 12, kind)
        dense.load_state_dict(expert.state_dict())  # same parameter names: the expert is that module
        token, rank = torch.where(experts == e)
        expected.index_add_(0, token, dense(tokens[token]) * weights[token, rank, None])
    torch.testing.assert_close(y, expected.view(2, 7, 8))
    assert all(ex.kind == kind for ex in moe.experts)


def test_gradients_reach_router_and_every_used_expert():
    torch.manual_seed(6)
    moe = MoEFeedForward(8, 12, MoEConfig(n_experts=4, top_k=2, capacity_factor=2.0))
    y, aux = moe(torch.randn(3, 6, 8))
    (y.square().mean() + aux.loss).backward()
    assert moe.gate.weight.grad.abs().sum() > 0
    for e, n in enumerate(aux.tokens_per_expert.tolist()):
        grad = moe.experts[e].down_proj.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == (n > 0)


def test_switch_router_gets_gradient_from_the_output_alone():
    torch.manual_seed(7)
    moe = MoEFeedForward(8, 12, MoEConfig(n_experts=4, top_k=1, router="switch"))
    y, _ = moe(torch.randn(10, 8))
    y.sum().backward()  # no aux loss: the gate still learns because outputs are scaled by its probability
    assert moe.gate.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [
    dict(n_experts=0), dict(top_k=0), dict(n_experts=2, top_k=3), dict(router="hash"),
    dict(router="switch", top_k=2), dict(capacity_factor=-1.0), dict(aux_loss_coef=-0.1), dict(expert_kind="tanh"),
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(InputError):
        MoEConfig(**kwargs)


def test_padding_tokens_are_not_routed_and_do_not_count():
    torch.manual_seed(8)
    cfg = MoEConfig(n_experts=4, top_k=2, capacity_factor=1.0)
    moe = MoEFeedForward(8, 12, cfg)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    y, aux = moe(x, token_mask=mask)
    assert torch.all(y[~mask] == 0)
    assert float(aux.dropped_fraction) > 0  # capacity binds: it must be computed from the 9 real tokens
    y_real, aux_real = moe(x[mask])  # the 9 real tokens alone, in the same order
    torch.testing.assert_close(y[mask], y_real)
    for field in ("loss", "load_balancing_loss", "z_loss", "tokens_per_expert", "dropped_fraction"):
        torch.testing.assert_close(getattr(aux, field), getattr(aux_real, field))


def test_masked_load_balancing_loss_matches_hf_mixtral():
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    torch.manual_seed(9)
    logits = torch.randn(3 * 5, 6)  # batch 3, length 5, flattened as Mixtral expects
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    _, experts = route(logits, 2)
    mask = nn.functional.one_hot(experts, 6).amax(dim=1)
    ours = load_balancing_loss(logits.softmax(-1), mask, attention_mask.reshape(-1).bool())
    hf = mixtral.load_balancing_loss_func((logits,), 6, top_k=2, attention_mask=attention_mask)
    torch.testing.assert_close(ours, hf)
