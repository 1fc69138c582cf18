"""llmlab scaling: decoders of growing size on arithmetic, scored by exact match and per token (topic 4)."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "scaling", "experiment: arithmetic ability across model sizes, by exact match and "
                                    "per-token accuracy (why abilities look emergent)", run)
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"), help="training settings of a preset")
    p.add_argument("--steps", type=int, default=None, help="steps per model (default: the preset's)")
    p.add_argument("--sizes", default=None,
                   help="comma-separated DIMxLAYERS, e.g. 16x1,32x1,64x2 (default: 16x1,32x1,64x2,96x2,128x3)")
    p.add_argument("--eval-problems", type=int, default=200, help="test problems each model answers")
    p.add_argument("--ops", default="+", help="operators of the problems, from + - *")
    p.add_argument("--max-digits", type=int, default=3, help="operands have 2 to this many digits")
    p.add_argument("--train-problems", type=int, default=100_000, help="training problems (fewer are memorised)")
    p.add_argument("-o", "--out", default="runs/scaling",
                   help="output directory: new, empty or an earlier scaling output (refused otherwise)")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"16x1,32x2" -> [(16, 1), (32, 2)]."""
    from llmlab.core.errors import InputError

    try:
        return [(int(d), int(n)) for d, n in (part.lower().split("x") for part in text.split(","))]
    except ValueError:
        raise InputError(f"--sizes must look like 16x1,32x2 (DIMxLAYERS, comma-separated), got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.pipeline import preset
    from llmlab.pipeline.scaling import SIZES, run_scaling

    if args.steps is not None and args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    sizes = parse_sizes(args.sizes) if args.sizes else SIZES
    for r in run_scaling(preset(args.preset), args.out, sizes, args.steps, args.eval_problems, args.ops,
                         args.max_digits, args.train_problems):
        print(f"{r['model']:<10} {r['parameters']:>9,} params  exact match {r['exact_match']:.3f}  "
              f"per-token accuracy {r['token_accuracy']:.3f}  answer NLL {r['answer_nll']:.3f}")
    print(f"plot: {args.out}/scaling.png  report: {args.out}/report.md")
    return 0
