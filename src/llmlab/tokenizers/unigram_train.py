"""Training a unigram tokenizer: seed vocabulary, EM, pruning (the sentencepiece recipe, simplified).

1. Seed: every character, plus the most frequent substrings (up to `max_piece_len` characters) of
   the pre-tokens, scored by frequency x length.
2. EM: the E-step runs forward-backward over each distinct pre-token's segmentation lattice to get
   expected piece counts; the M-step sets log p(piece) = log(count / total).
3. Prune: for each multi-character piece, the loss of removing it is its Viterbi count times the
   score it has over the best split of that piece by the other pieces; keep the `shrink` fraction
   with the highest loss. Repeat 2-3 until `size` pieces are left; characters are never removed,
   so every seen character stays encodable.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping

from llmlab.core.errors import InputError
from llmlab.tokenizers.unigram import lattice, logsumexp

log = logging.getLogger(__name__)


def seed_pieces(word_counts: Mapping[str, int], max_piece_len: int, seed_size: int) -> dict[str, int]:
    """Characters plus the `seed_size` best substrings by frequency x length (seen at least twice).

    >>> sorted(seed_pieces({"abab": 1}, 2, 10).items())
    [('a', 2), ('ab', 2), ('b', 2)]
    """
    chars: Counter[str] = Counter()
    subs: Counter[str] = Counter()
    for w, c in word_counts.items():
        n = len(w)
        for s in range(n):
            chars[w[s]] += c
            for e in range(s + 2, min(n, s + max_piece_len) + 1):
                subs[w[s:e]] += c
    best = sorted((p for p, f in subs.items() if f >= 2), key=lambda p: (-subs[p] * len(p), p))[:seed_size]
    return {**dict(chars), **{p: subs[p] for p in best}}


def expected_counts(words: list[tuple[str, int]], scores: dict[str, float], max_len: int
                    ) -> tuple[dict[str, float], float]:
    """E-step: expected uses of each piece over all segmentations; also the corpus log-likelihood."""
    ids = {p: k for k, p in enumerate(scores)}
    names, logp = list(scores), list(scores.values())
    counts = [0.0] * len(names)
    loglik = 0.0
    for w, c in words:
        n = len(w)
        edges = lattice(w, ids, max_len)
        ending: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
        for s, row in enumerate(edges):
            for e, k in row:
                ending[e].append((s, k))
        fwd = [0.0] * (n + 1)
        for e in range(1, n + 1):
            fwd[e] = logsumexp([fwd[s] + logp[k] for s, k in ending[e]])
        bwd = [0.0] * (n + 1)
        for s in range(n - 1, -1, -1):
            bwd[s] = logsumexp([logp[k] + bwd[e] for e, k in edges[s]])
        z = fwd[n]
        loglik += c * z
        for s, row in enumerate(edges):
            for e, k in row:
                counts[k] += c * math.exp(fwd[s] + logp[k] + bwd[e] - z)
    return dict(zip(names, counts)), loglik


def viterbi_counts(words: list[tuple[str, int]], scores: dict[str, float], max_len: int) -> Counter[str]:
    """How often each piece is used in the best segmentations."""
    out: Counter[str] = Counter()
    for w, c in words:
        for p in best_split(w, scores, max_len):
            out[p] += c
    return out


def best_split(word: str, scores: Mapping[str, float], max_len: int, exclude: str | None = None) -> list[str]:
    """Highest-scoring segmentation of `word` into known pieces (optionally without `exclude`).

    >>> best_split("abc", {"a": -1.0, "b": -1.0, "c": -1.0, "bc": -1.5}, 2)
    ['a', 'bc']
    """
    n = len(word)
    best = [0.0] + [-math.inf] * n
    back = [0] * (n + 1)
    for s in range(n):
        if best[s] == -math.inf:
            continue
        for e in range(s + 1, min(n, s + max_len) + 1):
            p = word[s:e]
            sc = scores.get(p)
            if sc is not None and p != exclude and best[s] + sc > best[e]:
                best[e], back[e] = best[s] + sc, s
    out, e = [], n
    while e > 0:
        out.append(word[back[e]:e])
        e = back[e]
    return out[::-1]


def m_step(counts: Mapping[str, float], keep: set[str]) -> dict[str, float]:
    """Log-probabilities from expected counts; pieces used less than half a time vanish unless kept."""
    alive = {p: c for p, c in counts.items() if c >= 0.5 or p in keep}
    total = sum(max(c, 1e-6) for c in alive.values())
    return {p: math.log(max(c, 1e-6) / total) for p, c in alive.items()}


def prune(words: list[tuple[str, int]], scores: dict[str, float], max_len: int, target: int,
          chars: set[str]) -> dict[str, float]:
    """Keep the `target` pieces whose removal would cost the corpus most (characters always stay)."""
    used = viterbi_counts(words, scores, max_len)
    loss = {}
    for p, sc in scores.items():
        if p in chars:
            continue
        alt = best_split(p, scores, max_len, exclude=p)
        loss[p] = used[p] * (sc - sum(scores[q] for q in alt))
    ranked = sorted(loss, key=lambda p: (-loss[p], p))[: max(0, target - len(chars))]
    return {p: scores[p] for p in (*chars, *ranked)}


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
    words = list(word_counts.items())
    seeds = seed_pieces(word_counts, max_piece_len, 10 * size if seed_size is None else seed_size)
    chars = {p for p in seeds if len(p) == 1}
    if size < len(chars):
        raise InputError(f"vocab size leaves room for {size} pieces, below the {len(chars)} distinct characters "
                         f"of the corpus (a unigram vocabulary keeps every character)")
    total = sum(seeds.values())
    scores = {p: math.log(f / total) for p, f in seeds.items()}
    while True:
        for _ in range(em_iters):
            counts, loglik = expected_counts(words, scores, max_piece_len)
            scores = m_step(counts, chars)
        log.debug("unigram: %d pieces, log-likelihood %.1f", len(scores), loglik)
        if len(scores) <= size:
            break
        scores = prune(words, scores, max_piece_len, max(size, int(len(scores) * shrink)), chars)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
