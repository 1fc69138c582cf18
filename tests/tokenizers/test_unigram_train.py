"""Unigram training: the vectorised lattices against a word-at-a-time reference (the original pure-Python trainer)."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import count_pieces
from llmlab.tokenizers.unigram import lattice, logsumexp
from llmlab.tokenizers.unigram_train import (
    Lattices,
    expected_counts,
    forward_backward,
    m_step,
    seed_pieces,
    train_unigram,
    viterbi,
    viterbi_counts,
)

# --- reference: one word at a time, pieces by string (the trainer before vectorisation) ---


def ref_forward_backward(word, piece_id, logp, max_len):
    n, edges = len(word), lattice(word, piece_id, max_len)
    fwd, bwd = [0.0] * (n + 1), [0.0] * (n + 1)
    for e in range(1, n + 1):
        fwd[e] = logsumexp([fwd[s] + logp[k] for s, row in enumerate(edges) for e2, k in row if e2 == e])
    for s in range(n - 1, -1, -1):
        bwd[s] = logsumexp([logp[k] + bwd[e] for e, k in edges[s]])
    return fwd, bwd, edges


def ref_expected_counts(words, scores, max_len):
    ids, logp = {p: k for k, p in enumerate(scores)}, list(scores.values())
    counts, loglik = [0.0] * len(scores), 0.0
    for w, c in words:
        fwd, bwd, edges = ref_forward_backward(w, ids, logp, max_len)
        loglik += c * fwd[-1]
        for s, row in enumerate(edges):
            for e, k in row:
                counts[k] += c * math.exp(fwd[s] + logp[k] + bwd[e] - fwd[-1])
    return dict(zip(scores, counts)), loglik


def ref_best_split(word, scores, max_len, exclude=None):
    n = len(word)
    best, back = [0.0] + [-math.inf] * n, [0] * (n + 1)
    for s in range(n):
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


def ref_train(word_counts, size, max_len=16, shrink=0.75, em_iters=2):
    words = list(word_counts.items())
    seeds = seed_pieces(word_counts, max_len, 10 * size)
    chars = {p for p in seeds if len(p) == 1}
    total = sum(seeds.values())
    scores = {p: math.log(f / total) for p, f in seeds.items()}
    while True:
        for _ in range(em_iters):
            counts, _ = ref_expected_counts(words, scores, max_len)
            alive = {p: c for p, c in counts.items() if c >= 0.5 or p in chars}
            total = sum(max(c, 1e-6) for c in alive.values())
            scores = {p: math.log(max(c, 1e-6) / total) for p, c in alive.items()}
        if len(scores) <= size:
            return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        used = Counter()
        for w, c in words:
            for p in ref_best_split(w, scores, max_len):
                used[p] += c
        loss = {p: used[p] * (sc - sum(scores[q] for q in ref_best_split(p, scores, max_len, exclude=p)))
                for p, sc in scores.items() if p not in chars}
        target = max(size, int(len(scores) * shrink))
        ranked = sorted(loss, key=lambda p: (-loss[p], p))[: max(0, target - len(chars))]
        scores = {p: scores[p] for p in (*chars, *ranked)}


# --- random small lattices ---

PIECES = ["a", "b", "c", "ab", "bc", "ca", "abc", "bca", "aa", "cab"]


def random_case(seed):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 9))) for _ in range(rng.randint(1, 6))]
    pieces = ["a", "b", "c"] + [p for p in PIECES[3:] if rng.random() < 0.6]
    logp = np.array([math.log(rng.choice([0.1, 0.2, 0.3]) if rng.random() < 0.5 else rng.random()) for _ in pieces])
    return words, {p: k for k, p in enumerate(pieces)}, logp


@pytest.mark.parametrize("seed", range(30))
def test_forward_backward_matches_each_word_alone(seed):
    words, piece_id, logp = random_case(seed)
    lat = Lattices.build(words, piece_id, 3)
    fwd, bwd = forward_backward(lat, logp)
    for w, first in zip(words, lat.first):
        f, b, _ = ref_forward_backward(w, piece_id, logp.tolist(), 3)
        np.testing.assert_allclose(fwd[first:first + len(w) + 1], f, rtol=1e-12)
        np.testing.assert_allclose(bwd[first:first + len(w) + 1], b, rtol=1e-12)


@pytest.mark.parametrize("seed", range(30))
def test_expected_and_viterbi_counts_match_the_reference(seed):
    words, piece_id, logp = random_case(seed)
    weights = [random.Random(seed).randint(1, 3) for _ in words]
    scores = dict(zip(piece_id, logp.tolist()))
    lat = Lattices.build(words, piece_id, 3)
    counts, loglik = expected_counts(lat, logp, np.array(weights, dtype=float))
    ref, ref_ll = ref_expected_counts(list(zip(words, weights)), scores, 3)
    np.testing.assert_allclose(counts, list(ref.values()), rtol=1e-10, atol=1e-12)
    assert loglik == pytest.approx(ref_ll, rel=1e-12)
    # Viterbi ties (repeated scores above) must break as the left-to-right search does.
    used = Counter()
    for w, c in zip(words, weights):
        for p in ref_best_split(w, scores, 3):
            used[piece_id[p]] += c
    assert viterbi_counts(lat, logp, np.array(weights, dtype=float)).tolist() == [used[k] for k in range(len(logp))]


def test_splits_leave_out_the_whole_piece():
    piece_id = {"a": 0, "b": 1, "ab": 2, "abab": 3}
    logp = np.log([0.3, 0.3, 0.3, 0.1])
    lat = Lattices.build(["ab", "abab"], piece_id, 4, whole=False)
    spans = {(w, s - lat.first[w], d - lat.first[w]) for w, s, d in zip(lat.word.tolist(), lat.src, lat.dst)}
    assert (0, 0, 2) not in spans and (1, 0, 4) not in spans and (1, 0, 2) in spans
    best = viterbi(lat, logp)[0][lat.last]
    assert best.tolist() == [2 * logp[0], 2 * logp[2]]  # 'a'+'b'; 'ab'+'ab'


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="abcd", min_size=1, max_size=12), min_size=1, max_size=20))
def test_restrict_equals_building_from_the_smaller_vocabulary(words):
    seeds = seed_pieces(Counter(words), 4, 30)
    names = sorted(seeds)
    alive = np.array([len(p) == 1 or i % 2 == 0 for i, p in enumerate(names)])
    full = Lattices.build(words, {p: k for k, p in enumerate(names)}, 4).restrict(alive)
    small = Lattices.build(words, {p: k for k, p in enumerate(names) if alive[k]}, 4)
    for name in ("word", "src", "dst", "piece"):
        assert getattr(full, name).tolist() == getattr(small, name).tolist()
    for a, b in ((full.forward, small.forward), (full.backward, small.backward)):
        assert a.order.tolist() == b.order.tolist() and a.groups == b.groups
        assert a.runs.tolist() == b.runs.tolist() and a.node.tolist() == b.node.tolist()


def test_m_step_drops_rare_pieces_but_keeps_characters():
    logp = m_step(np.array([3.0, 0.4, 0.0]), np.array([False, False, True]))
    assert logp[1] == -np.inf and np.isfinite(logp[2])
    assert np.exp(logp[np.isfinite(logp)]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("extra", [30, 300])
def test_training_matches_the_reference_trainer(corpus, extra):
    counts = count_pieces(corpus[:40] + corpus[-40:], PreTokenizer("gpt4"))
    size = len(set("".join(counts))) + extra
    got, want = train_unigram(counts, size, max_piece_len=8), ref_train(counts, size, max_len=8)
    assert sorted(p for p, _ in got) == sorted(p for p, _ in want)
    want_score = dict(want)
    assert all(s == pytest.approx(want_score[p], rel=1e-9) for p, s in got)


def ref_seed_pieces(word_counts, max_piece_len, seed_size):
    chars, subs = Counter(), Counter()
    for w, c in word_counts.items():
        for s in range(len(w)):
            chars[w[s]] += c
            for e in range(s + 2, min(len(w), s + max_piece_len) + 1):
                subs[w[s:e]] += c
    best = sorted((p for p, f in subs.items() if f >= 2), key=lambda p: (-subs[p] * len(p), p))[:seed_size]
    return {**dict(chars), **{p: subs[p] for p in best}}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcde", min_size=1, max_size=15), st.integers(1, 3), max_size=12),
       st.integers(1, 6), st.integers(0, 40))
def test_seed_pieces_match_counting_every_substring(word_counts, max_piece_len, seed_size):
    got = seed_pieces(word_counts, max_piece_len, seed_size)
    assert list(got.items()) == list(ref_seed_pieces(word_counts, max_piece_len, seed_size).items())
