"""llmlab pretrain: train a causal decoder on a corpus, with every model and training flag."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides


def register(sub) -> None:
    from llmlab.models.config import ModelConfig
    from llmlab.train.config import TrainConfig

    p = add_command(sub, "pretrain", "train a LLaMA-style causal LM on a corpus (resumes if the run exists)", run)
    p.add_argument("--corpus", default="pfr1998", help="built-in corpus (pfr1998, sentiment, arithmetic) or a file")
    p.add_argument("--name", default="pretrain", help="run name: output goes to OUT/NAME")
    p.add_argument("--out", default="runs", help="directory holding run directories")
    p.add_argument("--preset", default=None, help="start from a speedrun preset's config (tiny, small)")
    p.add_argument("--tokenizer", default=None, choices=("char", "bpe", "unigram", "wordpiece", "whitespace"),
                   help="tokenizer trained on the corpus (default: the preset's, else char)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="vocabulary size (0 = every character; char only)")
    p.add_argument("--fresh", action="store_true", help="delete an existing run of this name first")
    add_dataclass_flags(p.add_argument_group("model"), ModelConfig, skip=("vocab_size",))
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from llmlab.models.config import ModelConfig
    from llmlab.pipeline import RunConfig, preset, run_pretraining
    from llmlab.train.config import TrainConfig

    base = preset(args.preset) if args.preset else RunConfig()
    cfg = base.replace(
        name=args.name, corpus=args.corpus, tokenizer=args.tokenizer or base.tokenizer,
        vocab_size=base.vocab_size if args.vocab_size is None else args.vocab_size,
        model=dataclasses.replace(base.model, **dataclass_overrides(args, ModelConfig)),
        train=dataclasses.replace(base.train, **dataclass_overrides(args, TrainConfig)),
    )
    f = run_pretraining(cfg, args.out, fresh=args.fresh)
    print(f"val loss {f['val_loss']:.4f}  val ppl {f['val_ppl']:.2f}  ({f['steps']} steps, "
          f"{f['train_seconds']:.0f} s)  report: {args.out}/{cfg.name}/report.md")
    return 0
