"""llmlab optimizers: train one small LM per optimizer and plot the curves with their state memory."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command

NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


def register(sub) -> None:
    p = add_command(sub, "optimizers", "experiment: the same LM trained with each optimizer, curves plotted", run)
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"), help="model and data of the speedrun preset")
    p.add_argument("--steps", type=int, default=None, help="steps per optimizer (default: the preset's)")
    p.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES), help="optimizers to run")
    p.add_argument("-o", "--out", default="runs/optimizers",
                   help="output directory: new, empty or an earlier optimizers output; "
                   "each optimizer's run is OUT/NAME, resumed if it exists (one of another config is refused)")
    p.add_argument("--fresh", action="store_true", help="delete earlier runs of these optimizers under --out first")


def run(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.pipeline import preset
    from llmlab.pipeline.optimizers import compare_optimizers

    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    results = compare_optimizers(preset(args.preset), args.out, tuple(args.only), args.steps, args.fresh)
    for r in sorted(results, key=lambda r: r["val_loss"]):
        print(f"{r['optimizer']:<9} lr {r['lr']:<6g} val loss {r['val_loss']:.4f}  state {r['state_bytes']:>12,} B")
    print(f"plot: {args.out}/optimizers.png  report: {args.out}/report.md")
    return 0
