"""Tensor parallelism equals the unsharded model: logits, gradients and weights after optimizer steps.

Tensor parallelism on subgroups (group ranks != global ranks), inside a pipeline x tensor mesh, is
checked in test_pipeline_parallel.py (one 4-process run serves both).
"""

import copy

import torch

from llmlab.core.errors import InputError
from llmlab.dist.launch import spawn
from llmlab.dist.tensor_parallel import (
    ColumnParallelLinear,
    RowParallelLinear,
    parallelize_decoder,
    tp_allreduce_bytes,
    unsharded,
)
from llmlab.models import CausalLM, ModelConfig
from llmlab.train.objectives import causal_lm_loss

B, T = 2, 8


def _config(**kw) -> ModelConfig:
    base = dict(vocab_size=64, dim=32, n_layer=2, n_head=4, n_kv_head=2, ffn_hidden=64, max_seq_len=16)
    return ModelConfig(**{**base, **kw})


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).detach().abs().max()) for k in a)


def _equivalence(group, seed: int, **cfg) -> dict:
    """Unsharded reference and TP model on the same batch: logits, grads, then 3 AdamW steps."""
    torch.manual_seed(0)
    ref = CausalLM(_config(**cfg))
    tp = parallelize_decoder(copy.deepcopy(ref), group)
    g = torch.Generator().manual_seed(seed)  # the TP group shares its batch; other groups may differ
    idx = torch.randint(0, 64, (B, T + 1), generator=g)
    x, y = idx[:, :-1], idx[:, 1:]
    # Adam divides by sqrt(v): with a larger lr the fp32 noise of tiny gradients shows in the weights
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    opt_tp = torch.optim.AdamW(tp.parameters(), lr=1e-3)
    out = {}
    for step in range(3):
        tp.tp_comm.reset()
        logits_ref, logits_tp = ref(x), tp(x)
        causal_lm_loss(logits_ref, y).backward()
        causal_lm_loss(logits_tp, y).backward()
        if step == 0:
            out["logits"] = float((logits_ref - logits_tp).detach().abs().max())
            ref_grads = {n: p.grad for n, p in ref.named_parameters()}
            out["grads"] = _max_diff(ref_grads, unsharded(tp, group, grads=True))
            out["calls"], out["bytes"] = tp.tp_comm.calls, tp.tp_comm.bytes
        opt_ref.step(), opt_tp.step()
        opt_ref.zero_grad(), opt_tp.zero_grad()
    out["weights"] = _max_diff(dict(ref.named_parameters()), unsharded(tp, group))
    out["local_q_rows"] = tp.layers[0].self_attn.q_proj.weight.shape[0]
    return out


def _standalone_layers(group) -> dict:
    """Column (gathered) then row on a plain MLP equals the unsharded pair, forward and input gradient."""
    torch.manual_seed(1)
    up, down = torch.nn.Linear(8, 12), torch.nn.Linear(12, 8)
    col = ColumnParallelLinear(up, group, gather_output=True)
    row = RowParallelLinear(down, group, input_is_parallel=False)
    x1 = torch.randn(3, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    full, parallel = down(torch.relu(up(x1))), row(torch.relu(col(x2)))
    full.sum().backward(), parallel.sum().backward()
    return {"out": float((full - parallel).detach().abs().max()), "dx": float((x1.grad - x2.grad).abs().max())}


def _bad_inputs(group) -> list[str]:
    msgs = []
    for kw in (dict(n_kv_head=1), dict(n_head=1, n_kv_head=1), dict(ffn_hidden=65)):
        try:
            parallelize_decoder(CausalLM(_config(**kw)), group)
        except InputError as e:
            msgs.append(str(e))
    return msgs


def _generation(group) -> tuple[list[int], list[int], int]:
    """Greedy KV-cached decoding: unsharded and sharded (each rank caching its own kv heads)."""
    from llmlab.generate import GenerationConfig, generate

    torch.manual_seed(2)
    ref = CausalLM(_config(init_std=0.5))  # large weights: a varied greedy continuation, not one token
    tp = parallelize_decoder(copy.deepcopy(ref), group)
    cfg, prompt = GenerationConfig(max_new_tokens=10, temperature=0.0), [5, 17, 42, 8]
    return generate(ref, prompt, cfg), generate(tp, prompt, cfg), tp.new_cache().k[0].shape[1]


def _worker_two(rank, world):
    # untied: also a two-matrix FFN (no gate), LayerNorm with biases, learned positions
    untied = dict(tie_embeddings=False, ffn_kind="gelu", norm="layernorm", position="learned")
    return {"tied": _equivalence(None, 0), "untied": _equivalence(None, 0, **untied),
            "layers": _standalone_layers(None), "errors": _bad_inputs(None), "generate": _generation(None)}


def _check(res: dict, tp_size: int) -> None:
    assert res["logits"] < 1e-5
    assert res["grads"] < 1e-5
    assert res["weights"] < 1e-5
    assert res["local_q_rows"] == 32 // tp_size
    assert res["calls"] == 4 * 2  # 2 forward + 2 backward per block
    assert res["bytes"] == tp_allreduce_bytes(n_layer=2, batch=B, seq=T, dim=32)


def test_tensor_parallel_matches_unsharded_on_two_ranks():
    results = spawn(_worker_two, 2)
    for res in results:
        _check(res["tied"], 2)
        _check(res["untied"], 2)
        assert res["layers"]["out"] < 1e-6 and res["layers"]["dx"] < 1e-6
        errors = res["errors"]
        assert len(errors) == 3
        assert "n_kv_head (1) must be divisible by the tensor-parallel size (2)" in errors[0]
        assert "n_head (1)" in errors[1]
        assert "ffn hidden (65)" in errors[2]
        full, sharded, local_kv_heads = res["generate"]
        assert sharded == full and len(full) == 10 and len(set(full)) > 3 and local_kv_heads == 1
    assert results[0]["tied"] == results[1]["tied"]


def test_allreduce_bytes_theory():
    assert tp_allreduce_bytes(n_layer=1, batch=1, seq=1, dim=1) == 16
    assert tp_allreduce_bytes(n_layer=24, batch=8, seq=1024, dim=1024, bytes_per_elem=2) == 24 * 4 * 8 * 1024 * 1024 * 2

