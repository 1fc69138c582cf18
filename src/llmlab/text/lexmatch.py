"""Lexicon matches over arrays of code points: for every position, the longest lexicon word that
begins there, ends there and strictly covers it (the perceptron's lexicon features).

Every word and every prefix of a word is stored as a 64-bit hash of its code points in a
`FeatureIndex`; a prefix carries value 0, a word its frequency bin (1-3). The scan (a compiled loop)
extends a fragment one character at a time from each position and stops as soon as the fragment is
no prefix, so the work follows the number of live prefixes (about two per character): jieba's
prefix-table trick on hashes.
"""

from __future__ import annotations

import numpy as np

from llmlab.core.jit import jit
from llmlab.text.hashindex import FeatureIndex, probe

_P = np.uint64(0x100000001B3)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_MASK = (1 << 64) - 1
MAX_SPAN = 6


@jit
def _key(h: np.uint64, length: int) -> np.uint64:
    """Index key of a fragment from its running hash and length (never 0)."""
    k = h * _K1 + np.uint64(length) * _K2
    k ^= k >> np.uint64(29)
    return k | np.uint64(1)


@jit
def _keys(hashes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.empty(hashes.shape[0], np.uint64)
    for i in range(hashes.shape[0]):
        out[i] = _key(hashes[i], lengths[i])
    return out


def freq_bin(count: int) -> int:
    """1 for counts below 10, 2 below 100, else 3."""
    return 1 if count < 10 else (2 if count < 100 else 3)


@jit
def _spans(codes: np.ndarray, table: np.ndarray, shift: np.uint64, missing: int, values: np.ndarray,
           max_span: int, out: np.ndarray) -> None:
    """Fill the zeroed (n, 4) `out` (see `SpanIndex.spans`)."""
    n = codes.shape[0]
    for i in range(n):
        h = np.uint64(0)
        length = 0
        while i + length < n:
            h = h * _P + codes[i + length]
            length += 1
            v = values[probe(table, shift, _key(h, length), missing)]
            if v < 0:  # no word starts with this fragment
                break
            if length >= 2 and v > 0:
                w = min(length, max_span)
                out[i, 0] = w
                out[i, 3] = v
                out[i + length - 1, 1] = max(out[i + length - 1, 1], w)
                for j in range(i + 1, i + length - 1):
                    out[j, 2] = max(out[j, 2], w)


class SpanIndex:
    """Longest-lexicon-word features for padded code arrays.

    >>> idx = SpanIndex({"中国": 1, "中国人": 2})
    >>> from llmlab.text.features import codes_of
    >>> idx.spans(codes_of("中国人")).tolist()
    [[3, 0, 0, 1], [0, 2, 3, 0], [0, 3, 0, 0]]
    """

    def __init__(self, counts: dict[str, int]):
        values: dict[tuple[int, int], int] = {}  # (hash, length) of every word and proper prefix -> bin or 0
        for word, count in counts.items():
            h = 0
            for i, ch in enumerate(word, 1):
                h = (h * int(_P) + ord(ch)) & _MASK
                v = freq_bin(count) if i == len(word) and i >= 2 else 0
                if values.get((h, i), -1) < v:
                    values[(h, i)] = v
        keys = _keys(np.array([h for h, _ in values], dtype=np.uint64), np.array([n for _, n in values], np.int64))
        self.index = FeatureIndex(keys)
        self.values = np.full(self.index.size + 1, -1, dtype=np.int64)  # -1: not a prefix
        self.values[self.index.lookup(keys)] = np.array(list(values.values()), dtype=np.int64)

    def spans(self, codes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, 4) int64 for code points (uint64; padding codes beyond Unicode never match): the longest
        word (length >= 2, capped at MAX_SPAN) beginning at, ending at and strictly covering each
        position, and the frequency bin of the longest word beginning there. Written into `out`
        (zeros of that shape) when given."""
        index = self.index
        codes = np.ascontiguousarray(codes, dtype=np.uint64)
        if out is None:
            out = np.zeros((len(codes), 4), np.int64)
        _spans(codes, index.table, index.shift, index.missing, self.values, MAX_SPAN, out)
        return out
