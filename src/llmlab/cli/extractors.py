"""llmlab extractors: RNN vs CNN vs Transformer language models on the same data and budget."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "extractors", "experiment: LSTM, causal CNN and Transformer LMs, same data and steps", run)
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"), help="data, width and steps of a preset")
    p.add_argument("--steps", type=int, default=None, help="steps per model (default: the preset's)")
    p.add_argument("-o", "--out", default="runs/extractors",
                   help="output directory: new, empty or an earlier extractors output (refused otherwise)")


def run(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.pipeline import preset
    from llmlab.pipeline.extractors import compare_extractors

    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    for r in compare_extractors(preset(args.preset), args.out, args.steps):
        print(f"{r['model']:<12} {r['parameters']:>10,} params  val loss {r['val_loss']:.4f}  "
              f"{r['tokens_per_s']:>10,.0f} train tok/s")
    print(f"plot: {args.out}/extractors.png  report: {args.out}/report.md")
    return 0
