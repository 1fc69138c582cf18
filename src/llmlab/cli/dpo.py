"""llmlab dpo: direct preference optimisation of a chat model on comparisons (RLHF without a reward model),
and KTO on the same data unpaired (--loss kto)."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, add_run_flags, run_config
from llmlab.cli.rm import UNUSED_TRAIN_FLAGS


def register(sub) -> None:
    from llmlab.rl.dpo_config import DPO_TRAIN, DPOConfig
    from llmlab.train.config import PRETRAIN_ONLY, TrainConfig

    p = add_command(sub, "dpo", "train a chat model (llmlab sft) by direct preference optimisation on comparisons: "
                    "a JSONL file of {prompt, chosen, rejected}, or its own arithmetic answers, each wrong one against "
                    "the right one (the comparisons llmlab rm train makes); --loss kto trains by KTO on them unpaired, "
                    "or on a file of {prompt, completion, label}; prints held-out preference accuracy and "
                    "greedy exact match before and after (resumes if the run exists)", _dpo)
    p.add_argument("--model", required=True, help="chat model directory (llmlab sft writes runs/NAME/model)")
    add_run_flags(p, "dpo")
    add_dataclass_flags(p.add_argument_group("DPO"), DPOConfig, skip=("name", "model"))
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig, skip=UNUSED_TRAIN_FLAGS + PRETRAIN_ONLY,
                        shown=DPO_TRAIN)


def _dpo(args: argparse.Namespace) -> int:
    from llmlab.pipeline.dpo import run_dpo
    from llmlab.rl.dpo_config import DPO_TRAIN, DPOConfig

    cfg = run_config(args, DPOConfig, DPO_TRAIN, name=args.name, model=args.model)
    f = run_dpo(cfg, args.out, fresh=args.fresh)
    b, a = f["before"], f["after"]
    if "val_policy_prefers_chosen" in a:  # comparisons held out (not an unpaired KTO file)
        print(f"held-out comparisons ({f['dev_pairs']}): policy prefers the chosen reply  before "
              f"{b['val_policy_prefers_chosen']:.4f}  after {a['val_policy_prefers_chosen']:.4f}; implicit-reward "
              f"accuracy after {a['val_accuracy']:.4f}")
    if "val_kl" in a:
        print(f"held-out KTO examples ({f['dev_examples']}): loss  before {b['val_loss']:.4f}  after "
              f"{a['val_loss']:.4f}; KL estimate after {a['val_kl']:.4f}")
    if "test_accuracy" in a:
        print(f"greedy exact match on {a['problems']} distinct test questions  before {b['test_accuracy']:.4f}  "
              f"after {a['test_accuracy']:.4f}")
    print(f"{f['steps']} steps, {f['train_seconds']:.0f} s  report: {args.out}/{cfg.name}/report.md")
    return 0
