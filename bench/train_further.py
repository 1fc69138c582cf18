"""Training a perceptron segmenter or POS tagger further (`seg train --init-model`, pkuseg's
``init_model``; `pos train --init-model`): as incremental training, and as adaptation to new text with
the forgetting it brings.

1. Incremental: the train split in two halves, A and B. A perceptron trained on A, on B, on both from
   zero, and on A then further on B alone: F1 and OOV recall on the test split, training seconds.
2. New text: the test split, and the same split written in traditional characters (a stand-in for a
   domain the model never saw: a quarter of the characters change; `llmlab.text.script`). The
   perceptron trained on the whole train split is trained further on the dev split in traditional
   characters (974 sentences), alone or with as many train sentences mixed in (rehearsal), and
   compared with a model trained on that text alone. With --pkuseg-model (a pkuseg model trained on
   the same train split: `bench/segmentation.py --save-pkuseg DIR`, about an hour), pkuseg does the
   same with its ``train(init_model=...)``, beside it.

3. With --pos: the same for the POS perceptron (gold words; --pos-model, or trained here in about 1.5
   minutes): tag accuracy on the test split and on it in traditional characters.
4. With --hybrid-model (a saved `seg train --algo hybrid`, about 20 minutes to train) and
   --pos-hybrid-model (`pos train --algo hybrid`, about 14 minutes): the perceptron + BiLSTM hybrids
   trained further on the same new text (both parts, `train(init=...)`), beside the hybrid whose
   perceptron alone is trained further and its BiLSTM kept as it was.

(For traditional text `seg cut --t2s` is the better tool: it reads the characters as simplified ones.
Here the script change only stands for new text.)

    .venv/bin/python bench/train_further.py [--perceptron-model DIR] [--pkuseg-model DIR] [--epochs 10]
        [--pos [--pos-model DIR]] [--hybrid-model DIR] [--pos-hybrid-model DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perceptron-model", help="saved perceptron trained on the train split (default: train one)")
    ap.add_argument("--pkuseg-model", help="saved pkuseg model trained on the train split, to adapt beside it")
    ap.add_argument("--pkuseg-iters", type=int, default=20, help="pkuseg's iterations on the new text (its default)")
    ap.add_argument("--epochs", type=int, help="perceptron epochs on the new text (default: the model's own)")
    ap.add_argument("--skip-incremental", action="store_true", help="no section 1")
    ap.add_argument("--pos", action="store_true", help="also the POS perceptron (section 3)")
    ap.add_argument("--pos-model", help="saved POS perceptron trained on the train split (default: train one)")
    ap.add_argument("--hybrid-model", help="saved hybrid segmenter trained on the train split, to train further")
    ap.add_argument("--pos-hybrid-model", help="saved hybrid POS tagger trained on the train split, to train further")
    ap.add_argument("--skip-perceptron", action="store_true", help="no sections 1-3: the hybrids alone")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.base import load_segmenter
    from llmlab.text.metrics import seg_scores
    from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter
    from llmlab.text.script import to_traditional

    train, dev, test = (pfr1998_words(s) for s in ("train", "dev", "test"))
    vocab = {w for s in train for w in s}

    def score(cut, gold) -> tuple[float, float]:
        s = seg_scores(gold, cut(["".join(x) for x in gold]), vocab)
        return s.f1, s.oov_recall

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    if args.skip_perceptron:
        hybrid_rows(args.hybrid_model, args.pos_hybrid_model, timed)
        return
    if not args.skip_incremental:
        half = len(train) // 2
        a, b = train[:half], train[half:]
        config = PerceptronConfig()
        print(f"## 1. Incremental: halves A ({len(a):,} sentences) and B ({len(b):,}) of the train split\n")
        print("| model | test F1 | OOV recall | training s |")
        print("|---|---|---|---|")
        model_a, secs_a = timed(lambda: PerceptronSegmenter.train(a, config))
        rows = [("A", model_a, secs_a)]
        for name, sents in (("B", b), ("A + B from zero", a + b)):
            rows.append((name, *timed(lambda sents=sents: PerceptronSegmenter.train(sents, config))))
        rows.append(("A, then further on B", *timed(lambda: PerceptronSegmenter.train(b, config, init=model_a))))
        for name, model, secs in rows:
            f1, oov = score(model.cut_lines, test)
            print(f"| {name} | {f1:.4f} | {oov:.3f} | {secs:.1f} |")
        print()

    def trad(sents):
        return [[to_traditional(w) for w in s] for s in sents]

    test_t, new = trad(test), trad(dev)
    if args.perceptron_model:
        base = load_segmenter(args.perceptron_model)
    else:
        base, secs = timed(lambda: PerceptronSegmenter.train(train, PerceptronConfig()))
        print(f"(perceptron trained on the train split in {secs:.0f} s)\n")
    config = dataclasses.replace(base.config, **({"epochs": args.epochs} if args.epochs else {}))
    rehearsal = new + train[:: max(1, len(train) // len(new))][: len(new)]
    models = [("llmlab perceptron", base, 0.0),
              ("further on the new text", *timed(lambda: PerceptronSegmenter.train(new, config, init=base))),
              ("further, with rehearsal", *timed(lambda: PerceptronSegmenter.train(rehearsal, config, init=base))),
              ("the new text alone, from zero",
               *timed(lambda: PerceptronSegmenter.train(new, dataclasses.replace(config, epochs=base.config.epochs))))]
    print(f"## 2. New text: {len(new):,} dev sentences in traditional characters "
          f"({config.epochs} epochs; rehearsal: {len(rehearsal) - len(new):,} train sentences mixed in)\n")
    print("| model | test F1 | traditional test F1 | training s |")
    print("|---|---|---|---|")
    cuts = [(name, model.cut_lines, secs) for name, model, secs in models]
    if args.pkuseg_model:
        cuts += pkuseg_rows(args.pkuseg_model, new, rehearsal, args.pkuseg_iters)
    rows = [(name, score(cut, test)[0], score(cut, test_t)[0], secs) for name, cut, secs in cuts]
    for name, f1, f1_t, secs in rows:
        print(f"| {name} | {f1:.4f} | {f1_t:.4f} | {secs:.1f} |")
    if args.pkuseg_model:  # each system trained further beside itself before, and the two side by side
        print()
        for mine, theirs in ((rows[0], rows[4]), (rows[1], rows[5]), (rows[2], rows[6])):
            print(f"{mine[0]} / {theirs[0]}: new text F1 {mine[2]:.4f} / {theirs[2]:.4f}, test F1 {mine[1]:.4f} / "
                  f"{theirs[1]:.4f}" + (f", training {mine[3]:.1f} / {theirs[3]:.1f} s ({mine[3] / theirs[3]:.3f}x)"
                                        if theirs[3] else ""))
        for (name, f1, f1_t, _), (_, f0, f0_t, _) in ((rows[1], rows[0]), (rows[2], rows[0]), (rows[5], rows[4]),
                                                      (rows[6], rows[4])):
            print(f"{name}: new text {f1_t - f0_t:+.4f}, test (forgetting) {f1 - f0:+.4f}")
    if args.pos:
        pos_rows(args.pos_model, timed)
    hybrid_rows(args.hybrid_model, args.pos_hybrid_model, timed)


def hybrid_rows(seg_dir: str | None, pos_dir: str | None, timed) -> None:
    """Section 4: the hybrid segmenter and tagger trained further on the dev split in traditional characters."""
    from llmlab.data.corpora import pfr1998
    from llmlab.text.base import load_segmenter
    from llmlab.text.metrics import seg_scores, tag_accuracy
    from llmlab.text.perceptron import PerceptronSegmenter
    from llmlab.text.pos import load_tagger
    from llmlab.text.pos_hybrid import HybridTagger
    from llmlab.text.pos_perceptron import PerceptronTagger
    from llmlab.text.script import to_traditional
    from llmlab.text.seg_hybrid import HybridSegmenter

    dev, test = pfr1998("dev"), pfr1998("test")
    new, test_t = ([[(to_traditional(w), t) for w, t in s] for s in x] for x in (dev, test))

    def words(sents):
        return [[w for w, _ in s] for s in sents]

    def f1(seg, gold) -> float:
        return seg_scores(words(gold), seg.cut_lines(["".join(w for w, _ in s) for s in gold])).f1

    def accuracy(tagger, gold) -> float:
        return tag_accuracy(gold, tagger.tag_sentences(words(gold)))["accuracy"]

    for what, path, load, hybrid, perceptron, data, score in (
            ("segmenter", seg_dir, load_segmenter, HybridSegmenter, PerceptronSegmenter, words(new), f1),
            ("POS tagger", pos_dir, load_tagger, HybridTagger, PerceptronTagger, new, accuracy)):
        if not path:
            continue
        base = load(path)
        part, part_secs = timed(functools.partial(perceptron.train, data, init=base.perceptron))
        models = [(f"llmlab hybrid {what}", base, 0.0),
                  ("its perceptron, trained further", part, part_secs),
                  ("hybrid, its perceptron further, its BiLSTM kept", hybrid(part, base.neural, base.lam, base.scale),
                   part_secs),
                  ("hybrid, both parts further", *timed(functools.partial(hybrid.train, data, init=base)))]
        measure = "F1" if what == "segmenter" else "accuracy"
        print(f"\n## 4. Hybrid {what}, new text: {len(new):,} dev sentences in traditional characters\n")
        print(f"| model | test {measure} | traditional test {measure} | training s |")
        print("|---|---|---|---|")
        for name, model, secs in models:
            print(f"| {name} | {score(model, test):.4f} | {score(model, test_t):.4f} | {secs:.1f} |")


def pos_rows(model_dir: str | None, timed) -> None:
    """Section 3: the POS perceptron trained further on the dev split in traditional characters."""
    from llmlab.data.corpora import pfr1998
    from llmlab.text.metrics import tag_accuracy
    from llmlab.text.pos import load_tagger
    from llmlab.text.pos_perceptron import PerceptronTagger
    from llmlab.text.script import to_traditional

    train, dev, test = (pfr1998(s) for s in ("train", "dev", "test"))

    def trad(sents):
        return [[(to_traditional(w), t) for w, t in s] for s in sents]

    def accuracy(tagger, gold) -> float:
        return tag_accuracy(gold, tagger.tag_sentences([[w for w, _ in s] for s in gold]))["accuracy"]

    if model_dir:
        base = load_tagger(model_dir)
    else:
        base, secs = timed(lambda: PerceptronTagger.train(train))
        print(f"\n(POS perceptron trained on the train split in {secs:.0f} s)")
    new, test_t = trad(dev), trad(test)
    rehearsal = new + train[:: max(1, len(train) // len(new))][: len(new)]
    models = [("llmlab POS perceptron", base, 0.0),
              ("further on the new text", *timed(lambda: PerceptronTagger.train(new, init=base))),
              ("further, with rehearsal", *timed(lambda: PerceptronTagger.train(rehearsal, init=base)))]
    print(f"\n## 3. POS tagging, new text: {len(new):,} dev sentences in traditional characters "
          f"({base.config.epochs} epochs, {base.config.ensemble} members)\n")
    print("| model | test accuracy | traditional test accuracy | training s |")
    print("|---|---|---|---|")
    for name, model, secs in models:
        print(f"| {name} | {accuracy(model, test):.4f} | {accuracy(model, test_t):.4f} | {secs:.1f} |")


def pkuseg_rows(model_dir: str, new, rehearsal, iters: int):
    """pkuseg's model as it is, and trained further (its ``train(init_model=...)``) on the new text alone
    and with rehearsal; the new text doubles as the test file its trainer scores after each iteration."""
    import contextlib
    import os
    import tempfile

    import spacy_pkuseg

    def cutter(d):
        pk = spacy_pkuseg.pkuseg(d, user_dict=None)
        return lambda xs: [pk.cut(x) for x in xs]

    rows = [("pkuseg", cutter(model_dir), 0.0)]
    tmp = tempfile.mkdtemp(prefix="pkuseg-further-")
    for name, sents in (("pkuseg further (init_model)", new), ("pkuseg further, with rehearsal", rehearsal)):
        data = os.path.join(tmp, f"{len(rows)}.txt")
        with open(data, "w", encoding="utf-8") as f:
            f.writelines(" ".join(s) + "\n" for s in sents)
        out = os.path.join(tmp, f"model{len(rows)}")
        t = time.perf_counter()
        with open(os.path.join(tmp, "train.log"), "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            spacy_pkuseg.train(data, data, out, train_iter=iters, init_model=model_dir)
        rows.append((name, cutter(out), time.perf_counter() - t))
    return rows


if __name__ == "__main__":
    main()
