"""An exact feature index: 64-bit keys -> rows of a weight table, by linear probing.

Unlike plain feature hashing, a key never seen in training finds no row (it maps to the zero row),
so unseen features add nothing instead of borrowing another feature's weight. Each slot of the
probing table (2-4 slots per key) holds a key and its row side by side, so a lookup touches one
cache line, and a weight table has one row per key (plus the zero row), not one per slot: the POS
perceptron's (rows, 44 tags) training tables would otherwise be two to four times larger.
Lookups and `probe` (which `llmlab.text.features.emission_scores` calls to add up weight rows) are
compiled loops (`llmlab.core.jit`); the table is filled in numpy (`_fill`), so that loading a model
needs no compiled code.
"""

from __future__ import annotations

import numpy as np

from llmlab.core.jit import interpreting, jit

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


def _fill(table: np.ndarray, shift: np.uint64, keys: np.ndarray) -> None:
    """Put key i with row i into the empty `table`, in numpy, as linear probing would leave them if
    inserted in order of home slot: the k-th key by home slot lands at ``max(home_k, slot_(k-1) + 1)``,
    a running maximum; keys pushed past the end wrap round to the first free slots. Any insertion
    order gives a table where every key is found from its home slot before an empty one, so lookups
    give the same rows whatever the order.

    >>> t = np.zeros((16, 2), np.uint64)
    >>> _fill(t, np.uint64(60), np.array([5, 9, 77], dtype=np.uint64))
    >>> sorted(t[t[:, 0] != 0].tolist())
    [[5, 0], [9, 1], [77, 2]]
    """
    size = table.shape[0]
    home = ((keys * _GOLDEN) >> shift).astype(np.int64)  # as `probe`; an array product wraps round silently
    order = np.argsort(home, kind="stable")
    k = np.arange(len(keys))
    slot = k + np.maximum.accumulate(home[order] - k)
    inside = slot < size
    table[slot[inside], 0] = keys[order[inside]]
    table[slot[inside], 1] = order[inside]
    wrapped = order[~inside]
    free = np.flatnonzero(table[:, 0] == EMPTY)[: len(wrapped)]
    table[free, 0] = keys[wrapped]
    table[free, 1] = wrapped


@jit
def _lookup(table: np.ndarray, shift: np.uint64, missing: int, keys: np.ndarray) -> np.ndarray:
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        out[i] = probe(table, shift, keys[i], missing)
    return out


class FeatureIndex:
    """Open-addressing table over non-zero uint64 keys; ``lookup`` returns row numbers (row r holds
    ``keys[r]``, the keys sorted), and ``missing`` (= ``size``, the number of keys) for unknown keys.
    The table is filled on first use: a small job run interpreted (`llmlab.core.jit.interpreted`)
    finds rows by binary search over the sorted keys instead, and never needs it.

    >>> idx = FeatureIndex(np.array([5, 9, 77], dtype=np.uint64))
    >>> idx.lookup(np.array([[9, 4], [77, 5]], dtype=np.uint64)).tolist(), idx.missing
    ([[1, 3], [2, 0]], 3)
    """

    def __init__(self, keys: np.ndarray, load: float = 0.5):
        keys = np.asarray(keys, dtype=np.uint64).ravel()
        if (keys[1:] <= keys[:-1]).any():  # a saved model's keys are sorted and unique already
            keys = np.sort(keys)  # np.unique hashes: 20 times slower on a million keys
            keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        if len(keys) and keys[0] == EMPTY:
            raise ValueError("key 0 is reserved for empty slots")
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) / load))))
        self.keys = keys  # row r's key
        self.size = self.missing = len(keys)
        self.shift = np.uint64(64 - bits)
        self._table: np.ndarray | None = None

    @property
    def table(self) -> np.ndarray:
        """(slots, 2) uint64: slot -> (key, row); key 0 marks an empty slot."""
        if self._table is None:
            table = np.zeros((1 << (64 - int(self.shift)), 2), dtype=np.uint64)
            _fill(table, self.shift, self.keys)
            self._table = table
        return self._table

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key (same shape, int64); `missing` where the key is not in the index."""
        keys = np.asarray(keys, dtype=np.uint64)
        flat = np.ascontiguousarray(keys).ravel()
        if interpreting():
            return self._search(flat).reshape(keys.shape)
        return _lookup(self.table, self.shift, self.missing, flat).reshape(keys.shape)

    def _search(self, keys: np.ndarray) -> np.ndarray:
        """`lookup` of flat keys by binary search over the sorted keys (numpy only)."""
        rows = np.searchsorted(self.keys, keys)
        if not self.size:
            return rows
        found = self.keys[np.minimum(rows, self.size - 1)] == keys
        return np.where(found, rows, self.missing)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """`lookup` of keys that are all in the index (a saved model's), without the table.

        >>> FeatureIndex(np.array([5, 9, 77], dtype=np.uint64)).rows(np.array([77, 5], dtype=np.uint64)).tolist()
        [2, 0]
        """
        keys = np.asarray(keys, dtype=np.uint64).ravel()
        if np.array_equal(keys, self.keys):  # all the keys, in order: a saved model's, as a rule
            return np.arange(self.size)
        rows = self._search(keys)
        if (rows == self.missing).any():
            raise ValueError("rows() of keys missing from the index")
        return rows

    def present_keys(self) -> np.ndarray:
        """The keys, in row order."""
        return self.keys


class SparseRows:
    """A (rows, k) float32 weight table kept as its non-zero entries grouped by row (CSR), for a model
    loaded to tag a few words: `take` builds just the rows asked for, `dense` the whole table (a
    second or so for the POS tagger's 1.3 million rows of 44 tags, most of them zeros).

    >>> t = SparseRows(3, 2, np.array([2, 0]), np.array([1, 0]), np.array([5.0, 7.0], np.float32))
    >>> t.take(np.array([[2, 1]])).tolist(), t.dense().tolist()
    ([[[0.0, 5.0], [0.0, 0.0]]], [[7.0, 0.0], [0.0, 0.0], [0.0, 5.0]])
    """

    def __init__(self, n_rows: int, k: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray):
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        if len(rows) and (min(rows.min(), cols.min()) < 0 or rows.max() >= n_rows or cols.max() >= k):
            raise ValueError(f"sparse weights hold an entry outside the ({n_rows}, {k}) table")
        if (rows[1:] < rows[:-1]).any():
            order = np.argsort(rows, kind="stable")  # a row's entries keep their order: of repeats, the last wins
            rows, cols, values = rows[order], cols[order], values[order]
        self.shape = (n_rows, k)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])  # row r: entries
        # indptr[r]:indptr[r + 1]
        self.cols, self.values = cols, np.asarray(values, np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """``dense()[rows]`` (shape ``rows.shape + (k,)``) without the dense table."""
        flat = np.asarray(rows, np.int64).ravel()
        start, count = self.indptr[flat], np.diff(self.indptr)[flat]
        which = np.repeat(np.arange(len(flat)), count)  # the row of the output each entry goes to
        at = np.arange(count.sum()) + np.repeat(start - (np.cumsum(count) - count), count)  # its entry
        out = np.zeros((len(flat), self.shape[1]), np.float32)
        out[which, self.cols[at]] = self.values[at]
        return out.reshape(*np.shape(rows), self.shape[1])

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        out[np.repeat(np.arange(self.shape[0]), np.diff(self.indptr)), self.cols] = self.values
        return out
