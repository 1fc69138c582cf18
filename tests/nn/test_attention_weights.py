"""Attention weights on request (topic 17): the same output as the fused kernel, rows that are
distributions, nothing visible in the future, and output = weights @ V."""

import pytest
import torch

from llmlab.models import CausalLM, ModelConfig
from llmlab.nn.attention import Attention, attention_probs
from llmlab.nn.masks import prefix_lm_mask


def tiny(position="rope", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32, position=position, **kw)
    return CausalLM(cfg).eval()


@pytest.mark.parametrize("position", ["rope", "alibi", "learned", "sinusoidal"])
def test_model_returns_logits_by_default_and_weights_on_request(position):
    model = tiny(position)
    idx = torch.randint(0, 40, (2, 9))
    plain = model(idx)
    logits, weights = model(idx, return_attention=True)
    assert isinstance(plain, torch.Tensor)
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    assert len(weights) == 2
    for w in weights:
        assert w.shape == (2, 4, 9, 9)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 9))
        assert (w >= 0).all()
        assert torch.all(w.triu(diagonal=1) == 0)  # causal: never a weight on a later position
        assert torch.all(w[:, :, 0, 0] == 1)  # the first token can only see itself


def test_output_equals_weights_times_values():
    torch.manual_seed(1)
    attn = Attention(dim=16, n_head=4, n_kv_head=2).eval()
    x = torch.randn(2, 5, 16)
    out, w = attn(x, None, None, need_weights=True)
    v = attn.v_proj(x).view(2, 5, 2, 4).transpose(1, 2).repeat_interleave(2, dim=1)  # (B, nh, T, hs)
    y = (w @ v).transpose(1, 2).reshape(2, 5, 16)
    torch.testing.assert_close(out, attn.o_proj(y))
    torch.testing.assert_close(out, attn(x, None, None), atol=1e-6, rtol=1e-5)  # fused path agrees


def test_prefix_mask_weights_see_the_whole_prefix_and_no_future_after_it():
    model = tiny()
    idx = torch.randint(0, 40, (1, 8))
    _, weights = model(idx, mask=prefix_lm_mask(3, 8), return_attention=True)
    w = weights[0][0]  # (nh, T, S)
    assert (w[:, :3, :3] > 0).all()  # the prefix attends both ways
    assert torch.all(w[:, 3:].triu(diagonal=4) == 0)
    assert torch.all(w[:, :3, 3:] == 0)


def test_cached_step_weights_cover_the_cached_keys():
    model = tiny()
    idx = torch.randint(0, 40, (1, 6))
    _, full = model(idx, return_attention=True)
    cache = model.new_cache()
    model(idx[:, :5], cache)
    _, step = model(idx[:, 5:], cache, return_attention=True)
    for f, s in zip(full, step):
        assert s.shape == (1, 4, 1, 6)
        torch.testing.assert_close(s[:, :, 0], f[:, :, 5], atol=1e-5, rtol=1e-4)


def test_attention_probs_hide_masked_keys_and_add_float_bias():
    q, k = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 3, 4)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    w = attention_probs(q, k, mask)
    assert w[0, 0, 0, 1] == 0 and torch.allclose(w.sum(-1), torch.ones(1, 1, 2))
    bias = torch.tensor([[0.0, float("-inf"), 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(attention_probs(q, k, bias), w)
