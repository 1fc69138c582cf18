"""Byte-level BPE: same merges as HF's BpeTrainer, same ids as HF's tokenizer, lossless."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers import BPETokenizer, UnigramTokenizer, WordPieceTokenizer, load_tokenizer
from llmlab.tokenizers.base import SPECIAL_TOKENS
from llmlab.tokenizers.bpe import merge
from llmlab.tokenizers.bpe_train import train_bpe, train_bpe_naive
from llmlab.tokenizers.pretokenize import PATTERNS, PreTokenizer
from llmlab.tokenizers.specials import with_special_tokens
from llmlab.tokenizers.subword import count_pieces

hf = pytest.importorskip("tokenizers")
SAMPLE_NAMES = ["chinese", "english", "code", "emoji", "whitespace", "korean", "mixed", "one_char", "empty"]


def hf_trained(texts, vocab_size, pattern):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERNS[pattern]), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.fixture(scope="module", params=["gpt2", "gpt4"])
def trained(request, corpus, tmp_path_factory):
    """(llmlab tokenizer, HF tokenizer loaded from llmlab's file, HF-trained tokenizer)."""
    from tokenizers import Tokenizer

    tok = BPETokenizer.train(corpus, 1200, pattern=request.param)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tok.save(path)
    return tok, Tokenizer.from_file(str(path)), hf_trained(corpus, 1200, request.param)


def test_same_vocab_and_merges_as_hf_trainer(trained):
    tok, _, reference = trained
    ref = json.loads(reference.to_str())["model"]
    ours = tok.to_hf_json()["model"]
    assert len(ours["merges"]) > 900
    assert ours["merges"] == [list(m) for m in ref["merges"]]
    assert ours["vocab"] == ref["vocab"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_same_ids_as_hf_from_our_file(trained, samples, name):
    tok, from_file, _ = trained
    text = samples[name]
    assert tok.encode(text) == from_file.encode(text).ids
    assert tok.decode(tok.encode(text)) == text


def test_same_ids_as_hf_on_corpus_lines(trained, corpus):
    tok, from_file, _ = trained
    lines = corpus[::7]
    assert [tok.encode(t) for t in lines] == [e.ids for e in from_file.encode_batch(lines)]


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_lossless_and_hf_equal_on_any_unicode(trained, text):
    tok, from_file, _ = trained
    assert tok.decode(tok.encode(text)) == text
    # HF lets special-token spellings in the text stand for them; so does allowed_special="all".
    assert tok.encode(text, allowed_special="all") == from_file.encode(text).ids


@pytest.mark.parametrize("vector_min", [1, 64, 10**9])  # numpy for every merge, for big ones, for none
def test_fast_trainer_equals_naive_recount(corpus, vector_min):
    counts = count_pieces(corpus[:40] + corpus[-60:] + ["aaaa aaaaaaa abab ababab"] * 99, PreTokenizer("gpt2"))
    fast = train_bpe(counts, 520, SPECIAL_TOKENS, vector_min=vector_min)
    assert len(fast[1]) > 200
    assert fast == train_bpe_naive(counts, 520, SPECIAL_TOKENS)


@pytest.mark.parametrize("vector_min", [1, 10**9])
def test_pairs_spelling_a_special_token_are_never_merged(vector_min):
    # "fo" is frequent text and a special token: its pair is skipped, and the pairs around it are
    # still counted as merges happen beside it (that bookkeeping once crashed with a KeyError)
    counts = count_pieces(["fox foxes fog food ofo offo"] * 9, PreTokenizer("whitespace"))
    fast = train_bpe(counts, 280, [*SPECIAL_TOKENS, "fo"], vector_min=vector_min)
    assert fast == train_bpe_naive(counts, 280, [*SPECIAL_TOKENS, "fo"])
    assert fast[0].count(b"fo") == 1 and len(fast[1]) > 10


def reference_merge(ids: list[int], merges: list[tuple[int, int, int]]) -> list[int]:
    """minbpe's loop: merge the lowest-ranked pair present, everywhere, until none is left.
    ``merges[rank]`` is (left id, right id, merged id); where a pair repeats, its first rank counts."""
    ranks = {(a, b): r for r, (a, b, _) in reversed(list(enumerate(merges)))}
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        ids = merge(ids, pair, merges[ranks[pair]][2])
    return ids


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="的一是在不了有和人这中大为上个国我以要他 abcdefghijklmnopqrst㐀🤖é€", max_size=60))
def test_compiled_encoder_equals_textbook_loop(trained, text):
    tok = trained[0]
    pieces = tok.pretok(text)
    expected = [reference_merge([tok._byte_id[b] for b in p.encode()], tok._merge_table) for p in pieces]
    assert [list(ids) for ids in tok._encode_pieces(pieces)] == expected
    assert [list(tok._encode_piece(p)) for p in pieces] == expected


def test_compiled_encoder_equals_textbook_loop_on_chinese_clauses(trained):
    """Whole clauses of news text (long pieces, tokens joining parts of characters) in one call."""
    from llmlab.data.corpora import pfr1998_text

    tok = trained[0]
    pieces = sorted({p for line in pfr1998_text("dev")[:100] for p in tok.pretok(line)})
    assert max(map(len, pieces)) > 20
    expected = [tuple(reference_merge([tok._byte_id[b] for b in p.encode()], tok._merge_table)) for p in pieces]
    assert tok._encode_pieces(pieces) == expected


# Characters whose UTF-8 bytes sit at the edges of the lead and continuation ranges (C2 80, DF BF, E0 A0 80,
# EF BF BD, F0 90 80 80, F4 8F BF BF), and repeats that make ties between equal pairs.
EDGE_CHARS = "a\u0080\u07ff\u0800\ufffd\U00010000\U0010ffff中é🤖"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=EDGE_CHARS, max_size=12), min_size=1, max_size=6), st.data())
def test_merge_table_equals_textbook_loop_on_random_merges(pieces, data):
    """Random merge lists, as a trainer would learn them from `pieces` (each merge a pair present at
    the time) plus arbitrary ones, a repeated pair and two merges making the same id; bytes get
    shuffled ids, so ids do not follow byte order."""
    from llmlab.tokenizers.bpe_merge import MergeTable

    byte_id = data.draw(st.permutations(range(256)))
    seqs = [[byte_id[b] for b in p.encode()] for p in pieces]
    merges, next_id = [], 256
    for _ in range(data.draw(st.integers(0, 30))):
        present = sorted({pair for s in seqs for pair in zip(s, s[1:])})
        kind = data.draw(st.sampled_from(["present", "present", "any", "repeat", "same id"]))
        if kind == "present" and present:
            a, b = data.draw(st.sampled_from(present))
        elif kind == "repeat" and merges:
            a, b, _ = data.draw(st.sampled_from(merges))
        else:
            a, b = data.draw(st.integers(0, next_id - 1)), data.draw(st.integers(0, next_id - 1))
        new = merges[-1][2] if kind == "same id" and merges else next_id
        merges.append((a, b, new))
        next_id += new == next_id
        seqs = [merge(s, (a, b), new) for s in seqs]
    got = MergeTable(merges, byte_id).encode(pieces)
    assert got == [tuple(reference_merge([byte_id[b] for b in p.encode()], merges)) for p in pieces]


def test_textbook_example():
    tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=263, pattern="whitespace")
    assert [tok.id_to_token(i) for i in tok.encode("aaabdaaabac")] == ["aaab", "d", "aaab", "a", "c"]


def test_special_tokens_never_come_from_text(trained):
    tok, from_file, _ = trained
    text = "hi<|eos|> <|user|><unk>"
    ids = tok.encode(text)
    assert not set(ids) & {tok.eos_id, tok.bos_id, tok.pad_id, tok.unk_id}
    assert tok.decode(ids) == text
    allowed = tok.encode(text, allowed_special="all")
    assert allowed.count(tok.eos_id) == 1 and allowed.count(tok.unk_id) == 1
    assert allowed == from_file.encode(text).ids  # HF matches special spellings by default
    with pytest.raises(InputError, match="not a special token"):
        tok.encode("x", allowed_special=["<nope>"])


def test_extra_special_tokens_get_ids_after_the_four():
    tok = BPETokenizer.train(["hello world"] * 3, 300, special_tokens=["<|user|>", "<|assistant|>"])
    assert tok.token_to_id("<|user|>") == 4 and tok.token_to_id("<|assistant|>") == 5
    assert tok.encode("<|user|>hi", allowed_special=["<|user|>"])[0] == 4
    assert 4 not in tok.encode("<|user|>hi")


def test_save_load_round_trip(trained, samples, tmp_path):
    tok = trained[0]
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, BPETokenizer)
    assert again.merges == tok.merges and again.vocab == tok.vocab
    for text in samples.values():
        assert again.encode(text) == tok.encode(text)


def test_loads_hf_trained_gpt2_style_file(corpus, samples, tmp_path):
    """A file written by HF (ByteLevel pre-tokenizer with its own regex) loads and encodes the same."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    ref = Tokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=list(SPECIAL_TOKENS),
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    ref.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    for text in samples.values():
        assert tok.encode(text) == Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids


def test_segmenter_keeps_tokens_inside_words():
    def cut(s):  # a toy segmenter: two characters at a time
        return [s[i:i + 2] for i in range(0, len(s), 2)]

    texts = ["中国人民中国人民中国人民"] * 5
    plain = BPETokenizer.train(texts, 300, pattern="gpt2")
    seg = BPETokenizer.train(texts, 300, pattern="gpt2", segmenter=cut)
    assert max(len(plain.decode([i])) for i in plain.encode(texts[0])) > 2
    assert all(len(seg.decode([i])) <= 2 for i in seg.encode(texts[0]))
    assert seg.decode(seg.encode("中国 people 人民!")) == "中国 people 人民!"
    doc = seg.to_hf_json()
    assert doc["model"]["llmlab"]["cjk_segmenter"] is True
    again = BPETokenizer.from_hf_json(doc)
    assert again.with_segmenter(cut).encode(texts[0]) == seg.encode(texts[0])
    assert BPETokenizer.from_hf_json(doc).with_segmenter(None).encode(texts[0]) == plain_encode_with(seg, texts[0])


def test_a_file_trained_with_a_segmenter_refuses_han_text_until_one_is_attached(tmp_path):
    """The file records that a segmenter cut the training text but cannot hold it: loaded alone, the tokenizer
    would give Chinese other ids than in training, silently. It refuses Han text (naming with_segmenter)
    until the segmenter is attached, or removed on purpose; other text splits alike and encodes; saving it
    again keeps the record."""
    def cut(s):
        return [s[i:i + 2] for i in range(0, len(s), 2)]

    texts = ["中国人民中国人民 people"] * 5
    for cls in (BPETokenizer, UnigramTokenizer, WordPieceTokenizer):
        size = 300 if cls is BPETokenizer else 40
        seg = cls.train(texts, size, pattern="gpt2", segmenter=cut)
        seg.save(tmp_path / "seg.json")
        loaded = load_tokenizer(tmp_path / "seg.json")
        assert loaded.encode(" people") == seg.encode(" people")
        for call in [loaded.encode, loaded.tokens] + ([loaded.encode_sample] if cls is UnigramTokenizer else []):
            with pytest.raises(InputError, match=r"with_segmenter\(cut\)"):
                call("中国人民")
        loaded.save(tmp_path / "again.json")
        assert load_tokenizer(tmp_path / "again.json").to_hf_json()["model"]["llmlab"]["cjk_segmenter"] is True
        assert loaded.with_segmenter(cut).encode(texts[0]) == seg.encode(texts[0])
        if cls is not UnigramTokenizer:  # (unigram takes no special token after training) the segmenter stays
            assert with_special_tokens(seg, ["<|user|>"]).encode(texts[0]) == seg.encode(texts[0])
        assert load_tokenizer(tmp_path / "seg.json").with_segmenter(None).encode("中国人民")
        plain = cls.train(texts, size, pattern="gpt2")
        assert plain.to_hf_json()["model"]["llmlab"].get("cjk_segmenter") is None
        plain.save(tmp_path / "plain.json")
        assert load_tokenizer(tmp_path / "plain.json").encode("中国人民") == plain.encode("中国人民")


def plain_encode_with(tok, text):
    """What `tok`'s merges give without a segmenter."""
    return BPETokenizer(tok.vocab, tok.merges, tok.special_ids, PreTokenizer(tok.pretok.pattern)).encode(text)


def test_segmenter_that_alters_text_is_rejected():
    with pytest.raises(InputError, match="must only cut"):
        BPETokenizer.train(["中国人民"], 300, segmenter=lambda s: [s + "x"])


def test_clear_errors(tmp_path):
    with pytest.raises(InputError, match="below the byte alphabet"):
        BPETokenizer.train(["abc"], 259)
    with pytest.raises(InputError, match="empty"):
        BPETokenizer.train([], 300)
    with pytest.raises(InputError, match="empty"):
        BPETokenizer.train(["", ""], 300)
    with pytest.raises(InputError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tokenizer(tmp_path / "bad.json")
    tok = BPETokenizer.train(["abc"], 260)
    with pytest.raises(InputError, match="outside the vocabulary"):
        tok.decode([260])
    with pytest.raises(InputError, match="lone surrogate"):
        tok.encode("ab\ud800c")


def test_file_whose_merges_are_missing_or_cut_short_is_refused(trained, tmp_path):
    """Without its merges a BPE file would still load and encode, byte by byte, never producing
    most of its vocabulary; it is refused instead, for a missing list and for a shortened one."""
    import json

    trained[0].save(tmp_path)
    doc = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    for merges in (None, doc["model"]["merges"][:-1]):
        cut = json.loads(json.dumps(doc))
        if merges is None:
            del cut["model"]["merges"]
        else:
            cut["model"]["merges"] = merges
        (tmp_path / "cut.json").write_text(json.dumps(cut), encoding="utf-8")
        with pytest.raises(InputError, match="merges missing"):
            load_tokenizer(tmp_path / "cut.json")


def test_every_text_is_known(trained):
    tok = trained[0]
    assert tok.count_unknown("any text, 中文, \x00 and 🤖") == 0 == tok.count_unknown("")
