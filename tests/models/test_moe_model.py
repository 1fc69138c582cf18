"""The decoder with mixture-of-experts feed-forward layers."""

import pytest
import torch
from torch import nn

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig, count_parameters, load_model, save_model
from llmlab.models.config import FFN_KINDS
from llmlab.models.params import flops_per_token
from llmlab.nn.ffn import SwiGLU
from llmlab.nn.moe import MoEFeedForward
from llmlab.train import TrainConfig, Trainer, evaluate_loss

MOE = ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, n_kv_head=2, ffn_hidden=48, max_seq_len=16,
                  n_experts=4, moe_top_k=2)


def test_moe_layers_and_parameter_count():
    cfg = ModelConfig(**{**MOE.__dict__, "moe_every": 2, "n_layer": 4})
    model = CausalLM(cfg)
    kinds = [isinstance(b.mlp, MoEFeedForward) for b in model.layers]
    assert kinds == [False, True, False, True]
    assert count_parameters(cfg) == sum(p.numel() for p in model.parameters())
    # active parameters per token: 2 of 4 experts
    dense = ModelConfig(**{**cfg.__dict__, "n_experts": 0})
    extra_active = 2 * (2 * 3 * 32 * 48 + 32 * 4) - 2 * 3 * 32 * 48  # per MoE layer: 2 experts + router - dense
    assert flops_per_token(cfg, 16) - flops_per_token(dense, 16) == 6 * extra_active


@pytest.mark.parametrize("kind", FFN_KINDS)
def test_moe_model_of_every_ffn_kind_counts_and_trains(tmp_path, kind):
    """The experts follow ffn_kind (Switch Transformer's were ReLU): the count and the active-parameter
    FLOPs follow the kind's matrices, and the model learns."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**MOE.__dict__, "ffn_kind": kind, "moe_capacity_factor": 0.0})
    model = CausalLM(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in model.parameters())
    matrices = 3 if kind in ("swiglu", "geglu", "geglu_exact") else 2
    dense = ModelConfig(**{**cfg.__dict__, "n_experts": 0})
    extra_active = 2 * (2 * matrices * 32 * 48 + 32 * 4) - 2 * matrices * 32 * 48  # 2 layers: 2 experts + router
    assert flops_per_token(cfg, 16) - flops_per_token(dense, 16) == 6 * extra_active
    stream = torch.arange(2000) % 20
    tcfg = TrainConfig(steps=15, batch_size=8, seq_len=16, lr=1e-2, warmup_steps=2, eval_every=0,
                       checkpoint_every=0, device="cpu")
    t = Trainer(model, tcfg, stream, stream[:400], tmp_path)
    before, _ = evaluate_loss(t.model, t.val_tokens, 16)
    t.fit()
    after, _ = evaluate_loss(t.model, t.val_tokens, 16)
    assert after < before / 2


def test_swiglu_moe_checkpoints_saved_with_swiglu_experts_still_load(tmp_path):
    """Before experts followed ffn_kind they were `nn.ffn.SwiGLU` modules: such a saved model loads
    unchanged (same names, same shapes) and gives the same logits."""
    torch.manual_seed(0)
    old = CausalLM(MOE).eval()
    for block in old.layers:  # the experts as they were built then
        block.mlp.experts = nn.ModuleList(SwiGLU(MOE.dim, MOE.hidden) for _ in range(MOE.n_experts))
    save_model(old, tmp_path / "old")
    new, _ = load_model(tmp_path / "old")
    assert new.state_dict().keys() == old.state_dict().keys()
    x = torch.randint(0, 20, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))


def test_moe_kv_cache_matches_full_forward_in_eval():
    torch.manual_seed(0)
    model = CausalLM(MOE).eval()
    x = torch.randint(0, 20, (2, 12))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(batch=2)
        parts = [model(x[:, :4], cache)] + [model(x[:, i:i + 1], cache) for i in range(4, 12)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("router,top_k", [("softmax-topk", 2), ("switch", 1)])
def test_moe_model_trains_with_its_aux_loss(tmp_path, router, top_k):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**MOE.__dict__, "moe_router": router, "moe_top_k": top_k})
    stream = torch.arange(3000) % 20
    tcfg = TrainConfig(steps=30, batch_size=8, seq_len=16, lr=1e-2, warmup_steps=2, eval_every=0,
                       checkpoint_every=0, device="cpu")
    t = Trainer(CausalLM(cfg), tcfg, stream, stream[:400], tmp_path)
    before, _ = evaluate_loss(t.model, t.val_tokens, 16)
    t.fit()
    after, _ = evaluate_loss(t.model, t.val_tokens, 16)
    assert after < before / 2
    t.model.train()
    t.model(stream[:64].view(4, 16))
    loss = t.model.moe_loss()
    assert loss is not None and loss.item() > 0
    router_grads = []
    loss.backward()
    for b in t.model.layers:
        router_grads.append(b.mlp.gate.weight.grad.abs().sum())
    assert all(g > 0 for g in router_grads)  # the aux losses train the routers


def test_moe_config_errors():
    with pytest.raises(InputError, match="moe_top_k must be in"):
        ModelConfig(n_experts=2, moe_top_k=3)
    with pytest.raises(InputError, match="moe_router"):
        ModelConfig(n_experts=2, moe_router="hash")
