"""Exact and near-duplicate removal for training corpora (a corpus is a list of strings).

Exact: documents equal after `normalize` (whitespace collapsed, optionally case-folded) form a
cluster, compared by a 128-bit BLAKE2b digest of their UTF-8 (not Python's per-process ``hash``).

Near: each document becomes a MinHash signature of its shingle set (`llmlab.data.minhash`); LSH
banding (`llmlab.data.lsh`) proposes candidate pairs, those sharing any band of ``rows`` values. A
pair whose Jaccard similarity is well below the threshold still shares a band now and then (that is
the S-curve's tail: at s = 0.5 with the 128-permutation, 0.8-threshold bands, about 2 pairs in 100),
and union-find would then chain unrelated documents into one cluster, so by default (``verify=True``)
a candidate is united only when its estimated Jaccard (the fraction of all ``num_perm`` signature
values that are equal) reaches the threshold. A document without shingles (the empty text; for
words, whitespace only) is near-duplicate of nothing, not even another empty one: exact dedup is the
tool for those.

In both, each cluster keeps its first document (in corpus order) and drops the rest.

>>> texts = ["今天天气很好，我们去公园散步吧", "今天天气很好，我们去公园散散步吧", "完全不同的一句话，讲别的事情", ""]
>>> r = near_duplicates(texts, threshold=0.5, hash="sha1")
>>> r.keep.tolist(), r.cluster.tolist(), r.groups()
([True, False, True, True], [0, 0, 2, 3], [[0, 1]])
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.progress import progress
from llmlab.data.lsh import (
    _check_lsh,
    band_pairs,
    candidate_pairs,
    check_bands,
    distinct_rows,
    lsh_params,
    pair_count,
    union_find,
)
from llmlab.data.minhash import MinHashConfig, MinHasher, check_texts, has_shingles, jaccard_estimate


@dataclass(frozen=True, eq=False)
class DedupResult:
    keep: np.ndarray  # (docs,) bool: True for the first document of each cluster
    cluster: np.ndarray  # (docs,) int64: index of the first document of the document's cluster
    candidate_pairs: int  # document pairs proposed (near: sharing an LSH band; exact: equal after normalising)
    verified_pairs: int  # proposed pairs accepted (near: estimated Jaccard >= threshold, or all without verify)
    params: dict = field(default_factory=dict)  # the settings used, bands and rows included

    @property
    def n_removed(self) -> int:
        return int(len(self.keep) - self.keep.sum())

    def groups(self) -> list[list[int]]:
        """The clusters of more than one document, each ascending, in order of their first document."""
        order = np.argsort(self.cluster, kind="stable")
        parts = np.split(order, np.flatnonzero(np.diff(self.cluster[order])) + 1) if len(order) else []
        return [p.tolist() for p in parts if len(p) > 1]


def normalize(text: str, casefold: bool = False) -> str:
    """The form exact dedup compares: leading and trailing whitespace removed, every inner run of
    whitespace (as ``str.split`` sees it: spaces, tabs, newlines, U+3000 ...) made one space; with
    `casefold`, ``str.casefold`` too. No Unicode normalisation (NFKC would merge full- and half-width
    forms, which a cleaning step may or may not want).

    >>> normalize("  Hello \\t\\n World\\u3000！ "), normalize("Straße", casefold=True)
    ('Hello World ！', 'strasse')
    """
    text = " ".join(text.split())
    return text.casefold() if casefold else text


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _result(cluster: np.ndarray, candidates: int, verified: int, params: dict) -> DedupResult:
    return DedupResult(cluster == np.arange(len(cluster)), cluster, candidates, verified, params)


def exact_duplicates(texts: Sequence[str], casefold: bool = False, normalize_whitespace: bool = True) -> DedupResult:
    """Clusters of documents equal after normalising (see `normalize`; without `normalize_whitespace`
    the text as it is, case-folded if asked). All empty and all-whitespace documents form one cluster.

    >>> r = exact_duplicates(["a b", "A  b ", "a b\\n", "", " "], casefold=True)
    >>> r.keep.tolist(), r.cluster.tolist(), r.verified_pairs
    ([True, False, False, True, False], [0, 0, 0, 3, 3], 4)
    """
    check_texts(texts)
    seen: dict[bytes, int] = {}
    cluster = np.empty(len(texts), np.int64)
    for i, t in enumerate(progress(texts, desc="exact dedup", unit="doc", disable=len(texts) < 100_000)):
        t = normalize(t, casefold) if normalize_whitespace else (t.casefold() if casefold else t)
        cluster[i] = seen.setdefault(_digest(t), i)
    pairs = int(sum(math.comb(int(s), 2) for s in np.bincount(cluster) if s > 1))
    return _result(cluster, pairs, pairs, {"casefold": casefold, "normalize_whitespace": normalize_whitespace})


def near_duplicates(texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, ngram: int = 5,
                    unit: str = "char", seed: int = 1, verify: bool = True, hash: str = "fast",
                    scheme: str = "legacy", bands: int | None = None, rows: int | None = None) -> DedupResult:
    """Clusters of documents whose shingle sets' Jaccard similarity is about `threshold` or more.

    `num_perm`, `ngram`, `unit`, `seed`, `hash`, `scheme`: the signatures (`MinHashConfig`); with
    ``hash="sha1"`` they, the bands and the candidate pairs are exactly datasketch's. `bands` and
    `rows` default to ``lsh_params(threshold, num_perm)``; give both or neither.
    """
    check_texts(texts)
    _check_lsh(threshold, num_perm)
    config = MinHashConfig(num_perm=num_perm, ngram=ngram, unit=unit, seed=seed, hash=hash, scheme=scheme)
    if (bands is None) != (rows is None):
        raise InputError(f"give both bands and rows or neither, got bands={bands!r}, rows={rows!r}")
    if bands is None:
        bands, rows = lsh_params(threshold, num_perm)
    check_bands(bands, rows, num_perm)
    sig = MinHasher(config).signatures(texts)
    present = np.fromiter((has_shingles(t, unit) for t in texts), bool, len(texts))
    cluster, candidates, verified = cluster_signatures(sig, present, threshold, bands, rows, verify)
    params = {**config.__dict__, "threshold": threshold, "verify": verify, "bands": bands, "rows": rows}
    return _result(cluster, candidates, verified, params)


def cluster_signatures(sig: np.ndarray, present: np.ndarray, threshold: float, bands: int, rows: int,
                       verify: bool = True) -> tuple[np.ndarray, int, int]:
    """(cluster, candidate pairs, verified pairs) for signatures (docs, num_perm); rows where
    `present` is False (documents without shingles) stay alone."""
    idx = np.flatnonzero(present)
    first, inverse = distinct_rows(sig[idx]) if len(idx) else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    distinct = sig[idx[first]]  # (m, num_perm), numbered in order of first appearance
    sizes = np.bincount(inverse, minlength=len(first))
    pairs = band_pairs(distinct, bands, rows)
    candidates = pair_count(sizes, pairs)
    if verify:
        step = max(1, (1 << 24) // sig.shape[1])
        ok = np.concatenate([jaccard_estimate(distinct[pairs[lo:lo + step, 0]], distinct[pairs[lo:lo + step, 1]])
                             >= threshold for lo in range(0, len(pairs), step)] or [np.zeros(0, bool)])
        pairs = pairs[ok]
    comp = union_find(len(first), pairs)  # the smallest distinct signature number = the earliest document
    cluster = np.arange(len(sig))
    cluster[idx] = idx[first[comp[inverse]]]
    return cluster, candidates, pair_count(sizes, pairs)


__all__ = ["DedupResult", "MinHashConfig", "MinHasher", "candidate_pairs", "cluster_signatures",
           "exact_duplicates", "jaccard_estimate", "lsh_params", "near_duplicates", "normalize"]
