"""``llmlab pos``: train, tag and evaluate part-of-speech taggers (PKU tagset)."""

from __future__ import annotations

import sys

from llmlab.cli.common import add_command, add_group


def register(sub) -> None:
    g = add_group(sub, "pos", "part-of-speech tagging: train, tag, eval")

    p = add_command(g, "train", "train a POS tagger and save it to a directory", _train)
    p.add_argument("--algo", choices=("hmm", "perceptron"), default="perceptron", help="tagging method")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--train", dest="train_file", help="tagged training file (word/TAG tokens); default: pfr1998")
    p.add_argument("--split", default="train", choices=("train", "dev", "test"), help="pfr1998 split to train on")
    p.add_argument("--epochs", type=int, help="perceptron: passes over the data")
    p.add_argument("--seed", type=int, help="perceptron: shuffling seed")
    p.add_argument("--order", type=int, choices=(1, 2), help="perceptron: tag history (2 = tag trigrams)")
    p.add_argument("--beam", type=int, help="perceptron, order 2: tags considered per word")
    p.add_argument("--ensemble", type=int, help="perceptron: members trained in different orders, summed (default 3)")
    p.add_argument("--no-clusters", action="store_true",
                   help="perceptron: no distributional word-cluster features (faster training, as models before them)")

    p = add_command(g, "tag", "tag stdin lines: word/TAG tokens separated by one space", _tag)
    p.add_argument("--model", required=True, help="tagger directory from `llmlab pos train`")
    p.add_argument("--seg-model", help="segment raw lines with this segmenter first; "
                   "without it, input lines are words separated by spaces")
    p.add_argument("--input", help="read this file instead of stdin")

    p = add_command(g, "eval", "tag accuracy with gold segmentation (overall and on unknown words)", _eval)
    p.add_argument("--model", required=True, help="tagger directory")
    p.add_argument("--gold", help="tagged gold file (word/TAG); default: the pfr1998 split")
    p.add_argument("--split", default="test", choices=("dev", "test"), help="pfr1998 split to evaluate on")
    p.add_argument("--seg-model", help="also segment the raw gold text with this segmenter, tag it, and score "
                   "word+tag pairs (joint F1: a word counts when its span and its tag are both right)")


def _train(args) -> int:
    from llmlab.data.corpora import pfr1998
    from llmlab.text.metrics import read_tagged
    from llmlab.text.pos import tagger_class
    from llmlab.text.pos_perceptron import PerceptronTaggerConfig

    data = read_tagged(args.train_file, "training file") if args.train_file else pfr1998(args.split)
    config = None
    if args.algo == "perceptron":
        fields = {k: getattr(args, k) for k in ("epochs", "seed", "order", "beam", "ensemble")
                  if getattr(args, k) is not None}
        config = PerceptronTaggerConfig(**fields, **({"clusters": ()} if args.no_clusters else {}))
    tagger = tagger_class(args.algo).train(data, config)
    print(f"saved {args.algo} tagger to {tagger.save(args.output)}")
    return 0


def _tag(args) -> int:
    from llmlab.core.io import read_lines
    from llmlab.text.base import load_segmenter
    from llmlab.text.pos import cut_and_tag_lines, load_tagger

    tagger = load_tagger(args.model)
    seg = load_segmenter(args.seg_model) if args.seg_model else None
    lines = read_lines(args.input, "input file") if args.input else sys.stdin.read().splitlines()
    for i in range(0, len(lines), 2000):  # batches: the perceptron segmenter scores a batch in one numpy pass
        chunk = lines[i : i + 2000]
        if seg is not None:
            tagged = [[(w, t) for w, t in pairs if not w.isspace()] for pairs in cut_and_tag_lines(seg, tagger, chunk)]
        else:
            tagged = [list(zip(ws, tagger.tag(ws))) for ws in (line.split() for line in chunk)]
        sys.stdout.write("".join(" ".join(f"{w}/{t}" for w, t in pairs) + "\n" for pairs in tagged))
    return 0


def _eval(args) -> int:
    from llmlab.data.corpora import pfr1998
    from llmlab.text.metrics import read_tagged, tag_accuracy
    from llmlab.text.pos import load_tagger

    tagger = load_tagger(args.model)
    gold = read_tagged(args.gold, "gold file") if args.gold else pfr1998(args.split)
    pred = tagger.tag_sentences([[w for w, _ in s] for s in gold])
    vocab = {w for s in pfr1998("train") for w, _ in s}
    acc = tag_accuracy(gold, pred, vocab)
    print(f"accuracy={acc['accuracy']:.4f} unknown-word accuracy={acc['unknown_accuracy']:.4f} "
          f"({acc['n']} words, {acc['n_unknown']} unknown to pfr1998 train)")
    if args.seg_model:
        from llmlab.text.base import load_segmenter
        from llmlab.text.metrics import seg_tag_scores
        from llmlab.text.pos import cut_and_tag_lines

        joint = seg_tag_scores(gold, cut_and_tag_lines(load_segmenter(args.seg_model), tagger,
                                                       ["".join(w for w, _ in s) for s in gold]))
        print(f"after segmentation with {args.seg_model}: word+tag P={joint['precision']:.4f} "
              f"R={joint['recall']:.4f} F1={joint['f1']:.4f}")
    return 0
