"""llmlab rl: improve a chat model by reinforcement on arithmetic answers (GRPO, DAPO, VAPO, PPO, or
online DPO on comparisons of its own fresh answers); resumes if the run exists."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, add_run_flags, run_config

# TrainConfig fields the RL loop does not use: no flags for them (RLConfig refuses the run-time ones changed)
UNUSED_TRAIN_FLAGS = ("batch_size", "grad_accum", "seq_len", "precision", "grad_checkpoint", "compile", "eval_every",
                      "eval_batches")


def register(sub) -> None:
    from llmlab.rl.config import RL_TRAIN, RLConfig
    from llmlab.train.config import PRETRAIN_ONLY, TrainConfig

    p = add_command(sub, "rl", "improve a chat model (from llmlab sft) by reinforcement: it answers arithmetic "
                    "questions, exact answers earn reward 1, or a reward model scores them (--reward-model); GRPO, "
                    "DAPO, VAPO, PPO, or online DPO (each prompt's best and worst of --group-size fresh answers "
                    "compared by the DPO loss); resumes if the run exists; prints test exact match before and after",
                    run)
    p.add_argument("--algo", default="grpo", help="grpo | dapo | vapo | ppo | online-dpo: sets the defaults of the "
                   "settings whose default lists each algorithm's (explicit flags win)")
    p.add_argument("--model", required=True, help="chat model directory (llmlab sft writes runs/NAME/model)")
    add_run_flags(p, "rl")
    add_dataclass_flags(p.add_argument_group("reinforcement learning"), RLConfig, skip=("name", "model", "algo"),
                        shown=_shown_defaults(RLConfig))
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig, skip=UNUSED_TRAIN_FLAGS + PRETRAIN_ONLY,
                        shown=RL_TRAIN)


def _shown_defaults(cls):
    """The defaults --help shows: a field left to the algorithm lists each one's value (algo_defaults)."""
    import dataclasses
    import types

    from llmlab.rl.config import ALGOS, UWO_LAMBDA, algo_defaults

    shown = {}
    for f in dataclasses.fields(cls):
        if f.name == "uwo_lambda":
            shown[f.name] = f"uwo {UWO_LAMBDA}"
        elif f.default is None:
            per = {a: algo_defaults(a).get(f.name) for a in ALGOS}
            per.update({"value_lr": {"vapo": "2 x lr", "ppo": "2 x lr"},
                        "lam_policy": {"vapo": "length-adaptive (lam_alpha)"}}.get(f.name, {}))
            shown[f.name] = ", ".join(f"{a} {v}" for a, v in per.items() if v is not None)
        else:
            shown[f.name] = f.default
    return types.SimpleNamespace(**shown)


def _config(args: argparse.Namespace):
    from llmlab.rl.config import RL_TRAIN, RLConfig

    return run_config(args, RLConfig, RL_TRAIN, name=args.name, model=args.model, algo=args.algo)


def run(args: argparse.Namespace) -> int:
    from llmlab.pipeline.rl import logged_steps, run_rl

    cfg = _config(args)
    f = run_rl(cfg, args.out, fresh=args.fresh)
    b, a = f["before"], f["after"]
    if "test_accuracy" in b:
        print(f"test exact match   before {b['test_accuracy']:.4g}  after {a['test_accuracy']:.4g}")
    reward = f["curves"].get("reward", {})
    if reward:
        first, last = list(reward.values())[0], list(reward.values())[-1]
        print(f"mean reward        {first:.4g} -> {last:.4g} (first and last tenth of the {logged_steps(f, cfg)})")
    print(f"{cfg.algo}: {f['steps']} steps, {f['train_seconds']:.0f} s  report: {args.out}/{cfg.name}/report.md")
    return 0
