"""Counting n-grams with numpy: each n-gram of order k is one int64 key, ``context_index * V + word``.

The context index points into the sorted table of order k-1, so keys stay small whatever the order
(a trie stored as sorted arrays). Order 0 has one entry, the empty context (index 0); the order-1 table
holds every vocabulary id (count 0 for ids never seen), so ``index == id`` there.

    tokens  <s> a b </s>           (V = 5: <unk>=0 <s>=1 </s>=2 a=3 b=4)
    order 1 keys = [0 1 2 3 4]     counts [0 1 1 1 1]
    order 2 keys = [1*5+3, 3*5+4, 4*5+2] = [8, 19, 22]       (<s> a), (a b), (b </s>)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmlab.classic.vocab import BOS_ID


def lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query in the sorted `keys`, or -1 where absent.

    >>> lookup(np.array([2, 5, 9]), np.array([5, 3, 9, 10])).tolist()
    [1, -1, 2, -1]
    """
    query = np.asarray(query, dtype=np.int64)
    if len(keys) == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    pos = np.searchsorted(keys, query)
    pos_c = np.minimum(pos, len(keys) - 1)
    return np.where(keys[pos_c] == query, pos_c, -1).astype(np.int64)


def count_ngrams(ids: np.ndarray, sent: np.ndarray, order: int, vocab_size: int):
    """Sorted keys and counts per order 0..`order` of all n-grams inside one sentence.

    >>> ids, sent = np.array([1, 3, 4, 2]), np.zeros(4, dtype=np.int64)
    >>> keys, counts = count_ngrams(ids, sent, 2, 5)
    >>> keys[2].tolist(), counts[2].tolist(), counts[1].tolist()
    ([8, 19, 22], [1, 1, 1], [0, 1, 1, 1, 1])
    """
    n, V = len(ids), vocab_size
    keys = [np.zeros(1, dtype=np.int64), np.arange(V, dtype=np.int64)]
    counts = [np.array([n], dtype=np.int64), np.bincount(ids, minlength=V).astype(np.int64)]
    idx = ids.astype(np.int64)  # index of the order-k gram starting at each position
    for k in range(2, order + 1):
        m = max(n - k + 1, 0)
        pos = np.flatnonzero((sent[:m] == sent[k - 1 : k - 1 + m]) & (idx[:m] >= 0))
        q = idx[pos] * V + ids[pos + k - 1]
        uniq, inv, cnt = np.unique(q, return_inverse=True, return_counts=True)
        idx = np.full(m, -1, dtype=np.int64)
        idx[pos] = inv.reshape(-1)
        keys.append(uniq.astype(np.int64))
        counts.append(cnt.astype(np.int64))
    return keys, counts


def position_index(keys: list[np.ndarray], ids: np.ndarray, sent: np.ndarray, vocab_size: int) -> list[np.ndarray]:
    """For each order k, the table index of the k-gram starting at each position (-1: unseen, or
    crossing a sentence end, or past the end). Order 0 is all zeros (the empty context)."""
    n, V = len(ids), vocab_size
    out = [np.zeros(n, dtype=np.int64), np.where(ids < V, ids, -1).astype(np.int64)]
    for k in range(2, len(keys)):
        idx = np.full(n, -1, dtype=np.int64)
        m = max(n - k + 1, 0)
        prev = out[k - 1][:m]
        pos = np.flatnonzero((sent[:m] == sent[k - 1 : k - 1 + m]) & (prev >= 0))
        idx[pos] = lookup(keys[k], prev[pos] * V + ids[pos + k - 1])
        out.append(idx)
    return out


@dataclass(frozen=True)
class NgramTables:
    """The sorted key tables of orders 0..n with what every smoothing needs derived from them."""

    vocab_size: int  # V, ids are 0..V-1
    keys: tuple[np.ndarray, ...]  # keys[k]: sorted int64 keys of order k (keys[0] == [0])

    @property
    def order(self) -> int:
        return len(self.keys) - 1

    def context(self, k: int) -> np.ndarray:
        """Index into table k-1 of each order-k n-gram's context (its first k-1 words)."""
        return self.keys[k] // self.vocab_size

    def word(self, k: int) -> np.ndarray:
        """Last word id of each order-k n-gram."""
        return self.keys[k] % self.vocab_size

    def suffixes(self) -> list[np.ndarray]:
        """suffix[k][g]: index in table k-1 of n-gram g without its first word (suffix[1] all 0).

        Every suffix of a counted n-gram was counted too, so the lookups never miss.
        """
        out = [np.zeros(1, dtype=np.int64), np.zeros(len(self.keys[1]), dtype=np.int64)]
        for k in range(2, self.order + 1):
            q = out[k - 1][self.context(k)] * self.vocab_size + self.word(k)
            s = lookup(self.keys[k - 1], q)
            assert (s >= 0).all(), "an n-gram's suffix is missing from the lower order"
            out.append(s)
        return out

    def starts_with_bos(self) -> list[np.ndarray]:
        """Per order, whether each n-gram's first word is ``<s>``."""
        out = [np.zeros(1, dtype=bool), self.word(1) == BOS_ID]
        for k in range(2, self.order + 1):
            out.append(out[k - 1][self.context(k)])
        return out

    def context_index(self, context: list[int]) -> int:
        """Table index of the n-gram `context` (order len(context)), or -1 if never seen."""
        idx = 0
        for i, w in enumerate(context, 1):
            idx = int(lookup(self.keys[i], np.array([idx * self.vocab_size + w]))[0])
            if idx < 0:
                return -1
        return idx

    def followers(self, k: int, ctx: int) -> tuple[int, int]:
        """Range [lo, hi) of the order-k n-grams whose context is `ctx` (keys sort by context first)."""
        V = self.vocab_size
        lo, hi = np.searchsorted(self.keys[k], [ctx * V, (ctx + 1) * V])
        return int(lo), int(hi)


def per_context(ctx: np.ndarray, values: np.ndarray, n_contexts: int) -> np.ndarray:
    """Sum of `values` per context index.

    >>> per_context(np.array([0, 0, 2]), np.array([1.0, 2.0, 5.0]), 3).tolist()
    [3.0, 0.0, 5.0]
    """
    return np.bincount(ctx, weights=np.asarray(values, dtype=np.float64), minlength=n_contexts)
