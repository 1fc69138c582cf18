"""``llmlab seg``: train, cut, eval, report and k-best for Chinese word segmenters (keywords, new words
and idf tables: `llmlab.cli.seg_words`)."""

from __future__ import annotations

import argparse
import sys

from llmlab.cli.common import (
    add_command,
    add_group,
    add_init_model,
    add_jobs,
    config_with,
    finite_float,
    refuse_other_algo_flags,
    split_unless_file,
)
from llmlab.core.cache import WHERE

ALGOS = ("fmm", "bmm", "bimm", "unigram", "bigram", "hmm", "perceptron", "neural", "hybrid")
DICT_ALGOS = ("fmm", "bmm", "bimm", "unigram", "bigram", "perceptron", "neural", "hybrid")
_TRAINED, _NEURAL = ("perceptron", "neural", "hybrid"), ("neural", "hybrid")
# training flag -> (its argparse dest, the algos it applies to); given for another algo, it is refused
ALGO_FLAGS = {"--epochs": ("epochs", _TRAINED), "--folds": ("folds", _TRAINED), "--seed": ("seed", _TRAINED),
              "--no-av-lexicon": ("av_lexicon", _TRAINED),
              "--min-count": ("min_count", DICT_ALGOS[:6]), "--user-dict": ("user_dict", DICT_ALGOS),
              "--feature-dict": ("feature_dict", ("perceptron",)), "--init-model": ("init_model", _TRAINED),
              "--dict-only": ("dict_only", ("fmm", "bmm", "bimm", "unigram")),
              "--threads": ("train_threads", _NEURAL), "--layers": ("layers", _NEURAL),
              "--no-pretrain": ("no_pretrain", _NEURAL), "--lam": ("lam", ("hybrid",)),
              "--perceptron-model": ("perceptron_model", ("hybrid",)), "--fresh": ("fresh", _NEURAL)}


def register(sub) -> None:
    from llmlab.cli.common import add_fresh_flag

    g = add_group(sub, "seg", "Chinese word segmentation: train, cut, eval, report; keywords and new words")

    p = add_command(g, "train", "train a segmenter and save it to a directory", _train)
    p.add_argument("--algo", choices=ALGOS,
                   help="segmentation method (default: perceptron, or with --init-model the model's; neural: a "
                   "BiLSTM; hybrid: perceptron + neural, the most accurate, about 20 minutes on pfr1998)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--train", dest="train_file", help="segmented training file (words separated by spaces); "
                   "default: the pfr1998 corpus")
    p.add_argument("--split", choices=("train", "dev", "test"), help="pfr1998 split to train on (default: train)")
    p.add_argument("--user-dict", help=f"user dictionary (`word [count] [tag]` lines; a line starting with # is a "
                   f"comment, a count of 0 takes the word out), for {', '.join(DICT_ALGOS)}")
    p.add_argument("--dict-only", action="store_true", default=None,
                   help="fmm, bmm, bimm, unigram: the lexicon is --user-dict alone, no training text (with jieba's "
                   "dict.txt, unigram cuts as jieba without its HMM)")
    p.add_argument("--feature-dict", help="perceptron: an external word list (jieba-style `word [count]` lines, "
                   "e.g. jieba's dict.txt) whose matches become features; saved with the model")
    add_init_model(p, "segmenter", "its lexicon takes the new words (a BiLSTM's vocabularies the new characters "
                   "and bigrams), its feature settings, network shape, --feature-dict and forced words stay; --epochs, "
                   "--seed, --folds, --threads and --lam may change (pkuseg's init_model)")
    p.add_argument("--epochs", type=int, help="perceptron, neural, hybrid's neural part: passes over the data")
    p.add_argument("--folds", type=int, help="perceptron, neural (hybrid: both): jackknife folds for lexicon "
                   "features (1 = off)")
    p.add_argument("--min-count", type=int, help="dictionary methods (perceptron: its lexicon features): minimum "
                   "training count of a lexicon word (with --dict-only: its count in --user-dict)")
    p.add_argument("--seed", type=int, help="perceptron: shuffling seed; neural, hybrid's neural part: weights, "
                   "dropout and batch order")
    p.add_argument("--no-av-lexicon", dest="av_lexicon", action="store_false", default=None,
                   help="perceptron, neural (hybrid: both): no features from accessor-variety pseudo-words of the "
                   "raw training text")
    # its own dest: argparse would set the global `llmlab --threads N` back to None when this one is not given
    p.add_argument("--threads", dest="train_threads", type=int,
                   help="neural, hybrid: torch CPU threads (default: llmlab --threads, else 1; 0 = torch's default)")
    p.add_argument("--layers", type=int, help="neural, hybrid: stacked BiLSTM layers (default 1)")
    p.add_argument("--no-pretrain", action="store_true", default=None,
                   help="neural, hybrid: random character and bigram embeddings, not training-text PPMI-SVD vectors")
    p.add_argument("--lam", type=finite_float,
                   help="hybrid: weight of the neural log-probabilities (default 0.07)")
    p.add_argument("--perceptron-model", help="hybrid: use this saved perceptron segmenter instead of training one")
    add_force_words(p, "saved with the model")
    add_fresh_flag(p)

    p = add_command(g, "cut", "segment stdin lines to stdout (words separated by one space)", _cut)
    p.add_argument("--model", help="model directory from `llmlab seg train`; default: a perceptron on the pfr1998 "
                   f"train split, trained on first use (about 20 seconds) and cached ({WHERE})")
    p.add_argument("--user-dict", help="user dictionary added to a dictionary-aware model (`word [count] [tag]` "
                   "lines; a line starting with # is a comment, a count of 0 takes the word out)")
    add_force_words(p)
    p.add_argument("--input", help="read this file instead of stdin")
    p.add_argument("--mode", choices=("default", "search", "full"), default="default",
                   help="default: the cut; search: each word of 3+ characters after the lexicon words of 2 and 3 "
                   "characters inside it (jieba's cut_for_search); full: every lexicon word in the line (jieba's "
                   "cut_all). Search and full words overlap: terms for an index, not a cut")
    p.add_argument("--t2s", action="store_true", help="traditional Chinese input: the model reads each line with "
                   "its traditional characters in simplified form (llmlab.text.script) and the words keep the "
                   "line's own characters")
    add_jobs(p)

    p = add_command(g, "eval", "SIGHAN-style precision, recall, F1 and OOV recall", _eval)
    p.add_argument("gold", help="gold segmented file")
    p.add_argument("pred", help="predicted segmented file (same lines)")
    p.add_argument("--train-words", help="segmented training file; its words define OOV")

    p = add_command(g, "report", "compare segmenters on the pfr1998 test split (F1, OOV recall, chars/s, cases)",
                    _report)
    p.add_argument("--models", nargs="*", default=[], help="extra saved model directories to include")
    p.add_argument("--algos", nargs="*", default=["fmm", "bmm", "bimm", "unigram", "bigram", "hmm"],
                   choices=ALGOS, help="methods to train on the train split and compare")
    p.add_argument("--split", default="test", choices=("dev", "test"), help="evaluation split")
    p.add_argument("--cases", type=int, default=10, help="ambiguity / OOV cases to show")
    p.add_argument("-o", "--output", help="also write the Markdown report here")

    p = add_command(g, "kbest", "the k best cuts of each stdin line (unigram or bigram lattice model)", _kbest)
    p.add_argument("--model", required=True, help="a unigram or bigram model directory")
    p.add_argument("-k", type=int, default=5, help="number of paths")
    p.add_argument("--by", choices=("prob", "words"), default="prob",
                   help="rank by probability, or by fewest words (N-shortest paths)")
    p.add_argument("--user-dict", help="user dictionary added to the model's lexicon (`word [count] [tag]` lines; "
                   "a count of 0 takes the word out)")
    add_force_words(p)

    from llmlab.cli import seg_words  # here: it imports this module's helpers

    seg_words.register(g)


def add_force_words(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument("--force-words", action="store_true", default=None,
                   help="always cut the --user-dict words whole (forward maximum matching before the model, as "
                   "pkuseg does), with any segmenter, the HMM included; without it they only gain weight in a "
                   f"model's lexicon{'; ' + more if more else ''}")


def _config_for(algo: str, args: argparse.Namespace, base=None):
    """The config of `algo` from the flags given in `args`; for a model trained further (perceptron,
    neural, hybrid), `base`'s (its config) with those flags changed."""
    from llmlab.core.errors import InputError
    from llmlab.text.hmm import HmmConfig
    from llmlab.text.lattice import LatticeConfig
    from llmlab.text.matching import MatchConfig
    from llmlab.text.perceptron import PerceptronConfig
    from llmlab.text.seg_hybrid import HybridSegmenterConfig
    from llmlab.text.seg_neural import NeuralSegmenterConfig

    given = {k: v for k, v in vars(args).items() if v is not None}
    if "train_threads" in given or "threads" in given:  # `seg train --threads N`, else `llmlab --threads N`
        given["threads"] = given.pop("train_threads", given.get("threads"))
    if algo in ("fmm", "bmm", "bimm"):
        direction = {"fmm": "forward", "bmm": "backward", "bimm": "bidirectional"}[algo]
        return MatchConfig(direction=direction, **{k: given[k] for k in ("min_count",) if k in given})
    if algo in ("unigram", "bigram"):
        return LatticeConfig(**{k: given[k] for k in ("min_count",) if k in given})
    if algo == "hmm":
        return HmmConfig()
    shared = {k: given[k] for k in ("folds", "av_lexicon") if k in given}
    if algo == "perceptron":
        fields = {**{k: given[k] for k in ("epochs", "seed") if k in given}, **shared,
                  **({"lexicon_min_count": given["min_count"]} if "min_count" in given else {})}
        return config_with(PerceptronConfig, base, fields)
    neural = config_with(NeuralSegmenterConfig, base.neural if algo == "hybrid" and base else base,
                         {**{k: given[k] for k in ("epochs", "seed", "threads", "layers") if k in given}, **shared,
                          **({"pretrain": False} if given.get("no_pretrain") else {})})
    if algo == "neural":
        return neural
    if given.get("perceptron_model") and shared:  # also a value equal to the default: the config cannot tell
        raise InputError("--folds and --no-av-lexicon also train the hybrid's perceptron; with --perceptron-model, "
                         "which is used as it was trained, give neither")
    return config_with(HybridSegmenterConfig, base,
                       {**{k: given[k] for k in ("lam", "perceptron_model") if k in given}, "neural": neural,
                        "perceptron": config_with(PerceptronConfig, base.perceptron if base else None, shared)})


def training_sentences(args) -> list[list[str]]:
    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.metrics import read_segmented

    split = split_unless_file(args.train_file, args.split, "train", "--train")
    if args.train_file:
        return [s for s in read_segmented(args.train_file, "training file") if s]
    return pfr1998_words(split)


def _train(args) -> int:
    from llmlab.cli.common import init_model_algo, resumable_training
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_readable
    from llmlab.text.base import MODEL_FILE, check_model_folder, load_segmenter, segmenter_class
    from llmlab.text.default import default_segmenter
    from llmlab.text.lexicon import read_user_dict, split_deletions

    check_model_folder(args.output, MODEL_FILE)  # before training: a bad -o costs nothing
    for path in (args.user_dict, args.feature_dict):
        if path:
            check_readable(path, "dictionary")
    init = init_model_algo(args, load_segmenter, default_segmenter, "segmenter")

    if args.force_words and not args.user_dict:
        raise InputError("--force-words keeps the --user-dict words whole: give one")
    forced_ok = {"--user-dict": ("user_dict", ALGOS)} if args.force_words else {}  # forced words need no lexicon
    refuse_other_algo_flags(args, {**ALGO_FLAGS, **forced_ok})
    if init is not None:
        for flag, value, why in (("--feature-dict", args.feature_dict, "the model keeps its own feature dictionary"),
                                 ("--perceptron-model", args.perceptron_model,
                                  "a hybrid trains its own perceptron further")):
            if value:
                raise InputError(f"{flag} does not apply with --init-model: {why}")
    config = None if args.dict_only else _config_for(args.algo, args, init.config if init is not None else None)
    with resumable_training(args.output, args.algo in _NEURAL, bool(args.fresh)):
        if args.dict_only:
            seg = _from_dictionary(args)
        elif init is not None:
            seg = type(init).train(training_sentences(args), config, init=init)
        elif args.feature_dict:
            from llmlab.text.perceptron import read_dictionary

            seg = segmenter_class(args.algo).train(training_sentences(args), config, read_dictionary(args.feature_dict))
        else:
            seg = segmenter_class(args.algo).train(training_sentences(args), config)
        if args.user_dict and args.dict_only and args.force_words:  # its words are the lexicon already, those
            # --min-count kept: forcing the others would undo it
            seg.force_words(w for w, _ in split_deletions(read_user_dict(args.user_dict))[0] if w in seg.lexicon)
        elif args.user_dict and not args.dict_only:
            seg.add_user_dict(args.user_dict, bool(args.force_words))
        out = seg.save(args.output)
    print(f"saved {args.algo} segmenter to {out}")
    return 0


def _from_dictionary(args):
    """`seg train --dict-only`: a dictionary segmenter whose lexicon is the user dictionary alone."""
    from llmlab.core.errors import InputError
    from llmlab.text.base import segmenter_class

    if not args.user_dict:
        raise InputError("--dict-only builds the lexicon from --user-dict alone: give one")
    for flag, value in (("--train", args.train_file), ("--split", args.split)):
        if value is not None:
            raise InputError(f"{flag} does not apply with --dict-only: no training text is read")
    return segmenter_class(args.algo).from_dictionary(args.user_dict, _config_for(args.algo, args))


def load_with_user_dict(model: str | None, user_dict: list[tuple[str, int | None]] | None, t2s: bool = False,
                        force: bool = False):
    """The segmenter in `model` (None: the default one), with the `user_dict` entries (`read_user_dict`)
    added (with `force`, kept whole: `Segmenter.add_user_dict`); with `t2s` in simplified form, as the
    model reads the text (`seg cut --t2s`, `pos tag --t2s`)."""
    from llmlab.core.errors import InputError
    from llmlab.text.base import load_segmenter
    from llmlab.text.default import default_segmenter
    from llmlab.text.script import to_simplified

    if force and user_dict is None:
        raise InputError("--force-words keeps the --user-dict words whole: give one")
    seg = load_segmenter(model) if model else default_segmenter()
    if user_dict is not None:
        if not force and getattr(seg, "lexicon", None) is None and any(c != 0 for _, c in user_dict):  # `word 0`:
            # a removal, which a forced word of the model takes
            raise InputError(f"--user-dict: the {seg.kind!r} segmenter{f' in {model!r}' if model else ''} has no "
                             "dictionary; with --force-words its words are kept whole all the same")
        seg.add_user_dict([(to_simplified(w), c) for w, c in user_dict] if t2s else user_dict, force)
    if t2s and "_forced" in seg.__dict__:  # the model's own forced words, read as the simplified text is
        seg.force_words([to_simplified(w) for w in seg.forced.words])
    return seg


_cutter = None  # this process's (segmenter, mode, t2s) for `_cut_batch`, set by `_start_cutter`


def _start_cutter(model: str | None, user_dict: str | None, t2s: bool, force: bool, mode: str) -> None:
    from llmlab.text.lexicon import read_user_dict

    global _cutter
    seg = load_with_user_dict(model, read_user_dict(user_dict) if user_dict else None, t2s, force)
    seg.tokenize_lines([], mode)  # a mode the model cannot give is refused before any input is read
    _cutter = (seg, mode, t2s)


def _cut_batch(lines: list[str]) -> str:
    """The output of a batch of lines (the perceptron scores a batch in one numpy pass)."""
    from llmlab.text.base import same_cuts
    from llmlab.text.script import to_simplified

    seg, mode, t2s = _cutter
    read = [to_simplified(line) for line in lines] if t2s else lines  # same lengths: same offsets
    if mode == "default":
        rows = [same_cuts(line, words) for line, words in zip(lines, seg.cut_lines(read))]
    else:
        rows = [[line[a:b] for _, a, b in spans] for line, spans in zip(lines, seg.tokenize_lines(read, mode))]
    return "".join(" ".join(words) + "\n" for words in rows)


def _cut(args) -> int:
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.core.parallel import ordered_map

    global _cutter
    check_not_stdout(args.input)
    setup = (args.model, args.user_dict, args.t2s, bool(args.force_words), args.mode)
    try:
        for text in ordered_map(_cut_batch, line_batches(args.input), args.jobs, _start_cutter, setup):
            sys.stdout.write(text)
            sys.stdout.flush()  # each batch as it is done (from a terminal: each line)
    finally:
        _cutter = None  # the models go with the command
    return 0


def _eval(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.text.metrics import read_segmented, seg_scores

    gold = read_segmented(args.gold, "gold file")
    if not any(gold):
        raise InputError(f"gold file {args.gold!r} holds no words: nothing to score")
    pred = read_segmented(args.pred, "prediction file")
    vocab = None
    if args.train_words:
        vocab = {w for s in read_segmented(args.train_words, "training words file") for w in s}
    try:
        s = seg_scores(gold, pred, vocab)
    except InputError as e:  # sentence N is line N of both files
        raise InputError(f"gold file {args.gold!r} against prediction file {args.pred!r}: "
                         f"{str(e).replace('sentence ', 'line ', 1)}") from None
    print(f"P={s.precision:.4f} R={s.recall:.4f} F1={s.f1:.4f}"
          + (f" OOV-R={_rate(s.oov_recall)} IV-R={_rate(s.iv_recall)}" if vocab is not None else "")
          + f" (gold {s.n_gold} words" + (f", {s.n_oov} OOV" if vocab is not None else "")
          + f", predicted {s.n_pred}, correct {s.n_correct})")
    return 0


def _rate(x: float | None) -> str:
    """A rate to 4 places, or n/a where it is undefined (no word to count)."""
    return "n/a" if x is None else f"{x:.4f}"


def _report(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import atomic_write_text, check_output, is_stdout
    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.base import load_segmenter, segmenter_class
    from llmlab.text.report import ambiguity_cases, evaluate_segmenter, format_report, oov_cases

    # before training: a bad flag, -o or model costs nothing
    if args.cases < 0:
        raise InputError(f"--cases must be >= 0, got {args.cases}")
    if not args.algos and not args.models:
        raise InputError("nothing to compare: give --algos, --models or both")
    if args.output:
        check_output(args.output, "report file")
    saved = {m: load_segmenter(m) for m in args.models}
    train, gold = pfr1998_words("train"), pfr1998_words(args.split)
    vocab = {w for s in train for w in s}
    segs = {a: segmenter_class(a).train(train, _config_for(a, argparse.Namespace())) for a in args.algos}
    segs.update((f"{s.kind}:{m}", s) for m, s in saved.items())
    results = [evaluate_segmenter(name, s, gold, vocab) for name, s in segs.items()]
    fmm = segmenter_class("fmm").train(train, _config_for("fmm", argparse.Namespace()))
    bmm = segmenter_class("bmm").train(train, _config_for("bmm", argparse.Namespace()))
    texts = ["".join(s) for s in gold]
    amb = ambiguity_cases(gold, [fmm.cut(t) for t in texts], [bmm.cut(t) for t in texts], results, args.cases)
    text = format_report(results, amb, oov_cases(gold, vocab, results, args.cases))
    if not is_stdout(args.output):  # -o /dev/stdout: once
        print(text)
    if args.output:
        atomic_write_text(args.output, text)
    return 0


def _kbest(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.text.lexicon import read_user_dict

    check_not_stdout(None)
    seg = load_with_user_dict(args.model, read_user_dict(args.user_dict) if args.user_dict else None,
                              force=bool(args.force_words))
    if not hasattr(seg, "k_best"):
        raise InputError(f"kbest needs a unigram or bigram model, {args.model!r} holds {seg.kind!r}")
    for lines in line_batches(None):
        for line in lines:
            for score, words in seg.k_best(line.strip(), args.k, by=args.by):
                print(f"{score:.3f}\t{' '.join(words)}")
            print()
        sys.stdout.flush()  # each batch as it is done (from a terminal: each line)
    return 0
