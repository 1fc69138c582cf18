"""Keywords (TF-IDF and TextRank, `llmlab.text.keywords`) on the pfr1998 test split beside jieba.analyse.

The documents are the test split in blocks of --lines lines (33 documents of 30 lines by default).

Agreement with the gold words: each document's top --top keywords from a system's own words (and tags)
against the top --top from the gold words (and gold tags), both ranked by llmlab's functions with the
built-in idf table, so the difference is the segmenter's (and tagger's) alone; the mean share of the gold
list found. llmlab uses its default segmenter and tagger (the perceptrons, trained on first use and
cached), jieba its `lcut` and `posseg` (whose tags follow the same PKU-style set for these nouns and
verbs). "jieba.analyse" is jieba's own functions as shipped (its idf.txt, its ten TextRank sweeps)
against the same gold lists.

Speed: documents per second, best of --repeat, end to end (cutting, tagging for TextRank, ranking) with
each system's own models; and the ranking alone on the same jieba words, jieba's ranking fed them through
its tokenizer slot, llmlab's with jieba's idf table (TextRank both to convergence and at jieba's ten sweeps).

    .venv/bin/python bench/keywords.py [--lines 30] [--top 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: models loaded, kernels compiled
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def overlap(got: list[str], gold: list[str]) -> float:
    return len(set(got) & set(gold)) / len(gold) if gold else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=30, help="lines per document")
    ap.add_argument("--top", type=int, default=10, help="keywords compared per document")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best kept)")
    args = ap.parse_args()

    import jieba
    import jieba.analyse
    import jieba.posseg
    from jieba.analyse.tfidf import DEFAULT_IDF

    from llmlab.data.corpora import pfr1998
    from llmlab.text import default_segmenter, default_tagger, extract_tags, textrank
    from llmlab.text.keywords import IdfTable, pfr1998_idf, textrank_keywords, tfidf_keywords
    from llmlab.text.pos import cut_and_tag_lines

    jieba.setLogLevel(60)
    tagged = pfr1998("test")
    blocks = [tagged[i:i + args.lines] for i in range(0, len(tagged), args.lines)]
    docs = ["\n".join("".join(w for w, _ in s) for s in b) for b in blocks]
    seg, tagger, idf = default_segmenter(), default_tagger(), pfr1998_idf()
    k = args.top

    def joined(rows):  # a document's tokens, a line break between lines (as jieba reads the text)
        return [t for row in rows for t in [*row, ("\n", "w")]]

    gold_pairs = [joined(b) for b in blocks]
    gold_words = [[w for w, _ in p] for p in gold_pairs]
    ours_pairs = [joined(cut_and_tag_lines(seg, tagger, d.split("\n"))) for d in docs]
    jieba_pairs = [[(p.word, p.flag) for p in jieba.posseg.lcut(d)] for d in docs]
    jieba_words = [jieba.lcut(d) for d in docs]

    def tf(words):
        return [w for w, _ in tfidf_keywords(words, idf, k)]

    def tr(pairs):
        return [w for w, _ in textrank_keywords(pairs, k)]

    gold_tf, gold_tr = [tf(w) for w in gold_words], [tr(p) for p in gold_pairs]
    rows = {
        "llmlab (perceptron cut, perceptron tags)": ([tf([w for w, _ in p]) for p in ours_pairs],
                                                     [tr(p) for p in ours_pairs]),
        "jieba's cut and posseg tags": ([tf(w) for w in jieba_words], [tr(p) for p in jieba_pairs]),
        "jieba.analyse as shipped": ([jieba.analyse.extract_tags(d, k) for d in docs],
                                     [jieba.analyse.textrank(d, k) for d in docs]),
    }
    print(f"{len(docs)} documents of {args.lines} lines ({sum(map(len, docs)):,} characters); share of the gold "
          f"words' top {k} found\n")
    print(f"{'system':42s} {'TF-IDF':>8s} {'TextRank':>9s}")
    for name, (got_tf, got_tr) in rows.items():
        a = sum(map(overlap, got_tf, gold_tf)) / len(docs)
        b = sum(map(overlap, got_tr, gold_tr)) / len(docs)
        print(f"{name:42s} {a:8.3f} {b:9.3f}")

    print(f"\nspeed, documents/s (best of {args.repeat})\n")
    print(f"{'what':52s} {'llmlab':>9s} {'jieba':>9s} {'ratio':>7s}")

    def row(name: str, ours, theirs) -> None:
        a, b = len(docs) / best_time(ours, args.repeat), len(docs) / best_time(theirs, args.repeat)
        print(f"{name:52s} {a:9.1f} {b:9.1f} {a / b:6.2f}x")

    row("TF-IDF, end to end", lambda: [extract_tags(d, k) for d in docs],
        lambda: [jieba.analyse.extract_tags(d, k) for d in docs])
    row("TextRank, end to end", lambda: [textrank(d, k) for d in docs],
        lambda: [jieba.analyse.textrank(d, k) for d in docs])
    jieba_idf = IdfTable.read(DEFAULT_IDF)
    by_doc = dict(zip(docs, jieba_words))
    their_tf = jieba.analyse.TFIDF()
    their_tf.tokenizer = SimpleNamespace(cut=by_doc.__getitem__)
    row("TF-IDF ranking alone (jieba's words)", lambda: [tfidf_keywords(w, jieba_idf, k) for w in jieba_words],
        lambda: [their_tf.extract_tags(d, k) for d in docs])
    objects = dict(zip(docs, [jieba.posseg.lcut(d) for d in docs]))
    their_tr = jieba.analyse.TextRank()
    their_tr.tokenizer = SimpleNamespace(cut=objects.__getitem__)
    row("TextRank ranking alone, converged (jieba's words)", lambda: [textrank_keywords(p, k) for p in jieba_pairs],
        lambda: [their_tr.textrank(d, k) for d in docs])
    row("TextRank ranking alone, ten sweeps (jieba's words)",
        lambda: [textrank_keywords(p, k, tol=0, max_sweeps=10) for p in jieba_pairs],
        lambda: [their_tr.textrank(d, k) for d in docs])


if __name__ == "__main__":
    main()
