"""llmlab extrapolation: perplexity beyond the trained context for each position scheme and RoPE scaling."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, finite_float


def register(sub) -> None:
    p = add_command(sub, "extrapolation", "experiment: train at context 128, score at 128..1024 for learned, "
                    "sinusoidal, RoPE (+PI, NTK, dynamic NTK, YaRN) and ALiBi positions", run)
    p.add_argument("--steps", type=int, default=300, help="training steps per position scheme")
    p.add_argument("-o", "--out", default="runs/extrapolation",
                   help="output directory: new, empty or an earlier extrapolation output (refused otherwise)")
    p.add_argument("--corpus", default="pfr1998", help="built-in corpus or a .txt/.jsonl path")
    p.add_argument("--train-len", type=int, default=128, help="training context (tokens)")
    p.add_argument("--lengths", default="128,256,512,1024", help="comma-separated evaluation window lengths")
    p.add_argument("--eval-tokens", type=int, default=16384, help="dev tokens scored at each length (0 = all)")
    p.add_argument("--dim", type=int, default=64, help="model width")
    p.add_argument("--n-layer", type=int, default=2, help="transformer blocks")
    p.add_argument("--n-head", type=int, default=4, help="attention heads")
    p.add_argument("--batch-size", type=int, default=16, help="training sequences per step")
    p.add_argument("--lr", type=finite_float, default=3e-3, help="peak learning rate")
    p.add_argument("--vocab-size", type=int, default=1500, help="character vocabulary cap (0 = all characters)")
    p.add_argument("--positions", default="learned,sinusoidal,rope,alibi", help="position schemes to train")
    p.add_argument("--scalings", default="linear,ntk,dynamic,yarn", help="RoPE scalings applied at evaluation")
    p.add_argument("--seed", type=int, default=1337, help="seeds initialisation and batches")


def _ints(text: str, flag: str) -> tuple[int, ...]:
    from llmlab.core.errors import InputError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"{flag} takes comma-separated integers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from llmlab.core.errors import InputError
    from llmlab.pipeline.extrapolation import ExtrapolationConfig, default_run, run_extrapolation

    if args.steps <= 0:
        raise InputError(f"--steps must be > 0, got {args.steps}")
    base = default_run()
    model = dataclasses.replace(base.model, dim=args.dim, n_layer=args.n_layer, n_head=args.n_head,
                                n_kv_head=args.n_head, max_seq_len=args.train_len)
    train = dataclasses.replace(base.train, steps=args.steps, seq_len=args.train_len, batch_size=args.batch_size,
                                lr=args.lr, min_lr=min(base.train.min_lr, args.lr), seed=args.seed,
                                warmup_steps=min(base.train.warmup_steps, args.steps))
    cfg = ExtrapolationConfig(
        run=base.replace(corpus=args.corpus, vocab_size=args.vocab_size, model=model, train=train),
        lengths=_ints(args.lengths, "--lengths"), eval_tokens=args.eval_tokens,
        positions=tuple(x.strip() for x in args.positions.split(",") if x.strip()),
        rope_scalings=tuple(x.strip() for x in args.scalings.split(",") if x.strip()),
    )
    results = run_extrapolation(cfg, args.out)
    print(" " * 18 + "".join(f"{f'ppl@{L}':>12}" for L in cfg.lengths))
    for r in results:
        cells = "".join(f"{'n/a' if r['ppl'][L] is None else format(r['ppl'][L], '.2f'):>12}" for L in cfg.lengths)
        print(f"{r['variant']:<18}{cells}")
    print(f"plot: {args.out}/extrapolation.png  table: {args.out}/extrapolation.md")
    return 0
