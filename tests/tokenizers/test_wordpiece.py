"""WordPiece: greedy longest match against HF, incremental trainer against the textbook recount."""

from __future__ import annotations

from collections import Counter

import pytest

from llmlab.core.errors import InputError
from llmlab.tokenizers import WordPieceTokenizer, load_tokenizer
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import count_pieces
from llmlab.tokenizers.wordpiece import train_wordpiece

pytest.importorskip("tokenizers")
SAMPLE_NAMES = ["chinese", "english", "code", "emoji", "whitespace", "korean", "mixed", "one_char", "empty"]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from tokenizers import Tokenizer

    tok = WordPieceTokenizer.train(corpus[:200] + corpus[-300:], 3000)
    path = tmp_path_factory.mktemp("wordpiece") / "tokenizer.json"
    tok.save(path)
    return tok, Tokenizer.from_file(str(path))


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_same_ids_as_hf_from_our_file(trained, samples, name):
    tok, from_file = trained
    assert tok.encode(samples[name]) == from_file.encode(samples[name]).ids


def test_same_ids_as_hf_on_corpus_and_round_trip(trained, corpus):
    tok, from_file = trained
    lines = corpus[::5]
    assert [tok.encode(t) for t in lines] == [e.ids for e in from_file.encode_batch(lines)]
    for t in corpus[:20] + corpus[-20:]:
        assert tok.decode(tok.encode(t)) == t


def naive_wordpiece(word_counts, size, prefix="##"):
    """Textbook trainer: recount pairs and pieces after every merge; best count(ab)/(count(a)count(b))."""
    words = [([w[0]] + [prefix + c for c in w[1:]], n) for w, n in word_counts.items()]
    vocab = sorted({t for w, _ in words for t in w}, key=lambda t: (t.startswith(prefix), t))
    while len(vocab) < size:
        pairs, units = Counter(), Counter()
        for w, n in words:
            units.update({t: n * k for t, k in Counter(w).items()})
            for p in zip(w, w[1:]):
                pairs[p] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p] / (units[p[0]] * units[p[1]]), -pairs[p], p))
        new = best[0] + best[1][len(prefix):]
        for k, (w, n) in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = (out, n)
        if new not in vocab:
            vocab.append(new)
    return vocab


def test_incremental_trainer_equals_textbook(corpus):
    counts = count_pieces(corpus[-120:], PreTokenizer("gpt4"))
    fast = train_wordpiece(counts, 400)
    assert len(fast) == 400
    assert fast == naive_wordpiece(counts, 400)


def test_greedy_longest_match_and_whole_word_unk():
    tok = WordPieceTokenizer(["un", "##aff", "##able", "a", "##b", "##ff"], pattern="whitespace")
    assert tok.tokens("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokens("unaffx ab") == ["<unk>", "<unk>", "a", "##b"]  # ' ' is not in this vocabulary


def test_special_spellings_are_ordinary_text(trained):
    tok, from_file = trained
    assert tok.eos_id not in tok.encode("<|eos|>")
    assert tok.encode("x <|eos|>", allowed_special="all") == from_file.encode("x <|eos|>").ids


def test_load_and_errors(trained, tmp_path):
    tok, _ = trained
    tok.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert isinstance(again, WordPieceTokenizer) and again.vocab == tok.vocab
    with pytest.raises(InputError, match="characters"):
        WordPieceTokenizer.train(["abcdefghij"], 8)
    with pytest.raises(InputError, match="empty"):
        WordPieceTokenizer.train([""], 100)


HASH_TEXTS = ["## Heading", "###", "##", "a ## b\n### c", "x##y", "#tag ##x", "C# and F#", "### sub\n##"]


@pytest.mark.parametrize("pattern", ["gpt4", "whitespace"])
def test_text_starting_with_the_prefix_round_trips_with_hf_ids(tmp_path, pattern):
    """HF would read a word-initial "###" as the continuation "#": no word may start with "##"."""
    from tokenizers import Tokenizer

    tok = WordPieceTokenizer.train(HASH_TEXTS * 3, 120, pattern=pattern)
    tok.save(tmp_path / "t.json")
    ref = Tokenizer.from_file(str(tmp_path / "t.json"))
    for text in HASH_TEXTS:
        assert tok.count_unknown(text) == 0
        assert tok.decode(tok.encode(text)) == text
        assert tok.encode(text) == ref.encode(text).ids
    with pytest.raises(InputError, match="continuation prefix"):
        train_wordpiece({"##a": 1}, 10)


def test_hf_decodes_our_file_as_we_do(trained, samples, tmp_path):
    """The saved decoder gives HF our decode: no space added between words, continuations joined."""
    tok, from_file = trained
    texts = [*samples.values(), "hello  world", "## Heading\n", "a ##b", "x" * 3]
    for text in texts:
        ids = tok.encode(text)
        assert from_file.decode(ids, skip_special_tokens=False) == tok.decode(ids)
    small = WordPieceTokenizer.train(HASH_TEXTS, 120, prefix="#")
    small.save(tmp_path / "t.json")
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(tmp_path / "t.json"))
    for text in HASH_TEXTS:
        ids = small.encode(text)
        assert ref.decode(ids, skip_special_tokens=False) == small.decode(ids) == text


def test_max_word_length_boundary_as_hf(tmp_path):
    """HF's max_input_chars_per_word: a word of exactly that many characters is still split."""
    from tokenizers import Tokenizer

    tok = WordPieceTokenizer(["a", "##a", "b", "##b"], pattern="whitespace", max_word=4)
    tok.save(tmp_path / "t.json")
    ref = Tokenizer.from_file(str(tmp_path / "t.json"))
    for text in ["aba", "abab", "ababa", "ab abab ababa"]:
        assert tok.encode(text) == ref.encode(text).ids, text
    assert tok.tokens("abab") == ["a", "##b", "##a", "##b"] and tok.tokens("ababa") == ["<unk>"]


def test_prefix_of_two_different_characters_is_guarded(tmp_path):
    """The guard cuts off the first character of each occurrence of the prefix, so no piece starts
    with it; with HF's ids and a lossless round trip."""
    from tokenizers import Tokenizer

    texts = ["~#x ~#~# a~#b", "#~ ~ # x~#", "~#~#~ #~#"]
    tok = WordPieceTokenizer.train(texts * 3, 80, prefix="~#")
    assert not any(p.startswith("~#") for text in texts for p in tok.pretok(text))
    tok.save(tmp_path / "t.json")
    ref = Tokenizer.from_file(str(tmp_path / "t.json"))
    for text in texts:
        assert tok.encode(text) == ref.encode(text).ids
        assert tok.decode(tok.encode(text)) == text
