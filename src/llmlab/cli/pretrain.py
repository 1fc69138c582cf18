"""llmlab pretrain: train a causal decoder on a corpus, with every model and training flag; on one
process or on a dp x tp x pp mesh of processes (spawned here, or launched by torchrun)."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, add_run_flags, dataclass_overrides, refuse_unapplied


def register(sub) -> None:
    from llmlab.models.config import ModelConfig
    from llmlab.train.config import TrainConfig

    p = add_command(sub, "pretrain", "train a LLaMA-style causal LM on a corpus (resumes if the run exists)", run)
    p.add_argument("--corpus", default="pfr1998",
                   help="built-in corpus (pfr1998, sentiment, arithmetic) or a .txt/.jsonl file (its last 5%% of "
                        "lines are held out as dev)")
    add_run_flags(p, "pretrain")
    p.add_argument("--preset", default=None, help="start from a speedrun preset's config (tiny, small)")
    p.add_argument("--tokenizer", default=None, choices=("char", "bpe", "unigram", "wordpiece", "whitespace"),
                   help="tokenizer trained on the corpus (default: the preset's, else char)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="vocabulary size (0 = every character; char only)")
    p.add_argument("--teacher", default=None, metavar="DIR",
                   help="distil from this saved model (same tokenizer, context >= --seq-len), frozen: the loss becomes "
                        "(1 - KD_ALPHA) x cross-entropy + KD_ALPHA x T^2 x KL(teacher/T || student/T), T being "
                        "KD_TEMPERATURE (KD_ALPHA 0: the KL is only logged); one process only")
    g = p.add_argument_group("parallelism", "one process by default; --nproc N spawns N processes (gloo on CPU, "
                             "NCCL on GPUs); under torchrun the group comes from its environment. "
                             "--batch-size is the global batch, shared by the data-parallel replicas")
    g.add_argument("--nproc", type=int, default=1, help="processes to spawn (ignored under torchrun)")
    g.add_argument("--dp", type=int, default=0, help="data-parallel replicas (0 = processes / (tp x pp))")
    g.add_argument("--tp", type=int, default=1, help="tensor-parallel shards per layer")
    g.add_argument("--pp", type=int, default=1, help="pipeline stages")
    g.add_argument("--micro-batches", type=int, default=0, help="pipeline micro-batches per step (0 = pp)")
    # None when not given: without --pp > 1 there is no pipeline to schedule, and a schedule given is refused
    g.add_argument("--pipeline-schedule", choices=("1f1b", "gpipe"), help="pipeline schedule (--pp > 1; default: 1f1b)")
    add_dataclass_flags(p.add_argument_group("model"), ModelConfig, skip=("vocab_size",))
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig)


def _config(args: argparse.Namespace):
    import dataclasses

    from llmlab.models.config import ModelConfig
    from llmlab.pipeline import RunConfig, preset
    from llmlab.train.config import TrainConfig

    base = preset(args.preset) if args.preset else RunConfig()
    model, train = dataclass_overrides(args, ModelConfig), dataclass_overrides(args, TrainConfig)
    cfg = base.replace(
        name=args.name, corpus=args.corpus, tokenizer=args.tokenizer or base.tokenizer,
        teacher=base.teacher if args.teacher is None else args.teacher,
        vocab_size=base.vocab_size if args.vocab_size is None else args.vocab_size,
        model=dataclasses.replace(base.model, **model),
        train=dataclasses.replace(base.train, **train),
    )
    refuse_unapplied(cfg.model, model)  # a flag the run would not use (--moe-top-k without experts) is refused
    refuse_unapplied(cfg.train, train)
    return cfg


def layout_for(world: int, dp: int, tp: int, pp: int):
    """The dp x tp x pp layout of `world` processes (dp = 0: whatever tp and pp leave)."""
    from llmlab.core.errors import InputError
    from llmlab.dist.planner import Layout

    if tp < 1 or pp < 1 or dp < 0:
        raise InputError(f"--tp and --pp must be >= 1 and --dp >= 0, got dp {dp}, tp {tp}, pp {pp}")
    if dp == 0:
        if world % (tp * pp):
            raise InputError(f"{world} processes cannot hold tp {tp} x pp {pp}")
        dp = world // (tp * pp)
    if dp * tp * pp != world:
        raise InputError(f"dp {dp} x tp {tp} x pp {pp} = {dp * tp * pp}, but there are {world} processes")
    return Layout(dp, tp, pp)


def train_rank(rank: int, world: int, cfg_dict: dict, out: str, fresh: bool, dp: int, tp: int, pp: int,
               micro_batches: int = 0, schedule: str = "1f1b"):
    """One process of a distributed run (spawned, or under torchrun); rank 0 returns the figures."""
    import logging
    import os

    import torch.distributed as dist

    from llmlab.dist.launch import device_for
    from llmlab.dist.mesh import build_mesh
    from llmlab.dist.rules import check_layout_settings
    from llmlab.pipeline import RunConfig, run_pretraining

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a spawned process starts unconfigured
    if rank != 0:
        logging.getLogger().setLevel(logging.WARNING)
    cfg, layout = RunConfig.from_dict(cfg_dict), layout_for(world, dp, tp, pp)
    check_layout_settings(cfg.model, cfg.train, layout, micro_batches, schedule)  # under torchrun: before the corpus
    device = device_for(int(os.environ.get("LOCAL_RANK", rank)), dist.get_backend())  # its own GPU under NCCL
    mesh = build_mesh(layout, device.type)
    return run_pretraining(cfg, out, fresh=fresh, mesh=mesh, micro_batches=micro_batches, schedule=schedule)


def run(args: argparse.Namespace) -> int:
    import os

    from llmlab.core.errors import InputError
    from llmlab.pipeline import run_pretraining

    cfg = _config(args)
    if args.pipeline_schedule is not None and args.pp == 1:
        raise InputError("--pipeline-schedule orders the micro-batches of pipeline stages: it needs --pp > 1")
    par = (args.dp, args.tp, args.pp, args.micro_batches, args.pipeline_schedule or "1f1b")
    if args.nproc < 1:
        raise InputError(f"--nproc must be >= 1, got {args.nproc}")
    if args.micro_batches < 0 or (args.micro_batches and args.pp == 1):
        raise InputError(f"--micro-batches splits each step over pipeline stages: it needs --pp > 1 and must be "
                         f">= 0, got {args.micro_batches} with --pp {args.pp}")
    torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if cfg.teacher and (torchrun or args.nproc > 1):
        raise InputError("--teacher distils in one process: the distributed trainer (--nproc, torchrun) does not "
                         "carry a teacher")
    if torchrun:  # this process is one rank
        from llmlab.dist.launch import init_from_env

        rank, world = init_from_env()
        f = train_rank(rank, world, cfg.to_dict(), args.out, args.fresh, *par)
        if f is None:
            return 0
    elif args.nproc > 1:
        from llmlab.dist.launch import spawn
        from llmlab.dist.rules import check_layout_settings

        # refuse a bad layout, or one the model or batch cannot take, before spawning anything
        check_layout_settings(cfg.model, cfg.train, layout_for(args.nproc, args.dp, args.tp, args.pp), *par[3:])
        f = spawn(train_rank, args.nproc, cfg.to_dict(), args.out, args.fresh, *par, timeout=7 * 24 * 3600)[0]
    else:
        if (args.dp, args.tp, args.pp) not in ((0, 1, 1), (1, 1, 1)):
            raise InputError("--dp/--tp/--pp need several processes: pass --nproc N or launch under torchrun")
        f = run_pretraining(cfg, args.out, fresh=args.fresh)
    print(f"val loss {f['val_loss']:.4f}  val ppl {f['val_ppl']:.2f}  ({f['steps']} steps, "
          f"{f['train_seconds']:.0f} s, {f['layout']})  report: {args.out}/{cfg.name}/report.md")
    return 0
