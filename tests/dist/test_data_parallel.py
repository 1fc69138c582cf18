"""Data parallel training equals single-process training on the same global batch.

The models run in float64 with a float64 loss (`F.cross_entropy`; `causal_lm_loss` computes in float32),
so the only differences left are the order of floating-point sums: the weights agree to ~1e-12, and the
test asserts 1e-6.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.collectives import count_collectives
from llmlab.dist.data_parallel import GradientSync, build_buckets, shard_rows, wrap_ddp
from llmlab.dist.launch import spawn
from llmlab.models import CausalLM, ModelConfig
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import build_optimizer, get_batch

CFG = ModelConfig(vocab_size=64, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=16)
TRAIN = TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=0.1)
STEPS, BATCH, SEQ, ACCUM = 3, 8, 16, 2


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = CausalLM(CFG).double()
    model.extra = nn.Parameter(torch.ones(4, dtype=torch.float64))  # never used: gets no gradient
    return model


def _loss(model, x, y):
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def _global_batches():
    tokens = torch.randint(0, CFG.vocab_size, (500,), generator=torch.Generator().manual_seed(0))
    return [get_batch(tokens, BATCH, SEQ, seed=s) for s in range(STEPS)]


def _reference():
    """Single process, full global batch, one backward per step."""
    model = _model(0)
    opt = build_optimizer(model, TRAIN)
    for x, y in _global_batches():
        _loss(model, x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model.state_dict()


def _train_data_parallel(model, rank, world, sync=None):
    """This rank's shard of each global batch, in ACCUM micro-batches; only the last one communicates."""
    opt = build_optimizer(model, TRAIN)
    quiet = sync.no_sync if sync is not None else model.no_sync
    for x, y in _global_batches():
        xs, ys = shard_rows(x, rank, world).chunk(ACCUM), shard_rows(y, rank, world).chunk(ACCUM)
        for i in range(ACCUM):
            with quiet() if i < ACCUM - 1 else torch.enable_grad():
                (_loss(model, xs[i], ys[i]) / ACCUM).backward()
        if sync is not None:
            sync.finish()
        opt.step()
        opt.zero_grad(set_to_none=True)


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _data_parallel_worker(rank, world):
    want = _reference()
    out = {}
    # llmlab's own sync; ranks > 0 start from other weights, so the broadcast matters; ~10 KB buckets
    model = _model(rank * 100)
    sync = GradientSync(model, bucket_mb=0.01, find_unused=True)
    with count_collectives() as calls:
        _train_data_parallel(model, rank, world, sync)
    out["calls"] = [(c.op, c.payload, c.ring_bytes) for c in calls]
    out["own"] = _max_diff(model.state_dict(), want)
    out["buckets"], out["overlapped"], out["bytes"] = len(sync.buckets), sync.last_overlapped, sync.bytes_per_step
    assert model.extra.grad is None and torch.equal(model.extra, torch.ones(4, dtype=torch.float64))
    # a second backward without no_sync() would all-reduce stale gradients: refused
    x, y = _global_batches()[0]
    _loss(model, x, y).backward()
    try:
        _loss(model, x, y).backward()
        out["double_backward"] = "not refused"
    except InputError as e:
        out["double_backward"] = str(e)
    sync.finish()
    sync.remove()
    # PyTorch DDP
    ddp = wrap_ddp(_model(rank * 100), bucket_mb=0.01, find_unused_parameters=True)
    _train_data_parallel(ddp, rank, world)
    out["ddp"] = _max_diff(ddp.module.state_dict(), want)
    return out


def test_own_gradient_sync_and_ddp_equal_single_process_training():
    n_params = sum(p.numel() for p in _model(0).parameters())
    n_tensors = len(list(_model(0).parameters()))
    for r in spawn(_data_parallel_worker, 2, timeout=300):
        assert r["own"] < 1e-6 and r["ddp"] < 1e-6, r
        assert r["bytes"] == n_params * 8  # every float64 gradient all-reduced once per step
        assert r["buckets"] > 1 and r["overlapped"] >= 1  # some buckets went out while backward still ran
        assert "no_sync" in r["double_backward"]
        # per step: one all-reduce per bucket (2(N-1)/N of its bytes sent per rank), plus the used-parameter count
        assert len(r["calls"]) == STEPS * (r["buckets"] + 1)
        mask = n_tensors * 4  # float32 flag per parameter tensor (find_unused=True)
        assert sum(b for _, b, _ in r["calls"]) == STEPS * (r["bytes"] + mask)
        assert sum(s for _, _, s in r["calls"]) == STEPS * (r["bytes"] + mask)  # 2(N-1)/N = 1 for N = 2


def test_buckets_follow_the_given_order_and_cap():
    ps = [nn.Parameter(torch.zeros(n)) for n in (10, 10, 30, 5, 5)]  # float32: 40, 40, 120, 20, 20 bytes
    sizes = [[p.numel() for p in b] for b in build_buckets(ps, bucket_bytes=80)]
    assert sizes == [[10, 10], [30], [5, 5]]  # a parameter over the cap gets its own bucket
    mixed = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    assert len(build_buckets(mixed, bucket_bytes=10**6)) == 2  # one dtype per flat buffer


def test_bad_input():
    with pytest.raises(InputError, match="bucket_mb"):
        GradientSync(nn.Linear(2, 2), bucket_mb=0)
    with pytest.raises(InputError, match="divide"):
        shard_rows(torch.zeros(5, 3), 0, 2)
