"""ZeRO-3 sharding (FSDP2 `fully_shard`) equals single-process training, holding 1/N of the weights per rank.

As in test_data_parallel: float64 model and loss, so differences are summation order only (~1e-13);
the test asserts 1e-6.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.collectives import count_collectives
from llmlab.dist.data_parallel import shard_rows
from llmlab.dist.fsdp import full_param_bytes, gather_state_dict, local_param_bytes, no_sync, shard_model, step_bytes
from llmlab.dist.launch import spawn
from llmlab.models import CausalLM, ModelConfig
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import build_optimizer, get_batch

CFG = ModelConfig(vocab_size=64, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=16)
TRAIN = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1)
STEPS, BATCH, SEQ, ACCUM = 3, 8, 16, 2


def _model() -> nn.Module:
    torch.manual_seed(0)
    return CausalLM(CFG).double()


def _loss(model, x, y):
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())  # logits (B*T, V) in float64


def _global_batches():
    tokens = torch.randint(0, CFG.vocab_size, (500,), generator=torch.Generator().manual_seed(0))
    return [get_batch(tokens, BATCH, SEQ, seed=s) for s in range(STEPS)]


def _fsdp_worker(rank, world):
    ref = _model()
    opt = build_optimizer(ref, TRAIN)
    for x, y in _global_batches():
        _loss(ref, x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model = shard_model(_model())
    out = {"local_bytes": local_param_bytes(model), "full_bytes": full_param_bytes(model)}
    opt = build_optimizer(model, TRAIN)  # llmlab's AdamW, updating the local shards (DTensors)
    for x, y in _global_batches():
        xs, ys = shard_rows(x, rank, world).chunk(ACCUM), shard_rows(y, rank, world).chunk(ACCUM)
        for i in range(ACCUM):
            with no_sync(model) if i < ACCUM - 1 else torch.enable_grad():
                (_loss(model, xs[i], ys[i]) / ACCUM).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    x, y = _global_batches()[0]
    with count_collectives() as calls:  # one more plain forward/backward (no optimizer step): its traffic
        _loss(model, shard_rows(x, rank, world), shard_rows(y, rank, world)).backward()
    out["calls"] = [(c.op, c.payload) for c in calls]
    out["sent"] = sum(c.ring_bytes for c in calls)
    full, want = gather_state_dict(model), ref.state_dict()
    assert full.keys() == want.keys()
    out["diff"] = max(float((full[k] - want[k]).abs().max()) for k in want)
    return out


def test_fully_sharded_training_equals_single_process_with_half_the_weights_per_rank():
    world = 2
    results = spawn(_fsdp_worker, world, timeout=300)
    full = results[0]["full_bytes"]
    assert full == sum(p.numel() for p in _model().parameters()) * 8
    assert sum(r["local_bytes"] for r in results) == full  # the shards partition the model, no copies
    for r in results:
        assert r["diff"] < 1e-6, r
        assert r["local_bytes"] <= full / world * 1.05  # each rank stores ~1/N of the weights
        # every shard is all-gathered twice (forward, then again in backward) and every gradient reduce-scattered
        gathered = sum(b for op, b in r["calls"] if op.startswith("all_gather"))
        scattered = sum(b for op, b in r["calls"] if op.startswith("reduce_scatter"))
        assert (gathered, scattered) == (2 * full, full)
        assert r["sent"] == step_bytes(full, world)  # 3 (N-1)/N * P per rank with ring collectives


def test_step_bytes_and_bad_input():
    assert step_bytes(1200, 2) == 1800 and step_bytes(1200, 1) == 0
    with pytest.raises(InputError, match="world"):
        step_bytes(1200, 0)
    with pytest.raises(InputError, match="layers"):
        shard_model(nn.Linear(2, 2))
