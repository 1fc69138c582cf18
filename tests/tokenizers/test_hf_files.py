"""Foreign ``tokenizer.json`` features: each one llmlab reads gives HF's ids; the others are refused."""

from __future__ import annotations

import copy
import json

import pytest

from llmlab.core.errors import InputError
from llmlab.tokenizers import load_tokenizer, train_tokenizer
from llmlab.tokenizers.pretokenize import PATTERNS

pytest.importorskip("tokenizers")
TEXTS = ["abc abcd xabc", "price 12345 ok, abc123def", "hello world 2024!", "中国人民 hello", "  two  spaces\n\nend  "]


@pytest.fixture(scope="module")
def docs(corpus):
    """The tokenizer.json of small llmlab models, to edit into foreign files."""
    texts = corpus[:40] + corpus[-80:]
    return {algo: train_tokenizer(algo, texts, 400 if algo == "bpe" else 1500).to_hf_json()
            for algo in ("bpe", "unigram", "whitespace", "wordpiece")}


def edited(docs, algo, edit, tmp_path):
    """Write `docs[algo]` changed by `edit` (without llmlab's metadata, as another tool would)."""
    doc = copy.deepcopy(docs[algo])
    del doc["model"]["llmlab"]
    edit(doc)
    path = tmp_path / f"{algo}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def same_ids_as_hf(path):
    from tokenizers import Tokenizer

    tok, ref = load_tokenizer(path), Tokenizer.from_file(str(path))
    for text in TEXTS:
        assert tok.encode(text, allowed_special="all") == ref.encode(text, add_special_tokens=False).ids, text


CHUNKS = {"type": "Split", "pattern": {"Regex": r"[\s\S]{1,3}"}, "behavior": "Isolated", "invert": False}


def then(step):
    """An edit that appends `step` to the file's pre-tokenizer (making it a Sequence)."""
    def edit(doc):
        pre = doc["pre_tokenizer"]
        parts = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        doc["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [*parts[:1], step, *parts[1:]]}
    return edit


@pytest.mark.parametrize("algo", ["bpe", "unigram"])
def test_every_split_of_a_sequence_is_applied(docs, tmp_path, algo):
    same_ids_as_hf(edited(docs, algo, then(CHUNKS), tmp_path))


@pytest.mark.parametrize("step, message", [
    ({**CHUNKS, "invert": True}, "invert=True"),
    ({**CHUNKS, "behavior": "MergedWithNext"}, "MergedWithNext"),
    ({**CHUNKS, "behavior": "Removed"}, "Removed"),
    ({"type": "Digits", "individual_digits": True}, "Digits"),
    ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}, "ByteLevel"),  # not a byte-level model
])
def test_other_pre_tokenizer_steps_are_refused(docs, tmp_path, step, message):
    with pytest.raises(InputError, match=message):
        load_tokenizer(edited(docs, "unigram", then(step), tmp_path))


def test_a_bpe_file_without_byte_level_is_refused(docs, tmp_path):
    def drop_byte_level(doc):
        doc["pre_tokenizer"] = doc["pre_tokenizer"]["pretokenizers"][0]
    with pytest.raises(InputError, match="ByteLevel"):
        load_tokenizer(edited(docs, "bpe", drop_byte_level, tmp_path))


def test_bpe_ignore_merges_takes_whole_pieces_as_hf(tmp_path):
    """Merges a+b, b+c, a+bc: merging spells "abc" as ab, c; with ignore_merges HF takes "abc" whole."""
    from llmlab.tokenizers import BPETokenizer
    from llmlab.tokenizers.base import SPECIAL_TOKENS
    from llmlab.tokenizers.pretokenize import PreTokenizer, byte_alphabet

    vocab = [s.encode() for s in SPECIAL_TOKENS] + [bytes([b]) for b in byte_alphabet()] + [b"ab", b"bc", b"abc"]
    n = len(vocab)
    tok = BPETokenizer(vocab, [(vocab.index(b"a"), vocab.index(b"b")), (vocab.index(b"b"), vocab.index(b"c")),
                               (vocab.index(b"a"), n - 2)], {s: i for i, s in enumerate(SPECIAL_TOKENS)},
                       PreTokenizer("whitespace"))
    doc = tok.to_hf_json()
    del doc["model"]["ignore_merges"]  # built without the option, we merge as HF does by default
    from tokenizers import Tokenizer

    assert tok.encode("abc abcabc") == Tokenizer.from_str(json.dumps(doc)).encode("abc abcabc").ids
    doc["model"]["ignore_merges"] = True
    path = tmp_path / "ignore.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    same_ids_as_hf(path)
    assert load_tokenizer(path).encode("abc") == [n - 1]
    load_tokenizer(path).save(tmp_path / "again.json")  # the option survives saving
    same_ids_as_hf(tmp_path / "again.json")


@pytest.mark.parametrize("texts", [["αβγ", "αβγδ"], ["αβγδ", "αβγ"]])
def test_bpe_ignore_merges_ids_do_not_depend_on_what_came_before(tmp_path, texts):
    """"αβγ" alone is one token, but inside the longer piece "αβγδ" (which encoding cuts at γ|δ) it
    is merged: neither spelling may be remembered for the other."""
    from llmlab.tokenizers import BPETokenizer
    from llmlab.tokenizers.base import SPECIAL_TOKENS
    from llmlab.tokenizers.pretokenize import PreTokenizer
    from tokenizers import Tokenizer

    vocab = [s.encode() for s in SPECIAL_TOKENS] + [bytes([b]) for b in range(256)]
    merges = []
    halves = [(c.encode()[:1], c.encode()[1:]) for c in "αβγ"]  # each letter from its two bytes
    wholes = [(a.encode(), b.encode()) for a, b in [("α", "β"), ("β", "γ"), ("α", "βγ")]]
    for a, b in halves + wholes:
        merges.append((vocab.index(a), vocab.index(b)))
        vocab.append(a + b)
    specials = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    BPETokenizer(vocab, merges, specials, PreTokenizer("gpt2"), ignore_merges=True).save(tmp_path / "im.json")
    ref = Tokenizer.from_file(str(tmp_path / "im.json"))
    tok = load_tokenizer(tmp_path / "im.json")
    for text in texts:
        assert tok.encode(text) == ref.encode(text).ids, text


def add_plain_hello(doc):
    vocab = doc["model"]["vocab"]
    doc["added_tokens"].append({"id": len(vocab), "content": "hello", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": False})
    vocab.append(["hello", 0.0])


@pytest.mark.parametrize("edit, message", [
    (add_plain_hello, "not special"),
    (lambda d: d["added_tokens"][2].update(lstrip=True), "lstrip"),
    (lambda d: d["added_tokens"][2].update(single_word=True), "single_word"),
])
def test_added_tokens_llmlab_cannot_match_are_refused(docs, tmp_path, edit, message):
    """HF finds a non-special added token in any text and may strip spaces around one; llmlab would not."""
    from tokenizers import Tokenizer

    path = edited(docs, "unigram", edit, tmp_path)
    Tokenizer.from_file(str(path))  # a valid file for HF
    with pytest.raises(InputError, match=message):
        load_tokenizer(path)


@pytest.mark.parametrize("algo, option, message", [
    ("unigram", {"unk_id": 2}, "unknown token 2"),
    ("whitespace", {"unk_token": "<|eos|>"}, r"unknown token '<\|eos\|>'"),
    ("unigram", {"byte_fallback": True}, "byte_fallback"),
    ("bpe", {"dropout": 0.5}, "dropout"),
    ("bpe", {"end_of_word_suffix": "</w>"}, "end_of_word_suffix"),
])
def test_model_options_llmlab_cannot_follow_are_refused(docs, tmp_path, algo, option, message):
    """An unknown token other than <unk>, byte fallback, BPE dropout and a BPE end-of-word suffix all
    change HF's ids."""
    from tokenizers import Tokenizer

    path = edited(docs, algo, lambda d: d["model"].update(option), tmp_path)
    Tokenizer.from_file(str(path))  # a valid file for HF
    with pytest.raises(InputError, match=message):
        load_tokenizer(path)


def test_bpe_continuing_subword_prefix_is_refused(docs, tmp_path):
    """HF then looks up every token after a word's first with the prefix before it (HF cannot even
    load this file: it wants the prefix on the right token of every merge)."""
    with pytest.raises(InputError, match="continuing_subword_prefix"):
        load_tokenizer(edited(docs, "bpe", lambda d: d["model"].update(continuing_subword_prefix="##"), tmp_path))


WORDPIECE_DECODER = {"type": "WordPiece", "prefix": "##", "cleanup": True}


@pytest.mark.parametrize("algo, decoder", [
    ("bpe", {"type": "Fuse"}), ("unigram", WORDPIECE_DECODER), ("wordpiece", WORDPIECE_DECODER),
    ("whitespace", {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Strip", "content": " ",
                                                                         "start": 1, "stop": 0}]}),
])
def test_decoders_that_decode_otherwise_are_refused(docs, tmp_path, algo, decoder):
    path = edited(docs, algo, lambda d: d.update(decoder=decoder), tmp_path)
    with pytest.raises(InputError, match=f"decoder '{decoder['type']}'"):
        load_tokenizer(path)


@pytest.mark.parametrize("algo, decoder", [
    ("bpe", {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}),
    ("unigram", {"type": "Fuse"}), ("whitespace", None), ("wordpiece", "ours"),
])
def test_decoders_that_decode_alike_still_load(docs, tmp_path, algo, decoder):
    from tokenizers import Tokenizer

    def set_decoder(doc):
        if decoder != "ours":  # ours: the Replace decoder llmlab writes
            doc["decoder"] = decoder
    path = edited(docs, algo, set_decoder, tmp_path)
    tok, ref = load_tokenizer(path), Tokenizer.from_file(str(path))
    for text in TEXTS:
        ids = tok.encode(text)
        assert decoder is None or ref.decode(ids, skip_special_tokens=False) == tok.decode(ids)


def test_llmlab_files_with_the_former_wordpiece_decoder_still_load(docs, corpus, tmp_path):
    doc = {**docs["wordpiece"], "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": False}}
    (tmp_path / "old.json").write_text(json.dumps(doc), encoding="utf-8")
    tok = load_tokenizer(tmp_path / "old.json")
    assert tok.count_unknown(corpus[-1]) == 0 and tok.decode(tok.encode(corpus[-1])) == corpus[-1]


def test_byte_level_without_use_regex_applies_the_gpt2_regex_as_hf(docs, tmp_path):
    """HF's ByteLevel defaults to use_regex=true: a file that leaves the option out splits like GPT-2."""
    def bare_byte_level(doc):
        doc["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}

    path = edited(docs, "bpe", bare_byte_level, tmp_path)
    same_ids_as_hf(path)
    assert load_tokenizer(path).pretok.regex_text == PATTERNS["gpt2"]


TEMPLATE = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                                                     {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [1], "tokens": ["<|bos|>"]}}}


@pytest.mark.parametrize("algo", ["bpe", "unigram", "wordpiece"])
def test_a_post_processor_that_adds_tokens_is_refused(docs, tmp_path, algo):
    from tokenizers import Tokenizer

    path = edited(docs, algo, lambda d: d.update(post_processor=TEMPLATE), tmp_path)
    ref = Tokenizer.from_file(str(path))
    assert ref.encode("abc").ids[0] == 1 != ref.encode("abc", add_special_tokens=False).ids[0]  # HF adds BOS
    with pytest.raises(InputError, match="post_processor 'TemplateProcessing'"):
        load_tokenizer(path)


def test_a_byte_level_post_processor_changes_no_id_and_loads(docs, tmp_path):
    from tokenizers import Tokenizer

    post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    path = edited(docs, "bpe", lambda d: d.update(post_processor=post), tmp_path)
    tok, ref = load_tokenizer(path), Tokenizer.from_file(str(path))
    for text in TEXTS:
        assert tok.encode(text) == ref.encode(text).ids, text  # HF's default encode, post-processor applied


def last_token(doc):
    vocab = doc["model"]["vocab"]
    return max(vocab, key=vocab.get)


@pytest.mark.parametrize("algo", ["bpe", "whitespace", "wordpiece"])
@pytest.mark.parametrize("edit", [
    lambda d: d["model"]["vocab"].update({last_token(d): len(d["model"]["vocab"])}),  # a gap before the last id
    lambda d: d["model"]["vocab"].update({last_token(d): 0}),  # an id twice
    lambda d: d["model"]["vocab"].update({last_token(d): str(d["model"]["vocab"][last_token(d)])}),  # "7"
    lambda d: d["model"]["vocab"].update({last_token(d): float(d["model"]["vocab"][last_token(d)])}),  # 7.0
    lambda d: d["model"].update(vocab=list(d["model"]["vocab"])),  # not a mapping
])
def test_vocabulary_ids_that_are_not_0_to_n_minus_1_are_refused(docs, tmp_path, algo, edit):
    """They index the embedding rows: a gap, a repeat or an id that is not an integer is a broken file."""
    with pytest.raises(InputError, match="vocabulary ids must be the integers 0..n-1"):
        load_tokenizer(edited(docs, algo, edit, tmp_path))
