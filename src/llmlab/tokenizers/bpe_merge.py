"""Compiled BPE merging: the pieces of a text to token ids, all in one call.

Each piece's bytes are merged by rank: always the lowest-ranked pair present, leftmost first, which
gives the same ids as calling `llmlab.tokenizers.bpe.merge` with the lowest-ranked pair until none is
left. A heap over (rank, position) and a linked list of the surviving tokens make a piece of n bytes
cost O(n log n). Pairs are looked up in an open-addressing table of uint64 keys ``a * base + b + 1``
(0 marks an empty slot), each slot holding the key and the merge's rank side by side.

>>> table = MergeTable([(1, 2, 4), (4, 3, 5)], byte_id=list(range(256)))
>>> table.encode(["\\x01\\x02\\x03\\x01\\x02", "\\x02\\x01"])
[(5, 4), (2, 1)]
"""

from __future__ import annotations

import numpy as np

from llmlab.core.jit import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@jit
def _slot(table: np.ndarray, shift: np.uint64, key: np.uint64) -> np.uint64:
    """The slot holding `key`, or the empty slot where it would go."""
    mask = np.uint64(table.shape[0] - 1)
    s = (key * _GOLDEN) >> shift  # the multiply spreads keys that differ only in their low bits
    while table[s, 0] != key and table[s, 0] != 0:
        s = (s + np.uint64(1)) & mask
    return s


@jit
def _fill(table: np.ndarray, shift: np.uint64, keys: np.ndarray, ranks: np.ndarray) -> None:
    for i in range(keys.shape[0]):
        s = _slot(table, shift, keys[i])
        if table[s, 0] == 0:  # the first (lowest) rank of a pair stays
            table[s, 0] = keys[i]
            table[s, 1] = ranks[i]


@jit
def _rank(table: np.ndarray, shift: np.uint64, base: np.uint64, a: np.int64, b: np.int64) -> np.int64:
    """Rank of merging (a, b), or -1."""
    s = _slot(table, shift, np.uint64(a) * base + np.uint64(b) + np.uint64(1))
    return np.int64(table[s, 1]) if table[s, 0] != 0 else np.int64(-1)


@jit
def _push(heap: np.ndarray, n: int, e: np.int64) -> int:
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= e:
            break
        heap[i] = heap[p]
        i = p
    heap[i] = e
    return n + 1


@jit
def _pop(heap: np.ndarray, n: int) -> np.int64:
    """Remove and return the smallest entry of heap[:n] (the caller shrinks n)."""
    top, last = heap[0], heap[n - 1]
    n -= 1
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and heap[c + 1] < heap[c]:
            c += 1
        if last <= heap[c]:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = last
    return top


@jit
def _merge_one(sym: np.ndarray, nxt: np.ndarray, prv: np.ndarray, heap: np.ndarray, n: int, table: np.ndarray,
               shift: np.uint64, base: np.uint64, merges: np.ndarray) -> None:
    """Merge sym[:n] in place (merged-away positions become -1): lowest rank first, leftmost on ties.
    Heap entries are rank << 32 | position; an entry whose pair has changed since is skipped."""
    h = 0
    for i in range(n):
        nxt[i] = i + 1
        prv[i] = i - 1
    nxt[n - 1] = -1
    for i in range(n - 1):
        r = _rank(table, shift, base, sym[i], sym[i + 1])
        if r >= 0:
            h = _push(heap, h, r << 32 | i)
    while h > 0:
        e = _pop(heap, h)
        h -= 1
        r, i = e >> 32, e & 0xFFFFFFFF
        j = nxt[i]
        if j < 0 or sym[i] != merges[r, 0] or sym[j] != merges[r, 1]:
            continue
        new = merges[r, 2]
        sym[i] = new
        sym[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k >= 0:
            prv[k] = i
            rk = _rank(table, shift, base, new, sym[k])
            if rk >= 0:
                h = _push(heap, h, rk << 32 | i)
        p = prv[i]
        if p >= 0:
            rp = _rank(table, shift, base, sym[p], new)
            if rp >= 0:
                h = _push(heap, h, rp << 32 | p)


@jit
def _byte_bounds(data: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Byte offsets in UTF-8 `data` where consecutive pieces of `lengths` characters start and end."""
    out = np.zeros(lengths.shape[0] + 1, np.int64)
    end = 0
    for k in range(lengths.shape[0]):
        for _ in range(lengths[k]):
            end += 1
            while end < data.shape[0] and data[end] & 0xC0 == 0x80:  # continuation bytes
                end += 1
        out[k + 1] = end
    return out


@jit
def _encode(data: np.ndarray, lengths: np.ndarray, byte_id: np.ndarray, table: np.ndarray, shift: np.uint64,
            base: np.uint64, merges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids of consecutive pieces of `data` (UTF-8), piece k `lengths[k]` characters long: all ids in
    one array, piece k's at ids[offsets[k]:offsets[k + 1]]."""
    bounds = _byte_bounds(data, lengths)
    longest = np.max(bounds[1:] - bounds[:-1])
    ids = np.empty(data.shape[0], np.int64)
    offsets = np.zeros(lengths.shape[0] + 1, np.int64)
    sym = np.empty(longest, np.int64)
    nxt = np.empty(longest, np.int64)
    prv = np.empty(longest, np.int64)
    heap = np.empty(3 * longest, np.int64)  # n - 1 first pairs, then at most 2 per merge
    out = 0
    for k in range(lengths.shape[0]):
        start, n = bounds[k], bounds[k + 1] - bounds[k]
        for i in range(n):
            sym[i] = byte_id[data[start + i]]
        if n > 1:
            _merge_one(sym, nxt, prv, heap, n, table, shift, base, merges)
        for i in range(n):
            if sym[i] >= 0:
                ids[out] = sym[i]
                out += 1
        offsets[k + 1] = out
    return ids[:out], offsets


class MergeTable:
    """A merge list (rank -> (left id, right id, merged id)) compiled for encoding.

    `byte_id` is the id of each byte value. Where two merges join the same pair, the first counts.
    """

    def __init__(self, merges: list[tuple[int, int, int]], byte_id: list[int]):
        self.merges = np.array(merges, dtype=np.int64).reshape(-1, 3)
        self.byte_id = np.array(byte_id, dtype=np.int64)
        self.base = np.uint64(max(self.merges.max(initial=0), self.byte_id.max()) + 1)  # above every id
        bits = max(4, (2 * len(merges)).bit_length())  # at most half full
        self.shift = np.uint64(64 - bits)
        self.table = np.zeros((1 << bits, 2), dtype=np.uint64)
        keys = self.merges[:, 0].astype(np.uint64) * self.base + self.merges[:, 1].astype(np.uint64) + np.uint64(1)
        _fill(self.table, self.shift, keys, np.arange(len(merges), dtype=np.uint64))

    def encode(self, pieces: list[str]) -> list[tuple[int, ...]]:
        """Ids of each piece; raises UnicodeEncodeError on a lone surrogate."""
        if not pieces:
            return []
        data = np.frombuffer("".join(pieces).encode(), np.uint8)
        lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
        ids, offsets = _encode(data, lengths, self.byte_id, self.table, self.shift, self.base, self.merges)
        ids, offsets = ids.tolist(), offsets.tolist()
        return [tuple(ids[a:b]) for a, b in zip(offsets, offsets[1:])]
