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
MAX_SPAN = 6


@jit
def _key(h: np.uint64, length: int) -> np.uint64:
    """Index key of a fragment from its running hash and length (never 0)."""
    k = h * _K1 + np.uint64(length) * _K2
    k ^= k >> np.uint64(29)
    return k | np.uint64(1)


def _keys(hashes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`_key` of each (hash, length), in numpy (an array product wraps round silently, as `_key`'s does)."""
    k = hashes * _K1 + lengths.astype(np.uint64) * _K2
    k ^= k >> np.uint64(29)
    return k | np.uint64(1)


def code_points(text: str) -> np.ndarray:
    """The code points of `text` as uint64, one per character as Python indexes it (not normalised)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


def freq_bins(counts: np.ndarray) -> np.ndarray:
    """1 for counts below 10, 2 below 100, else 3.

    >>> freq_bins(np.array([1, 9, 10, 99, 100, 2**53])).tolist()
    [1, 1, 2, 2, 3, 3]
    """
    return 1 + (counts >= 10).astype(np.int64) + (counts >= 100)


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


def fragment_keys(words: list[str], values: np.ndarray, fill: int, min_len: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The sorted keys (`_key`) of every word and every proper prefix of one, each with the largest value
    it gets: a word of `min_len` or more characters its entry of `values` (int64), anything else `fill`.
    In numpy, one pass per prefix length, a million words in well under a second.

    >>> keys, values = fragment_keys(["中国", "中"], np.array([1, 3]), 0, min_len=2)
    >>> len(keys), sorted(values.tolist())  # "中" (a word of one character, and a prefix) and "中国"
    (2, [0, 1])
    """
    lens = np.fromiter(map(len, words), np.int64, len(words))
    codes = code_points("".join(words))
    starts = np.cumsum(lens) - lens
    alive, h = np.arange(len(words)), np.zeros(len(words), np.uint64)
    keys, out = [], []
    for n in range(1, int(lens.max(initial=0)) + 1):
        longer = lens[alive] >= n
        alive, h = alive[longer], h[longer]
        h = h * _P + codes[starts[alive] + n - 1]  # the running hash the scans compute
        keys.append(_keys(h, np.full(len(h), n)))
        out.append(np.where(lens[alive] == n, values[alive], fill) if n >= min_len else np.full(len(h), fill))
    keys, out = np.concatenate([np.zeros(0, np.uint64), *keys]), np.concatenate([np.zeros(0, np.int64), *out])
    order = np.lexsort((out, keys))  # by key, then value: the last of each key holds its largest value
    keys, out = keys[order], out[order]
    last = np.ones(len(keys), bool)
    last[:-1] = keys[1:] != keys[:-1]
    return keys[last], out[last]


def _span_fragments(counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """`SpanIndex`'s keys and values: a word of two or more characters has its frequency bin, every
    other fragment 0 (counts are at most 2**53, exact as floats)."""
    bins = freq_bins(np.fromiter(counts.values(), np.float64, len(counts)))
    return fragment_keys(list(counts), bins, 0, min_len=2)


class SpanIndex:
    """Longest-lexicon-word features for padded code arrays.

    >>> idx = SpanIndex({"中国": 1, "中国人": 2})
    >>> from llmlab.text.features import codes_of
    >>> idx.spans(codes_of("中国人")).tolist()
    [[3, 0, 0, 1], [0, 2, 3, 0], [0, 3, 0, 0]]
    """

    def __init__(self, counts: dict[str, int]):
        keys, values = _span_fragments(counts)
        self.index = FeatureIndex(keys)
        self.values = np.append(values, -1)  # row r (keys sorted) -> bin or 0; the missing row: -1, not a prefix

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
