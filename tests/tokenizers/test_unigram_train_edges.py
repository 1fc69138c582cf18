"""Unigram training edges found by mutation testing: vocabularies lacking a character (lattice builder),
corpora where no substring repeats (empty lattices), the half-count rule, and the documented arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import count_pieces
from llmlab.tokenizers.unigram import lattice
from llmlab.tokenizers.unigram_train import Lattices, m_step, train_unigram

PIECES = ["a", "b", "c", "ab", "bc", "ca", "abc", "bca", "aa", "cab", "bb", "abca"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="abc", max_size=10), min_size=1, max_size=6),
       st.lists(st.sampled_from(PIECES), min_size=1, unique=True), st.integers(1, 5), st.booleans())
def test_lattices_hold_every_piece_occurrence_as_the_one_word_lattice(words, pieces, max_len, whole):
    """`Lattices.build` against `unigram.lattice` word by word, with vocabularies that may lack a
    character (a piece such as 'ab' must still be found where 'a' is no piece)."""
    piece_id = {p: k for k, p in enumerate(pieces)}
    lat = Lattices.build(words, piece_id, max_len, whole=whole)
    got = sorted(zip(lat.word.tolist(), (lat.src - lat.first[lat.word]).tolist(),
                     (lat.dst - lat.first[lat.word]).tolist(), lat.piece.tolist()))
    want = sorted((w, s, e, k) for w, word in enumerate(words) for s, row in enumerate(lattice(word, piece_id, max_len))
                  for e, k in row if whole or e - s < len(word))
    assert got == want


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz中🤖", min_size=1, max_size=4), min_size=1, max_size=5),
       st.integers(0, 5))
def test_corpus_without_a_repeated_substring_keeps_its_characters(words, spare):
    """Each character used once: no substring is seen twice, so the seeds are the characters alone (no
    multi-character piece to prune) and EM gives each its frequency, log(1 / n), with n characters."""
    chars = "".join(words)
    if len(set(chars)) < len(chars):
        words = list(dict.fromkeys(chars))  # make every character occur once
        chars = "".join(words)
    got = train_unigram(dict.fromkeys(words, 1), len(chars) + spare, max_piece_len=4)
    assert sorted(p for p, _ in got) == sorted(chars)
    assert all(math.isclose(s, math.log(1 / len(chars)), rel_tol=1e-12) for _, s in got)


def test_m_step_keeps_a_piece_used_exactly_half_a_time():
    """The rule is 'less than half a time vanishes': 0.5 stays, just below it goes."""
    counts = np.array([2.0, 0.5, 0.5 - 1e-9, 1.5])
    logp = m_step(counts, np.zeros(4, dtype=bool))
    assert np.isfinite(logp).tolist() == [True, True, False, True]
    np.testing.assert_allclose(np.exp(logp[[0, 1, 3]]), [0.5, 0.125, 0.375], rtol=1e-12)


@pytest.mark.parametrize("shrink", [0.0, 1.0, -0.5, 1.5])
def test_shrink_outside_the_open_interval_is_refused(shrink):
    with pytest.raises(InputError, match="shrink must be in"):
        train_unigram({"abab": 3}, 10, shrink=shrink)


def test_seed_size_bounds_the_multi_character_pieces(corpus):
    """At most `seed_size` pieces besides the characters, however large `size` is."""
    counts = count_pieces(corpus[:60], PreTokenizer("gpt4"))
    for seed_size in (0, 7, 40):
        got = train_unigram(counts, 10_000, seed_size=seed_size)
        assert sum(len(p) > 1 for p, _ in got) <= seed_size
        assert {p for p, _ in got if len(p) == 1} == set("".join(counts))


def test_pieces_are_at_most_16_characters_by_default():
    """The default `max_piece_len` is 16 (HF's UnigramTrainer and sentencepiece use the same): a 17-letter
    word seen often never becomes one piece, but its 16-letter parts can."""
    word = "abcdefghijklmnopq"
    got = dict(train_unigram({word: 50, "x": 1}, 40))
    assert word not in got and max(map(len, got)) == 16
    assert word in dict(train_unigram({word: 50, "x": 1}, 40, max_piece_len=17))
