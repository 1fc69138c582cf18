"""`CausalLM.fused_inference`: one q/k/v and one gate/up matrix while generating, same logits."""

import pytest
import torch
from torch import nn

from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig
from llmlab.nn.ffn_variants import FeedForward


def model_for(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32, **kw)
    return CausalLM(cfg).eval()


@pytest.mark.parametrize("kw", [{}, {"position": "alibi"}, {"ffn_kind": "gelu"}, {"n_experts": 2, "moe_top_k": 1},
                                {"n_experts": 2, "ffn_kind": "geglu"}, {"n_experts": 2, "ffn_kind": "relu"},
                                {"rope_scaling": "dynamic", "rope_factor": 2.0, "rope_original_max_seq_len": 16}])
def test_fused_logits_equal_modular_ones_full_and_cached(kw):
    model = model_for(**kw)
    idx = torch.randint(0, 50, (2, 10))

    def cached():  # (dynamic NTK scales by the cache's planned length, so compare cached with cached)
        cache = model.new_cache(2)
        return torch.cat([model(idx[:, :6], cache)] + [model(idx[:, i:i + 1], cache) for i in range(6, 10)], 1)

    with torch.no_grad():
        ref, ref_cached = model(idx), cached()
        with model.fused_inference():
            assert model.layers[0].self_attn.qkv_weight is not None
            assert all((f.gate_up_weight is not None) == (f.gate_proj is not None) for f in feed_forwards(model))
            full, parts = model(idx), cached()
    torch.testing.assert_close(full, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parts, ref_cached, atol=1e-5, rtol=1e-5)
    assert all(b.self_attn.qkv_weight is None for b in model.layers)  # dropped on exit
    assert all(f.gate_up_weight is None for f in feed_forwards(model))


def feed_forwards(model):
    """Every dense feed-forward and every expert: each gated one fuses its gate and up."""
    return [m for m in model.modules() if isinstance(m, FeedForward)]


def test_gradients_inside_the_block_use_the_real_modules():
    model = model_for().train()
    with model.fused_inference():
        model(torch.randint(0, 50, (1, 5))).sum().backward()
    assert model.layers[0].self_attn.q_proj.weight.grad is not None
    assert model.layers[0].mlp.gate_proj.weight.grad is not None


def test_replaced_projections_are_not_fused():
    model = model_for()
    attn = model.layers[0].self_attn
    attn.q_proj = nn.Sequential(attn.q_proj)  # stands in for a LoRA wrapper
    with model.fused_inference():
        assert attn.qkv_weight is None and model.layers[1].self_attn.qkv_weight is not None


def test_generation_is_unchanged_and_leaves_nothing_behind():
    model = model_for()
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0)
    with torch.no_grad():
        idx = torch.tensor([[1, 2, 3]])
        expected = []
        for _ in range(12):  # greedy by full recomputation, no fusion
            nxt = int(model(idx)[0, -1].argmax())
            expected.append(nxt)
            idx = torch.cat([idx, torch.tensor([[nxt]])], 1)
    assert generate(model, [1, 2, 3], cfg) == expected
    assert model.layers[0].self_attn.qkv_weight is None and model.layers[0].mlp.gate_up_weight is None
