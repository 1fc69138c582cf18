"""Near-duplicate search: llmlab's `near_duplicates` beside datasketch (MinHash per document, then
MinHashLSH insert and query), on pfr1998 train lines plus planted near-copies (a few characters of a
line replaced), with the same num_perm, threshold, seed and character 5-gram shingles.

Both pipelines do the whole job: shingle, sign, band, check each candidate's estimated Jaccard
against the threshold (datasketch's ``MinHash.jaccard``), cluster with union-find and keep the first
document of each cluster. llmlab runs twice: with ``hash="sha1"`` (datasketch's own shingle hash, so
the removed sets should agree exactly) and with the default compiled ``hash="fast"`` (different
hash values, so only statistically the same answer: the overlap of the removed sets is reported).
One run each, after a warm-up on a few lines (numba compiles, or loads its cache, on first call).

    .venv/bin/python bench/dedup.py [--lines N] [--copies K] [--threshold T] [--num-perm P]
"""

from __future__ import annotations

import argparse
import inspect
import random
import time

import numpy as np


def corpus(lines: int, copies: int, seed: int) -> tuple[list[str], list[tuple[int, int]]]:
    """The lines and (source, copy) index pairs of the planted near-copies."""
    from llmlab.data.corpora import pfr1998_text

    texts = [t for t in pfr1998_text("train") if t][:lines]
    rng, pairs = random.Random(seed), []
    for i in rng.sample(range(len(texts)), min(copies, len(texts))):
        t = list(texts[i])
        for _ in range(max(1, len(t) // 80)):  # about one character in 80 replaced
            t[rng.randrange(len(t))] = "某"
        pairs.append((i, len(texts)))
        texts.append("".join(t))
    return texts, pairs


def datasketch_dedup(texts: list[str], threshold: float, num_perm: int, seed: int, n: int) -> tuple[np.ndarray, tuple]:
    """Each document's cluster (its first document) by datasketch's MinHash + MinHashLSH, candidates
    verified by ``MinHash.jaccard``, then union-find."""
    from datasketch import MinHash, MinHashLSH

    kw = {"scheme": "legacy"} if "scheme" in inspect.signature(MinHash).parameters else {}
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed, **kw)
        grams = {t[j:j + n] for j in range(len(t) - n + 1)} if len(t) >= n else {t}
        m.update_batch([g.encode("utf-8") for g in grams])
        lsh.insert(i, m)
        sketches.append(m)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j > i and m.jaccard(sketches[j]) >= threshold:
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(len(texts))]), (lsh.b, lsh.r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=17535, help="pfr1998 train lines (all 17535 by default)")
    ap.add_argument("--copies", type=int, default=1000, help="near-copies planted among them")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from llmlab.data.dedup import near_duplicates

    texts, planted = corpus(args.lines, args.copies, args.seed)
    src, dst = np.array(planted).T
    print(f"{len(texts)} documents ({len(planted)} planted near-copies), {sum(map(len, texts))} chars; "
          f"threshold {args.threshold}, num_perm {args.num_perm}, char 5-grams")
    kw = {"threshold": args.threshold, "num_perm": args.num_perm, "seed": args.seed}
    t = time.perf_counter()
    peer_cluster, (b, r) = datasketch_dedup(texts, args.threshold, args.num_perm, args.seed, 5)
    peer_dt = time.perf_counter() - t
    peer_removed = set(np.flatnonzero(peer_cluster != np.arange(len(texts))).tolist())
    print(f"\n{'system':34s} {'docs/s':>10s} {'vs datasketch':>14s} {'removed':>8s} {'bands x rows':>13s} "
          f"{'planted found':>14s} {'agreement of removed sets':>26s}")
    print(f"{'datasketch MinHash + MinHashLSH':34s} {len(texts) / peer_dt:10,.0f} {'1.00x':>14s} "
          f"{len(peer_removed):8d} {f'{b} x {r}':>13s} "
          f"{int((peer_cluster[src] == peer_cluster[dst]).sum()):14d} {'-':>26s}")
    for hash_ in ("sha1", "fast"):
        near_duplicates(texts[:20], hash=hash_, **kw)  # warm-up: numba compiles or loads its cache
        t = time.perf_counter()
        res = near_duplicates(texts, hash=hash_, **kw)
        dt = time.perf_counter() - t
        removed = set(np.flatnonzero(~res.keep).tolist())
        both, either = len(removed & peer_removed), len(removed | peer_removed)
        agree = "identical" if removed == peer_removed else f"Jaccard {both / max(either, 1):.4f} ({both} shared)"
        bands = f"{res.params['bands']} x {res.params['rows']}"
        print(f"{'llmlab near_duplicates hash=' + hash_:34s} {len(texts) / dt:10,.0f} "
              f"{peer_dt / dt:13.2f}x {len(removed):8d} {bands:>13s} "
              f"{int((res.cluster[src] == res.cluster[dst]).sum()):14d} {agree:>26s}")


if __name__ == "__main__":
    main()
