"""Smoothing: from n-gram counts to the per-level numbers every model is scored with.

Every model, trained or read from ARPA, is one recursion over levels k = 1..n (level k predicts with a
context of k-1 words), starting from ``base`` (uniform over the predictable vocabulary):

    interpolated level:  p_k(w | h) = num_k[h w] + bow_{k-1}[h] * p_{k-1}(w | h')
    backoff level:       p_k(w | h) = num_k[h w]  if h w was seen,  else  bow_{k-1}[h] * p_{k-1}(w | h')

An unseen context h passes p_{k-1} through unchanged. ``num`` of an unseen n-gram is 0. With the
numbers below every p_k sums to one over the vocabulary, for every context (the tests check it).

Discounts (Chen & Goodman 1998): D = n1 / (n1 + 2 n2) from the counts-of-counts n_r of each order;
modified Kneser-Ney uses three, D_r = r - (r + 1) Y n_{r+1} / n_r for r = 1, 2, 3+ with that Y.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from llmlab.classic.ngram_counts import NgramTables, per_context
from llmlab.classic.vocab import BOS_ID

log = logging.getLogger(__name__)

SMOOTHINGS = ("mle", "add_k", "absolute", "kn", "modified_kn", "katz")


@dataclass(frozen=True)
class NgramParams:
    base: np.ndarray  # (V,) level-0 distribution: uniform over all ids but <s>
    num: tuple[np.ndarray, ...]  # num[k], k = 1..n: per order-k n-gram (num[0] unused, empty)
    bow: tuple[np.ndarray, ...]  # bow[k], k = 0..n-1: per order-k context
    interpolate: tuple[bool, ...]  # interpolate[k], k = 1..n (index 0 unused)


def uniform_base(vocab_size: int) -> np.ndarray:
    """1/(V-1) for every id but ``<s>``, which is never predicted.

    >>> uniform_base(5).tolist()
    [0.25, 0.0, 0.25, 0.25, 0.25]
    """
    base = np.full(vocab_size, 1.0 / (vocab_size - 1))
    base[BOS_ID] = 0.0
    return base


def count_of_counts(counts: np.ndarray, r_max: int = 4) -> np.ndarray:
    """n_r for r = 0..r_max (n_0 unused).

    >>> count_of_counts(np.array([1, 1, 2, 5, 0]), 3).tolist()
    [0, 2, 1, 0]
    """
    c = counts[counts > 0]
    return np.bincount(np.minimum(c, r_max + 1), minlength=r_max + 2)[: r_max + 1]


def kn_discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2), or 0.5 when a count-of-count is zero (tiny corpora).

    >>> kn_discount(np.array([1, 1, 1, 2]))
    0.6
    """
    n = count_of_counts(counts, 2)
    return float(n[1] / (n[1] + 2 * n[2])) if n[1] > 0 and n[2] > 0 else 0.5


def modified_kn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """(D1, D2, D3+) of Chen & Goodman; each out-of-range one falls back to the single KN discount.

    >>> modified_kn_discounts(np.array([1] * 8 + [2] * 4 + [3] * 2 + [4]))
    (0.5, 1.25, 2.0)
    """
    n = count_of_counts(counts, 4)
    d = kn_discount(counts)
    if n[1] == 0 or n[2] == 0:
        return (d, d, d)
    y = n[1] / (n[1] + 2 * n[2])
    out = []
    for r in (1, 2, 3):
        dr = r - (r + 1) * y * n[r + 1] / n[r] if n[r] > 0 else d
        out.append(float(dr) if 0 < dr < r else d)
    return tuple(out)


def discounted_level(used: np.ndarray, ctx: np.ndarray, n_ctx: int, discounts: tuple[float, float, float]):
    """num and bow of one interpolated level that subtracts D_r from each count r (r = 1, 2, 3+).

    >>> num, bow = discounted_level(np.array([3, 1]), np.array([0, 0]), 1, (0.5, 0.5, 0.5))
    >>> num.tolist(), bow.tolist()
    ([0.625, 0.125], [0.25])
    """
    d1, d2, d3 = discounts
    used = used.astype(np.float64)
    d = np.select([used >= 3, used == 2, used == 1], [d3, d2, d1], 0.0)
    d = np.minimum(d, used)
    total = per_context(ctx, used, n_ctx)
    mass = per_context(ctx, d, n_ctx)
    safe = np.where(total > 0, total, 1.0)
    num = (used - d) / safe[ctx]
    bow = np.where(total > 0, mass / safe, 1.0)
    return num, bow


def kn_used_counts(tables: NgramTables, counts: list[np.ndarray], continuation: bool) -> list[np.ndarray]:
    """The counts each level discounts: raw at the top order and for n-grams starting with ``<s>``;
    below the top, with `continuation`, the number of distinct words seen before the n-gram
    (Kneser-Ney); the unigram ``<s>`` gets 0 (it is never predicted)."""
    n = tables.order
    used = [c.astype(np.int64) for c in counts]
    if continuation:
        suffix, bos = tables.suffixes(), tables.starts_with_bos()
        for k in range(1, n):
            cont = np.bincount(suffix[k + 1], minlength=len(tables.keys[k]))
            used[k] = np.where(bos[k], counts[k], cont)
    used[1] = used[1].copy()
    used[1][BOS_ID] = 0
    return used


def interpolated_discounting(tables, counts, kind: str, fixed: tuple[float, ...] = ()) -> NgramParams:
    """Absolute discounting (raw counts), Kneser-Ney or modified Kneser-Ney, all interpolated.

    `fixed` gives one discount per order 1..n instead of estimating them (absolute and kn only);
    a 0 at order 1 with kn reproduces NLTK's KneserNeyInterpolated, whose unigrams are undiscounted.
    """
    n = tables.order
    used = kn_used_counts(tables, counts, continuation=kind != "absolute")
    num, bow = [np.zeros(0)], []
    for k in range(1, n + 1):
        if fixed:
            ds = (fixed[k - 1],) * 3
        elif kind == "modified_kn":
            ds = modified_kn_discounts(used[k])
        else:
            ds = (kn_discount(used[k]),) * 3
        log.debug("order %d discounts %s", k, ds)
        nk, bk = discounted_level(used[k], tables.context(k), len(tables.keys[k - 1]), ds)
        num.append(nk)
        bow.append(bk)
    return NgramParams(uniform_base(tables.vocab_size), tuple(num), tuple(bow), (True,) * (n + 1))


def add_k(tables, counts, k_add: float) -> NgramParams:
    """(c(h w) + k) / (c(h) + k |V|) for the longest context h a word has: n-1 words, or fewer right
    after ``<s>`` (a sentence's first words). Lower levels pass every other context through to uniform."""
    n, V1 = tables.order, tables.vocab_size - 1
    after_bos = tables.starts_with_bos()
    num, bow = [np.zeros(0)], []
    for k in range(1, n + 1):
        n_ctx, ctx = len(tables.keys[k - 1]), tables.context(k)
        c = counts[k].astype(np.float64).copy()
        if k == 1:
            c[BOS_ID] = 0.0
        total = per_context(ctx, c, n_ctx) + k_add * V1
        nk, bk = c / total[ctx], k_add * V1 / total
        if k < n:  # only a context that starts the sentence is this level's longest one
            nk, bk = np.where(after_bos[k - 1][ctx], nk, 0.0), np.where(after_bos[k - 1], bk, 1.0)
        num.append(nk)
        bow.append(bk)
    return NgramParams(uniform_base(tables.vocab_size), tuple(num), tuple(bow), (True,) * (n + 1))


def mle(tables, counts) -> NgramParams:
    """Relative frequency with the longest context seen; unseen events get probability 0."""
    n = tables.order
    num, bow = [np.zeros(0)], []
    for k in range(1, n + 1):
        c = counts[k].astype(np.float64).copy()
        if k == 1:
            c[BOS_ID] = 0.0
        total = per_context(tables.context(k), c, len(tables.keys[k - 1]))
        num.append(c / np.where(total > 0, total, 1.0)[tables.context(k)])
        bow.append(np.where(total > 0, 0.0, 1.0))
    return NgramParams(uniform_base(tables.vocab_size), tuple(num), tuple(bow), (True,) + (False,) * n)


def good_turing_factors(counts: np.ndarray, k_max: int = 5) -> np.ndarray:
    """Katz's discount ratios d_r (r = 0..k_max; counts above k_max keep d = 1).

    Falls back to absolute discounting, d_r = (r - D) / r, where Good-Turing is out of range.
    """
    n = count_of_counts(counts, k_max + 1).astype(np.float64)
    r = np.arange(k_max + 1, dtype=np.float64)
    d = np.ones(k_max + 1)
    if (n[1 : k_max + 2] > 0).all():
        a = (k_max + 1) * n[k_max + 1] / n[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            star = (r[1:] + 1) * n[2 : k_max + 2] / n[1 : k_max + 1]
            d[1:] = (star / r[1:] - a) / (1 - a)
        if np.all((d[1:] > 0) & (d[1:] < 1)):
            return d
    D = kn_discount(counts)
    d[1:] = (r[1:] - D) / r[1:]
    return d


def katz(tables, counts) -> NgramParams:
    """Katz backoff: Good-Turing discounted counts, the left-over mass given to the lower order in
    proportion to its probabilities of the words not seen after the context."""
    n, V = tables.order, tables.vocab_size
    base = uniform_base(V)
    suffix = tables.suffixes()
    num, bow, seen_p = [np.zeros(0)], [], [None]
    for k in range(1, n + 1):
        c = counts[k].astype(np.int64).copy()
        if k == 1:
            c[BOS_ID] = 0
        d = good_turing_factors(c)
        cd = c * d[np.minimum(c, len(d) - 1)] * (c < len(d)) + c * (c >= len(d))
        ctx, n_ctx = tables.context(k), len(tables.keys[k - 1])
        total = per_context(ctx, c, n_ctx)
        safe = np.where(total > 0, total, 1.0)
        nk = cd / safe[ctx]
        left = np.where(total > 0, 1.0 - per_context(ctx, nk, n_ctx), 1.0)
        dry = left <= 1e-9  # every follower seen more than k_max times: take D off each count instead
        if dry.any():
            nk = np.where(dry[ctx], np.maximum(c - kn_discount(c), 0) / safe[ctx], nk)
            left = np.where(total > 0, 1.0 - per_context(ctx, nk, n_ctx), 1.0)
        if k == 1:  # interpolate unigrams with the uniform base so every id keeps some mass
            bk = left
            pk = nk + bk[0] * base[tables.word(1)]
        else:
            lower = per_context(ctx, np.where(c > 0, seen_p[k - 1][suffix[k]], 0.0), n_ctx)
            room = 1.0 - lower
            tight = room <= 1e-12  # the context saw every word: renormalise, nothing to back off to
            nk = np.where(tight[ctx], nk / np.where(left < 1, 1 - left, 1.0)[ctx], nk)
            bk = np.where(tight, 0.0, left / np.where(tight, 1.0, room))
            pk = nk
        num.append(nk)
        bow.append(bk)
        seen_p.append(pk)
    return NgramParams(base, tuple(num), tuple(bow), (True, True) + (False,) * (n - 1))


def build_params(tables: NgramTables, counts: list[np.ndarray], smoothing: str, k_add: float = 1.0,
                 discounts: tuple[float, ...] = ()) -> NgramParams:
    """Dispatch on the smoothing name (one of SMOOTHINGS)."""
    if smoothing == "mle":
        return mle(tables, counts)
    if smoothing == "add_k":
        return add_k(tables, counts, k_add)
    if smoothing == "katz":
        return katz(tables, counts)
    return interpolated_discounting(tables, counts, smoothing, discounts)
