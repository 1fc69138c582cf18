"""llmlab plan: choose a data x tensor x pipeline layout for a model on a cluster, before training."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides


def register(sub) -> None:
    from llmlab.dist.planner import Cluster, Workload

    p = add_command(sub, "plan", "rank hybrid-parallel layouts (dp x tp x pp) by memory, communication and "
                                 "step time", run)
    p.add_argument("model", nargs="?", default="gpt3-175b",
                   help="a model preset (gpt3-175b, llama-7b, llama-13b, llama2-70b, ...) or a model directory")
    p.add_argument("--layout", default=None, help="describe one layout in detail, as DPxTPxPP (e.g. 6x8x64)")
    p.add_argument("--top", type=int, default=10, help="layouts to list")
    p.add_argument("--gpt3", action="store_true",
                   help="the source document's worked case: GPT-3 175B on 64 stages x 6 hosts x 8 GPUs")
    add_dataclass_flags(p.add_argument_group("cluster"), Cluster)
    add_dataclass_flags(p.add_argument_group("workload"), Workload)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from llmlab.cli.memory import _load_config, check_context
    from llmlab.dist.planner import Cluster, Layout, Workload, describe, format_plan, gpt3_example, plan, propose

    if args.top < 1:
        from llmlab.core.errors import InputError

        raise InputError(f"--top must be >= 1, got {args.top}")
    if args.gpt3:
        if args.model != "gpt3-175b":
            from llmlab.core.errors import InputError

            raise InputError(f"--gpt3 plans the source document's GPT-3 175B case; it takes no model, got "
                             f"{args.model!r} (drop --gpt3 to plan it)")
        model, cluster, work, layout = gpt3_example()
        name = "gpt3-175b"
    else:
        model, cluster, work, layout = _load_config(args.model), Cluster(), Workload(), None
        name = args.model
    cluster = dataclasses.replace(cluster, **dataclass_overrides(args, Cluster))
    work = dataclasses.replace(work, **dataclass_overrides(args, Workload))
    if args.layout:
        layout = Layout.parse(args.layout)
    check_context(model, work.seq_len)
    print(f"{name} on {cluster.n_devices} devices x {cluster.memory_gib:g} GiB ({cluster.devices_per_node} per node); "
          f"batch {work.global_batch} x {work.seq_len} tokens, micro-batch {work.micro_batch}, {work.precision}, "
          f"{work.optimizer}, ZeRO-{work.zero_stage}, checkpointing {'on' if work.grad_checkpoint else 'off'}")
    plans = propose(model, cluster, work)
    print(f"\n{sum(p.feasible for p in plans)} of {len(plans)} layouts fit; the fastest {args.top}:")
    for p in plans[: args.top]:
        print("  " + format_plan(p))
    if layout is not None:
        chosen = plan(model, layout, cluster, work)
        rank = next((i + 1 for i, p in enumerate(plans) if p.layout == layout), None)
        print()
        print("\n".join(describe(chosen)))
        if rank:
            print(f"  rank {rank} of {len(plans)} by estimated step time")
    return 0
