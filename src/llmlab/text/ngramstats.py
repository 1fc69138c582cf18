"""Exact statistics of the character n-grams of a text collection: how often each occurs, how many
distinct characters come just before and just after it (accessor variety), and the entropy of those
neighbours (branching entropy). New-word discovery (`newwords`) and the perceptron's pseudo-lexicon
(`accessor`) read them.

An n-gram lies within one text, and its characters all pass an `inside` test (Chinese characters, say,
or anything but punctuation). A text edge is a neighbour of its own each time: an occurrence at the
start of a text adds one to the left variety, and is a context seen once in the left entropy.

Memory grows with the n-grams kept, not with the text, so a corpus of any length can be counted:
- Level by level (Apriori): an n-gram can occur `min_count` times only where its first n - 1 and its
  last n - 1 characters each do, so the pass for level n looks only at such positions, and what it
  drops could never have been kept.
- The texts are read in chunks, once per level and once more (the pass for level n + 1 also gathers
  the neighbours of the kept n-grams), so they must be a list or anything that can be iterated again;
  a one-time iterator is read into a list first.
- Counts from the chunks merge exactly by sorting integer keys: an n-gram's key is the rank of its
  first n - 1 characters among the kept (n - 1)-grams, times 2^21, plus the code point of its last,
  which fits any n.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.progress import progress
from llmlab.text.features import codes_of

SEP = -1  # code before, between and after the texts
_BASE = 1 << 21  # above every code point
CHUNK_CHARS = 1 << 20  # characters of text per chunk


def joined_codes(texts: list[str]) -> np.ndarray:
    """Width-normalised code points of `texts` (int64), with `SEP` before, between and after them.

    >>> joined_codes(["中Ａ", "", "b"]).tolist()
    [-1, 20013, 65, -1, -1, 98, -1]
    """
    lens = np.array([len(t) for t in texts], dtype=np.int64)
    n = int(lens.sum())
    c = np.full(n + len(texts) + 1, SEP, dtype=np.int64)
    c[np.arange(n) + 1 + np.repeat(np.arange(len(texts)), lens)] = codes_of("".join(texts)).astype(np.int64)
    return c


def cjk(codes: np.ndarray) -> np.ndarray:
    """True for the code points of Chinese characters (the CJK unified ideographs and extension A)."""
    return ((codes >= 0x3400) & (codes <= 0x4DBF)) | ((codes >= 0x4E00) & (codes <= 0x9FFF))


def _chunks(texts: Iterable[str], chunk_chars: int) -> Iterator[tuple[np.ndarray, int]]:
    """`joined_codes` of successive runs of whole texts of about `chunk_chars` characters, and their length."""
    batch: list[str] = []
    size = 0
    for t in texts:
        if not isinstance(t, str):
            raise InputError(f"texts must be strings, got {type(t).__name__}")
        batch.append(t)
        size += len(t)
        if size >= chunk_chars:
            yield joined_codes(batch), size
            batch, size = [], 0
    if batch:
        yield joined_codes(batch), size


class _Tally:
    """Occurrences of int64 keys, added a chunk at a time: sorted distinct keys and their counts. Chunks
    are merged once they outgrow what is merged, so each key is sorted O(log chunks) times."""

    def __init__(self):
        self.keys = np.zeros(0, np.int64)
        self.counts = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._size = 0

    def add(self, keys: np.ndarray) -> None:
        k, n = np.unique(keys, return_counts=True)
        self._pending.append((k, n.astype(np.int64)))
        self._size += len(k)
        if self._size > max(len(self.keys), CHUNK_CHARS):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys, *(k for k, _ in self._pending)])
        counts = np.concatenate([self.counts, *(n for _, n in self._pending)])
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        firsts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else keys
        self.keys, self.counts = keys[firsts], np.add.reduceat(counts, firsts)
        self._pending, self._size = [], 0

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        self._merge()
        return self.keys, self.counts


def _lookup(table: np.ndarray, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Index of each valid key in the sorted `table`, -1 where it is not valid or not there."""
    i = np.searchsorted(table, keys)
    hit = valid & (i < len(table))
    hit[hit] = table[i[hit]] == keys[hit]
    return np.where(hit, i, -1)


class NgramStats:
    """Every n-gram of `texts` (1 <= n <= `max_n`) that occurs at least `min_count` times, its characters
    width-normalised and each passing `inside` (a test on an array of code points; None: any character).

    >>> s = NgramStats(["甲中非乙", "丙中非丁", "戊中非"], max_n=2, min_count=3)
    >>> s.strings(2), s.table(2)["left_av"].tolist(), s.table(2)["right_av"].tolist()  # a text's end counts
    (['中非'], [3], [3])
    """

    def __init__(self, texts: Iterable[str], max_n: int, min_count: int = 1,
                 inside: Callable[[np.ndarray], np.ndarray] | None = None, chunk_chars: int = CHUNK_CHARS):
        if isinstance(texts, str):  # each character would be a text
            raise InputError("texts are a list of strings (lines, documents), not one string")
        for name, value in (("max_n", max_n), ("min_count", min_count), ("chunk_chars", chunk_chars)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(texts, Iterator):  # read once: every level reads the texts again
            texts = list(texts)
        self.max_n, self.min_count = max_n, min_count
        self.n_chars = 0  # characters of all the texts
        self._keys: list[np.ndarray] = []  # level n - 1: the kept n-grams' keys, sorted
        self._tables: list[dict[str, np.ndarray]] = []  # level n - 1: their statistics, in key order
        for n in range(1, max_n + 2):  # pass n counts the n-grams and the neighbours of the (n - 1)-grams
            counts, left, right = _Tally(), _Tally(), _Tally()
            edges = np.zeros((2, len(self._keys[-1]) if n > 1 else 0), np.int64)
            bar = progress(total=self.n_chars or None, desc=f"n-grams, pass {n}/{max_n + 1}", unit="char",
                           unit_scale=True)
            for c, size in _chunks(texts, chunk_chars):
                self.n_chars += size if n == 1 else 0
                ok = (c != SEP) & (inside(c) if inside is not None else True)
                prev = self._ids(c, ok, n - 1)
                if n <= max_n:
                    keys, valid = self._extend(c, ok, prev, n)
                    counts.add(keys[valid])
                if n > 1:
                    self._neighbours(c, prev, n - 1, (left, right), edges)
                bar.update(size)
            bar.close()
            if n > 1:
                self._tables[-1].update(self._varieties(self._tables[-1]["count"], left, right, edges))
            if n <= max_n:
                keys, count = counts.total()
                keep = count >= min_count
                self._add_level(keys[keep], count[keep])

    def _add_level(self, keys: np.ndarray, count: np.ndarray) -> None:
        if not self._keys:
            codes = keys[:, None]
        else:
            codes = np.column_stack([self._tables[-1]["codes"][keys // _BASE], keys % _BASE])
        self._keys.append(keys)
        self._tables.append({"codes": codes, "count": count})

    @staticmethod
    def _extend(c: np.ndarray, ok: np.ndarray, prev: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Key of the n-gram at each position (len(c) - n + 1) given the (n - 1)-gram ids `prev`, and where
        it may be kept: its first and last n - 1 characters are kept (n = 1: the character passes)."""
        if prev is None:
            return c, ok
        return prev[:-1] * _BASE + c[n - 1:], (prev[:-1] >= 0) & (prev[1:] >= 0)

    def _ids(self, c: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray | None:
        """Rank among the kept n-grams of the n-gram at each position of `c`, -1 where none is kept."""
        ids = None
        for k in range(1, n + 1):
            keys, valid = self._extend(c, ok, ids, k)
            ids = _lookup(self._keys[k - 1], keys, valid)
        return ids

    @staticmethod
    def _neighbours(c: np.ndarray, ids: np.ndarray, n: int, sides: tuple[_Tally, _Tally], edges: np.ndarray) -> None:
        """Tally each kept n-gram's (id, character) before and after it; count text edges apart."""
        p = np.flatnonzero(ids >= 0)  # c[p - 1] and c[p + n] exist: c starts and ends with SEP
        i = ids[p]
        for side, (tally, ctx) in enumerate(zip(sides, (c[p - 1], c[p + n]))):
            edge = ctx == SEP
            tally.add(i[~edge] * _BASE + ctx[~edge])
            edges[side] += np.bincount(i[edge], minlength=edges.shape[1])

    @staticmethod
    def _varieties(count: np.ndarray, left: _Tally, right: _Tally, edges: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, tally, edge in (("left", left, edges[0]), ("right", right, edges[1])):
            keys, runs = tally.total()
            ids = keys // _BASE
            p = runs / count[ids]
            entropy = np.bincount(ids, weights=-p * np.log(p), minlength=len(count))
            out[f"{name}_av"] = np.bincount(ids, minlength=len(count)) + edge
            out[f"{name}_entropy"] = entropy + edge * np.log(count) / count  # each edge: p = 1 / count
        return out

    def table(self, n: int) -> dict[str, np.ndarray]:
        """The kept n-grams in code-point order: ``codes`` (one row of n code points each), ``count``,
        ``left_av`` and ``right_av``, ``left_entropy`` and ``right_entropy`` (nats)."""
        if not 1 <= n <= self.max_n:
            raise InputError(f"n must be in 1..{self.max_n}, got {n!r}")
        return self._tables[n - 1]

    def strings(self, n: int) -> list[str]:
        """The kept n-grams as strings, in `table` order."""
        text = self.table(n)["codes"].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        return [text[i : i + n] for i in range(0, len(text), n)]

    def counts(self, codes: np.ndarray) -> np.ndarray:
        """How often each row of `codes` (code points of k-grams, k <= max_n) occurs; 0 where below
        `min_count` or not passing `inside`."""
        ids = None
        for k in range(codes.shape[1]):
            keys = codes[:, k] if ids is None else ids * _BASE + codes[:, k]
            ids = _lookup(self._keys[k], keys, np.ones(len(codes), bool) if ids is None else ids >= 0)
        return np.where(ids >= 0, self._tables[codes.shape[1] - 1]["count"][ids], 0)


__all__ = ["CHUNK_CHARS", "SEP", "NgramStats", "cjk", "joined_codes"]
