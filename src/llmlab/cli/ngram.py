"""``llmlab ngram``: train, score (perplexity), sample, and the two-errors experiment for n-gram models."""

from __future__ import annotations

from llmlab.cli.common import (
    add_command,
    add_dataclass_flags,
    add_group,
    dataclass_overrides,
    finite_float,
    refuse_unapplied,
    split_unless_file,
)
from llmlab.core.io import json_text

SPLITS = ("train", "dev", "test")


def register(sub) -> None:
    from llmlab.classic.ngram import NgramConfig

    g = add_group(sub, "ngram", "n-gram language models: train, ppl, sample, errors")

    p = add_command(g, "train", "count n-grams, smooth, save the model (and optionally an ARPA file)", _train)
    _corpus_flags(p, "train")
    p.add_argument("-o", "--output", required=True, help="model directory: new, empty or an earlier n-gram model")
    p.add_argument("--arpa", help="also write the model as an ARPA file here (KenLM / SRILM can read it)")
    p.add_argument("--eval-split", choices=SPLITS, help="also print the perplexity on this split (built-in corpus)")
    add_dataclass_flags(p, NgramConfig, skip=("discounts", "unit"))

    p = add_command(g, "ppl", "perplexity, bits per token and OOV count of a model on a corpus", _ppl)
    p.add_argument("--model", required=True, help="model directory from `llmlab ngram train`, or an .arpa file")
    _corpus_flags(p, "dev")

    p = add_command(g, "sample", "generate sentences token by token", _sample)
    p.add_argument("--model", required=True, help="model directory or .arpa file")
    p.add_argument("-n", "--num", type=int, default=5, help="sentences to generate")
    p.add_argument("--seed", type=int, default=0, help="random seed of the first sentence (then seed+1, ...)")
    p.add_argument("--max-tokens", type=int, default=50, help="stop a sentence after this many tokens")
    p.add_argument("--prefix", default="", help="start every sentence with these tokens")
    p.add_argument("--temperature", type=finite_float, default=1.0,
                   help="sharpen (<1) or flatten (>1) the distribution")

    p = add_command(g, "errors", "topic 18: how recall and precision errors move perplexity (table + PNG)", _errors)
    p.add_argument("--model", required=True, help="model directory or .arpa file")
    _corpus_flags(p, "dev")
    p.add_argument("-o", "--output", required=True, help="PNG plot to write")
    p.add_argument("--seed", type=int, default=0, help="which tokens get the recall errors")


def _corpus_flags(p, split: str) -> None:
    p.add_argument("--corpus", default="pfr1998", help="built-in corpus name or a text file (one sentence a line)")
    # None when not given: a split beside a file is refused (`_source`), not ignored
    p.add_argument("--split", choices=SPLITS, help=f"split of a built-in corpus (default: {split})")
    p.add_argument("--unit", choices=("word", "char"), help="tokens: words or characters (default: the model's; "
                   "a model folder is scored only in its own, an ARPA file from another tool may not say)")


def _source(args, split: str | None, default: str, flag: str = "--split") -> tuple[str, str]:
    """(split, name to print) of the text --corpus names: a built-in corpus's `split` (`default` if not given),
    or a file, read whole, beside which a split (`flag`) is refused (`split_unless_file`)."""
    from llmlab.data.corpora import CORPORA

    file = None if args.corpus in CORPORA else args.corpus
    split = split_unless_file(file, split, default, "--corpus", flag)
    return split, args.corpus if file else f"{args.corpus}/{split}"


def _corpus_file(args) -> dict:
    """{"--corpus": the file} when --corpus names a file, not a built-in corpus: an output must not name it."""
    from llmlab.data.corpora import CORPORA

    return {} if args.corpus in CORPORA else {"--corpus": args.corpus}


def _load(path: str):
    from pathlib import Path

    from llmlab.classic.arpa import read_arpa
    from llmlab.classic.ngram import NgramModel

    return read_arpa(path) if Path(path).suffix == ".arpa" else NgramModel.load(path)


def _sentences(args, split: str, unit: str, arpa: bool = False):
    """The sentences of the corpus in `unit` tokens, the unit the model counts, which --unit may name again, or
    change for an ARPA file (`arpa`: the file may not record it); a model folder knows its unit."""
    from llmlab.classic.ngram import corpus_sentences
    from llmlab.core.errors import InputError

    if args.unit and args.unit != unit and not arpa:
        raise InputError(f"--unit {args.unit}: the model counts {unit}s, so it scores only {unit}s")
    return corpus_sentences(args.corpus, split, args.unit or unit)


def _train(args) -> int:
    from llmlab.classic.arpa import write_arpa
    from llmlab.classic.ngram import NgramConfig, NgramModel, check_model_folder
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_input, check_output, within

    given = dataclass_overrides(args, NgramConfig)
    config = NgramConfig(**given)
    refuse_unapplied(config, given)  # --k beside another smoothing: saved in the config and never used
    split, _ = _source(args, args.split, "train")
    eval_split, name = _source(args, args.eval_split, "dev", "--eval-split")
    check_model_folder(args.output)  # before training, not after
    if args.arpa:
        check_output(args.arpa, "ARPA file")
        if within(args.arpa, args.output):  # -o's files are the model's
            raise InputError(f"--arpa {args.arpa!r} is inside the model folder {args.output!r}, which holds the "
                             "model's own files (--arpa config.json replaced its config): write it elsewhere")
        check_not_input(args.arpa, _corpus_file(args), "--arpa")
    model = NgramModel.train(_sentences(args, split, config.unit), config)
    model.save(args.output)
    sizes = {k: len(model.tables.keys[k]) for k in range(1, model.order + 1)}
    print(f"saved {model.order}-gram {config.smoothing} model to {args.output}: vocabulary {len(model.vocab)}, "
          f"n-grams per order {sizes}")
    if args.arpa:
        write_arpa(model, args.arpa)
        print(f"wrote ARPA file {args.arpa}")
    if args.eval_split:
        _print_eval(model.evaluate(_sentences(args, eval_split, config.unit)), name)
    return 0


def _print_eval(ev: dict, name: str) -> None:
    zero = f", {ev['n_zero']} with probability 0 (MLE: perplexity infinite)" if ev["n_zero"] else ""
    print(f"{name}: perplexity {ev['perplexity']:.2f}, {ev['bits_per_token']:.3f} bits/token, "
          f"{ev['bits_per_char']:.3f} bits/char, "
          f"{ev['n_tokens']} tokens, {ev['n_oov']} OOV{zero}")


def _ppl(args) -> int:
    split, name = _source(args, args.split, "dev")
    model = _load(args.model)
    _print_eval(model.evaluate(_sentences(args, split, model.config.unit, model.config.smoothing == "arpa")), name)
    return 0


def _sample(args) -> int:
    from llmlab.classic.ngram import split_units

    model = _load(args.model)
    prefix = split_units(args.prefix, model.config.unit)
    sep = " " if model.config.unit == "word" else ""
    for i in range(args.num):
        tokens = prefix + model.sample(args.seed + i, args.max_tokens, prefix, args.temperature)
        print(sep.join(tokens))
    return 0


def _errors(args) -> int:
    import numpy as np

    from llmlab.classic.two_errors import plot_two_errors, two_errors_table
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_input, check_output

    split, name = _source(args, args.split, "dev")
    check_output(args.output, "plot")
    check_not_input(args.output, {**_corpus_file(args), "--model": args.model}, "-o")
    model = _load(args.model)
    lp, _ = model.token_logprobs(_sentences(args, split, model.config.unit, model.config.smoothing == "arpa"))
    if not len(lp):
        raise InputError(f"{name} holds no tokens to score")
    if not np.isfinite(lp).all():
        raise InputError(f"the model gives {int((~np.isfinite(lp)).sum())} of {name}'s tokens probability 0 "
                         f"({model.config.smoothing}): the experiment perturbs finite probabilities; use a smoothed "
                         "model")
    table = two_errors_table(lp, seed=args.seed)
    title = f"{model.order}-gram {model.config.smoothing} on {name}"
    plot_two_errors(table, args.output, title=title)
    print(json_text(table, indent=1))
    print(f"wrote {args.output}")
    return 0
