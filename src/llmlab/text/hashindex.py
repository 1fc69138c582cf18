"""An exact feature index: 64-bit keys -> rows of a weight table, by linear probing.

Unlike plain feature hashing, a key never seen in training finds no row (it maps to the zero row),
so unseen features add nothing instead of borrowing another feature's weight. Each slot of the
probing table (2-4 slots per key) holds a key and its row side by side, so a lookup touches one
cache line, and a weight table has one row per key (plus the zero row), not one per slot: the POS
perceptron's (rows, 44 tags) training tables would otherwise be two to four times larger.
Inserts, lookups and the fused lookup-and-sum of weight rows (`FeatureIndex.scores`) are compiled
loops (`llmlab.core.jit`).
"""

from __future__ import annotations

import numpy as np

from llmlab.core.jit import jit

EMPTY = np.uint64(0)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@jit
def probe(table: np.ndarray, shift: np.uint64, key: np.uint64, missing: int) -> int:
    """Row of `key` in `table` ((slots, 2): key, row), or `missing` when it is absent."""
    mask = np.uint64(table.shape[0] - 1)
    s = (key * _GOLDEN) >> shift  # the multiply spreads low-entropy keys (tests use small ints)
    while True:
        k = table[s, 0]
        if k == key:
            return np.int64(table[s, 1])
        if k == 0:
            return missing
        s = (s + np.uint64(1)) & mask


@jit
def _insert(table: np.ndarray, shift: np.uint64, keys: np.ndarray) -> None:
    """Key i gets row i."""
    mask = np.uint64(table.shape[0] - 1)
    for i in range(keys.shape[0]):
        s = (keys[i] * _GOLDEN) >> shift
        while table[s, 0] != 0:
            s = (s + np.uint64(1)) & mask
        table[s, 0] = keys[i]
        table[s, 1] = np.uint64(i)


@jit
def _lookup(table: np.ndarray, shift: np.uint64, missing: int, keys: np.ndarray) -> np.ndarray:
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        out[i] = probe(table, shift, keys[i], missing)
    return out


@jit
def _scores(table: np.ndarray, shift: np.uint64, missing: int, weights: np.ndarray, keys: np.ndarray,
            cols: np.ndarray) -> np.ndarray:
    t, k = keys.shape[0], weights.shape[1]
    out = np.zeros((cols.shape[0], k), np.float64)
    for i in range(cols.shape[0]):
        c = cols[i]
        for r in range(t):
            row = probe(table, shift, keys[r, c], missing)
            for j in range(k):
                out[i, j] += weights[row, j]
    return out


class FeatureIndex:
    """Open-addressing table over non-zero uint64 keys; ``lookup`` returns row numbers (row r holds
    ``keys[r]``, the keys sorted), and ``missing`` (= ``size``, the number of keys) for unknown keys.

    >>> idx = FeatureIndex(np.array([5, 9, 77], dtype=np.uint64))
    >>> idx.lookup(np.array([[9, 4], [77, 5]], dtype=np.uint64)).tolist(), idx.missing
    ([[1, 3], [2, 0]], 3)
    """

    def __init__(self, keys: np.ndarray, load: float = 0.5):
        keys = np.unique(np.asarray(keys, dtype=np.uint64))
        if len(keys) and keys[0] == EMPTY:
            raise ValueError("key 0 is reserved for empty slots")
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) / load))))
        self.keys = keys  # row r's key
        self.size = self.missing = len(keys)
        self.shift = np.uint64(64 - bits)
        self.table = np.zeros((1 << bits, 2), dtype=np.uint64)  # slot -> (key, row); key 0: empty
        _insert(self.table, self.shift, keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key (same shape, int64); `missing` where the key is not in the index."""
        keys = np.asarray(keys, dtype=np.uint64)
        return _lookup(self.table, self.shift, self.missing, np.ascontiguousarray(keys).ravel()).reshape(keys.shape)

    def scores(self, weights: np.ndarray, keys: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``weights[lookup(keys)].sum(axis=0)[cols]`` in float64, without building the (T, m, k)
        gather: for (T, m) keys (a template per row) and the columns to score.

        >>> idx = FeatureIndex(np.array([5, 9], dtype=np.uint64))
        >>> w = np.zeros((idx.size + 1, 2), np.float32)
        >>> w[idx.lookup(np.array([5, 9], dtype=np.uint64))] = [[1, 0], [0, 2]]
        >>> idx.scores(w, np.array([[5, 9], [9, 4]], dtype=np.uint64), np.array([1, 0])).tolist()
        [[0.0, 2.0], [1.0, 2.0]]
        """
        return _scores(self.table, self.shift, self.missing, weights, np.ascontiguousarray(keys, dtype=np.uint64),
                       np.asarray(cols, dtype=np.int64))

    def present_keys(self) -> np.ndarray:
        """The keys, in row order."""
        return self.keys
