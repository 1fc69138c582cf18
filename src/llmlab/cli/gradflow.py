"""llmlab gradflow: per-layer gradient norms at initialisation across activations, residuals and norms."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "gradflow", "experiment: gradient norm per layer at init for sigmoid/tanh/ReLU/GELU, "
                    "with and without residuals and LayerNorm", run)
    p.add_argument("--depth", type=int, default=16, help="layers in the stack")
    p.add_argument("--width", type=int, default=64, help="features per layer")
    p.add_argument("--activations", default="sigmoid,tanh,relu,gelu", help="comma-separated activations")
    p.add_argument("--seed", type=int, default=0, help="seeds weights and data; in [0, 2**32)")
    p.add_argument("-o", "--out", default="runs/gradflow",
                   help="output directory: new, empty or an earlier gradflow output (refused otherwise)")


def run(args: argparse.Namespace) -> int:
    from llmlab.pipeline.gradflow import run_gradflow, setting_name

    activations = tuple(a.strip() for a in args.activations.split(",") if a.strip())
    rows = run_gradflow(args.out, activations, depth=args.depth, width=args.width, seed=args.seed)
    print(f"{'activation':<10} {'setting':<17} {'layer 1':>10} {'last':>10} {'first/last':>11}")
    for r in rows:
        print(f"{r['activation']:<10} {setting_name(r):<17} {r['first']:>10.3e} {r['last']:>10.3e} "
              f"{r['first_over_last']:>11.3e}")
    print(f"plot: {args.out}/gradflow.png  table: {args.out}/gradflow.md")
    return 0
