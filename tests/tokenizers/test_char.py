"""The character tokenizer against HF's ``Tokenizer.from_file`` on its saved file."""

from __future__ import annotations

import json

import pytest

from llmlab.core.errors import InputError
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


def foreign(char_tok, path, edit=lambda doc: None):
    """Write the tokenizer's file without llmlab's metadata (as another tool would), changed by `edit`."""
    doc = char_tok.to_hf_json()
    del doc["model"]["llmlab"]
    edit(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_foreign_character_file_loads_with_hf_ids(char_tok, samples, tmp_path):
    from tokenizers import Tokenizer

    path = foreign(char_tok, tmp_path / "tokenizer.json")
    tok, ref = load_tokenizer(path), Tokenizer.from_file(str(path))
    assert isinstance(tok, CharTokenizer) and tok.itos == char_tok.itos
    for text in [*samples.values(), "AbC 㐀"]:
        assert tok.encode(text) == ref.encode(text).ids, text


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(normalizer={"type": "Lowercase"}), "normalizer"),
    (lambda d: d["pre_tokenizer"].update(behavior="Removed"), "Removed"),
    (lambda d: d["pre_tokenizer"].update(invert=True), "invert"),
    (lambda d: d["model"].update(unk_token="<|eos|>"), "unknown token"),
    (lambda d: d["model"]["vocab"].update(a=10_000), "vocabulary ids must be the integers 0..n-1"),
])
def test_foreign_character_files_hf_reads_otherwise_are_refused(char_tok, tmp_path, edit, message):
    """A normalizer, dropped characters or another unknown token change HF's ids."""
    from tokenizers import Tokenizer

    path = foreign(char_tok, tmp_path / "tokenizer.json", edit)
    Tokenizer.from_file(str(path))  # a valid file for HF
    with pytest.raises(InputError, match=message):
        load_tokenizer(path)


def test_a_foreign_character_file_with_added_tokens_matches_them_as_hf(char_tok, tmp_path):
    from tokenizers import Tokenizer

    def add_specials(doc):
        doc["added_tokens"] = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                                "normalized": False, "special": True} for i, s in enumerate(char_tok.itos[:4])]

    path = foreign(char_tok, tmp_path / "tokenizer.json", add_specials)
    tok, ref = load_tokenizer(path), Tokenizer.from_file(str(path))
    for text in ["中国<|eos|>人民 the<unk> 㐀", "<|pad|><|pad|>", ""]:
        assert tok.encode(text, allowed_special="all") == ref.encode(text).ids, text
