"""An exact feature index: 64-bit keys -> rows of a weight table, by linear probing.

Unlike plain feature hashing, a key never seen in training finds no row (it maps to the zero row),
so unseen features add nothing instead of borrowing another feature's weight. Each slot of the
probing table (2-4 slots per key) holds a key and its row side by side, so a lookup touches one
cache line, and a weight table has one row per key (plus the zero row), not one per slot: the POS
perceptron's (rows, 44 tags) training tables would otherwise be two to four times larger.
Inserts, lookups and `probe` (which `llmlab.text.features.emission_scores` calls to add up weight
rows) are compiled loops (`llmlab.core.jit`).
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

    def present_keys(self) -> np.ndarray:
        """The keys, in row order."""
        return self.keys
