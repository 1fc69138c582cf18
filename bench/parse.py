"""Dependency parsing on the generated treebank: llmlab's parsers beside the previous-word baseline.

Trains the graph-based parser (Eisner, and Chu-Liu/Edmonds) and the transition-based parser on the
built-in treebank's train split (4000 generated sentences) and scores them on its test split: UAS and
LAS with and without punctuation, complete match, training seconds and parsing speed (sentences/s,
best of --repeat runs over the test split, one sentence at a time). The treebank is synthetic
(`llmlab.text.treebank`): the figures compare the algorithms with each other and with the chain
baseline; they are not accuracy on real Chinese.

    .venv/bin/python bench/parse.py [--size 4000] [--epochs 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from llmlab.text.dep_eval import attachment_scores, previous_word_baseline
from llmlab.text.dep_graph import GraphParser, GraphParserConfig
from llmlab.text.dep_transition import TransitionParser, TransitionParserConfig
from llmlab.text.treebank import treebank_split


def best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=None, help="training sentences (default: the whole train split)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    train, test = treebank_split("train", args.size), treebank_split("test")
    print(f"generated treebank: {len(train)} train, {len(test)} test sentences, "
          f"{sum(len(s.tokens) for s in test) / len(test):.1f} words per test sentence")
    systems = {
        "graph (Eisner)": (GraphParser, GraphParserConfig(epochs=args.epochs)),
        "graph (Chu-Liu/Edmonds)": (GraphParser, GraphParserConfig(epochs=args.epochs, decoder="cle")),
        "transition (arc-standard)": (TransitionParser, TransitionParserConfig(epochs=args.epochs)),
    }
    rows = [("previous word (baseline)", previous_word_baseline(test), 0.0, None)]
    for name, (cls, config) in systems.items():
        t = time.perf_counter()
        parser = cls.train(train, config)
        trained = time.perf_counter() - t
        pred, secs = best_time(lambda p=parser: p.parse_sentences(test), args.repeat)
        rows.append((name, pred, trained, len(test) / secs))
    print(f"{'system':28s} {'UAS':>7s} {'LAS':>7s} {'UAS-p':>7s} {'LAS-p':>7s} {'exact':>7s} {'train s':>8s} "
          f"{'sent/s':>8s}")
    for name, pred, trained, speed in rows:
        s, sp = attachment_scores(test, pred), attachment_scores(test, pred, punct=False)
        print(f"{name:28s} {s['uas']:7.4f} {s['las']:7.4f} {sp['uas']:7.4f} {sp['las']:7.4f} {s['complete']:7.4f} "
              f"{trained:8.1f} {'' if speed is None else f'{speed:8.0f}'}")
    print("UAS-p / LAS-p: without punctuation; exact: sentences with every head right")


if __name__ == "__main__":
    main()
