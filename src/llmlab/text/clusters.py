"""Distributional word clusters: words that occur between the same neighbours get the same cluster id.

The idea is Brown et al. (1992)'s class-based language model and Schütze (1993)'s word spaces: a
word's syntactic category shows in the words around it, so clustering words by their contexts gives
coarse, automatically learnt word classes that generalise from frequent words to rarer ones (a
feature that a tagger can share between 浦东 and 深圳 where their identities have too few examples).
Here, as in Levy, Goldberg & Dagan (2015):

1. count each word against its left and right neighbours (the `contexts` most frequent words, plus
   sentence start and end), in a sparse matrix;
2. weight the counts by positive pointwise mutual information, with the context counts raised to
   the power 0.75 (context-distribution smoothing: rare contexts otherwise get inflated PMI);
3. reduce the rows to `dims` dimensions with a randomized truncated SVD (Halko, Martinsson & Tropp
   2011, "Finding structure with randomness"), L2-normalise them;
4. k-means (k-means++ seeding, Arthur & Vassilvitskii 2007, then Lloyd iterations), once per size,
   giving each word a fine and a coarse cluster id.

Everything is plain numpy plus one small compiled sparse product (`llmlab.core.jit`); no scipy.
Deterministic for a given seed and input.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.jit import jit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Csr:
    """A sparse (n, m) float64 matrix in compressed-row form: row i is data[indptr[i]:indptr[i + 1]]
    at columns indices[indptr[i]:indptr[i + 1]].

    >>> a = Csr.from_dense(np.array([[0.0, 2.0], [3.0, 0.0]]))
    >>> a.indptr.tolist(), a.indices.tolist(), a.data.tolist(), (a @ np.eye(2)).tolist()
    ([0, 1, 2], [1, 0], [2.0, 3.0], [[0.0, 2.0], [3.0, 0.0]])
    """

    indptr: np.ndarray  # (n + 1,) int64
    indices: np.ndarray  # (nnz,) int64
    data: np.ndarray  # (nnz,) float64
    shape: tuple[int, int]

    @classmethod
    def from_dense(cls, a: np.ndarray) -> Csr:
        rows, cols = np.nonzero(a)
        return cls.from_coo(rows, cols, a[rows, cols], a.shape)

    @classmethod
    def from_coo(cls, rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> Csr:
        """From (row, column, value) triples, sorted by row then column; duplicates must be summed first."""
        order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))]).astype(np.int64)
        return cls(indptr, np.asarray(cols, np.int64)[order], np.asarray(data, np.float64)[order],
                   (int(shape[0]), int(shape[1])))

    def __matmul__(self, b: np.ndarray) -> np.ndarray:
        """A @ b for a dense (m, k) b."""
        out = np.zeros((self.shape[0], b.shape[1]))
        _csr_product(self.indptr, self.indices, self.data, np.ascontiguousarray(b, np.float64), out, False)
        return out

    def rmatmul(self, b: np.ndarray) -> np.ndarray:
        """A.T @ b for a dense (n, k) b."""
        out = np.zeros((self.shape[1], b.shape[1]))
        _csr_product(self.indptr, self.indices, self.data, np.ascontiguousarray(b, np.float64), out, True)
        return out

    def toarray(self) -> np.ndarray:
        a = np.zeros(self.shape)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        a[rows, self.indices] = self.data
        return a


@jit
def _csr_product(indptr, indices, data, b, out, transpose):
    """out += A @ b, or A.T @ b when `transpose`, for A in CSR form."""
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            v, j = data[p], indices[p]
            src, dst = (i, j) if transpose else (j, i)
            for c in range(b.shape[1]):
                out[dst, c] += v * b[src, c]


def randomized_svd(a: Csr, rank: int, oversample: int = 100, power_iters: int = 8,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top `rank` singular triplets (U (n, rank), S (rank,), Vt (rank, m)) of a sparse matrix.

    Halko, Martinsson & Tropp 2011 (algorithms 4.4 and 5.1), run on the column side: sketch the row
    space of A with A^T G for a Gaussian G of rank + oversample columns, sharpen it with `power_iters`
    rounds of A^T A, re-orthonormalising with QR after each round (else the smaller singular directions
    drown in rounding), then take the exact SVD of the small product A Z (Rayleigh-Ritz). The error on
    the top singular values shrinks like (s[rank + oversample] / s[j]) ** (2 * power_iters + 1) when
    the spectrum decays; a flat one (PPMI matrices) needs the oversampling. QR runs on the (m, width)
    side only, cheap when m (here: contexts) is much smaller than n (words); with a QR only every
    A^T A round, float64 loses the directions below s[0] * 1e-8, far below any rank asked here.
    Signs are fixed (largest |Vt| entry of each row positive): the result depends on A and the seed only.
    """
    n, m = a.shape
    if not 1 <= rank <= min(n, m):
        raise InputError(f"rank must be in [1, {min(n, m)}] for a {n}x{m} matrix, got {rank}")
    width = min(rank + oversample, n, m)
    z = np.linalg.qr(a.rmatmul(np.random.default_rng(seed).standard_normal((n, width))))[0]  # (m, width)
    for _ in range(power_iters):
        z = np.linalg.qr(a.rmatmul(a @ z))[0]
    u, s, wt = np.linalg.svd(a @ z, full_matrices=False)  # A Z = U S W^T, so A ~ U S (Z W)^T
    vt = (z @ wt.T).T[:rank]  # (rank, m)
    flip = np.sign(vt[np.arange(rank), np.abs(vt).argmax(axis=1)])
    flip[flip == 0] = 1.0
    return u[:, :rank] * flip, s[:rank], vt * flip[:, None]


def _sq_dists(x: np.ndarray, xx: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (rows of x, rows of c), clipped at 0 against rounding."""
    return np.maximum(xx[:, None] - 2.0 * (x @ c.T) + (c * c).sum(axis=1)[None, :], 0.0)


def _assign(x: np.ndarray, c: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row of x and the squared distance to it, `chunk` rows at a time so
    the (rows, k) distance block stays small."""
    labels, d2 = np.empty(len(x), np.int64), np.empty(len(x))
    for a in range(0, len(x), chunk):
        xs = x[a : a + chunk]
        d = _sq_dists(xs, (xs * xs).sum(axis=1), c)  # (chunk, k)
        labels[a : a + chunk] = d.argmin(axis=1)
        d2[a : a + chunk] = d[np.arange(len(xs)), labels[a : a + chunk]]
    return labels, d2


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: each next centroid is a point drawn with probability proportional to its
    squared distance to the nearest centroid so far (so never a point already chosen)."""
    xx = (x * x).sum(axis=1)

    def sq_dist_to(j: int) -> np.ndarray:  # one matrix-vector product, not an (n, d) difference
        d2 = np.maximum(xx - 2.0 * (x @ c[j]) + c[j] @ c[j], 0.0)
        d2[picks[j]] = 0.0  # exactly: the point itself is never drawn again
        return d2

    c, picks = np.empty((k, x.shape[1])), np.empty(k, np.int64)
    picks[0] = rng.integers(len(x))
    c[0] = x[picks[0]]
    d2 = sq_dist_to(0)
    for j in range(1, k):
        cdf = np.cumsum(d2)
        picks[j] = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(x) - 1)
        c[j] = x[picks[j]]
        d2 = np.minimum(d2, sq_dist_to(j))
    return c


def kmeans(x: np.ndarray, k: int, max_iter: int = 30, tol: float = 1e-3, seed: int = 0,
           chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of x (n, d) into k groups: (labels (n,), centroids (k, d)).

    k-means++ seeding, then Lloyd iterations (assign each point to its nearest centroid, move each
    centroid to the mean of its points) until at most a `tol` fraction of the labels change (0: until
    none do) or `max_iter` rounds. The labels returned are always the nearest of the centroids returned.
    An emptied cluster is re-seeded with the point farthest from its centroid. k must not exceed the
    number of distinct points (k-means++ could not seed it).

    >>> x = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0]])
    >>> labels, _ = kmeans(x, 2, tol=0.0)
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    """
    x = np.asarray(x, np.float64)
    distinct = len(np.unique(x, axis=0))
    if not 1 <= k <= distinct:
        raise InputError(f"k must be in [1, {distinct}] (the number of distinct points), got {k}")
    rng = np.random.default_rng(seed)
    c = kmeans_pp(x, k, rng)
    labels, d2 = _assign(x, c, chunk)
    for _ in range(max_iter):
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        sizes = np.bincount(labels, minlength=k)
        empty = np.nonzero(sizes == 0)[0]
        c = sums / np.maximum(sizes, 1)[:, None]
        c[empty] = x[np.argsort(-d2, kind="stable")[: len(empty)]]
        new, d2 = _assign(x, c, chunk)
        changed = int((new != labels).sum())
        labels = new
        if changed <= tol * len(x):
            break
    return labels, c


def ppmi_matrix(sentences: Sequence[Sequence[str]], min_count: int = 2,
                contexts: int = 2000) -> tuple[list[str], Csr]:
    """Words seen at least `min_count` times (most frequent first) and their (words, 2 * (contexts + 2))
    PPMI matrix: columns are the left neighbour then the right neighbour, each one of the `contexts`
    most frequent words or sentence start / end; other neighbours are not counted.
    PPMI(w, c) = max(0, log(P(w, c) / (P(w) P_0.75(c)))), P_0.75 the smoothed context distribution.

    >>> words, m = ppmi_matrix([["a", "b"], ["a", "b"], ["c"]], min_count=2, contexts=2)  # a: after <s>, before b
    >>> words, m.shape, m.toarray().round(2).tolist()[0]
    (['a', 'b'], (2, 8), [0.0, 0.0, 0.69, 0.0, 0.0, 0.69, 0.0, 0.0])
    """
    counts = Counter(w for s in sentences for w in s)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    words = [w for w in ranked if counts[w] >= min_count]
    wid = {w: i for i, w in enumerate(words)}
    cid = {w: i for i, w in enumerate(ranked[:contexts])}
    bos, eos, width = contexts, contexts + 1, contexts + 2
    rows: list[int] = []
    ctx: list[int] = []  # neighbours, sentence by sentence, with start/end markers around each
    for s in sentences:
        rows.extend([-1, *(wid.get(w, -1) for w in s), -1])
        ctx.extend([bos, *(cid.get(w, -1) for w in s), eos])
    r, c = np.array(rows, np.int64), np.array(ctx, np.int64)
    at = np.nonzero(r >= 0)[0]  # positions of counted words; never the first or last entry
    left, right = c[at - 1], c[at + 1]
    pr = np.concatenate([r[at][left >= 0], r[at][right >= 0]])
    pc = np.concatenate([left[left >= 0], width + right[right >= 0]])
    if not len(pr):
        return words, Csr.from_coo(pr, pc, np.zeros(0), (len(words), 2 * width))
    uniq, n = np.unique(pr * (2 * width) + pc, return_counts=True)
    pr, pc, total = uniq // (2 * width), uniq % (2 * width), n.sum()
    row_sum = np.bincount(pr, weights=n, minlength=len(words))
    col_sum = np.bincount(pc, weights=n, minlength=2 * width) ** 0.75
    col_sum *= total / col_sum.sum()
    pmi = np.log(n * total / (row_sum[pr] * col_sum[pc]))
    keep = pmi > 0
    return words, Csr.from_coo(pr[keep], pc[keep], pmi[keep], (len(words), 2 * width))


def word_vectors(sentences: Sequence[Sequence[str]], min_count: int = 2, contexts: int = 2000, dims: int = 100,
                 seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Words seen at least `min_count` times (most frequent first) and their (words, <= dims) float64
    vectors: the rows of their PPMI matrix (`ppmi_matrix`) projected on its top `dims` right singular
    vectors (= U S of the truncated SVD, computed row by row so that words with identical contexts get
    identical vectors), L2-normalised (so cosine similarity compares them).

    >>> words, x = word_vectors([["我", "吃", "饭"], ["你", "吃", "面"]] * 2, dims=2)
    >>> words, x.shape, np.allclose(x[words.index("我")], x[words.index("你")])
    (['吃', '你', '我', '面', '饭'], (5, 2), True)
    """
    words, a = ppmi_matrix(sentences, min_count, contexts)
    if not words:
        return words, np.zeros((0, 0))
    rank = min(dims, *a.shape)
    log.info("word vectors: %d words, %d nonzero PPMI cells; SVD to %d dims", len(words), len(a.data), rank)
    _, _, vt = randomized_svd(a, rank, seed=seed)
    x = a @ vt.T  # (words, rank)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return words, x


def word_clusters(sentences: Sequence[Sequence[str]], sizes: Sequence[int] = (1024, 128), min_count: int = 2,
                  contexts: int = 2000, dims: int = 100, seed: int = 0) -> dict[str, tuple[int, ...]]:
    """Cluster ids (one per entry of `sizes`) for every word seen at least `min_count` times.

    Words are embedded by `word_vectors`, then k-means'd once per size. A size above the number of
    distinct word vectors is lowered to it. About 15 s for the 28k words seen twice in pfr1998's training split.

    >>> sents = [["我", "吃", "饭"], ["你", "吃", "面"], ["我", "喝", "水"], ["你", "喝", "茶"]] * 3
    >>> ids = word_clusters(sents, sizes=(4,), dims=4)
    >>> ids["我"] == ids["你"], ids["吃"] == ids["喝"], ids["我"] == ids["吃"]
    (True, True, False)
    """
    if not sizes or any(k < 1 for k in sizes):
        raise InputError(f"cluster sizes must be positive, got {tuple(sizes)}")
    words, x = word_vectors(sentences, min_count, contexts, dims, seed)
    if not words:
        return {}
    log.info("word clusters: k-means of %d word vectors to %s clusters", len(words), tuple(sizes))
    distinct = len(np.unique(x, axis=0))
    labels = [kmeans(x, min(k, distinct), seed=seed)[0] for k in sizes]
    return {w: tuple(int(lab[i]) for lab in labels) for i, w in enumerate(words)}
