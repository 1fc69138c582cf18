"""``llmlab parse``: train, run and evaluate dependency parsers; write the generated treebank."""

from __future__ import annotations

import argparse
import sys

from llmlab.cli.common import add_command, add_group, refuse_other_algo_flags

ALGO_FLAGS = {"--decoder": ("decoder", ("graph",)), "--pseudo-projective": ("pseudo_projective", ("transition",))}


def register(sub) -> None:
    g = add_group(sub, "parse", "dependency parsing: train, parse, eval, treebank")

    p = add_command(g, "train", "train a dependency parser on a CoNLL-U treebank and save it to a directory", _train)
    p.add_argument("--algo", choices=("graph", "transition"), default="graph",
                   help="graph: arc-factored MST parser (McDonald 2005); transition: greedy arc-standard (Nivre)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--data", help="CoNLL-U training treebank; default: the generated treebank's train split "
                   "(`llmlab parse treebank`)")
    p.add_argument("--dev", help="CoNLL-U treebank to score after training (default with the built-in data: its dev "
                   "split; with --data: none)")
    p.add_argument("--size", type=int, help="built-in data: train on the first SIZE generated sentences "
                   "(default: all 4000)")
    p.add_argument("--epochs", type=int, help="perceptron passes over the data (default 10)")
    p.add_argument("--seed", type=int, help="shuffling seed (default 0)")
    p.add_argument("--decoder", choices=("eisner", "cle"),
                   help="graph: eisner (projective trees) or cle (Chu-Liu/Edmonds, any tree) (default eisner)")
    p.add_argument("--tag-column", choices=("auto", "upos", "xpos"),
                   help="the CoNLL-U column the tag features read (default auto: XPOS when every word has one)")
    p.add_argument("--pseudo-projective", action=argparse.BooleanOptionalAction, default=None,
                   help="transition: learn non-projective training trees made projective (arcs lifted, lifts "
                   "encoded in the labels as DEPREL↑HEADREL) and undo the lifts on the output, so parses can "
                   "have crossing arcs (Nivre & Nilsson 2005); --no-pseudo-projective skips those trees "
                   "(default: on)")

    p = add_command(g, "parse", "parse sentences and write CoNLL-U to stdout", _parse)
    p.add_argument("--model", required=True, help="parser directory from `llmlab parse train`")
    p.add_argument("--input", help="read this file instead of stdin")
    p.add_argument("--format", choices=("auto", "conllu", "tagged"), default="auto",
                   help="conllu: sentences in CoNLL-U (their tags read, any heads replaced); tagged: one sentence "
                   "a line of word/TAG tokens, as `llmlab pos tag` writes (an empty line has no words and gives no "
                   "sentence; each sentence's sent_id is its line number, its # text the words joined without "
                   "spaces, but for one between ASCII letters or digits); auto: CoNLL-U when the first "
                   "non-blank line holds a tab or starts with a comment (# not followed by /TAG). The output's "
                   "# text and SpaceAfter=No agree (a CoNLL-U sentence keeps its own # text)")

    p = add_command(g, "eval", "UAS, LAS, label, root and complete-match accuracy of PRED against GOLD", _eval)
    p.add_argument("gold", help="gold CoNLL-U file")
    p.add_argument("pred", help="predicted CoNLL-U file (the same words)")

    p = add_command(g, "treebank", "write a split of the generated Chinese treebank as CoNLL-U", _treebank)
    p.add_argument("-o", "--output", required=True, help="CoNLL-U file to write")
    p.add_argument("--split", choices=("train", "dev", "test"), default="train", help="which split")
    p.add_argument("--size", type=int, help="the first SIZE sentences of the split (default: 4000 train, 500 "
                   "dev, 500 test)")


def _train_config(args):
    from llmlab.text.dep_graph import GraphParserConfig
    from llmlab.text.dep_transition import TransitionParserConfig

    names = ("epochs", "seed", "tag_column", "decoder", "pseudo_projective")
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return (GraphParserConfig if args.algo == "graph" else TransitionParserConfig)(**given)


def _train(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.text.base import check_model_folder
    from llmlab.text.conllu import read_conllu
    from llmlab.text.dep_parser import MODEL_FILE, parser_class
    from llmlab.text.treebank import treebank_split

    check_model_folder(args.output, MODEL_FILE)  # before training: a bad -o costs nothing
    refuse_other_algo_flags(args, ALGO_FLAGS)
    if args.data and args.size is not None:
        raise InputError("--size picks how much of the built-in treebank to use; it does not apply with --data")
    if args.size is not None and args.size < 1:
        raise InputError(f"--size must be >= 1, got {args.size}")
    config = _train_config(args)
    data = read_conllu(args.data, "training treebank") if args.data else treebank_split("train", args.size)
    # read before training too: a bad --dev costs nothing
    dev = read_conllu(args.dev, "dev treebank") if args.dev else None if args.data else treebank_split("dev")
    parser = parser_class(args.algo).train(data, config)
    print(f"saved {args.algo} parser to {parser.save(args.output)} ({len(data)} training sentences)")
    if dev is not None:
        from llmlab.text.dep_eval import attachment_scores

        s = attachment_scores(dev, parser.parse_sentences(dev))
        print(f"dev: UAS={s['uas']:.4f} LAS={s['las']:.4f} ({s['sentences']} sentences)")
    return 0


def _read_input(args):
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_stdout, read_text
    from llmlab.text.conllu import parse_conllu

    check_not_stdout(args.input)
    text = read_text(args.input, "input file")  # standard input without --input
    what = f"input file {args.input!r}" if args.input else "standard input"
    fmt = args.format
    if fmt == "auto":
        first = next((line for line in text.split("\n") if line.strip()), "")
        word, sep, tag = first.split()[0].rpartition("/") if first.strip() else ("", "", "")
        # a comment line starts CoNLL-U; a tagged line may start with the word # (#/w)
        fmt = "conllu" if "\t" in first or (first.startswith("#") and not (sep and word and tag)) else "tagged"
    if fmt == "conllu":
        return parse_conllu(text, what), None
    rows = []
    for i, line in enumerate(text.split("\n"), 1):
        pairs = []
        for tok in line.split():
            word, sep, tag = tok.rpartition("/")
            if not sep or not word or not tag:
                raise InputError(f"{what} line {i}: token {tok!r} is not word/TAG (tag the words first, e.g. with "
                                 "`llmlab pos tag`)")
            pairs.append((word, tag))
        if pairs:
            rows.append((i, pairs))
    return None, rows


def _parse(args) -> int:
    from llmlab.text.conllu import format_conllu, from_words, joined_text, with_text
    from llmlab.text.dep_parser import load_parser

    parser = load_parser(args.model)
    sents, rows = _read_input(args)
    if sents is None:
        column = parser.config.tag_column
        sents = []
        for line, pairs in rows:
            s = from_words([w for w, _ in pairs], [t for _, t in pairs], column)
            s.comments.append(f"# sent_id = {line}")
            sents.append(with_text(s, joined_text(s.words)))  # the spaces between tagged words are separators
    else:
        sents = [with_text(s) for s in sents]
    sys.stdout.write(format_conllu(parser.parse_sentences(sents)))
    return 0


def _eval(args) -> int:
    from llmlab.text.conllu import read_conllu
    from llmlab.text.dep_eval import attachment_scores

    gold, pred = read_conllu(args.gold, "gold file"), read_conllu(args.pred, "predicted file")
    for name, punct in (("with punctuation", True), ("without punctuation", False)):
        s = attachment_scores(gold, pred, punct)
        print(f"{name}: UAS={s['uas']:.4f} LAS={s['las']:.4f} label={s['label_acc']:.4f} root={s['root_acc']:.4f} "
              f"complete={s['complete']:.4f} complete-labeled={s['complete_labeled']:.4f} ({s['words']} words, "
              f"{s['sentences']} sentences)")
    return 0


def _treebank(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_output, is_stdout
    from llmlab.text.conllu import write_conllu
    from llmlab.text.treebank import treebank_split

    check_output(args.output)
    if args.size is not None and args.size < 1:
        raise InputError(f"--size must be >= 1, got {args.size}")
    sents = treebank_split(args.split, args.size)
    write_conllu(args.output, sents)
    print(f"wrote {len(sents)} generated {args.split} sentences to {args.output}",
          file=sys.stderr if is_stdout(args.output) else sys.stdout)  # not inside the output
    return 0
