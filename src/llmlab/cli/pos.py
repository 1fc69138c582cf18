"""``llmlab pos``: train, tag and evaluate part-of-speech taggers (PKU tagset)."""

from __future__ import annotations

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

_TRAINED = ("perceptron", "neural", "hybrid")
_PERCEPTRON, _NEURAL = ("perceptron", "hybrid"), ("neural", "hybrid")
# training flag -> (its argparse dest, the algos it applies to); given for another algo, it is refused
ALGO_FLAGS = {"--epochs": ("epochs", _TRAINED), "--seed": ("seed", _TRAINED), "--order": ("order", _PERCEPTRON),
              "--beam": ("beam", _PERCEPTRON), "--ensemble": ("ensemble", _PERCEPTRON),
              "--no-clusters": ("no_clusters", _PERCEPTRON), "--threads": ("train_threads", _NEURAL),
              "--layers": ("layers", _NEURAL), "--no-pretrain": ("no_pretrain", _NEURAL), "--lam": ("lam", ("hybrid",)),
              "--perceptron-model": ("perceptron_model", ("hybrid",)), "--fresh": ("fresh", _NEURAL),
              "--init-model": ("init_model", _TRAINED)}


def register(sub) -> None:
    from llmlab.cli.common import add_fresh_flag

    g = add_group(sub, "pos", "part-of-speech tagging: train, tag, eval")

    p = add_command(g, "train", "train a POS tagger and save it to a directory", _train)
    p.add_argument("--algo", choices=("hmm", "perceptron", "neural", "hybrid"),
                   help="tagging method (default: perceptron, or with --init-model the model's; hybrid: perceptron + "
                   "neural, the most accurate, about 14 minutes on pfr1998)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--train", dest="train_file", help="tagged training file (word/TAG tokens); default: pfr1998")
    p.add_argument("--split", choices=("train", "dev", "test"), help="pfr1998 split to train on (default: train)")
    add_init_model(p, "tagger", "its word clusters, feature settings and network shape stay (a BiLSTM's "
                   "vocabularies take the new words and characters); --epochs, --seed, --beam, --ensemble, --threads "
                   "and --lam may change")
    p.add_argument("--epochs", type=int, help="perceptron, neural, hybrid's neural part: passes over the data")
    p.add_argument("--seed", type=int, help="perceptron: shuffling seed; neural, hybrid's neural part: weights, "
                   "dropout and batch order")
    p.add_argument("--order", type=int, choices=(1, 2),
                   help="perceptron (and hybrid's): tag history (2 = tag trigrams)")
    p.add_argument("--beam", type=int, help="perceptron (and hybrid's), order 2: tags considered per word")
    p.add_argument("--ensemble", type=int,
                   help="perceptron (and hybrid's): members trained in different orders, summed (default 3)")
    p.add_argument("--no-clusters", action="store_true", default=None,
                   help="perceptron (and hybrid's): no distributional word-cluster features (faster training)")
    # its own dest: argparse would set the global `llmlab --threads N` back to None when this one is not given
    p.add_argument("--threads", dest="train_threads", type=int,
                   help="neural, hybrid: torch CPU threads (default: llmlab --threads, else 1; 0 = torch's default)")
    p.add_argument("--layers", type=int, help="neural, hybrid: stacked BiLSTM layers (default 1)")
    p.add_argument("--no-pretrain", action="store_true", default=None,
                   help="neural, hybrid: random word and character embeddings, not training-text PPMI-SVD vectors")
    p.add_argument("--lam", type=finite_float, help="hybrid: weight of the neural log-probabilities (default 0.2)")
    p.add_argument("--perceptron-model", help="hybrid: use this saved perceptron tagger instead of training one")
    add_fresh_flag(p)

    p = add_command(g, "tag", "tag stdin lines: word/TAG tokens separated by one space", _tag)
    p.add_argument("--model", help="tagger directory from `llmlab pos train`; default: a perceptron on the pfr1998 "
                   f"train split, trained on first use (about a minute and a half) and cached ({WHERE})")
    p.add_argument("--seg-model", help="segment raw lines with this segmenter first; "
                   "without it, input lines are words separated by spaces")
    p.add_argument("--input", help="read this file instead of stdin")
    p.add_argument("--t2s", action="store_true", help="traditional Chinese input: the models read it with its "
                   "traditional characters in simplified form (llmlab.text.script); the words keep their own")
    p.add_argument("--user-dict", help="user dictionary (jieba's `word [count] [tag]` lines): a word with a tag "
                   "always gets it; with --seg-model every word is also added to the segmenter's lexicon (or "
                   "taken out, with a count of 0)")
    p.add_argument("--force-words", action="store_true", help="with --seg-model: always cut the --user-dict words "
                   "whole (`llmlab seg cut --force-words`)")
    add_jobs(p)

    p = add_command(g, "eval", "tag accuracy with gold segmentation (overall and on unknown words)", _eval)
    p.add_argument("--model", required=True, help="tagger directory")
    p.add_argument("--gold", help="tagged gold file (word/TAG); default: the pfr1998 split")
    p.add_argument("--split", choices=("dev", "test"), help="pfr1998 split to evaluate on (default: test)")
    p.add_argument("--train-words", help="tagged training file (word/TAG, as `pos train --train` reads); its words "
                   "are the known ones (default: the pfr1998 train split's)")
    p.add_argument("--seg-model", help="also segment the raw gold text with this segmenter, tag it, and score "
                   "word+tag pairs (joint F1: a word counts when its span and its tag are both right)")


def _train(args) -> int:
    from llmlab.cli.common import init_model_algo, resumable_training
    from llmlab.core.errors import InputError
    from llmlab.data.corpora import pfr1998
    from llmlab.text.base import check_model_folder
    from llmlab.text.default import default_tagger
    from llmlab.text.metrics import read_tagged
    from llmlab.text.pos import MODEL_FILE, load_tagger, tagger_class

    check_model_folder(args.output, MODEL_FILE)  # before training: a bad -o costs nothing
    init = init_model_algo(args, load_tagger, default_tagger, "tagger")
    refuse_other_algo_flags(args, ALGO_FLAGS)
    if init is not None and args.perceptron_model:
        raise InputError("--perceptron-model does not apply with --init-model: a hybrid trains its own perceptron "
                         "further")
    split = split_unless_file(args.train_file, args.split, "train", "--train")
    data = read_tagged(args.train_file, "training file") if args.train_file else pfr1998(split)
    config = _train_config(args, init.config if init is not None else None)
    with resumable_training(args.output, args.algo in _NEURAL, bool(args.fresh)):
        if init is not None:
            tagger = type(init).train(data, config, init=init)
        else:
            tagger = tagger_class(args.algo).train(data, config)
        out = tagger.save(args.output)
    print(f"saved {args.algo} tagger to {out}")
    return 0


def _train_config(args, base=None):
    """The config of `args.algo` from the flags given (None: the tagger's defaults); for a tagger trained
    further, `base`'s (its config) with those flags changed."""
    from llmlab.core.errors import InputError
    from llmlab.text.pos_hybrid import HybridTaggerConfig
    from llmlab.text.pos_neural import NeuralTaggerConfig
    from llmlab.text.pos_perceptron import PerceptronTaggerConfig

    def given(*names):
        return {k: getattr(args, k) for k in names if getattr(args, k) is not None}

    perceptron = {**given("order", "beam", "ensemble"), **({"clusters": ()} if args.no_clusters else {})}
    threads = args.train_threads if args.train_threads is not None else args.threads  # pos train's, else llmlab's
    neural = {**given("epochs", "seed", "layers"), **({"threads": threads} if threads is not None else {}),
              **({"pretrain": False} if args.no_pretrain else {})}
    if args.algo in ("perceptron", "hybrid") and args.beam is not None:
        trained = (base.perceptron if args.algo == "hybrid" else base) if base else PerceptronTaggerConfig()
        if (args.order or trained.order) == 1:  # the order given, else the model's trained further, else 2
            raise InputError("--beam applies to the second-order tagger (--order 2), whose Viterbi keeps each "
                             "word's best tags; at order 1 it reads them all: leave it out")
    if args.algo == "perceptron":
        return config_with(PerceptronTaggerConfig, base, {**given("epochs", "seed"), **perceptron})
    if args.algo == "neural":
        return config_with(NeuralTaggerConfig, base, neural)
    if args.algo == "hybrid":
        given_perceptron = [f for f in ("--order", "--beam", "--ensemble", "--no-clusters")
                            if getattr(args, ALGO_FLAGS[f][0]) not in (None, False)]
        if args.perceptron_model and given_perceptron:  # also a value equal to the default: the config cannot tell
            raise InputError(f"{', '.join(given_perceptron)} train the hybrid's perceptron; they do not apply with "
                             "--perceptron-model, which is used as it was trained")
        return config_with(HybridTaggerConfig, base, {
            **given("lam", "perceptron_model"),
            "perceptron": config_with(PerceptronTaggerConfig, base.perceptron if base else None, perceptron),
            "neural": config_with(NeuralTaggerConfig, base.neural if base else None, neural)})
    return None


_tagger = None  # this process's (tagger, segmenter or None, t2s) for `_tag_batch`, set by `_start_tagger`


def _start_tagger(model: str | None, seg_model: str | None, user_dict: str | None, t2s: bool, force: bool) -> None:
    from llmlab.cli.seg import load_with_user_dict
    from llmlab.core.errors import InputError
    from llmlab.text.default import default_tagger
    from llmlab.text.lexicon import read_user_entries
    from llmlab.text.pos import load_tagger
    from llmlab.text.script import to_simplified

    global _tagger
    tagger = load_tagger(model) if model else default_tagger()
    user = read_user_entries(user_dict) if user_dict else None  # read once, for both models
    user_words = None if user is None else [(w, c) for w, c, _ in user]
    if force and not seg_model:
        raise InputError("--force-words keeps words whole when --seg-model cuts the lines: give one")
    if user is not None and not seg_model and all(t is None for _, _, t in user):  # counts reach a segmenter only
        raise InputError(f"--user-dict {user_dict!r} gives no tags, and its words and counts reach a segmenter: "
                         "give --seg-model to cut the lines, or tags (word [count] tag) for the tagger")
    seg = load_with_user_dict(seg_model, user_words, t2s, force) if seg_model else None
    if user:  # the tagged words, as the models read them
        tagger.add_user_tags([(to_simplified(w) if t2s else w, t) for w, _, t in user if t is not None])
    _tagger = (tagger, seg, t2s)


def _tag_batch(chunk: list[str]) -> str:
    """The output of a batch of lines (the perceptron segmenter and the neural taggers score a batch at once)."""
    from llmlab.text.base import same_cuts
    from llmlab.text.pos import cut_and_tag_lines
    from llmlab.text.script import to_simplified

    tagger, seg, t2s = _tagger
    read = [to_simplified(line) for line in chunk] if t2s else chunk  # same lengths: same cuts
    if seg is not None:
        tagged = []
        for line, pairs in zip(chunk, cut_and_tag_lines(seg, tagger, read)):
            words = same_cuts(line, [w for w, _ in pairs])  # the line's own characters
            tagged.append([(w, t) for w, (_, t) in zip(words, pairs) if not w.isspace()])
    else:
        words = [line.split() for line in chunk]
        tags = tagger.tag_sentences([line.split() for line in read])
        tagged = [list(zip(ws, ts)) for ws, ts in zip(words, tags)]
    return "".join(" ".join(f"{w}/{t}" for w, t in pairs) + "\n" for pairs in tagged)


def _tag(args) -> int:
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.core.parallel import ordered_map
    from llmlab.text.metrics import check_untagged

    check_not_stdout(args.input)

    def checked(batches):
        for k, chunk in enumerate(batches):
            if k == 0:  # tagged text given again would come out as word/TAG/TAG
                check_untagged([line.split() for line in chunk], "the input")
            yield chunk

    global _tagger
    setup = (args.model, args.seg_model, args.user_dict, args.t2s, bool(args.force_words))
    try:
        for text in ordered_map(_tag_batch, checked(line_batches(args.input)), args.jobs, _start_tagger, setup):
            sys.stdout.write(text)
            sys.stdout.flush()  # each batch as it is done (from a terminal: each line)
    finally:
        _tagger = None  # the models go with the command
    return 0


def _eval(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.data.corpora import pfr1998
    from llmlab.text.metrics import read_tagged, tag_accuracy
    from llmlab.text.pos import load_tagger

    split = split_unless_file(args.gold, args.split, "test", "--gold")
    tagger = load_tagger(args.model)
    gold = read_tagged(args.gold, "gold file") if args.gold else pfr1998(split)
    if not any(gold):
        raise InputError(f"gold file {args.gold!r} holds no words: nothing to score")
    known = read_tagged(args.train_words, "training words file") if args.train_words else pfr1998("train")
    pred = tagger.tag_sentences([[w for w, _ in s] for s in gold])
    acc = tag_accuracy(gold, pred, {w for s in known for w, _ in s})
    unknown = "n/a" if acc["unknown_accuracy"] is None else f"{acc['unknown_accuracy']:.4f}"
    print(f"accuracy={acc['accuracy']:.4f} unknown-word accuracy={unknown} ({acc['n']} words, {acc['n_unknown']} "
          f"unknown to {repr(args.train_words) if args.train_words else 'pfr1998 train'})")
    if args.seg_model:
        from llmlab.text.base import load_segmenter
        from llmlab.text.conllu import joined_text
        from llmlab.text.metrics import seg_tag_scores
        from llmlab.text.pos import cut_and_tag_lines

        # the gold words' text: with a space where joining would run two ASCII words (Windows 95) into one,
        # which no segmenter may cut apart again; the space the segmenter gives back is no word to score
        cut = cut_and_tag_lines(load_segmenter(args.seg_model), tagger, [joined_text([w for w, _ in s]) for s in gold])
        joint = seg_tag_scores(gold, [[(w, t) for w, t in s if not w.isspace()] for s in cut])
        print(f"after segmentation with {args.seg_model}: word+tag P={joint['precision']:.4f} "
              f"R={joint['recall']:.4f} F1={joint['f1']:.4f}")
    return 0
