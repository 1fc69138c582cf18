"""word2vec (topics 71, 75, 76): skip-gram and CBOW, negative sampling and/or hierarchical softmax.

Batched SGD in compiled loops (`w2v_kernels`; torch draws the initial vectors; both imported inside
`train_word2vec`, so importing ``llmlab.classic`` loads neither torch nor numba), with the choices
of the original C tool and gensim: a random window shrink per centre word, frequent
words dropped with probability 1 - (sqrt(f / t) + 1) t / f (f: the word's share of the corpus,
t = `sample`), negatives drawn from unigram^0.75, the learning rate falling linearly to `min_lr`.
Skip-gram trains the context word's input vector to predict the centre word; CBOW trains the mean of
the context vectors to predict it and adds the same gradient to each of them.

Batching sums the updates a row gets within one step, from slightly stale values. That is harmless for
most rows, but the Huffman nodes near the root sit on every path, and a frequent word is in the CBOW
window of many of a batch's examples, so those rows' per-batch sums are capped (`ROW_CAP`); and very
large batches (4096 on pfr1998) spoil negative sampling too. Hierarchical
softmax and negative sampling share that loop over (example, output row) pairs
(`w2v_kernels.logistic_update`).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.classic.vectors import WordVectors, word_problem
from llmlab.classic.vocab import token_sentences
from llmlab.core.errors import InputError
from llmlab.core.progress import progress

log = logging.getLogger(__name__)


# A Huffman node or input vector hit n > ROW_CAP times in one batch gets its summed update scaled by
# ROW_CAP / n: summing a whole batch of stale updates diverges for the nodes near the root, which sit on
# every path, and for the input vectors of frequent words, which get the whole gradient of every CBOW
# window they are in (lr 0.05: norms in the thousands on some seeds, similarity Spearman 0.03-0.27).
# (Updating the nodes one pair at a time instead, as gensim does, was tried: no faster compiled, and
# Spearman on the pfr1998 similarity list fell from 0.428 to 0.40-0.41, mean of seeds 0-2.)
# Negative sampling's output rows are left uncapped: capping them too (the frequent words drawn as targets
# and negatives) changed nothing measurable, Spearman mean of seeds 0-2, 5 epochs, 5 negatives: CBOW
# 0.408 -> 0.401, skip-gram 0.413 -> 0.412; analogy accuracy within 0.005.
ROW_CAP = 32.0


@dataclass(frozen=True)
class Word2VecConfig:
    model: str = "skipgram"  # "skipgram" (context predicts centre) or "cbow" (mean of context predicts centre)
    dim: int = 100  # vector size; >= 1
    window: int = 5  # largest distance between centre and context word; >= 1
    negative: int = 5  # negative samples per prediction; 0 = none (then hs must be on)
    hs: bool = False  # hierarchical softmax over a Huffman tree of the vocabulary
    sample: float = 1e-3  # frequent-word subsampling threshold t; 0 = keep every word
    min_count: int = 5  # rarer words are dropped before training; >= 1
    epochs: int = 5  # passes over the corpus; >= 1
    lr: float = 0.025  # starting learning rate (gensim's alpha; 0.05 is usual for cbow); > 0
    min_lr: float = 0.0001  # learning rate at the end, reached linearly; 0 <= min_lr <= lr
    batch_size: int = 1024  # predictions per SGD step; >= 1 (4096 already hurts: frequent rows collide)
    seed: int = 0  # seeds initial vectors, windows, subsampling and negatives

    def __post_init__(self):
        if self.model not in ("skipgram", "cbow"):
            raise InputError(f"model must be 'skipgram' or 'cbow', got {self.model!r}")
        for name in ("dim", "window", "min_count", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 0 or (self.negative == 0 and not self.hs):
            raise InputError(f"need negative > 0 or hs on, got negative={self.negative}, hs={self.hs}")
        if self.sample < 0:
            raise InputError(f"sample must be >= 0, got {self.sample}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise InputError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")


def build_vocab(sentences: Sequence[Sequence[str]], min_count: int) -> tuple[list[str], np.ndarray]:
    """Words seen at least `min_count` times, most frequent first (ties: first seen), with counts.

    >>> build_vocab([["b", "a", "a"]], 1)
    (['a', 'b'], array([2, 1]))
    """
    counts = Counter(w for s in sentences for w in s)
    kept = [(w, c) for w, c in counts.most_common() if c >= min_count]
    if not kept:
        raise InputError(f"no word occurs min_count={min_count} times; lower min_count or give more text")
    return [w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence of a word (word2vec's subsampling; 1 when sample = 0).

    >>> keep_probabilities(np.array([1000, 1]), 1e-3).round(3).tolist()
    [0.033, 1.0]
    """
    if sample == 0:
        return np.ones(len(counts))
    t = sample * counts.sum()
    return np.minimum((np.sqrt(counts / t) + 1) * t / counts, 1.0)


def negative_cdf(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Cumulative distribution of unigram^power, the negative-sampling distribution.

    >>> negative_cdf(np.array([16, 1]), 0.5).round(2).tolist()
    [0.8, 1.0]
    """
    w = counts.astype(np.float64) ** power
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


def negative_table(counts: np.ndarray, size: int = 10_000_000, power: float = 0.75) -> np.ndarray:
    """word2vec's sampling table: word i fills a share counts[i]^power / sum of it of `size` slots, so a
    uniform slot is a draw from unigram^power.

    >>> np.bincount(negative_table(np.array([16, 1]), size=10, power=0.5)).tolist()
    [8, 2]
    """
    edges = np.round(negative_cdf(counts, power) * size).astype(np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int32), np.diff(edges, prepend=0))


def huffman_paths(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per word, the inner nodes (0..V-2) from the root down and the 0/1 branch codes, padded.

    Returns (points, codes, mask), each (V, depth). Frequent words get short paths.

    >>> points, codes, mask = huffman_paths(np.array([4, 2, 1, 1]))
    >>> mask.sum(1).astype(int).tolist(), codes[:, 0].astype(int).tolist()
    ([1, 2, 3, 3], [0, 1, 1, 1])
    """
    V = len(counts)
    if V < 2:
        raise InputError("hierarchical softmax needs at least 2 words in the vocabulary")
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent, branch = np.zeros(2 * V - 1, dtype=np.int64), np.zeros(2 * V - 1, dtype=np.int64)
    nxt = V
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a], parent[b], branch[b] = nxt, nxt, 1
        heapq.heappush(heap, (c1 + c2, nxt))
        nxt += 1
    root = nxt - 1
    paths, codes = [], []
    for w in range(V):
        pts, cds, node = [], [], w
        while node != root:
            cds.append(float(branch[node]))
            node = parent[node]
            pts.append(node - V)
        paths.append(pts[::-1])
        codes.append(cds[::-1])
    depth = max(len(p) for p in paths)
    P, C, M = (np.zeros((V, depth), dtype=dt) for dt in (np.int64, np.float32, np.float32))
    for w in range(V):
        n = len(paths[w])
        P[w, :n], C[w, :n], M[w, :n] = paths[w], codes[w], 1.0
    return P, C, M


def window_pairs(ids: np.ndarray, sent: np.ndarray, window: int, rng: np.random.Generator):
    """(centre position, context position) of every pair inside a randomly shrunk window, by centre,
    then nearest first, right before left.

    >>> c, x = window_pairs(np.arange(3), np.zeros(3, dtype=np.int64), 1, np.random.default_rng(0))
    >>> sorted(zip(c.tolist(), x.tolist()))
    [(0, 1), (1, 0), (1, 2), (2, 1)]
    """
    from llmlab.classic.w2v_kernels import window_pairs_kernel

    reach = rng.integers(1, window + 1, size=len(ids))  # effective window of each centre
    return window_pairs_kernel(sent, reach)


@dataclass
class TrainStats:
    words: int  # corpus words (in vocabulary) seen, all epochs
    seconds: float  # training wall time
    predictions: int  # SGD examples (pairs for skip-gram, windows for CBOW)

    @property
    def words_per_second(self) -> float:
        return self.words / max(self.seconds, 1e-9)


def _epoch_examples(ids, sent, keep, cfg, rng):
    """One epoch's examples: input word ids ctx (M,), offsets (N + 1,) and target ids (N,); example i
    predicts its target from ctx[offsets[i]:offsets[i + 1]]."""
    kept = rng.random(len(ids)) < keep[ids]
    ids, sent = ids[kept], sent[kept]
    c, x = window_pairs(ids, sent, cfg.window, rng)
    if cfg.model == "skipgram":  # one example per (centre, context) pair
        return ids[x], np.arange(len(x) + 1), ids[c]
    # CBOW: one example per centre that has context words (window_pairs lists them by centre)
    width = np.bincount(c, minlength=len(ids))
    has = np.flatnonzero(width)
    return ids[x], np.concatenate(([0], np.cumsum(width[has]))), ids[has]


def train_word2vec(sentences: Sequence[Sequence[str]], config: Word2VecConfig | None = None):
    """Train word vectors; returns (WordVectors, TrainStats). Same seed, same vectors."""
    import torch

    cfg = config or Word2VecConfig()
    sentences = token_sentences(sentences)  # read twice below: a generator would be empty the second time
    words, counts = build_vocab(sentences, cfg.min_count)
    _check_words(words, sentences)
    index = {w: i for i, w in enumerate(words)}
    flat = [(index[w], si) for si, s in enumerate(sentences) for w in s if w in index]
    ids = np.array([f[0] for f in flat], dtype=np.int64)
    sent = np.array([f[1] for f in flat], dtype=np.int64)
    V, d = len(words), cfg.dim
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)  # initial vectors only
    w_in = ((torch.rand(V, d, generator=gen) - 0.5) / d).numpy()
    w_neg = np.zeros((V, d), dtype=np.float32)
    w_hs = np.zeros((max(V - 1, 1), d), dtype=np.float32)
    keep = keep_probabilities(counts, cfg.sample)
    table = negative_table(counts) if cfg.negative else None
    neg_scratch = _scratch(V, d) if cfg.negative else None
    in_scratch = _scratch(V, d)
    hs = None
    if cfg.hs:
        points, codes, real = huffman_paths(counts)
        hs = (points, 1.0 - codes, real > 0, *_scratch(V - 1, d))
    total_words, done_words, n_pred = cfg.epochs * len(ids), 0, 0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        ctx, offsets, tgt = _epoch_examples(ids, sent, keep, cfg, rng)
        n, chunk = len(tgt), cfg.batch_size * 64
        for lo in progress(range(0, n, cfg.batch_size), desc=f"word2vec epoch {epoch + 1}"):
            if table is not None and lo % chunk == 0:  # draw negatives for the next 64 batches at once
                negs = table[rng.integers(0, len(table), (min(chunk, n - lo), cfg.negative))]
            frac = (done_words + len(ids) * lo / max(n, 1)) / total_words
            lr = cfg.lr - (cfg.lr - cfg.min_lr) * frac
            sl = slice(lo, lo + cfg.batch_size)
            neg = negs[lo % chunk : lo % chunk + cfg.batch_size] if table is not None else None
            _step(w_in, w_neg, w_hs, ctx, offsets[lo : lo + cfg.batch_size + 1], tgt[sl], neg, lr, hs, neg_scratch,
                  in_scratch)
        done_words += len(ids)
        n_pred += n
    stats = TrainStats(done_words, time.perf_counter() - start, n_pred)
    log.info("word2vec: %d words in %.1fs, %.0f words/s", stats.words, stats.seconds, stats.words_per_second)
    return WordVectors(tuple(words), w_in), stats


def _check_words(words: list[str], sentences: list[list[str]]) -> None:
    """Refuse, before training, a vocabulary word the word2vec text format cannot hold (`word_problem`:
    one holding a space, say, from text split on something else), naming it and its first sentence;
    the trained vectors could not be saved, nor made into `WordVectors`."""
    bad = next((w for w in words if word_problem(w) is not None), None)
    if bad is None:
        return
    k = next(k for k, s in enumerate(sentences) if bad in s)
    raise InputError(f"sentences[{k}] holds the token {bad!r}, which {word_problem(bad)}: the word2vec text format "
                     "cannot hold it (rows are cut at spaces, one per line), so its vector could not be saved; "
                     f"split the text into words first. The sentence: {sentences[k]!r:.120}")


def _scratch(rows: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed per-row update sums (rows, d) and hit counts (rows,) for `logistic_update`, `add_to_context`."""
    return np.zeros((rows, d), dtype=np.float32), np.zeros(rows, dtype=np.int64)


def _step(w_in, w_neg, w_hs, ctx, offsets, tgt, neg, lr, hs, neg_scratch, in_scratch):
    """One batched SGD step, all from the batch's starting values (the gradients of log sigmoid are
    written out). Example i predicts tgt[i] from the mean h[i] of the input vectors of
    ctx[offsets[i]:offsets[i + 1]], and each of those input words gets the whole gradient of h[i]
    (an input vector's sum capped at ROW_CAP times the mean of its updates).

    offsets (B + 1,); neg (B, K) negative samples or None, with neg_scratch; hs the padded Huffman
    paths and their scratch, or None; in_scratch the input vectors' scratch. The weights (float32
    arrays) are updated in place.
    """
    from llmlab.classic.w2v_kernels import add_to_context, context_mean

    h = context_mean(w_in, ctx, offsets)  # (B, d)
    grad_h = np.zeros_like(h)
    if neg is not None:
        _negative_sampling(w_neg, h, grad_h, tgt, neg, lr, neg_scratch)
    if hs is not None:
        _hierarchical_softmax(w_hs, h, grad_h, tgt, hs, lr)
    add_to_context(w_in, ctx, offsets, grad_h, ROW_CAP, *in_scratch)


def _negative_sampling(w_neg, h, grad_h, tgt, neg, lr, scratch) -> None:
    """Push sigma(h . v_target) to 1 and sigma(h . v_negative) to 0, from the batch's starting values;
    update w_neg (each row by the sum of its updates), add into grad_h."""
    from llmlab.classic.w2v_kernels import logistic_update

    out = np.concatenate([tgt[:, None], neg], 1)  # (B, 1+K): the true word first
    label = np.zeros(out.shape, dtype=np.float32)
    label[:, 0] = 1.0
    live = np.ones(out.shape, dtype=bool)
    live[:, 1:] = neg != tgt[:, None]  # a negative equal to the target is skipped
    logistic_update(w_neg, h, grad_h, out, label, live, lr, np.inf, *scratch)


def _hierarchical_softmax(w_hs, h, grad_h, tgt, hs, lr) -> None:
    """One logistic step per inner node on each target's Huffman path (label 1 - code), from the batch's
    starting values; a node's updates are summed, capped at ROW_CAP times their mean."""
    from llmlab.classic.w2v_kernels import logistic_update

    points, labels, real, delta, seen = hs
    logistic_update(w_hs, h, grad_h, points[tgt], labels[tgt], real[tgt], lr, ROW_CAP,
                    delta, seen)  # paths padded to the deepest word, (B, depth)
