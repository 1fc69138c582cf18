"""How much the choice of test text matters: the perceptron segmenter (and with --pos the perceptron
POS tagger, with --hybrid also the perceptron + BiLSTM hybrid) scored on each 5% contiguous block of
pfr1998 in turn.

pfr1998's fixed split is contiguous: train is the first 90% of the month, dev the next 5%, test the
last 5%. Here block b (of 20, in file order) is the test text and the model trains on the other
blocks less block b - 1 (block 1 for block 0), so it always sees 90% of the corpus; block 19 is
exactly the fixed test split. An interleaved split (every 20th sentence tested, the one before each
held back) shows the same model on test text drawn from the whole month. jieba's default mode
(trained on other text, to another standard) is scored on the same blocks beside it.

One perceptron segmenter trains in about 40 s (20 blocks: about 15 minutes on one core); one POS
perceptron in about 3.5 minutes, one hybrid (its perceptron included) in about 20.

    .venv/bin/python bench/seg_folds.py [--blocks 0 5 19] [--interleaved] [--pos [--hybrid]]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time


def folds(n: int, k: int = 20) -> list[tuple[str, list[int], set[int]]]:
    """(name, test indices, held-back indices) for each of `k` contiguous blocks of `n` items (cut where
    `contiguous_split` cuts, so with k = 20 blocks 18 and 19 are the dev and test splits).

    >>> [(name, test, sorted(held)) for name, test, held in folds(6, 3)]
    [('0', [0, 1], [2, 3]), ('1', [2, 3], [0, 1]), ('2', [4, 5], [2, 3])]
    """
    cut = [n * i // k for i in range(k + 1)]
    block = [list(range(cut[i], cut[i + 1])) for i in range(k)]
    return [(str(b), block[b], set(block[b - 1 if b else 1])) for b in range(k)]


def interleaved(n: int, k: int = 20) -> tuple[str, list[int], set[int]]:
    """Like one of `folds`, but every `k`-th item is tested and the item before each held back.

    >>> interleaved(6, 3)
    ('interleaved', [2, 5], {1, 4})
    """
    return "interleaved", [i for i in range(n) if i % k == k - 1], {i for i in range(n) if i % k == k - 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, nargs="*", help="blocks to test (0-19; default all)")
    ap.add_argument("--interleaved", action="store_true", help="also the interleaved split")
    ap.add_argument("--pos", action="store_true", help="also the perceptron POS tagger (gold segmentation)")
    ap.add_argument("--hybrid", action="store_true", help="with --pos: also the hybrid tagger (its perceptron is "
                    "the one scored as the perceptron)")
    args = ap.parse_args()

    from llmlab.data.corpora import pfr1998
    from llmlab.text.base import segmenter_class
    from llmlab.text.metrics import seg_scores, tag_accuracy
    from llmlab.text.pos_hybrid import HybridTagger
    from llmlab.text.pos_perceptron import PerceptronTagger

    sents = pfr1998("train") + pfr1998("dev") + pfr1998("test")  # the whole month, in file order
    runs = [f for f in folds(len(sents)) if args.blocks is None or int(f[0]) in args.blocks]
    if args.interleaved:
        runs.append(interleaved(len(sents)))
    try:
        import jieba

        jieba.setLogLevel(logging.WARNING)
    except ImportError:
        jieba = None
        print("jieba not installed: no jieba column")

    rows = []
    for name, test_i, held in runs:
        tested = set(test_i)
        train = [s for i, s in enumerate(sents) if i not in tested and i not in held]
        test = [sents[i] for i in test_i]
        gold = [[w for w, _ in s] for s in test]
        texts = ["".join(g) for g in gold]
        vocab = {w for s in train for w, _ in s}
        t = time.perf_counter()
        seg = segmenter_class("perceptron").train([[w for w, _ in s] for s in train])
        s = seg_scores(gold, seg.cut_lines(texts), vocab)
        row = {"OOV": sum(w not in vocab for g in gold for w in g) / sum(map(len, gold)), "F1": s.f1,
               "OOV-R": s.oov_recall, "IV-R": s.iv_recall}
        if jieba:
            row["jieba F1"] = seg_scores(gold, [jieba.lcut(x) for x in texts]).f1
        if args.pos:
            hybrid = HybridTagger.train(train) if args.hybrid else None
            for label, tagger in (("POS", hybrid.perceptron if hybrid else PerceptronTagger.train(train)),
                                  ("hybrid", hybrid)):
                if tagger is not None:
                    acc = tag_accuracy(test, tagger.tag_sentences(gold), vocab)
                    row[f"{label} acc"], row[f"{label} unk"] = acc["accuracy"], acc["unknown_accuracy"]
        if not rows:
            print(f"{'block':>11} {'sents':>6} " + " ".join(f"{k:>{max(6, len(k))}}" for k in row))
        rows.append((name, row))
        mark = " (fixed test split)" if name == "19" else ""
        print(f"{name:>11} {len(test):6d} " + " ".join(f"{v:{max(6, len(k))}.4f}" for k, v in row.items())
              + f"  {time.perf_counter() - t:.0f}s{mark}", flush=True)
    blocks = [r for name, r in rows if name != "interleaved"]
    if len(blocks) > 1:
        for label, fn in (("block mean", statistics.mean), ("block std", statistics.stdev), ("block min", min),
                          ("block max", max)):
            print(f"{label:>11} {'':6} " + " ".join(f"{fn(r[k] for r in blocks):{max(6, len(k))}.4f}"
                                                 for k in blocks[0]))


if __name__ == "__main__":
    main()
