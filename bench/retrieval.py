"""BM25 retrieval: llmlab's numpy inverted index vs rank_bm25's BM25Okapi, on pfr1998 paragraphs.

Both index the same corpus (every pfr1998 paragraph, train + dev + test, one passage each) with the same
terms (llmlab's `cjk_terms`: CJK characters and bigrams), so the scores must agree; queries are random
12-character spans of dev paragraphs. It prints build time, queries per second (single thread; rank_bm25
scores every document for every query term in Python, llmlab adds up the term's postings), their ratio
(llmlab / rank_bm25, > 1 means llmlab is faster), the largest score difference, and how many top-10
lists agree (rank_bm25's ranked by score, ties to the lower index as llmlab ranks them).

    .venv/bin/python bench/retrieval.py [--queries 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def reference_top(scores: np.ndarray, k: int) -> list[int]:
    """rank_bm25's best k documents with a positive score, ties to the lower index (as llmlab ranks)."""
    held = np.flatnonzero(scores > 0)
    return held[np.lexsort((held, -scores[held]))][:k].tolist()


def main() -> None:
    from rank_bm25 import BM25Okapi

    from llmlab.data.corpora import pfr1998_text
    from llmlab.generate.passages import cjk_terms
    from llmlab.generate.retrieval import BM25Index, IndexConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    docs = [d for split in ("train", "dev", "test") for d in pfr1998_text(split) if d]
    dev = [d for d in pfr1998_text("dev") if len(d) >= 12]
    rng = random.Random(args.seed)
    queries = [d[s: s + 12] for d in rng.choices(dev, k=args.queries) for s in [rng.randrange(len(d) - 11)]]
    print(f"{len(docs)} pfr1998 paragraphs ({sum(map(len, docs)) / 1e6:.2f} M characters), "
          f"{len(queries)} queries of 12 characters, top {args.k}")

    ours, t_ours = timed(BM25Index.build, docs, IndexConfig(passage_chars=0))
    terms, t_terms = timed(lambda: [cjk_terms(d) for d in docs])
    ref, t_ref = timed(BM25Okapi, terms)
    print(f"  build   llmlab {t_ours:6.2f} s   rank_bm25 {t_ref + t_terms:6.2f} s "
          f"({t_terms:.2f} s of it the same tokenisation)")

    hits, t_ours = timed(ours.search_batch, queries, args.k)
    ref_scores, t_ref = timed(lambda: [ref.get_scores(cjk_terms(q)) for q in queries])
    n = len(queries)
    print(f"  search  llmlab {n / t_ours:8.1f} queries/s   rank_bm25 {n / t_ref:6.1f} queries/s   "
          f"llmlab/rank_bm25 {t_ref / t_ours:.0f}x faster (rank_bm25 timed without ranking its scores)")

    diff = max(float(np.abs(ours.get_scores(q) - s).max()) for q, s in zip(queries[:50], ref_scores))
    agree = sum([h.index for h in hs] == reference_top(s, args.k) for hs, s in zip(hits, ref_scores))
    print(f"  largest score difference (first 50 queries): {diff:.1e}")
    print(f"  top-{args.k} lists identical: {agree} of {n}")


if __name__ == "__main__":
    main()
