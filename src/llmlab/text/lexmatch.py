"""Lexicon matches for whole arrays of characters at once: the numpy twin of
`llmlab.text.features.lexicon_spans`.

Every word and every prefix of a word is stored as a 64-bit hash of its code points in a
`FeatureIndex`; a prefix carries value 0, a word its frequency bin (1-3). Matching grows all
fragments one character per round, dropping the ones that are no prefix, so the work follows the
number of live prefixes (about two per character), as in the scalar scan.
"""

from __future__ import annotations

import numpy as np

from llmlab.text.hashindex import FeatureIndex

_P = np.uint64(0x100000001B3)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_MASK = (1 << 64) - 1
MAX_SPAN = 6
SCALAR_BELOW = 4096  # shorter inputs take the plain dict scan: per-round numpy calls cost more there


def _key(h: np.ndarray, length: int | np.ndarray) -> np.ndarray:
    """Index key of a fragment from its running hash and length (never 0)."""
    k = h * _K1 + np.asarray(length, dtype=np.uint64) * _K2
    k ^= k >> np.uint64(29)
    return k | np.uint64(1)


def freq_bin(count: int) -> int:
    """1 for counts below 10, 2 below 100, else 3."""
    return 1 if count < 10 else (2 if count < 100 else 3)


def lexicon_spans(text: str, prefixes: dict[str, int], max_span: int = 6) -> np.ndarray:
    """The scalar twin of `SpanIndex.spans` (its path for short inputs): (n, 4) int array of the
    longest lexicon word (length >= 2, capped) beginning at, ending at, and strictly covering each
    position, and a frequency bin (0-3) of the longest word beginning there.

    >>> lexicon_spans("中国人", {"中": 0, "中国": 1, "中国人": 2}).tolist()
    [[3, 0, 0, 1], [0, 2, 3, 0], [0, 3, 0, 0]]
    """
    n = len(text)
    begin, end, mid, freq = [0] * n, [0] * n, [0] * n, [0] * n
    get = prefixes.get
    for i in range(n - 1):
        j = i + 2  # single characters never count, and a 2-character prefix implies the 1-character one
        c = get(text[i:j])
        while c is not None:
            if c:
                v = j - i if j - i < max_span else max_span
                begin[i] = v
                freq[i] = 1 if c < 10 else (2 if c < 100 else 3)
                if v > end[j - 1]:
                    end[j - 1] = v
                for k in range(i + 1, j - 1):
                    if v > mid[k]:
                        mid[k] = v
            if j == n:
                break
            j += 1
            c = get(text[i:j])
    return np.array([begin, end, mid, freq], dtype=np.int64).T.reshape(n, 4)


class SpanIndex:
    """Longest-lexicon-word features for padded code arrays.

    >>> idx = SpanIndex({"中国": 1, "中国人": 2})
    >>> from llmlab.text.features import codes_of
    >>> idx.spans(codes_of("中国人")).tolist()
    [[3, 0, 0, 1], [0, 2, 3, 0], [0, 3, 0, 0]]
    """

    def __init__(self, counts: dict[str, int]):
        values: dict[tuple[int, int], int] = {}
        self.prefixes: dict[str, int] = {}  # word -> count, proper prefix -> 0 (for the scalar scan)
        for word, count in counts.items():
            self.prefixes[word] = count
            for i in range(1, len(word)):
                self.prefixes.setdefault(word[:i], 0)
            h = 0
            for i, ch in enumerate(word, 1):
                h = (h * int(_P) + ord(ch)) & _MASK
                v = freq_bin(count) if i == len(word) and i >= 2 else 0
                if values.get((h, i), -1) < v:
                    values[(h, i)] = v
        hs = np.array([h for h, _ in values], dtype=np.uint64)
        lens = np.array([n for _, n in values], dtype=np.uint64)
        keys = _key(hs, lens) if len(values) else np.zeros(0, dtype=np.uint64)
        self.index = FeatureIndex(keys)
        self.values = np.full(self.index.size + 1, -1, dtype=np.int64)  # -1: not a prefix
        self.values[self.index.lookup(keys)] = np.array(list(values.values()), dtype=np.int64)

    def spans(self, codes: np.ndarray) -> np.ndarray:
        """(n, 4) int64: longest word (length >= 2, capped at MAX_SPAN) beginning at, ending at and
        strictly covering each position, and the frequency bin of the longest word beginning there."""
        n = len(codes)
        if n < SCALAR_BELOW:
            real = np.where(codes < 0x110000, codes, 0x20).astype(np.uint32)  # padding -> space, never in a word
            return lexicon_spans(real.tobytes().decode("utf-32-le", "surrogatepass"), self.prefixes, MAX_SPAN)
        out = np.zeros((4, n), dtype=np.int64)
        begin, end, mid, freq = out
        active = np.arange(n)
        h = codes.astype(np.uint64)
        length = 1
        while active.size:
            val = self.values[self.index.lookup(_key(h, length))]
            if length >= 2:
                hit = active[val > 0]
                v = min(length, MAX_SPAN)
                begin[hit] = v
                freq[hit] = val[val > 0]
                end[hit + length - 1] = v
                if length >= 3:
                    mid[(hit[:, None] + np.arange(1, length - 1)[None, :]).ravel()] = v
            live = val >= 0
            active, h = active[live], h[live]
            nxt = active + length
            ok = nxt < n
            active, h = active[ok], h[ok] * _P + codes[nxt[ok]].astype(np.uint64)
            length += 1
        return out.T
