"""Every architectural choice of ModelConfig: exact parameter counts, cached decoding equal to a full
forward, gradient checkpointing, and masks working with every position scheme."""

import pytest
import torch

from llmlab.models import CausalLM, ModelConfig, count_parameters
from llmlab.nn.masks import causal_mask, prefix_lm_mask

BASE = dict(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=40)
VARIANTS = (
    [dict(position=p) for p in ("rope", "alibi", "sinusoidal", "learned", "none")]
    + [dict(rope_scaling=k, rope_factor=2.0, rope_original_max_seq_len=16)
       for k in ("linear", "ntk", "dynamic", "yarn")]
    + [dict(ffn_kind=k) for k in ("relu", "gelu", "gelu_tanh", "silu", "geglu")]
    + [dict(n_experts=4, moe_every=2, ffn_kind="gelu"), dict(n_experts=2, norm_position="post"),
       dict(n_experts=4, moe_top_k=1, moe_router="switch", ffn_kind="relu")]
    + [dict(norm="layernorm"), dict(norm_position="post"),
       dict(norm="layernorm", norm_position="post", ffn_kind="gelu", position="learned")]
)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_variant_counts_decodes_and_checkpoints(variant):
    cfg = ModelConfig(**BASE, **variant)
    torch.manual_seed(0)
    model = CausalLM(cfg).eval()
    assert sum(p.numel() for p in model.parameters()) == count_parameters(cfg)
    # dynamic NTK rescales as the text grows past its trained 16 tokens, and cached keys keep their
    # older rotation (as in HF), so cached and full passes agree only up to there
    n = 16 if variant.get("rope_scaling") == "dynamic" else 30
    idx = torch.randint(0, 50, (2, n))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(2)
        parts = [model(idx[:, :12], cache)] + [model(idx[:, t:t + 1], cache) for t in range(12, n - 5)]
        parts.append(model(idx[:, max(12, n - 5):], cache))
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    model.train()
    model.gradient_checkpointing = True
    model(idx).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "experts" not in n)


@pytest.mark.parametrize("position", ["alibi", "rope", "learned"])
def test_masks_work_with_every_position_scheme(position):
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(**BASE, position=position)).eval()
    idx = torch.randint(0, 50, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(idx, mask=causal_mask(12)), model(idx), atol=1e-5, rtol=1e-5)
        prefixed = model(idx, mask=prefix_lm_mask(5, 12))
        changed = idx.clone()
        changed[:, 4] = (changed[:, 4] + 1) % 50
        assert not torch.allclose(model(changed, mask=prefix_lm_mask(5, 12))[:, 0], prefixed[:, 0])
