"""Unigram LM tokenizer: Viterbi against brute force and HF, sampling against exact probabilities, EM."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers import UnigramTokenizer, load_tokenizer
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import count_pieces
from llmlab.tokenizers.unigram_train import Lattices, expected_counts, m_step, seed_pieces

pytest.importorskip("tokenizers")
SAMPLE_NAMES = ["chinese", "english", "code", "emoji", "whitespace", "korean", "mixed", "one_char", "empty"]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from tokenizers import Tokenizer

    tok = UnigramTokenizer.train(corpus[:250] + corpus[-300:], 2500)
    path = tmp_path_factory.mktemp("unigram") / "tokenizer.json"
    tok.save(path)
    return tok, Tokenizer.from_file(str(path))


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_same_ids_as_hf_from_our_file(trained, samples, name):
    tok, from_file = trained
    assert tok.encode(samples[name]) == from_file.encode(samples[name]).ids


def test_same_ids_as_hf_on_corpus(trained, corpus):
    tok, from_file = trained
    lines = corpus[::5]
    assert [tok.encode(t) for t in lines] == [e.ids for e in from_file.encode_batch(lines)]


def test_trainer_size_characters_and_round_trip(trained, corpus):
    tok, _ = trained
    assert tok.vocab_size == 2500
    seen = {c for t in corpus[:250] + corpus[-300:] for c in t}
    assert all(tok.token_to_id(c) is not None for c in seen)
    for t in corpus[:30]:
        assert tok.decode(tok.encode(t)) == t
    assert any(len(tok.id_to_token(i)) > 1 for i in tok.encode(corpus[0]))


def segmentations(word, vocab):
    """Every way to cut `word` into pieces of `vocab` (brute force)."""
    n = len(word)
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        parts = [word[a:b] for a, b in zip(bounds, bounds[1:])]
        if all(p in vocab for p in parts):
            yield parts


VOCAB = {"a": -2.0, "b": -2.5, "c": -3.0, "ab": -3.1, "bc": -4.2, "abc": -6.9, "ca": -4.4, "cab": -5.3}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc", min_size=1, max_size=9))
def test_viterbi_is_the_best_segmentation(word):
    tok = UnigramTokenizer(list(VOCAB.items()), pattern="whitespace")
    best = max(segmentations(word, VOCAB), key=lambda parts: sum(VOCAB[p] for p in parts))
    assert [tok.id_to_token(i) for i in tok.encode(word)] == best


@pytest.mark.parametrize("alpha", [0.5, 0.0])  # alpha 0: uniform over the segmentations
def test_sampling_follows_the_exact_distribution(alpha):
    tok = UnigramTokenizer(list(VOCAB.items()), pattern="whitespace")
    n = 4000
    segs = list(segmentations("abcab", VOCAB))
    weights = [math.exp(alpha * sum(VOCAB[p] for p in s)) for s in segs]
    exact = {tuple(s): w / sum(weights) for s, w in zip(segs, weights)}
    rng = random.Random(0)
    drawn = Counter(tuple(tok.id_to_token(i) for i in tok.encode_sample("abcab", alpha, rng)) for _ in range(n))
    assert set(drawn) <= set(exact)
    for seg, p in exact.items():
        assert abs(drawn[seg] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, seg
    big = [tok.encode_sample("abcab", 50.0, rng) for _ in range(20)]
    assert all(ids == tok.encode("abcab") for ids in big)  # large alpha: the Viterbi split


def test_em_never_lowers_the_likelihood(corpus):
    counts = count_pieces(corpus[:60], PreTokenizer("gpt4"))
    seeds = seed_pieces(counts, 8, 3000)
    names = list(seeds)
    lat = Lattices.build(list(counts), {p: k for k, p in enumerate(names)}, 8)
    weight = np.array(list(counts.values()), dtype=float)
    freq = np.array(list(seeds.values()), dtype=float)
    logp, chars = np.log(freq / freq.sum()), np.array([len(p) == 1 for p in names])
    lls = []
    for _ in range(4):
        c, ll = expected_counts(lat, logp, weight)
        lls.append(ll)
        logp = m_step(c, chars)
        lat = lat.restrict(np.isfinite(logp))
    assert all(b >= a - 1e-6 * abs(a) for a, b in zip(lls, lls[1:])), lls
    assert lls[-1] > lls[0]


def test_unknown_characters_fuse_into_one_unk(tmp_path):
    from tokenizers import Tokenizer

    tok = UnigramTokenizer([("a", -1.0), ("b", -1.0)], pattern="whitespace")
    assert tok.encode("a€€b☃a") == [4, 0, 5, 0, 4]
    tok.save(tmp_path)
    assert Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode("a€€b☃a").ids == [4, 0, 5, 0, 4]
    assert load_tokenizer(tmp_path).encode("a€€b☃a") == [4, 0, 5, 0, 4]


def test_sampling_fuses_unknown_characters_as_encode_does():
    """A run of characters without a piece is one <unk> in every drawn segmentation, as in `encode` (it was one
    <unk> per character): a large alpha gives encode's ids, and any draw has encode's <unk>s."""
    tok = UnigramTokenizer([("a", -1.0), ("b", -1.0), ("ab", -1.5)], pattern="whitespace")
    rng = random.Random(0)
    for text in ["aÿÿÿb", "ÿÿ", "a€€b☃a", "ÿabÿÿ"]:
        assert tok.encode_sample(text, 50.0, rng) == tok.encode(text)
        for _ in range(20):
            assert tok.encode_sample(text, 0.0, rng).count(tok.unk) == tok.encode(text).count(tok.unk)


def test_special_spellings_are_ordinary_text(trained):
    tok, from_file = trained
    assert tok.eos_id not in tok.encode("<|eos|>")
    assert tok.encode("x<|eos|>", allowed_special="all") == from_file.encode("x<|eos|>").ids


def test_clear_errors():
    with pytest.raises(InputError, match="distinct characters"):
        UnigramTokenizer.train(["abcdefghij"], 10)
    with pytest.raises(InputError, match="empty"):
        UnigramTokenizer.train([], 100)
    with pytest.raises(InputError, match="alpha"):
        UnigramTokenizer([("a", -1.0)]).encode_sample("a", -1.0)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(alphabet="abq", min_size=1, max_size=3).filter(lambda p: p != "q"),
                       st.floats(-12.0, -0.1), min_size=1, max_size=8),
       st.lists(st.text(alphabet="abq", min_size=1, max_size=7), min_size=1, max_size=3))
def test_unknown_characters_against_covering_pieces_as_hf(vocab, words):
    """"q" has no piece of its own: Viterbi weighs <unk> (the rarest score less HF's penalty) against
    pieces that cover it, exactly as HF's Unigram does."""
    from tokenizers import Tokenizer

    tok = UnigramTokenizer(list(vocab.items()), pattern="whitespace")
    ref = Tokenizer.from_str(json.dumps(tok.to_hf_json()))
    text = " ".join(words)
    assert tok.encode(text) == ref.encode(text).ids


def test_count_unknown_counts_characters_without_a_piece():
    tok = UnigramTokenizer([("a", -1.0), ("b", -1.0), ("ab", -1.5), ("qa", -2.0)], pattern="whitespace")
    assert tok.count_unknown("abba") == 0
    assert tok.count_unknown("aqbqqa") == 3  # q is covered only as part of "qa"


def test_sampling_around_unknown_characters():
    """An isolated unknown character is one <unk> edge; a large alpha then gives the Viterbi split."""
    tok = UnigramTokenizer(list(VOCAB.items()), pattern="whitespace")
    rng = random.Random(0)
    for text in ["xabc", "abxca", "abcx", "x", "axbxc"]:
        assert tok.encode_sample(text, 50.0, rng) == tok.encode(text), text
        assert len(tok.encode_sample(text, 0.0, rng)) >= 1


def test_repeated_empty_or_special_pieces_are_refused():
    for pieces in ([("a", -1.0), ("a", -2.0)], [("", -1.0)], [("<unk>", -1.0)]):
        with pytest.raises(InputError, match="empty or repeated"):
            UnigramTokenizer(pieces)


def test_training_text_spelling_a_special_token(tmp_path):
    """A piece that spells a special token is left out of the pieces, and the text is encoded otherwise."""
    tok = UnigramTokenizer.train(["<unk> <unk> ab", "<unk> ba"] * 5, 40, pattern="whitespace")
    assert tok.unk_id not in tok.encode("<unk>")
    assert tok.decode(tok.encode("<unk> ab")) == "<unk> ab"
