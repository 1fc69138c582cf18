"""The word lattice's scans as compiled loops over code points: the DAG of lexicon words, the unigram
best path through it, and the best path under a bigram model (`llmlab.text.lattice` gives their rules,
their Python-facing form and, for the bigram path, the Python DP that `BigramIndex` is tested against).

Every word and every prefix of a word is a 64-bit hash key (`lexmatch.fragment_keys`) in a
`FeatureIndex`; a word's row holds its index, a prefix's -1. A scan extends a fragment one character
at a time from each position and stops at the first that is no prefix, as jieba does with its prefix
table. A hit is checked against the word's own code points before it counts, so a text's fragment
whose hash happened to equal a word's is never taken for it (two lexicon fragments whose hashes
collide, odds about 1e-8 for a million words, would lose one of them).
"""

from __future__ import annotations

import math

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
        self.words = words  # word number -> word

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
        ends, counts, _ = self.edges(text)
        return ends.tolist(), np.concatenate([[0], np.cumsum(counts)]).tolist()

    def edges(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The DAG's edges by start, then end, as arrays: their ends, the number from each position, and
        the lexicon word each one is (-1: a one-character or unit edge of no word)."""
        n = len(text)
        inside, fallback = self._units(text)
        ends, counts, ids = np.zeros(n * 8 + 8, np.int64), np.zeros(n, np.int64), np.zeros(n * 8 + 8, np.int64)
        codes = code_points(text)
        with interpreted(n):
            total = _dag(codes, self.index.table, self.index.shift, self.index.missing, self.values,
                         self.codes, self.offsets, inside, fallback, ends, counts, ids)
            if total > len(ends):  # more than 8 words start at each position on average: run again with room
                ends, ids = np.zeros(total, np.int64), np.zeros(total, np.int64)
                _dag(codes, self.index.table, self.index.shift, self.index.missing, self.values,
                     self.codes, self.offsets, inside, fallback, ends, counts, ids)
        return ends[:total], counts, ids[:total]


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
         counts: np.ndarray, ids: np.ndarray) -> int:
    """Each position's ends, in increasing order, into `ends` and their words into `ids` (as far as they
    have room), and their number into `counts`; the total number of ends."""
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
                    ends[total], ids[total] = j, v
                total += 1
                has_f = has_f or j == f
        if not has_f and (f != i + 1 or total == first):  # the position's own edge, in order among the ends
            if total < ends.shape[0]:  # (else this pass only counts: all of the position's ends fit so far)
                k = total
                while k > first and ends[k - 1] > f:
                    ends[k], ids[k] = ends[k - 1], ids[k - 1]
                    k -= 1
                ends[k] = f
                ids[k] = _word_at(codes, i, f, table, shift, missing, values, words, offsets)
            total += 1
        counts[i] = total - first
    return total


class BigramIndex:
    """An interpolated bigram model (`lattice.BigramSegmenter`) for the compiled best path, over the word
    numbers of a `LexiconIndex`: ``P(w | v) = a * c(v, w) / c(v) + (1 - a) * P(w)``.

    Words are numbered as the lexicon index numbers them, then the words of the counts that are not in
    the lexicon, then `bos`, `eos`, and last any other word (a one-character edge of no word). Each pair
    (v, w) with a count is a hash key ``v * width + w + 1``. Each word's P(w) is taken with `math.exp`,
    and the kernel computes the rest in the order `BigramSegmenter.logp` does, so the scores are the same
    floats (the tests compare them)."""

    def __init__(self, scan: LexiconIndex, following: dict[str, dict[str, int]], weight: float, eos_p: float,
                 bos: str, eos: str):
        number = {w: k for k, w in enumerate(scan.words)}
        extra = sorted({u for v, ws in following.items() for u in (v, *ws)} - number.keys() - {bos, eos})
        for w in extra:
            number[w] = len(number)
        self.scan, self.extra = scan, {w: number[w] for w in extra}
        self.bos, self.eos, self.other = len(number), len(number) + 1, len(number) + 2
        number[bos], number[eos] = self.bos, self.eos
        self.width = self.other + 1
        unknown = math.exp(scan.unknown)
        self.p_uni = np.array([*map(math.exp, scan.logp.tolist()), *[unknown] * len(extra), 0.0, eos_p, unknown])
        self.history = np.zeros(self.width)
        keys, counts = [], []
        for v, ws in following.items():
            base = number[v] * self.width + 1
            self.history[number[v]] = sum(ws.values())
            keys.extend(base + number[w] for w in ws)
            counts.extend(ws.values())
        order = np.argsort(np.array(keys, np.uint64), kind="stable")
        self.pairs = FeatureIndex(np.array(keys, np.uint64)[order])
        self.counts = np.array(counts, np.float64)[order]  # row r's count (the index's rows are sorted keys)
        self.weight = float(weight)

    def best_ends(self, text: str) -> tuple[list[int], float]:
        """The best path of width-normalised `text` under the model (`lattice.bigram_best_path`'s), as its
        words' ends, and its log probability (from ``<s>`` to ``</s>``, summed left to right)."""
        n = len(text)
        if n == 0:
            with interpreted(1):
                return [], _pair_logp(self.bos, self.eos, self.pairs.table, self.pairs.shift, self.pairs.missing,
                                      self.counts, self.history, self.p_uni, self.weight, self.width)
        ends, counts, ids = self.scan.edges(text)
        starts = np.repeat(np.arange(n), counts)
        if self.extra:  # edges of no lexicon word may be words of the counts
            for e in np.flatnonzero(ids < 0).tolist():
                ids[e] = self.extra.get(text[starts[e]:ends[e]], self.other)
        else:
            ids[ids < 0] = self.other
        back, top = np.empty(len(ends), np.int64), np.zeros(1)
        with interpreted(len(ends)):
            e = _bigram_path(n, starts, ends, ids, self.pairs.table, self.pairs.shift, self.pairs.missing,
                             self.counts, self.history, self.p_uni, self.weight, self.width, self.bos, self.eos,
                             back, top)
        out = []
        while e >= 0:
            out.append(int(ends[e]))
            e = back[e]
        return out[::-1], float(top[0])


@jit
def _pair_logp(v: int, w: int, table: np.ndarray, shift: np.uint64, missing: int, counts: np.ndarray,
               history: np.ndarray, p_uni: np.ndarray, weight: float, width: int) -> float:
    """``log P(w | v)`` of word numbers (`BigramIndex`)."""
    p_bi = 0.0
    if history[v] > 0:
        row = probe(table, shift, np.uint64(v * width + w + 1), missing)
        if row != missing:
            p_bi = counts[row] / history[v]
    return math.log(weight * p_bi + (1.0 - weight) * p_uni[w])


@jit
def _bigram_path(n: int, starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, table: np.ndarray,
                 shift: np.uint64, missing: int, counts: np.ndarray, history: np.ndarray, p_uni: np.ndarray,
                 weight: float, width: int, bos: int, eos: int, back: np.ndarray, top: np.ndarray) -> int:
    """Left to right over the edges (by start, then end): each edge's best score over the paths that end
    in it, and in `back` the edge before it (-1: the sentence's first word); returns the last word's edge
    and puts the best path's score in ``top[0]``.
    An edge's candidates come in order of the previous word's start, and only a higher score replaces one
    (the first found keeps a tie), as in `lattice.bigram_best_path`."""
    m = ends.shape[0]
    first_out = np.zeros(n + 1, np.int64)  # edges from position i: first_out[i]:first_out[i + 1]
    first_in = np.zeros(n + 2, np.int64)  # edges into position j: incoming[first_in[j]:first_in[j + 1]]
    for e in range(m):
        first_out[starts[e] + 1] += 1
        first_in[ends[e] + 1] += 1
    for p in range(n):
        first_out[p + 1] += first_out[p]
    for p in range(n + 1):
        first_in[p + 1] += first_in[p]
    incoming, filled = np.empty(m, np.int64), first_in.copy()
    for e in range(m):  # by start: each position's incoming edges in order of their starts
        incoming[filled[ends[e]]] = e
        filled[ends[e]] += 1
    score = np.full(m, -np.inf)
    reached = np.zeros(m, np.bool_)
    for e in range(first_out[0], first_out[1]):  # the first words, after <s>
        score[e] = _pair_logp(bos, ids[e], table, shift, missing, counts, history, p_uni, weight, width)
        back[e], reached[e] = -1, True
    for i in range(1, n):
        for k in range(first_in[i], first_in[i + 1]):
            prev = incoming[k]
            if not reached[prev]:
                continue
            s, v = score[prev], ids[prev]
            for e in range(first_out[i], first_out[i + 1]):
                cand = s + _pair_logp(v, ids[e], table, shift, missing, counts, history, p_uni, weight, width)
                if not reached[e] or cand > score[e]:
                    score[e], back[e], reached[e] = cand, prev, True
    last = -1
    for k in range(first_in[n], first_in[n + 1]):
        e = incoming[k]
        if reached[e]:
            cand = score[e] + _pair_logp(ids[e], eos, table, shift, missing, counts, history, p_uni, weight, width)
            if last < 0 or cand > top[0]:
                last, top[0] = e, cand
    return last
