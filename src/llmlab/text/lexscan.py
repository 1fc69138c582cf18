"""The word lattice's scans as compiled loops over code points: the DAG of lexicon words and the
unigram best path through it (`llmlab.text.lattice` gives their rules and their Python-facing form).

Every word and every prefix of a word is a 64-bit hash key (`lexmatch.fragment_keys`) in a
`FeatureIndex`; a word's row holds its index, a prefix's -1. A scan extends a fragment one character
at a time from each position and stops at the first that is no prefix, as jieba does with its prefix
table. A hit is checked against the word's own code points before it counts, so a text's fragment
whose hash happened to equal a word's is never taken for it (two lexicon fragments whose hashes
collide, odds about 1e-8 for a million words, would lose one of them).
"""

from __future__ import annotations

import numpy as np

from llmlab.core.jit import interpreted, jit
from llmlab.text.base import unit_spans
from llmlab.text.hashindex import FeatureIndex, probe
from llmlab.text.lexmatch import _P, _key, code_points, fragment_keys

_NONE = -2  # a fragment that is no word's prefix (the index's missing row)


class LexiconIndex:
    """A lexicon's words, their prefixes and their log probabilities, for the compiled scans."""

    def __init__(self, words: list[str], logp: np.ndarray, unknown: float):
        keys, rows = fragment_keys(words, np.arange(len(words), dtype=np.int64), -1)
        self.index = FeatureIndex(keys)
        self.values = np.append(rows, _NONE)  # index row -> word number, -1 (a prefix only) or _NONE (missing)
        lens = np.fromiter(map(len, words), np.int64, len(words))
        self.offsets = np.concatenate([[0], np.cumsum(lens)])
        self.codes = code_points("".join(words))
        self.logp, self.unknown = np.asarray(logp, np.float64), float(unknown)

    def _units(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """For each position of `text` and its end: whether it lies strictly inside a unit of several code
        points (`base.unit_spans`), and the end of the position's one-character (or unit) edge."""
        n = len(text)
        inside = np.zeros(n + 1, np.bool_)
        fallback = np.arange(1, n + 2, dtype=np.int64)
        for a, b in unit_spans(text):
            inside[a + 1:b] = True
            fallback[a] = b
        return inside, fallback

    def best_ends(self, text: str) -> list[int]:
        """The unigram best path of width-normalised `text` as its words' ends (`lattice.best_path`)."""
        n = len(text)
        inside, fallback = self._units(text)
        score, end = np.zeros(n + 1), np.zeros(n + 1, np.int64)
        with interpreted(n):
            _best_path(code_points(text), self.index.table, self.index.shift, self.index.missing, self.values,
                       self.codes, self.offsets, self.logp, self.unknown, inside, fallback, score, end)
        out, i, ends = [], 0, end.tolist()
        while i < n:
            i = ends[i]
            out.append(i)
        return out

    def dag(self, text: str) -> tuple[list[int], list[int]]:
        """`lattice.build_dag` of width-normalised `text` as (ends, offsets): position i's ends are
        ``ends[offsets[i]:offsets[i + 1]]``."""
        n = len(text)
        inside, fallback = self._units(text)
        ends, counts = np.zeros(n * 8 + 8, np.int64), np.zeros(n, np.int64)
        with interpreted(n):
            total = _dag(code_points(text), self.index.table, self.index.shift, self.index.missing, self.values,
                         self.codes, self.offsets, inside, fallback, ends, counts)
            if total > len(ends):  # more than 8 words start at each position on average: run again with room
                ends = np.zeros(total, np.int64)
                _dag(code_points(text), self.index.table, self.index.shift, self.index.missing, self.values,
                     self.codes, self.offsets, inside, fallback, ends, counts)
        return ends[:total].tolist(), np.concatenate([[0], np.cumsum(counts)]).tolist()


@jit
def _word_at(codes: np.ndarray, i: int, j: int, table: np.ndarray, shift: np.uint64, missing: int,
             values: np.ndarray, words: np.ndarray, offsets: np.ndarray) -> int:
    """The number of the lexicon word ``codes[i:j]``, or -1 when it is none."""
    h = np.uint64(0)
    for k in range(i, j):
        h = h * _P + codes[k]
    v = values[probe(table, shift, _key(h, j - i), missing)]
    if v >= 0 and _same(codes, i, j, words, offsets, v):
        return v
    return -1


@jit
def _same(codes: np.ndarray, i: int, j: int, words: np.ndarray, offsets: np.ndarray, v: int) -> bool:
    """Whether ``codes[i:j]`` is word `v` (its code points ``words[offsets[v]:offsets[v + 1]]``)."""
    a = offsets[v]
    if offsets[v + 1] - a != j - i:
        return False
    for k in range(j - i):  # noqa: SIM110 (numba compiles no generator expression)
        if words[a + k] != codes[i + k]:
            return False
    return True


@jit
def _best_path(codes: np.ndarray, table: np.ndarray, shift: np.uint64, missing: int, values: np.ndarray,
               words: np.ndarray, offsets: np.ndarray, logp: np.ndarray, unknown: float, inside: np.ndarray,
               fallback: np.ndarray, score: np.ndarray, end: np.ndarray) -> None:
    """Right to left, ``score[i], end[i]`` = the best (log probability, end) over the words from i: the
    lexicon's (not ending inside a unit), and the fallback edge where none is or it spans a unit. Ties
    go to the longer word, as Python's max over (score, end) pairs."""
    n = codes.shape[0]
    for i in range(n - 1, -1, -1):
        if inside[i]:  # no path reaches it
            score[i], end[i] = -np.inf, n
            continue
        best, best_end = 0.0, -1
        h = np.uint64(0)
        for j in range(i + 1, n + 1):
            h = h * _P + codes[j - 1]
            v = values[probe(table, shift, _key(h, j - i), missing)]
            if v == _NONE:  # no word starts with this fragment
                break
            if v >= 0 and not inside[j] and _same(codes, i, j, words, offsets, v):
                cand = logp[v] + score[j]
                if best_end < 0 or cand > best or (cand == best and j > best_end):
                    best, best_end = cand, j
        f = fallback[i]
        if best_end < 0 or f != i + 1:  # the edge build_dag adds (scoring a unit twice is harmless)
            w = _word_at(codes, i, f, table, shift, missing, values, words, offsets)
            cand = (logp[w] if w >= 0 else unknown) + score[f]
            if best_end < 0 or cand > best or (cand == best and f > best_end):
                best, best_end = cand, f
        score[i], end[i] = best, best_end


@jit
def _dag(codes: np.ndarray, table: np.ndarray, shift: np.uint64, missing: int, values: np.ndarray,
         words: np.ndarray, offsets: np.ndarray, inside: np.ndarray, fallback: np.ndarray, ends: np.ndarray,
         counts: np.ndarray) -> int:
    """Each position's ends, in increasing order, into `ends` (as far as it has room) and their number into
    `counts`; the total number of ends."""
    n = codes.shape[0]
    total = 0
    for i in range(n):
        if inside[i]:
            counts[i] = 0
            continue
        f = fallback[i]
        first, has_f = total, False
        h = np.uint64(0)
        for j in range(i + 1, n + 1):
            h = h * _P + codes[j - 1]
            v = values[probe(table, shift, _key(h, j - i), missing)]
            if v == _NONE:
                break
            if v >= 0 and not inside[j] and _same(codes, i, j, words, offsets, v):
                if total < ends.shape[0]:
                    ends[total] = j
                total += 1
                has_f = has_f or j == f
        if not has_f and (f != i + 1 or total == first):  # the position's own edge, in order among the ends
            if total < ends.shape[0]:  # (else this pass only counts: all of the position's ends fit so far)
                k = total
                while k > first and ends[k - 1] > f:
                    ends[k] = ends[k - 1]
                    k -= 1
                ends[k] = f
            total += 1
        counts[i] = total - first
    return total
