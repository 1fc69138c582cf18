"""New-word discovery: words found in raw text by how their characters behave, with no dictionary and
no labels (topic 65: the words a lexicon lacks are where segmentation fails).

A string of Chinese characters that is a word tends to be
- frequent;
- cohesive: its characters occur together far more often than chance would put them side by side.
  Cohesion is the least pointwise mutual information over the ways to split it in two,
  ``min over a|b of ln(c(w) N / (c(a) c(b)))`` for counts c and N characters of text;
- free: it occurs among many different neighbours. Freedom is the least of its left and right
  branching entropies (the entropy of the character just before, and just after, each occurrence; a
  text edge is a neighbour of its own each time), or of its accessor varieties (Feng et al. 2004).

A fragment of a word (``民共`` inside ``人民共和国``) is cohesive but not free; a frequent pair of
words (``的发展``) is free but not cohesive. `discover` ranks the n-grams of the text by
``ln(count) * freedom * max(cohesion, 0)`` ("combined"), or by any single measure, and leaves out the
words of a known lexicon. The counting is `NgramStats`': exact, vectorised, and in memory that grows
with the strings that reach `min_count`, not with the text.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from dataclasses import dataclass

import numpy as np

from llmlab.core.errors import InputError
from llmlab.text.ngramstats import CHUNK_CHARS, NgramStats, cjk


@dataclass(frozen=True)
class Candidate:
    """An n-gram of the text and what `discover` measures of it."""

    word: str
    count: int
    cohesion: float  # least PMI over the splits in two (nats)
    left_entropy: float  # of the character before each occurrence (nats)
    right_entropy: float
    left_av: int  # distinct characters before its occurrences (text edges each count)
    right_av: int

    def score(self, rank: str = "combined") -> float:
        """The `rank` measure (see `RANKS`)."""
        return RANKS[rank](self)


RANKS = {
    "combined": lambda c: math.log(c.count) * min(c.left_entropy, c.right_entropy) * max(c.cohesion, 0.0),
    "count": lambda c: float(c.count),
    "entropy": lambda c: min(c.left_entropy, c.right_entropy),
    "cohesion": lambda c: c.cohesion,
    "av": lambda c: float(min(c.left_av, c.right_av)),
}


def candidates(texts: Iterable[str], max_n: int = 4, min_count: int = 5,
               chunk_chars: int = CHUNK_CHARS) -> list[Candidate]:
    """Every string of 2 to `max_n` Chinese characters that occurs at least `min_count` times within
    one of `texts` (width-normalised; punctuation and other scripts end a string), with its measures.

    `texts` is read `max_n` + 1 times, `chunk_chars` characters at a time (a list, or anything that can be
    iterated again, such as the lines of a file). pfr1998's train split (1.67 million characters) takes
    about 3 seconds at `max_n` 4, and memory grows with the strings kept."""
    if not isinstance(max_n, int) or max_n < 2:
        raise InputError(f"max_n must be a whole number >= 2, got {max_n!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise InputError(f"min_count must be a whole number >= 1, got {min_count!r}")
    stats = NgramStats(texts, max_n, min_count, inside=cjk, chunk_chars=chunk_chars)
    out: list[Candidate] = []
    for n in range(2, max_n + 1):
        t = stats.table(n)
        count = t["count"].astype(np.float64)
        cohesion = np.full(len(count), np.inf)
        for k in range(1, n):
            pair = stats.counts(t["codes"][:, :k]) * stats.counts(t["codes"][:, k:]).astype(np.float64)
            cohesion = np.minimum(cohesion, np.log(count * stats.n_chars / pair))
        columns = (t["count"], cohesion, t["left_entropy"], t["right_entropy"], t["left_av"], t["right_av"])
        out.extend(Candidate(w, *m) for w, *m in zip(stats.strings(n), *(c.tolist() for c in columns)))
    return out


def discover(texts: Iterable[str], top: int | None = 100, known: Container[str] | None = None,
             rank: str = "combined", max_n: int = 4, min_count: int = 5) -> list[Candidate]:
    """The `top` candidates (None: all) by `rank`, best first (`ranked`), leaving out the words in `known`.

    >>> text = ["咖啡馆里喝咖啡", "他爱咖啡", "咖啡很香", "买咖啡豆"] * 3
    >>> [c.word for c in discover(text, top=1, min_count=3)]
    ['咖啡']
    """
    _check_rank(rank)  # before the counting
    if top is not None and (not isinstance(top, int) or top < 1):
        raise InputError(f"top must be a whole number >= 1, or None for all, got {top!r}")
    found = [c for c in candidates(texts, max_n, min_count) if known is None or c.word not in known]
    return ranked(found, rank)[:top]


def ranked(found: Iterable[Candidate], rank: str = "combined") -> list[Candidate]:
    """`found` best first by `rank`; ties: more frequent, then shorter, then in code-point order."""
    _check_rank(rank)
    return sorted(found, key=lambda c: (-c.score(rank), -c.count, len(c.word), c.word))


def _check_rank(rank: str) -> None:
    if rank not in RANKS:
        raise InputError(f"rank must be one of {', '.join(RANKS)}, got {rank!r}")


__all__ = ["RANKS", "Candidate", "candidates", "discover", "ranked"]
