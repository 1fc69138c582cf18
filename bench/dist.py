"""Distributed-training bench on CPU (gloo): for 1, 2 and 4 processes, tokens/s of every strategy,
bytes each rank sends per step beside the theory, and the pipeline bubble beside (p-1)/(m+p-1).

Every strategy trains the same decoder on the same global batch, so their tokens/s compare directly
with the single process's (the ratio column). On a 2-core machine 4 processes share 2 cores: the
figures show the mechanisms' overheads, not a speed-up (which needs a core, or a GPU, per rank).

Bytes are what one rank sends, counted at the collectives (`count_collectives`, and the pipeline's
point-to-point sends), against: ring all-reduce 2(N-1)/N x gradient bytes (data parallel), 3(N-1)/N x
parameter bytes (FSDP: two all-gathers and a reduce-scatter), 2(N-1)/N x 4 B*T*d per block (tensor
parallel), and one activation forward plus one gradient backward per micro-batch and stage boundary.

    .venv/bin/python bench/dist.py [--nproc 1 2 4] [--steps 5] [--dim 256] [--layers 4] [--seq 128]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.distributed as dist

from llmlab.dist.collectives import count_collectives, naive_all_reduce, ring_all_reduce, theoretical_bytes
from llmlab.dist.launch import spawn
from llmlab.dist.planner import ring_factor
from llmlab.models import CausalLM, ModelConfig
from llmlab.train import optim
from llmlab.train.objectives import causal_lm_loss

STRATEGIES = ("single", "ddp-llmlab", "ddp-torch", "fsdp2", "tp", "pp-gpipe", "pp-1f1b")


def model_config(args) -> ModelConfig:
    return ModelConfig(vocab_size=1024, dim=args.dim, n_layer=args.layers, n_head=4, n_kv_head=4,
                       max_seq_len=args.seq)


@contextlib.contextmanager
def count_sends():
    """Bytes passed to dist.isend / dist.send meanwhile (the pipeline's point-to-point traffic)."""
    sent = [0]
    originals = dist.isend, dist.send

    def wrap(fn):
        def counted(tensor, *a, **k):
            sent[0] += tensor.numel() * tensor.element_size()
            return fn(tensor, *a, **k)
        return counted

    dist.isend, dist.send = wrap(dist.isend), wrap(dist.send)
    try:
        yield sent
    finally:
        dist.isend, dist.send = originals


def _batch(cfg: ModelConfig, batch: int, seq: int, step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, cfg.vocab_size, (batch, seq + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def run_strategy(rank: int, world: int, strategy: str, cfg: ModelConfig, batch: int, seq: int, steps: int,
                 micro: int) -> dict:
    """Train `steps` steps (after one warm-up) of `strategy`; tokens/s and bytes sent by this rank per step."""
    from llmlab.dist.data_parallel import GradientSync, shard_rows, wrap_ddp
    from llmlab.dist.fsdp import shard_model
    from llmlab.dist.pipeline_parallel import PipelineStage, pipeline_step
    from llmlab.dist.tensor_parallel import parallelize_decoder

    torch.manual_seed(0)
    model = CausalLM(cfg)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    sync, fwd, out = None, model, {}
    if strategy == "ddp-llmlab":
        sync = GradientSync(model)
    elif strategy == "ddp-torch":
        fwd = wrap_ddp(model)
    elif strategy == "fsdp2":
        shard_model(model)
    elif strategy == "tp":
        parallelize_decoder(model)
    elif strategy.startswith("pp"):
        model = PipelineStage(model, rank, world)
    opt = optim.AdamW(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        x, y = _batch(cfg, batch, seq, i)
        if strategy.startswith("pp"):
            pipeline_step(model, x, y, micro, strategy.split("-")[1])
        else:
            if strategy != "single" and strategy != "tp":  # data-parallel strategies: this rank's rows
                x, y = shard_rows(x, rank, world), shard_rows(y, rank, world)
            causal_lm_loss(fwd(x), y).backward()
            if sync is not None:
                sync.finish()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(0)  # warm-up (allocations, FSDP's first gathers)
    with count_collectives() as calls, count_sends() as sent:
        if strategy == "tp":
            model.tp_comm.reset()
        dist.barrier()
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            step(i)
        dist.barrier()
        seconds = time.perf_counter() - t0
    out["tok_per_s"] = batch * seq * steps / seconds
    if strategy == "ddp-llmlab":
        out["sent"] = sum(c.ring_bytes for c in calls if c.payload > 64 * 4) / steps  # not the tiny flags
        out["theory"] = ring_factor(world) * params
    elif strategy == "ddp-torch":
        out["sent"], out["theory"] = None, ring_factor(world) * params  # DDP's reducer runs in C++
    elif strategy == "fsdp2":
        from llmlab.dist.fsdp import step_bytes

        out["sent"], out["theory"] = sum(c.ring_bytes for c in calls) / steps, step_bytes(params, world)
    elif strategy == "tp":
        from llmlab.dist.tensor_parallel import tp_allreduce_bytes

        ring = ring_factor(world)
        out["sent"] = ring * model.tp_comm.bytes / steps
        out["theory"] = ring * tp_allreduce_bytes(cfg.n_layer, batch, seq, cfg.dim)
    elif strategy.startswith("pp"):
        act = batch * seq * cfg.dim * 4  # all micro-batches' activations (or gradients) at one boundary
        out["sent"] = sent[0] / steps  # includes the tied-embedding gradient exchange of stages 0 and p-1
        sends = (rank < world - 1) + (rank > 0)  # activations forward, gradients backward
        out["theory"] = sends * act + (cfg.vocab_size * cfg.dim * 4 if cfg.tie_embeddings and rank in (0, world - 1)
                                       else 0)
    return out


def run_bubble(rank: int, world: int, cfg: ModelConfig, batch: int, seq: int, schedule: str, micro: int,
               steps: int) -> float:
    """Median measured bubble fraction of `steps` pipeline steps."""
    from llmlab.dist.pipeline_parallel import PipelineStage, bubble_fraction, gather_timelines, pipeline_step

    torch.manual_seed(0)
    stage = PipelineStage(CausalLM(cfg), rank, world)
    fractions = []
    for i in range(steps + 1):
        x, y = _batch(cfg, batch, seq, i)
        r = pipeline_step(stage, x, y, micro, schedule)
        timelines = gather_timelines(r.timeline)
        times: list = [None] * world
        dist.all_gather_object(times, r.step_time)
        stage.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            fractions.append(bubble_fraction(timelines, times))
    return sorted(fractions)[len(fractions) // 2]


def run_allreduce(rank: int, world: int, numel: int, repeat: int) -> dict:
    """Seconds and bytes sent by this rank: the document's naive scheme, the ring, and gloo's all_reduce."""
    out = {}
    for name, fn in (("naive (reduce to root, broadcast)", naive_all_reduce), ("ring", ring_all_reduce),
                     ("dist.all_reduce (gloo)", lambda t: dist.all_reduce(t))):
        t = torch.randn(numel)
        best, stats = float("inf"), None
        for _ in range(repeat):
            dist.barrier()
            t0 = time.perf_counter()
            stats = fn(t)
            best = min(best, time.perf_counter() - t0)
        out[name] = (best, None if stats is None else stats.sent)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16, help="global batch (sequences)")
    args = ap.parse_args()
    cfg = model_config(args)
    mib = 2**20

    print(f"decoder d={cfg.dim}, {cfg.n_layer} layers, vocab {cfg.vocab_size}; global batch {args.batch} x "
          f"{args.seq} tokens; {args.steps} timed steps; CPU, gloo\n")
    print(f"{'strategy':<12} {'N':>2} {'tok/s':>9} {'vs 1 proc':>9} {'sent/rank/step':>15} {'theory':>10} "
          f"{'ratio':>6}")
    base = spawn(run_strategy, 1, "single", cfg, args.batch, args.seq, args.steps, 1)[0]["tok_per_s"]
    print(f"{'single':<12} {1:>2} {base:>9.0f} {1.0:>9.2f}")
    for n in [n for n in args.nproc if n > 1]:
        for strategy in STRATEGIES[1:]:
            micro = 2 * n
            r = spawn(run_strategy, n, strategy, cfg, args.batch, args.seq, args.steps, micro)
            res = r[0] if not strategy.startswith("pp") else r[min(1, n - 1)]  # a middle/last stage's sends
            sent = "n/a (C++)" if res["sent"] is None else f"{res['sent'] / mib:.2f} MiB"
            ratio = "" if res["sent"] is None else f"{res['sent'] / res['theory']:.3f}"
            print(f"{strategy:<12} {n:>2} {res['tok_per_s']:>9.0f} {res['tok_per_s'] / base:>9.2f} {sent:>15} "
                  f"{res['theory'] / mib:>6.2f} MiB {ratio:>6}")

    print("\npipeline bubble: measured (median of steps) vs (p-1)/(m+p-1)")
    print(f"{'schedule':<8} {'p':>2} {'m':>3} {'measured':>9} {'theory':>7}")
    for p in [n for n in args.nproc if n > 1]:
        for m in (p, 2 * p, 4 * p):
            for schedule in ("gpipe", "1f1b"):
                measured = spawn(run_bubble, p, cfg, args.batch, args.seq, schedule, m, args.steps)[0]
                print(f"{schedule:<8} {p:>2} {m:>3} {measured:>9.3f} {(p - 1) / (m + p - 1):>7.3f}")

    numel = 1 << 20
    print(f"\nall-reduce of {numel * 4 / mib:.0f} MiB fp32: best of 5, bytes sent by rank 0 vs theory")
    for n in [n for n in args.nproc if n > 1]:
        res = spawn(run_allreduce, n, numel, 5)[0]
        for name, (secs, sent) in res.items():
            scheme = "naive" if name.startswith("naive") else "ring" if name == "ring" else None
            theory = theoretical_bytes(scheme, numel * 4, n).sent if scheme else None
            extra = f"{sent / mib:8.2f} MiB vs {theory / mib:6.2f} MiB" if scheme else ""
            print(f"  N={n} {name:<36} {secs * 1e3:8.1f} ms  {extra}")


if __name__ == "__main__":
    main()
