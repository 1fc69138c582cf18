"""Training a unigram tokenizer: seed vocabulary, EM, pruning (the sentencepiece recipe, simplified).

1. Seed: every character, plus the most frequent substrings (up to `max_piece_len` characters) of
   the pre-tokens, scored by frequency x length.
2. EM: the E-step runs forward-backward over each distinct pre-token's segmentation lattice to get
   expected piece counts; the M-step sets log p(piece) = log(count / total).
3. Prune: for each multi-character piece, the loss of removing it is its Viterbi count times the
   score it has over the best split of that piece by the other pieces; keep the `shrink` fraction
   with the highest loss. Repeat 2-3 until `size` pieces are left; characters are never removed,
   so every seen character stays encodable.

Speed: the lattices of all pre-tokens are built once, from the seed pieces, as flat numpy arrays
(`Lattices`); as pieces die their edges are filtered out. Forward-backward and Viterbi then run over
all pre-tokens at once, one position within the word at a time (`_dynamic_program`).

Pieces are numbered in string order (seed ids), so ranking ties break by piece. A piece's score is
its log-probability, -inf once it is dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from llmlab.core.errors import InputError

log = logging.getLogger(__name__)


def seed_pieces(word_counts: Mapping[str, int], max_piece_len: int, seed_size: int) -> dict[str, int]:
    """Characters plus the `seed_size` best substrings by frequency x length (seen at least twice).

    >>> sorted(seed_pieces({"abab": 1}, 2, 10).items())
    [('a', 2), ('ab', 2), ('b', 2)]
    """
    chars: Counter[str] = Counter()
    for w, c in word_counts.items():
        for ch in w:
            chars[ch] += c
    # Grow substrings one character at a time from where a frequent one starts: a substring is at most as
    # frequent as its prefix, so this finds every substring seen twice without counting all the others.
    frequent: dict[str, int] = {}
    starts = [(w, c, s) for w, c in word_counts.items() for s in range(len(w)) if chars[w[s]] >= 2]
    for k in range(2, max_piece_len + 1):
        found: Counter[str] = Counter()
        starts = [(w, c, s) for w, c, s in starts if s + k <= len(w)]
        for w, c, s in starts:
            found[w[s:s + k]] += c
        frequent.update((p, f) for p, f in found.items() if f >= 2)
        starts = [(w, c, s) for w, c, s in starts if found[w[s:s + k]] >= 2]
    best = sorted(frequent, key=lambda p: (-frequent[p] * len(p), p))[:seed_size]
    return {**dict(chars), **{p: frequent[p] for p in best}}


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins: [5, 5, 7, 5] -> [0, 2, 3]."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


class Sweep:
    """An order to visit the edges of all lattices in for a dynamic program: in groups by the position
    (within its word) of the node an edge updates, so a group only reads nodes that earlier groups
    wrote; within a group, in runs of edges that update the same node (in their lattice order)."""

    def __init__(self, order: np.ndarray, pos: np.ndarray, node: np.ndarray):
        self.order = order  # (E,) edge ids in visiting order
        runs = _run_starts(node[order])
        self.node = node[order][runs]  # (R,) the node each run updates
        self.runs = np.r_[runs, len(order)]  # (R + 1,) where each run begins in `order`, then the end
        self.sizes = np.diff(self.runs)  # (R,) edges in each run
        self.groups = np.r_[_run_starts(pos[order][runs]), len(runs)].tolist()  # (G + 1,) first run of each group


class Lattices:
    """The segmentation lattices of many words as flat edge arrays: word w's positions 0..len(w) are
    the nodes first[w]..last[w], an edge is one piece from node src to node dst. Edges are listed word
    by word, by start, then by end.

    >>> lat = Lattices.build(["ab", "b"], {"a": 0, "ab": 1, "b": 2}, 2)
    >>> lat.src.tolist(), lat.dst.tolist(), lat.piece.tolist(), lat.first.tolist(), lat.last.tolist()
    ([0, 0, 1, 3], [1, 2, 2, 4], [0, 1, 2, 2], [0, 3], [2, 4])
    """

    def __init__(self, word: np.ndarray, src: np.ndarray, dst: np.ndarray, piece: np.ndarray, first: np.ndarray,
                 n_nodes: int, orders: tuple[np.ndarray, np.ndarray] | None = None):
        self.word, self.src, self.dst, self.piece = word, src, dst, piece  # (E,) each
        self.first, self.n_nodes = first, n_nodes  # (W,) node of each word's start
        self.last = (np.r_[first, n_nodes] - 1)[1:]  # (W,) node of each word's end
        start, end = src - first[word], dst - first[word]  # (E,) positions within the word
        if orders is None:  # forward: by end position; backward: by start position, last first
            orders = np.lexsort((dst, end)), np.lexsort((src, -start))
        self.forward = Sweep(orders[0], end, dst)
        self.backward = Sweep(orders[1], -start, src)

    @classmethod
    def build(cls, words: Sequence[str], piece_id: Mapping[str, int], max_len: int, whole: bool = True) -> Lattices:
        """Every piece occurrence in `words` (pieces of up to `max_len` characters; with `whole`
        false, not a piece spanning its whole word)."""
        prefixes = {p[:i] for p in piece_id for i in range(1, min(len(p), max_len) + 1)}
        get = piece_id.get
        edges: list[int] = []  # start, end, piece id, ...
        sizes, first = [], [0]
        for w in words:
            n, before = len(w), len(edges)
            for s in range(n):
                for e in range(s + 1, min(n, s + max_len) + 1):
                    sub = w[s:e]
                    k = get(sub)
                    if k is not None:
                        edges.extend((s, e, k))
                    elif sub not in prefixes:  # no longer piece starts here either
                        break
            sizes.append((len(edges) - before) // 3)
            first.append(first[-1] + n + 1)
        first_a = np.array(first[:-1], dtype=np.int64)
        word = np.repeat(np.arange(len(words)), sizes)
        start, end, piece = np.array(edges, dtype=np.int64).reshape(-1, 3).T
        if not whole:
            keep = (start > 0) | (end < np.diff(first)[word] - 1)
            word, start, end, piece = word[keep], start[keep], end[keep], piece[keep]
        return cls(word, first_a[word] + start, first_a[word] + end, piece, first_a, first[-1])

    def restrict(self, alive: np.ndarray) -> Lattices:
        """The same lattices with only the edges of pieces where `alive` (a mask over piece ids) holds."""
        keep = alive[self.piece]
        if keep.all():
            return self
        new_id = np.cumsum(keep) - 1
        orders = tuple(new_id[o[keep[o]]] for o in (self.forward.order, self.backward.order))
        return Lattices(self.word[keep], self.src[keep], self.dst[keep], self.piece[keep], self.first, self.n_nodes,
                        orders)


def segment_logsumexp(x: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) of each run x[starts[i]:starts[i] + sizes[i]] (runs cover x in order).

    >>> np.exp(segment_logsumexp(np.log([1.0, 3.0, 5.0]), np.array([0, 2]), np.array([2, 1]))).round(9).tolist()
    [4.0, 5.0]
    """
    m = np.maximum.reduceat(x, starts)
    return m + np.log(np.add.reduceat(np.exp(x - np.repeat(m, sizes)), starts))


def segment_max(x: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximum of each run of x (as in `segment_logsumexp`) and where it first occurs.

    >>> [a.tolist() for a in segment_max(np.array([1.0, 3.0, 3.0, 2.0]), np.array([0, 3]), np.array([3, 1]))]
    [[3.0, 2.0], [1, 3]]
    """
    m = np.maximum.reduceat(x, starts)
    hits = np.flatnonzero(x == np.repeat(m, sizes))
    return m, hits[np.searchsorted(hits, starts)]


def _dynamic_program(lat: Lattices, sweep: Sweep, frm: np.ndarray, score: np.ndarray, best: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
    """out[node] = logsumexp (or max, with `best`) over the sweep's edges into node of out[frm] + score;
    nodes no edge updates (the sweep's starting nodes) stay 0. Also, with `best`, the chosen edges."""
    out = np.zeros(lat.n_nodes)
    back = np.full(lat.n_nodes, -1)
    frm, score, runs = frm[sweep.order], score[sweep.order], sweep.runs  # (E,) in visiting order
    for ra, rb in zip(sweep.groups, sweep.groups[1:]):
        a, b = runs[ra], runs[rb]
        x, starts, sizes, nodes = out[frm[a:b]] + score[a:b], runs[ra:rb] - a, sweep.sizes[ra:rb], sweep.node[ra:rb]
        if best:
            out[nodes], pick = segment_max(x, starts, sizes)
            back[nodes] = sweep.order[a + pick]
        else:
            out[nodes] = segment_logsumexp(x, starts, sizes)
    return out, back


def forward_backward(lat: Lattices, logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node, the log of the summed probability of all paths from its word's start to it (fwd), and
    from it to its word's end (bwd). Every edge's piece must have a finite `logp`."""
    score = logp[lat.piece]  # (E,)
    fwd, _ = _dynamic_program(lat, lat.forward, lat.src, score, best=False)
    bwd, _ = _dynamic_program(lat, lat.backward, lat.dst, score, best=False)
    return fwd, bwd


def expected_counts(lat: Lattices, logp: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    """E-step: expected uses of each piece over all segmentations of the words (word w counted
    weight[w] times); also the corpus log-likelihood."""
    fwd, bwd = forward_backward(lat, logp)
    z = fwd[lat.last]  # (W,) log-probability of each word
    post = weight[lat.word] * np.exp(fwd[lat.src] + logp[lat.piece] + bwd[lat.dst] - z[lat.word])  # (E,)
    return np.bincount(lat.piece, post, minlength=len(logp)), float(weight @ z)


def viterbi(lat: Lattices, logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node, the best score of a path from its word's start, and the last edge of that path (on a
    tie, the edge starting first, as a left-to-right search keeping the first best finds)."""
    return _dynamic_program(lat, lat.forward, lat.src, logp[lat.piece], best=True)


def viterbi_counts(lat: Lattices, logp: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """How often each piece is used in the best segmentations (word w counted weight[w] times)."""
    _, back = viterbi(lat, logp)
    edges, weights = [], []
    node, first, w = lat.last, lat.first, weight
    while len(node):  # walk every word's best path back, one piece per step
        on = node > first
        node, first, w = node[on], first[on], w[on]
        edges.append(back[node])
        weights.append(w)
        node = lat.src[edges[-1]]
    return np.bincount(lat.piece[np.concatenate(edges)], np.concatenate(weights), minlength=len(logp))


def m_step(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Log-probabilities from expected counts; pieces used less than half a time vanish unless kept.

    >>> m_step(np.array([3.0, 1.0, 0.2, 0.0]), np.array([False, False, False, True])).round(3).tolist()
    [-0.288, -1.386, -inf, -15.202]
    """
    alive = (counts >= 0.5) | keep
    c = np.maximum(counts[alive], 1e-6)
    logp = np.full(len(counts), -np.inf)
    logp[alive] = np.log(c / c.sum())
    return logp


def prune(corpus: Lattices, splits: Lattices, multi: np.ndarray, logp: np.ndarray, weight: np.ndarray,
          target: int) -> np.ndarray:
    """Keep the `target` pieces whose removal would cost the corpus most (characters always stay).

    `splits` has a lattice for each multi-character piece (ids `multi`), without the piece itself."""
    used = viterbi_counts(corpus, logp, weight)
    alt = viterbi(splits, logp)[0][splits.last]  # (M,) best score of each piece split into others
    live = np.isfinite(logp[multi])
    ids = multi[live]
    loss = used[ids] * (logp[ids] - alt[live])
    ranked = ids[np.lexsort((ids, -loss))[: max(0, target - (len(logp) - len(multi)))]]
    out = np.full(len(logp), -np.inf)
    chars = np.ones(len(logp), dtype=bool)
    chars[multi] = False
    out[chars], out[ranked] = logp[chars], logp[ranked]
    return out


def train_unigram(word_counts: Mapping[str, int], size: int, max_piece_len: int = 16, seed_size: int | None = None,
                  shrink: float = 0.75, em_iters: int = 2) -> list[tuple[str, float]]:
    """At most `size` (piece, log-probability) pairs, best first, learned from pre-token counts.

    `seed_size` (default: 10 x size) bounds the seed vocabulary: more seeds, better pieces, slower EM.
    Pieces whose expected count falls below one half in the last EM step are dropped, so the result
    can be a little smaller than `size` (as with sentencepiece).
    """
    if not word_counts:
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    if not 0 < shrink < 1:
        raise InputError(f"shrink must be in (0, 1), got {shrink}")
    if max_piece_len < 1:
        raise InputError(f"max_piece_len must be >= 1, got {max_piece_len}")
    seeds = seed_pieces(word_counts, max_piece_len, 10 * size if seed_size is None else seed_size)
    names = sorted(seeds)  # seed ids in string order: ties in `prune` break by piece
    is_char = np.array([len(p) == 1 for p in names])
    if size < (n_chars := int(is_char.sum())):
        raise InputError(f"vocab size leaves room for {size} pieces, below the {n_chars} distinct characters "
                         f"of the corpus (a unigram vocabulary keeps every character)")
    seed_id = {p: k for k, p in enumerate(names)}
    multi = np.flatnonzero(~is_char)
    corpus = Lattices.build(list(word_counts), seed_id, max_piece_len)
    splits = Lattices.build([names[k] for k in multi], seed_id, max_piece_len, whole=False)
    weight = np.array(list(word_counts.values()), dtype=np.float64)
    freq = np.array([seeds[p] for p in names], dtype=np.float64)
    logp = np.log(freq / freq.sum())
    while True:
        for _ in range(em_iters):
            counts, loglik = expected_counts(corpus, logp, weight)
            logp = m_step(counts, is_char)
            corpus = corpus.restrict(np.isfinite(logp))
        n_alive = int(np.isfinite(logp).sum())
        log.debug("unigram: %d pieces, log-likelihood %.1f", n_alive, loglik)
        if n_alive <= size:
            break
        splits = splits.restrict(np.isfinite(logp))
        logp = prune(corpus, splits, multi, logp, weight, max(size, int(n_alive * shrink)))
        corpus = corpus.restrict(np.isfinite(logp))
    alive = np.flatnonzero(np.isfinite(logp))
    return sorted(((names[k], float(logp[k])) for k in alive), key=lambda kv: (-kv[1], kv[0]))
