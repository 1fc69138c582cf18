"""BPE training to the end of the corpus and with `min_frequency`: the cases where the last, rarest pairs
decide the result (found by mutation testing: the trainer's count-1 and stale-heap paths were untested)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizers import BPETokenizer
from llmlab.tokenizers.base import SPECIAL_TOKENS
from llmlab.tokenizers.bpe_train import train_bpe, train_bpe_naive
from llmlab.tokenizers.pretokenize import PATTERNS

hf = pytest.importorskip("tokenizers")
ROOM = len(SPECIAL_TOKENS) + 256 + 400  # more merges than any of the small corpora below has pairs for


@pytest.mark.parametrize("vector_min", [1, 10**9])  # numpy for every merge, or for none
@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=12), st.integers(1, 3), min_size=1, max_size=8))
def test_training_until_no_pair_is_left_equals_naive_recount(vector_min, word_counts):
    """With room to spare, merging goes on down to pairs seen once, through many stale heap entries; every
    pair is merged until each word is one token, in the same order as recounting after each merge."""
    vocab, merges = train_bpe(word_counts, ROOM, SPECIAL_TOKENS, vector_min=vector_min)
    assert (vocab, merges) == train_bpe_naive(word_counts, ROOM, SPECIAL_TOKENS)
    assert len(vocab) < ROOM
    assert {w.encode() for w in word_counts} <= set(vocab)  # nothing left to merge
    assert len(set(merges)) == len(merges)


def hf_trained(texts, vocab_size, min_frequency):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERNS["gpt2"]), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=min_frequency)
    tok.train_from_iterator(texts, trainer)
    return json.loads(tok.to_str())["model"]


@pytest.mark.parametrize("min_frequency", [1, 2, 5])
def test_min_frequency_stops_where_hf_stops(corpus, min_frequency):
    """HF's rule: a pair is merged while its count is at least `min_frequency` (a pair seen exactly that
    often is merged). The vocabulary size is out of reach, so `min_frequency` alone ends training."""
    texts = corpus[:150]
    ref = hf_trained(texts, 50_000, min_frequency)
    ours = BPETokenizer.train(texts, 50_000, pattern="gpt2", min_frequency=min_frequency).to_hf_json()["model"]
    assert len(ref["vocab"]) < 50_000
    assert ours["merges"] == [list(m) for m in ref["merges"]]
    assert ours["vocab"] == ref["vocab"]


def test_corpus_of_single_bytes_learns_no_merges():
    """Pre-tokens of one byte each leave no pair at all: the bytes alone, as HF's trainer gives (this
    raised an IndexError while setting up the empty pair arrays)."""
    texts = ["a", "b", "7", "a"]
    ref = hf_trained(texts, 300, 0)
    ours = BPETokenizer.train(texts, 300, pattern="gpt2").to_hf_json()["model"]
    assert ours["merges"] == ref["merges"] == []
    assert ours["vocab"] == ref["vocab"]
    assert train_bpe({"a": 2, "b": 1}, 300, SPECIAL_TOKENS) == train_bpe_naive({"a": 2, "b": 1}, 300, SPECIAL_TOKENS)
