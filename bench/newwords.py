"""New-word discovery (`llmlab.text.newwords`) on raw pfr1998 text beside jiagu's `findword` (where it
installs: the bench extra), which implements the same classic recipe in pure Python (frequency, mutual
information and branching-entropy thresholds, its output sorted by frequency).

1. Word extraction: the raw train split (17,535 lines, no word boundaries) goes in; each system's top K
   strings are checked against the gold vocabulary of that same text (are they words at all, by the
   corpus's own segmentation standard?). llmlab is shown under each of its rankings, so each measure's
   share of the result is visible.
2. New words: the raw test split goes in, the train split's words are known (left out); the share of
   the top K that are gold test words unseen in training. PKU's standard cuts personal names (李 鹏)
   and most compounds (两岸 关系) apart, so this counts many real finds as misses.
3. Memory: the raw train split repeated R times with `--min-count` R times as high keeps the same strings,
   so the peak memory of counting (tracemalloc) shows what grows with the text and what with the strings
   kept.

    .venv/bin/python bench/newwords.py [--max-n 4] [--min-count 5]
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path


def precision_at(found: list[str], gold: set[str], ks=(100, 500, 1000, 2000)) -> str:
    return " ".join(f"{sum(w in gold for w in found[:k]) / k:6.3f}" if len(found) >= k else f"{'-':>6s}" for k in ks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-n", type=int, default=4)
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=8, help="section 3: the longest text, in train splits")
    args = ap.parse_args()

    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.newwords import RANKS, candidates, discover, ranked

    train = pfr1998_words("train")
    texts = ["".join(s) for s in train]
    vocab = {w for s in train for w in s}
    print(f"1. words in the raw train split ({sum(map(len, texts)):,} characters): share of the top K that are "
          "gold words of the text\n")
    print(f"{'system':44s} {'found':>7s} {'P@100':>6s} {'P@500':>6s} {'P@1000':>6s} {'P@2000':>6s} {'seconds':>8s}")
    t = time.perf_counter()
    found = discover(texts, None, max_n=args.max_n, min_count=args.min_count)
    ours = time.perf_counter() - t
    for rank in RANKS:
        order = ranked(found, rank)
        seconds = f"{ours:8.1f}" if rank == "combined" else f"{'':8s}"
        print(f"{'llmlab, rank ' + rank:44s} {len(order):7,d} {precision_at([c.word for c in order], vocab)} "
              f"{seconds}")
    try:  # the module itself: the package's own `findword` attribute is a wrapper function
        findword = importlib.import_module("jiagu.findword")
    except ImportError:
        findword = None
        print("jiagu is not installed (pip install jiagu, or make bench): no peer row")
    if findword is not None:
        with tempfile.TemporaryDirectory() as d:
            src, out = Path(d) / "train.txt", Path(d) / "words.txt"
            src.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
            t = time.perf_counter()
            findword.new_word_find(str(src), str(out))
            theirs = time.perf_counter() - t
            words = [line.split("\t")[0] for line in out.read_text(encoding="utf-8").splitlines()]
        print(f"{'jiagu findword (its defaults)':44s} {len(words):7,d} {precision_at(words, vocab)} {theirs:8.1f}"
              f"   (llmlab {theirs / ours:.1f}x faster)")

    test = pfr1998_words("test")
    gold = Counter(w for s in test for w in s)
    new = {w for w in gold if w not in vocab}
    print(f"\n2. new words of the raw test split ({len(new):,} gold words unseen in training, "
          f"{sum(gold[w] >= 2 for w in new)} of them twice or more), the train split's words known\n")
    found = discover(["".join(s) for s in test], None, vocab, min_count=2, max_n=args.max_n)
    print(f"{len(found):,} strings of 2+ occurrences; "
          + ", ".join(f"P@{k} {sum(c.word in new for c in found[:k]) / k:.2f}" for k in (10, 25, 100)))
    print("top 25 ([gold new word]):", " ".join(f"[{c.word}]" if c.word in new else c.word for c in found[:25]))

    print(f"\n3. memory: the raw train split R times, min count {args.min_count} x R (the same strings kept)\n")
    print(f"{'R':>3s} {'characters':>12s} {'strings':>8s} {'peak MB':>8s} {'bytes/char':>10s} {'seconds':>8s}")
    for r in sorted({1, 2, args.repeats}):
        tracemalloc.start()
        t = time.perf_counter()
        found = candidates(texts * r, args.max_n, args.min_count * r)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        n = r * sum(map(len, texts))
        print(f"{r:3d} {n:12,d} {len(found):8,d} {peak / 1e6:8.0f} {peak / n:10.1f} {seconds:8.1f}")

if __name__ == "__main__":
    main()
