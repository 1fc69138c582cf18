"""BPE training at the edges of the corpus, against HF's BpeTrainer and the naive recount."""

from __future__ import annotations

import json

import pytest

from llmlab.tokenizers import BPETokenizer
from llmlab.tokenizers.base import SPECIAL_TOKENS
from llmlab.tokenizers.bpe_train import train_bpe, train_bpe_naive
from llmlab.tokenizers.pretokenize import PATTERNS

hf = pytest.importorskip("tokenizers")


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


def test_corpus_of_single_bytes_learns_no_merges():
    """Pre-tokens of one byte each leave no pair at all: the bytes alone, as HF's trainer gives (this
    raised an IndexError while setting up the empty pair arrays)."""
    texts = ["a", "b", "7", "a"]
    ref = hf_trained(texts, 300, 0)
    ours = BPETokenizer.train(texts, 300, pattern="gpt2").to_hf_json()["model"]
    assert ours["merges"] == ref["merges"] == []
    assert ours["vocab"] == ref["vocab"]
    assert train_bpe({"a": 2, "b": 1}, 300, SPECIAL_TOKENS) == train_bpe_naive({"a": 2, "b": 1}, 300, SPECIAL_TOKENS)
