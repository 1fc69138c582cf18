"""llmlab speedrun: the whole pipeline on built-in data with a named preset."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_run_flags


def register(sub) -> None:
    p = add_command(sub, "speedrun", "corpus -> tokenizer -> model -> training -> eval -> samples -> report", run)
    p.add_argument("--preset", default="small", choices=("tiny", "small"), help="run size")
    add_run_flags(p, None, "run name (default: the preset name)")


def run(args: argparse.Namespace) -> int:
    from llmlab.pipeline import preset, run_pretraining

    cfg = preset(args.preset)
    if args.name:
        cfg = cfg.replace(name=args.name)
    f = run_pretraining(cfg, args.out, fresh=args.fresh)
    print(f"speedrun {args.preset}: val ppl {f['val_ppl']:.2f} (val loss {f['val_loss']:.4f}, unigram entropy "
          f"{f['unigram_entropy']:.4f}); {f['steps']} steps in {f['train_seconds']:.0f} s, whole run "
          f"{f['wall_seconds']:.0f} s")
    print(f"report: {args.out}/{cfg.name}/report.md")
    return 0
