"""The character tokenizer against HF's ``Tokenizer.from_file`` on its saved file."""

from __future__ import annotations

import json

import pytest

from llmlab.tokenizers import CharTokenizer, load_tokenizer

pytest.importorskip("tokenizers")


@pytest.fixture
def char_tok(corpus):
    return CharTokenizer.train(corpus)


def hf_from(doc: dict, path):
    from tokenizers import Tokenizer

    path.write_text(json.dumps(doc, ensure_ascii=False))
    return Tokenizer.from_file(str(path))


def test_hf_loads_the_saved_file(char_tok, tmp_path):
    from tokenizers import Tokenizer

    char_tok.save(tmp_path)
    Tokenizer.from_file(str(tmp_path / "tokenizer.json"))


def test_same_ids_as_hf(char_tok, samples, tmp_path):
    doc = char_tok.to_hf_json()
    ref = hf_from(doc, tmp_path / "tokenizer.json")
    texts = [*samples.values(), "中文 English 🤖 \t\n\r\n  end", "〇㐀" + chr(0x10FFFF)]
    for text in texts:
        assert char_tok.encode(text) == ref.encode(text).ids, text


def test_unknown_characters_and_round_trip(char_tok, tmp_path):
    text = "中国" + "㐀" + "\U0001F916"
    ids = char_tok.encode(text)
    assert ids[2] == char_tok.unk_id == 0 and len(ids) == len(text)
    assert char_tok.count_unknown(text) == sum(c not in char_tok.stoi for c in text)
    char_tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, CharTokenizer) and again.itos == char_tok.itos
    known = "迈向新世纪 the"
    assert again.decode(again.encode(known)) == known
