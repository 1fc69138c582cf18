"""llmlab quantize: INT8/INT4 weight quantization of a saved model (optionally with int8 activations: W8A8),
and the FP8 format tables."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "quantize", help="quantize a saved model's projections to int8/int4 (or: fp8-table)",
        description="`llmlab quantize --model DIR -o QDIR` writes a weight-only quantized copy of a model and "
                    "prints the weight bytes, the per-layer error and, with --eval-corpus, the perplexity before "
                    "and after. `llmlab quantize fp8-table [--fmt e5m2] [--all]` prints an FP8 format's numbers.")
    p.set_defaults(func=run)
    p.add_argument("action", nargs="?", choices=("fp8-table",), help="print an FP8 format instead of quantizing")
    p.add_argument("--model", help="model directory to quantize")
    p.add_argument("-o", "--output", metavar="QDIR", help="directory for the quantized model")
    p.add_argument("--bits", type=int, choices=(8, 4), default=None, help="bits per weight (default: 8)")
    p.add_argument("--group-size", type=int, default=None, metavar="N",
                   help="one scale per N input columns (must divide every layer's input size); default per channel")
    p.add_argument("--asymmetric", action="store_true", help="min/max range with an integer zero point")
    p.add_argument("--activations", choices=("float", "int8"), default=None,
                   help="int8: also quantize each token's activations at run time and multiply int8 codes into "
                        "int32 (W8A8; needs 8-bit symmetric per-channel weights); default float")
    p.add_argument("--targets", nargs="+", default=None, metavar="NAME",
                   help="Linear module-name suffixes to quantize (default: every attention and feed-forward "
                        "projection; add lm_head for the output head)")
    p.add_argument("--eval-corpus", default=None, metavar="CORPUS",
                   help="built-in corpus name or text file: print perplexity before and after")
    p.add_argument("--split", choices=("train", "dev", "test"), default=None,
                   help="split of a built-in --eval-corpus (default: dev)")
    p.add_argument("--eval-tokens", type=int, default=None,
                   help="with --eval-corpus: score at most this many tokens (default: 4000)")
    p.add_argument("--fmt", choices=("e4m3", "e5m2"), default=None, help="fp8-table: the format (default: e4m3)")
    p.add_argument("--all", action="store_true", help="fp8-table: also print all 256 codes and their values")


# each action's own flags (argparse dest -> flag), for refusing them in the other: defaults of None (or False,
# store_true) so a flag given at its default is seen too
QUANTIZING = {"model": "--model", "output": "-o", "bits": "--bits", "group_size": "--group-size",
              "asymmetric": "--asymmetric", "activations": "--activations", "targets": "--targets",
              "eval_corpus": "--eval-corpus", "split": "--split", "eval_tokens": "--eval-tokens"}
FP8_TABLE = {"fmt": "--fmt", "all": "--all"}
SCORING = {"split": "--split", "eval_tokens": "--eval-tokens"}  # they choose what --eval-corpus scores


def refuse_given(args: argparse.Namespace, flags: dict[str, str], rule: str) -> None:
    """InputError for the first of `flags` given (its dest neither None nor False): it would do nothing here."""
    from llmlab.core.errors import InputError

    for dest, flag in flags.items():
        if getattr(args, dest) is not None and getattr(args, dest) is not False:  # 0 is given, False is not
            raise InputError(f"{flag} applies {rule}: leave it out")


def run(args: argparse.Namespace) -> int:
    if args.action == "fp8-table":
        refuse_given(args, QUANTIZING, "to quantizing a model, not to fp8-table (which prints a format)")
        return fp8_table(args.fmt or "e4m3", args.all)
    refuse_given(args, FP8_TABLE, "to fp8-table (llmlab quantize fp8-table), not to quantizing a model")
    if not args.eval_corpus:
        refuse_given(args, SCORING, "with --eval-corpus, the text scored before and after")
    return quantize(args)


def fp8_table(fmt: str, every: bool) -> int:
    from llmlab.adapt.fp8 import format_info, fp8_values

    for k, v in format_info(fmt).items():
        print(f"{k:15s} {v}")
    if every:
        for code, v in enumerate(fp8_values(fmt).tolist()):
            print(f"0x{code:02X} {code:08b} {v!r}")
    return 0


def _perplexity(model, tok, corpus: str, split: str, max_tokens: int) -> tuple[float, int]:
    from llmlab.core.errors import InputError
    from llmlab.data import corpus_text
    from llmlab.pipeline.pretrain import encode_stream
    from llmlab.train.trainer import evaluate_loss

    tokens = encode_stream(tok, [t for t in corpus_text(corpus, split) if t])[: max_tokens + 1]
    if tokens.numel() < 2:
        raise InputError(f"{corpus!r} holds too little text to score")
    loss, n = evaluate_loss(model, tokens, model.config.max_seq_len, batch_size=8)
    return math.exp(loss), n


def quantize(args: argparse.Namespace) -> int:
    from llmlab.adapt.quantize import DEFAULT_TARGETS, QuantConfig, quantize_model, save_quantized, weight_bytes
    from llmlab.cli.common import split_unless_file
    from llmlab.core.errors import InputError
    from llmlab.core.io import read_json
    from llmlab.data.corpora import CORPORA
    from llmlab.models import count_parameters, load_model
    from llmlab.models.card import ModelCard

    if not args.model or not args.output:
        raise InputError("quantize needs --model DIR and -o QDIR (or the fp8-table action)")
    if Path(args.output).resolve() == Path(args.model).resolve():
        raise InputError(f"-o {args.output!r} is the --model folder: its float weights would be replaced by the "
                         "quantized ones, which cannot give them back; write to a new folder")
    eval_tokens = 4000 if args.eval_tokens is None else args.eval_tokens
    if eval_tokens < 1:
        raise InputError(f"--eval-tokens must be >= 1, got {eval_tokens}")
    cfg = QuantConfig(args.bits or 8, args.group_size, not args.asymmetric, tuple(args.targets or DEFAULT_TARGETS),
                      args.activations or "float")
    model, tok = load_model(args.model)
    if args.eval_corpus and tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json to encode --eval-corpus with")
    ppl = None
    if args.eval_corpus:
        file = None if args.eval_corpus in CORPORA else args.eval_corpus
        split = split_unless_file(file, args.split, "dev", "--eval-corpus")
        ppl = _perplexity(model, tok, args.eval_corpus, split, eval_tokens)
    before = weight_bytes(model)
    report = quantize_model(model, cfg)
    after = weight_bytes(model)
    kind = f"int{cfg.bits} {'symmetric' if cfg.symmetric else 'asymmetric'}, " + (
        f"groups of {cfg.group_size}" if cfg.group_size else "per channel")
    acts = ("activations quantized to int8 per token at run time (W8A8)." if cfg.activations == "int8"
            else "activations stay float.")
    card = ModelCard(name=f"{args.model} ({kind})", parameters=count_parameters(model.config),
                     limitations=f"Weights quantized ({kind}) from {args.model}; {acts}")
    chat = Path(args.model) / "tokenizer_config.json"  # a chat model's template (llmlab sft) goes along
    save_quantized(model, args.output, tok, card, read_json(chat, "tokenizer config") if chat.is_file() else None)
    print(report.summary())
    size = f"{before / after:.2f}x smaller" if after <= before else f"{after / before:.2f}x larger"  # a tied head
    print(f"model weights: {before} -> {after} bytes ({size}), written to {args.output}")
    if ppl is not None:
        after_ppl, n = _perplexity(model, tok, args.eval_corpus, split, eval_tokens)
        print(f"perplexity on {n} tokens of {args.eval_corpus} ({split if file is None else 'file'}): "
              f"{ppl[0]:.3f} -> {after_ppl:.3f} ({after_ppl / ppl[0] - 1:+.2%})")
    return 0
