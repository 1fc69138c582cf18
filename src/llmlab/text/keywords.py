"""Keywords of a segmented text, by TF-IDF or by TextRank: jieba.analyse's two methods.

Candidates are the words of at least two non-space characters that are not stop words (compared in
lower case) and, with `allow_tags`, whose tag is one of those; that is jieba's rule. Ties keep the
order of first occurrence in the text.

- TF-IDF: a candidate's count over the number of candidates, times its inverse document frequency
  ``ln(N / df)`` in a collection of N documents (`IdfTable`). A word the table lacks gets the table's
  median idf, jieba's rule: a word too rare to have been seen is presumed informative. The built-in
  table (`pfr1998_idf`) counts the pfr1998 train split, one document per line.
- TextRank (Mihalcea & Tarau 2004): candidates that occur fewer than `window` tokens apart are linked
  by an undirected edge weighted by how often they do. Scores are the fixed point of
  ``S(v) = (1 - d) + d * sum_u w(u, v) / w(u) * S(u)``, where w(u) is the sum of u's edge weights, found
  by Gauss-Seidel sweeps in sorted word order from ``S = 1 / |V|`` until no score moves more than `tol`.
  They are then scaled as jieba scales them, ``(s - m / 10) / (M - m / 10)`` for the least and greatest
  scores m and M. jieba stops after 10 sweeps: ``tol=0, max_sweeps=10`` gives its scores.
"""

from __future__ import annotations

import functools
import heapq
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import itemgetter

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_text, read_lines
from llmlab.core.jit import interpreted, jit
from llmlab.text.base import normalize_text

# common English function words, as in jieba.analyse; a Chinese function word is one character, and
# one-character words are never candidates
STOP_WORDS = frozenset({"the", "of", "is", "and", "to", "in", "that", "we", "for", "an", "are", "by", "be", "as",
                        "on", "with", "can", "if", "from", "which", "you", "it", "this", "then", "at", "have", "all",
                        "not", "one", "has", "or"})
TEXTRANK_TAGS = ("ns", "n", "vn", "v")  # place names, nouns, verbal nouns, verbs: TextRank's default candidates

Token = str | tuple[str, str]  # a word, or a (word, tag) pair


class IdfTable:
    """word -> inverse document frequency; a word not in the table gets `default` (the median idf
    unless given). A word is looked up as it is, then in its width-normalised form
    (`base.normalize_text`), so the table's ``ＧＤＰ`` answers for ``GDP``.

    >>> t = IdfTable.from_documents([["中国", "经济"], ["中国", "足球"], ["中国"]])
    >>> round(t["中国"], 4), round(t["经济"], 4), t["足球"] == t["经济"], t.default == t["经济"]
    (0.0, 1.0986, True, True)
    """

    def __init__(self, idf: dict[str, float], default: float | None = None):
        bad = next((w for w, v in idf.items() if not _entry_ok(w, v)), None)
        if bad is not None:
            raise InputError(f"idf table: entry {bad!r} must be a non-empty word without white space and a finite "
                             f"idf, got {idf[bad]!r}")
        if default is None:  # jieba's median: the middle value, the upper one of an even count
            default = sorted(idf.values())[len(idf) // 2] if idf else 0.0
        self.idf, self.default = dict(idf), float(default)
        self._folded: dict[str, float] | None = None

    @classmethod
    def from_documents(cls, documents: Iterable[Iterable[str]]) -> IdfTable:
        """``ln(N / df)`` of every word of `documents` (each an iterable of words), df counting the
        documents that hold the word in any width."""
        df: Counter[str] = Counter()
        n = 0
        for doc in documents:
            df.update({normalize_text(w) for w in doc if w and not w.isspace()})
            n += 1
        return cls({w: math.log(n / c) for w, c in df.items()})

    @classmethod
    def read(cls, path: str | os.PathLike) -> IdfTable:
        """A table from jieba's ``idf.txt`` layout: ``word idf`` per line."""
        idf: dict[str, float] = {}
        for i, line in enumerate(read_lines(path, "idf file"), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                value = float(parts[1]) if len(parts) == 2 else math.nan
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InputError(f"idf file {str(path)!r} line {i}: expected `word idf` (a finite number), "
                                 f"got {line!r}")
            idf[parts[0]] = value
        if not idf:
            raise InputError(f"idf file {str(path)!r} holds no `word idf` line")
        return cls(idf)

    def save(self, path: str | os.PathLike) -> None:
        """Write the table as `read` reads it (lowest idf first; values round-trip exactly)."""
        rows = sorted(self.idf.items(), key=lambda kv: (kv[1], kv[0]))
        atomic_write_text(path, "".join(f"{w} {v!r}\n" for w, v in rows))

    def __getitem__(self, word: str) -> float:
        value = self.idf.get(word)
        if value is None:
            if self._folded is None:  # normalised form -> idf; a word already normalised wins its form
                self._folded = {}
                for w, v in self.idf.items():
                    key = normalize_text(w)
                    if key == w or key not in self._folded:
                        self._folded[key] = v
            value = self._folded.get(normalize_text(word), self.default)
        return value

    def __len__(self) -> int:
        return len(self.idf)


def _entry_ok(word: object, value: object) -> bool:
    return (isinstance(word, str) and bool(word) and not _SPACE.search(word)
            and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


_SPACE = re.compile(r"\s")


@functools.lru_cache(maxsize=1)
def pfr1998_idf() -> IdfTable:
    """The built-in table: idf over the lines of the pfr1998 train split (17,535 documents)."""
    from llmlab.data.corpora import pfr1998_words

    return IdfTable.from_documents(pfr1998_words("train"))


def read_stop_words(path: str | os.PathLike) -> set[str]:
    """One stop word per line (blank lines skipped), in lower case as candidates are compared."""
    return {line.strip().lower() for line in read_lines(path, "stop-word file") if line.strip()}


def tfidf_keywords(tokens: Sequence[Token], idf: IdfTable | None = None, top_k: int | None = 20,
                   allow_tags: Iterable[str] | None = None,
                   stop_words: Iterable[str] = STOP_WORDS) -> list[tuple[str, float]]:
    """The `top_k` candidates of `tokens` (None: all) with the highest tf-idf, best first, as (word,
    weight); `idf` defaults to `pfr1998_idf`. `tokens` are words, or (word, tag) pairs when
    `allow_tags` filters them.

    >>> t = IdfTable({"经济": 2.0, "发展": 0.5, "改革": 1.0})
    >>> tfidf_keywords(["经济", "发展", "的", "发展", "改革", "经济"], t)  # 的 is too short; a tie keeps text order
    [('经济', 0.8), ('发展', 0.2), ('改革', 0.2)]
    """
    _check_top_k(top_k)
    idf = pfr1998_idf() if idf is None else idf
    counts = Counter(compress(*_candidates(tokens, allow_tags, stop_words)))
    total, exact = sum(counts.values()), idf.idf
    weights = {}
    for w, c in counts.items():
        value = exact.get(w)
        weights[w] = c * ((idf[w] if value is None else value) / total)  # jieba's order of operations
    return _top(weights, top_k)


def textrank_keywords(tokens: Sequence[Token], top_k: int | None = 20,
                      allow_tags: Iterable[str] | None = TEXTRANK_TAGS, window: int = 5,
                      damping: float = 0.85, tol: float = 1e-9, max_sweeps: int = 200,
                      stop_words: Iterable[str] = STOP_WORDS) -> list[tuple[str, float]]:
    """The `top_k` candidates of `tokens` (None: all) with the highest TextRank scores, best first, as
    (word, weight) with weights scaled into (0, 1]. `tokens` are (word, tag) pairs, or words when
    `allow_tags` is None (no tag filter); every token, candidate or not, takes a place in the window.
    """
    _check_top_k(top_k)
    if not isinstance(window, int) or window < 2:
        raise InputError(f"window must be a whole number >= 2 (a word and the next), got {window!r}")
    if not 0 < damping < 1:
        raise InputError(f"damping must be in (0, 1), got {damping!r}")
    if not (tol >= 0 and isinstance(max_sweeps, int) and max_sweeps >= 1):
        raise InputError(f"tol must be >= 0 and max_sweeps >= 1, got {tol!r} and {max_sweeps!r}")
    words, keep = _candidates(tokens, allow_tags, stop_words)
    pairs: Counter[tuple[str, str]] = Counter()
    for i in compress(range(len(words)), keep):
        pairs.update((words[i], words[j]) for j in range(i + 1, min(i + window, len(words))) if keep[j])
    nodes = list(dict.fromkeys(w for pair in pairs for w in pair))  # first occurrence first
    if not nodes:
        return []
    scores = _rank(nodes, pairs, damping, tol, max_sweeps)
    low, high = min(scores.values()), max(scores.values())
    return _top({w: (s - low / 10) / (high - low / 10) for w, s in scores.items()}, top_k)


def _rank(nodes: list[str], pairs: Counter[tuple[str, str]], damping: float, tol: float,
          max_sweeps: int) -> dict[str, float]:
    """TextRank's fixed point on the undirected graph of `pairs` (an edge (a, b) of weight c counts
    for both ends; a self-loop twice), by Gauss-Seidel sweeps in sorted word order."""
    order = sorted(nodes)
    index = {w: i for i, w in enumerate(order)}
    a = np.array([index[x] for x, _ in pairs], dtype=np.int64)
    b = np.array([index[y] for _, y in pairs], dtype=np.int64)
    c = np.array(list(pairs.values()), dtype=np.float64)
    rows, cols, weights = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([c, c])
    out_sum = np.bincount(rows, weights=weights, minlength=len(order))
    by_row = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(order)))])
    coef = (weights / out_sum[cols])[by_row]  # edge u -> v passes w(u, v) / w(u) of u's score to v
    scores = np.full(len(order), 1.0 / len(order))
    with interpreted(len(rows)):
        _sweeps(indptr, cols[by_row], coef, scores, damping, tol, max_sweeps)
    return {w: float(scores[index[w]]) for w in nodes}


@jit
def _sweeps(indptr: np.ndarray, neighbours: np.ndarray, coef: np.ndarray, scores: np.ndarray, damping: float,
            tol: float, max_sweeps: int) -> int:
    """Gauss-Seidel sweeps of ``S(v) = (1 - d) + d * sum coef * S(u)`` in index order, in place, until a
    sweep moves no score more than `tol` or `max_sweeps` are done; the number of sweeps made."""
    for sweep in range(max_sweeps):
        moved = 0.0
        for v in range(scores.shape[0]):
            s = 0.0
            for k in range(indptr[v], indptr[v + 1]):
                s += coef[k] * scores[neighbours[k]]
            new = (1.0 - damping) + damping * s
            moved = max(moved, abs(new - scores[v]))
            scores[v] = new
        if moved <= tol:
            return sweep + 1
    return max_sweeps


def _candidates(tokens: Sequence[Token], allow_tags: Iterable[str] | None,
                stop_words: Iterable[str]) -> tuple[list[str], list[bool]]:
    """The tokens' words, and whether each is a candidate."""
    if isinstance(tokens, str):  # its characters would be the words, none a candidate
        raise InputError(f"keywords take a text's words (a segmenter's cut), not the text: {tokens!r:.40}")
    tags = frozenset(allow_tags) if allow_tags else None
    stop = stop_words if isinstance(stop_words, (set, frozenset)) else frozenset(stop_words)
    if tags is None and set(map(type, tokens)) <= {str}:
        words, allowed = list(tokens), None
    else:
        words, allowed = [], []
        for k, token in enumerate(tokens):
            if isinstance(token, str):
                if tags is not None:
                    raise InputError(f"allow_tags filters (word, tag) pairs; token {k} is the bare word {token!r}")
                words.append(token)
                allowed.append(True)
            elif isinstance(token, tuple) and len(token) == 2 and all(isinstance(x, str) for x in token):
                words.append(token[0])
                allowed.append(tags is None or token[1] in tags)
            else:
                raise InputError(f"token {k} must be a word or a (word, tag) pair of strings, got {token!r}")
    keep = [len(w.strip()) >= 2 and w.lower() not in stop for w in words]
    return words, keep if allowed is None else [a and b for a, b in zip(allowed, keep)]


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise InputError(f"top_k must be a whole number >= 1, or None for all, got {top_k!r}")


def _top(weights: dict[str, float], top_k: int | None) -> list[tuple[str, float]]:
    """The `top_k` heaviest (word, weight), ties in `weights`' order (both calls equal a stable sort's head)."""
    if top_k is None:
        return sorted(weights.items(), key=itemgetter(1), reverse=True)
    return heapq.nlargest(top_k, weights.items(), key=itemgetter(1))


__all__ = ["STOP_WORDS", "TEXTRANK_TAGS", "IdfTable", "pfr1998_idf", "read_stop_words", "textrank_keywords",
           "tfidf_keywords"]
