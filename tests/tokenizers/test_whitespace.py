"""Word-level tokenizer: same ids as HF's WordLevel, unknown words, lossless on known words."""

from __future__ import annotations

import pytest

from llmlab.tokenizers import WhitespaceTokenizer, load_tokenizer

pytest.importorskip("tokenizers")


def test_same_ids_as_hf_and_round_trip(corpus, samples, tmp_path):
    from tokenizers import Tokenizer

    tok = WhitespaceTokenizer.train(corpus, 2000)
    tok.save(tmp_path)
    ref = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in [*samples.values(), *corpus[::9]]:
        assert tok.encode(text) == ref.encode(text).ids
    assert tok.vocab_size == 2000
    assert tok.decode(tok.encode(corpus[-3])) == corpus[-3]
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WhitespaceTokenizer) and again.vocab == tok.vocab


def test_unknown_and_special_words():
    tok = WhitespaceTokenizer.train(["a b a c <|eos|>"], 10)
    assert tok.tokens("a zzz") == ["a", " ", "<unk>"]
    assert tok.eos_id not in tok.encode("<|eos|>")
    assert tok.encode("a<|eos|>", allowed_special="all")[-1] == tok.eos_id
