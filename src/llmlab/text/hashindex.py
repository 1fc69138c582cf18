"""An exact feature index in numpy: 64-bit keys -> rows of a weight table, by linear probing.

Unlike plain feature hashing, a key never seen in training finds no row (it maps to the zero row),
so unseen features add nothing instead of borrowing another feature's weight.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.uint64(0)


class FeatureIndex:
    """Open-addressing table over non-zero uint64 keys; ``lookup`` returns slot numbers, and
    ``missing`` (= table size) for unknown keys.

    >>> idx = FeatureIndex(np.array([5, 9, 77], dtype=np.uint64))
    >>> slots = idx.lookup(np.array([[9, 4], [77, 5]], dtype=np.uint64))
    >>> bool(slots[0, 1] == idx.missing), len({int(slots[0, 0]), int(slots[1, 0]), int(slots[1, 1])})
    (True, 3)
    """

    def __init__(self, keys: np.ndarray, load: float = 0.5):
        keys = np.unique(np.asarray(keys, dtype=np.uint64))
        if len(keys) and keys[0] == EMPTY:
            raise ValueError("key 0 is reserved for empty slots")
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) / load))))
        self.size = 1 << bits
        self.missing = self.size
        self._shift = np.uint64(64 - bits)
        self._mask = np.uint64(self.size - 1)
        self.keys = np.zeros(self.size, dtype=np.uint64)
        self.max_probe = self._insert(keys)

    def _home(self, keys: np.ndarray) -> np.ndarray:
        # the multiply spreads low-entropy keys (tests use small ints) over the top bits
        return (keys * np.uint64(0x9E3779B97F4A7C15)) >> self._shift

    def _insert(self, keys: np.ndarray) -> int:
        slots = self._home(keys)
        pending = np.arange(len(keys))
        probes = 1
        while len(pending):
            s = slots[pending]
            taken = self.keys[s] != EMPTY
            slots[pending[taken]] = (s[taken] + np.uint64(1)) & self._mask
            free, fs = pending[~taken], s[~taken]
            uniq, first = np.unique(fs, return_index=True)
            self.keys[uniq] = keys[free[first]]
            placed = np.zeros(len(keys), dtype=bool)
            placed[free[first]] = True
            pending = pending[~placed[pending]]
            probes += 1
        return probes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each key (same shape, int64); `missing` where the key is not in the index."""
        flat = keys.ravel()
        h = self._home(flat)
        k = self.keys[h]
        hit = k == flat
        out = np.where(hit, h, np.uint64(self.missing)).astype(np.int64)
        pos = np.flatnonzero(~hit & (k != EMPTY))  # most keys settle in the first probe
        flat, h = flat[pos], (h[pos] + np.uint64(1)) & self._mask
        for _ in range(self.max_probe):
            k = self.keys[h]
            hit = k == flat
            out[pos[hit]] = h[hit]
            go = ~hit & (k != EMPTY)
            if not go.any():
                break
            flat, h, pos = flat[go], (h[go] + np.uint64(1)) & self._mask, pos[go]
        return out.reshape(keys.shape)

    def present_keys(self) -> np.ndarray:
        return self.keys[self.keys != EMPTY]
