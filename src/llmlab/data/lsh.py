"""LSH banding over MinHash signatures: choosing (bands, rows), finding candidate pairs, clustering.

A signature of ``num_perm`` values is cut into ``bands`` bands of ``rows`` values (values past
``bands * rows`` are unused); two documents are a candidate pair when some band is equal in both.
For Jaccard similarity s that happens with probability ``1 - (1 - s**rows)**bands``, an S-curve whose
step sits near the threshold. `lsh_params` picks (bands, rows) the way datasketch's ``MinHashLSH``
does: the pair minimising the weighted area of false positives (the curve below the threshold) and
false negatives (one minus it above).

Documents with identical signatures fall into the same bucket of every band; they are grouped first
and the buckets hold one row per distinct signature, so a thousand copies of one boilerplate line
cost one row, not half a million pairs. Pair counts are then multiplied back out exactly.
"""

from __future__ import annotations

import math

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.jit import jit


def _check_lsh(threshold: float, num_perm: int) -> None:
    if not isinstance(threshold, (int, float, np.floating)) or not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must be in (0, 1), got {threshold!r}")
    if not isinstance(num_perm, (int, np.integer)) or isinstance(num_perm, bool) or num_perm < 2:
        raise InputError(f"num_perm must be an integer >= 2, got {num_perm!r}")


def lsh_params(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
               false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising ``fp_weight * FP + fn_weight * FN`` over bands * rows <= num_perm, where
    FP is the integral of P(candidate | s) over s in [0, threshold] and FN that of 1 - P over
    [threshold, 1]; the same search, in the same order, as datasketch's ``_optimal_param``.

    P(candidate | s) = 1 - (1 - s**r)**b is a polynomial of degree b*r <= num_perm, so Gauss-Legendre
    quadrature with num_perm // 2 + 1 nodes integrates it exactly (scipy's adaptive ``quad``, which
    datasketch uses, is not needed).

    >>> lsh_params(0.9, 128), lsh_params(0.8, 128), lsh_params(0.5, 128), lsh_params(0.8, 128, 0.2, 0.8)
    ((5, 25), (9, 13), (25, 5), (12, 10))
    """
    _check_lsh(threshold, num_perm)
    for name, w in (("false_positive_weight", false_positive_weight), ("false_negative_weight",
                                                                       false_negative_weight)):
        if not 0.0 <= w <= 1.0:
            raise InputError(f"{name} must be in [0, 1], got {w!r}")
    b = np.repeat(np.arange(1, num_perm + 1), num_perm // np.arange(1, num_perm + 1))
    r = np.concatenate([np.arange(1, num_perm // k + 1) for k in range(1, num_perm + 1)])  # b-major, as datasketch
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    t = float(threshold)
    error = np.empty(len(b))
    step = max(1, (1 << 22) // len(x))  # bound the (pairs, nodes) block to about 32 MB
    for lo in range(0, len(b), step):
        bb, rr = b[lo:lo + step, None].astype(float), r[lo:lo + step, None].astype(float)
        s = t / 2 * (x + 1)  # nodes on [0, t]
        fp = (1 - (1 - s**rr) ** bb) @ w * (t / 2)
        s = t + (1 - t) / 2 * (x + 1)  # nodes on [t, 1]
        fn = (1 - (1 - (1 - s**rr) ** bb)) @ w * ((1 - t) / 2)
        error[lo:lo + step] = fp * false_positive_weight + fn * false_negative_weight
    best = int(np.argmin(error))  # the first minimum, as datasketch keeps the first strict improvement
    return int(b[best]), int(r[best])


def candidate_probability(similarity, bands: int, rows: int):
    """P(two documents of Jaccard `similarity` share a band): ``1 - (1 - s**rows)**bands``.

    >>> round(float(candidate_probability(0.8, 9, 13)), 4), round(float(candidate_probability(0.95, 9, 13)), 4)
    (0.3988, 0.9985)
    """
    return 1 - (1 - np.asarray(similarity, dtype=float) ** rows) ** bands


def distinct_rows(signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): the index of the first row of each distinct signature, and for each row the
    number of its distinct signature (numbered in order of first appearance).

    >>> [x.tolist() for x in distinct_rows(np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint32))]
    [[0, 1], [0, 1, 0]]
    """
    sig = np.ascontiguousarray(signatures)
    keys = sig.view(np.dtype((np.void, sig.dtype.itemsize * sig.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


@jit
def _bucket_pairs(members: np.ndarray, bounds: np.ndarray, m: int) -> np.ndarray:
    """Codes lo * m + hi of every pair lo < hi inside each bucket members[bounds[g]:bounds[g+1]]
    (members sorted within a bucket)."""
    total = 0
    for g in range(bounds.shape[0] - 1):
        s = bounds[g + 1] - bounds[g]
        total += s * (s - 1) // 2
    out = np.empty(total, np.int64)
    c = 0
    for g in range(bounds.shape[0] - 1):
        for x in range(bounds[g], bounds[g + 1]):
            for y in range(x + 1, bounds[g + 1]):
                out[c] = members[x] * m + members[y]
                c += 1
    return out


def band_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(pairs, 2) int64, i < j, sorted: rows i, j equal in at least one band. Quadratic in a bucket's
    size, so call it on distinct signatures (`distinct_rows`)."""
    m = len(signatures)
    codes = []
    for k in range(bands):
        band = np.ascontiguousarray(signatures[:, k * rows:(k + 1) * rows])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * rows))).ravel()
        _, inverse = np.unique(keys, return_inverse=True)
        members = np.argsort(inverse.ravel(), kind="stable")  # rows grouped by bucket, ascending within
        sizes = np.bincount(inverse.ravel())
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        big = np.flatnonzero(sizes > 1)
        if len(big):
            sel = np.concatenate([np.arange(bounds[g], bounds[g + 1]) for g in big])
            codes.append(_bucket_pairs(members[sel], np.concatenate([[0], np.cumsum(sizes[big])]), m))
    code = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    return np.stack([code // max(m, 1), code % max(m, 1)], axis=1)


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """All document pairs (i < j, sorted) sharing a band: what inserting every signature into
    datasketch's ``MinHashLSH(params=(bands, rows))`` and querying each finds. Rows of identical
    signatures pair with each other whatever they hold (an empty document's included).

    >>> sig = np.array([[1, 2, 3, 4], [1, 2, 0, 0], [5, 6, 3, 4], [1, 2, 3, 4]], dtype=np.uint32)
    >>> candidate_pairs(sig, 2, 2).tolist()
    [[0, 1], [0, 2], [0, 3], [1, 3], [2, 3]]
    """
    check_bands(bands, rows, signatures.shape[1])
    first, inverse = distinct_rows(signatures)
    rep = band_pairs(signatures[first], bands, rows)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse))[:-1])  # documents per distinct signature
    pairs = [np.array([(i, j) for x, i in enumerate(g) for j in g[x + 1:]], dtype=np.int64).reshape(-1, 2)
             for g in groups]
    pairs += [np.stack(np.meshgrid(groups[a], groups[b], indexing="ij"), -1).reshape(-1, 2) for a, b in rep]
    out = np.sort(np.concatenate(pairs), axis=1) if pairs else np.zeros((0, 2), np.int64)
    return np.unique(out, axis=0)


def check_bands(bands: int, rows: int, num_perm: int) -> None:
    for name, v in (("bands", bands), ("rows", rows)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"{name} must be an integer >= 1, got {v!r}")
    if bands * rows > num_perm:
        raise InputError(f"bands * rows must be <= num_perm: {bands} * {rows} = {bands * rows} > {num_perm}")


@jit
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@jit
def union_find(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component of each of n items under the pairs (k, 2): the smallest item of its component.

    >>> union_find(5, np.array([[3, 1], [4, 3]])).tolist()
    [0, 1, 2, 1, 1]
    """
    parent = np.arange(n)
    for k in range(pairs.shape[0]):
        a, b = _find(parent, pairs[k, 0]), _find(parent, pairs[k, 1])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


def pair_count(sizes: np.ndarray, pairs: np.ndarray) -> int:
    """Document pairs behind `pairs` of distinct signatures whose groups have `sizes`, plus the pairs
    inside each group: ``sum sizes[i] * sizes[j] + sum C(size, 2)``.

    >>> pair_count(np.array([2, 3, 1]), np.array([[0, 1]]))
    10
    """
    inside = sum(math.comb(int(s), 2) for s in sizes[sizes > 1])
    return int(inside + (sizes[pairs[:, 0]].astype(np.int64) * sizes[pairs[:, 1]]).sum())
