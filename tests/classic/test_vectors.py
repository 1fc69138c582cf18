"""Word vectors against gensim's KeyedVectors: file format, cosine, neighbours, analogies, Spearman."""

import re

import numpy as np
import pytest

from llmlab.classic.vectors import (
    WordVectors,
    evaluate_analogies,
    evaluate_similarity,
    onehot_vs_distributed,
    read_analogies,
    read_pairs,
    spearman,
)
from llmlab.core.errors import InputError


@pytest.fixture
def wv():
    rng = np.random.default_rng(0)
    words = tuple(f"w{i}" for i in range(40)) + ("北京", "中国", "东京", "日本")
    return WordVectors(words, rng.normal(size=(len(words), 12)).astype(np.float32))


def test_word2vec_text_format_loads_in_gensim_and_back(tmp_path, wv):
    models = pytest.importorskip("gensim.models")
    path = tmp_path / "v.txt"
    wv.save_word2vec(path)
    kv = models.KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert list(kv.index_to_key) == list(wv.words)
    np.testing.assert_allclose(kv.vectors, wv.vectors, rtol=1e-5, atol=1e-6)
    back = WordVectors.load_word2vec(path)
    assert back.words == wv.words
    np.testing.assert_array_equal(back.vectors, wv.vectors)  # the same float32 values, not nearly them


def test_word2vec_files_of_other_tools_load_and_broken_ones_are_clear_errors(tmp_path, wv):
    path = tmp_path / "v.txt"
    wv.save_word2vec(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    # the original C tool and fastText end each vector line with a space; Windows adds BOM and CRLF
    other = tmp_path / "c.txt"
    other.write_bytes(b"\xef\xbb\xbf" + "".join(ln + (" " if i else "") + "\r\n"
                                              for i, ln in enumerate(lines)).encode())
    back = WordVectors.load_word2vec(other)
    assert back.words == wv.words and np.array_equal(back.vectors, WordVectors.load_word2vec(path).vectors)
    for body, message in ((lines[1].split(" ", 1)[0] + " x" * wv.dim, "not all numbers"),
                          (lines[1].split(" ", 1)[0] + " nan" * wv.dim, "NaN or infinity")):
        other.write_text("\n".join([lines[0], body, *lines[2:]]) + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=message):
            WordVectors.load_word2vec(other)
    # a word given twice said only "words must be unique": neither the file, the line nor the word
    other.write_text("\n".join([lines[0], *lines[1:-1], lines[1]]) + "\n", encoding="utf-8")
    word = lines[1].split()[0]
    with pytest.raises(InputError, match=rf"c\.txt:{len(lines)}: {word!r} has a vector already, on line 2"):
        WordVectors.load_word2vec(other)
    with pytest.raises(InputError, match="'w' appears more than once"):
        WordVectors(("v", "w", "w"), np.zeros((3, 2)))
    other.write_bytes(path.read_bytes().replace(b"w1 ", b"w\xff "))
    with pytest.raises(InputError, match="not UTF-8"):
        WordVectors.load_word2vec(other)


def test_lists_read_by_the_line_rules_and_bad_lines_are_errors(tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_bytes("\ufefffox\tdog\t9\r\nthe\tover\u2028x\t5\n".encode())
    assert read_pairs(str(pairs)) == [("fox", "dog", 9.0), ("the", "over\u2028x", 5.0)]
    for bad in ("fox dog 9", "fox\tdog\tnine", "a\tb\t1\t2"):
        pairs.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(InputError, match="similarity line"):
            read_pairs(str(pairs))
    questions = tmp_path / "a.txt"
    questions.write_bytes("\ufeffa b c d\r\n".encode())
    assert read_analogies(str(questions)) == [("a", "b", "c", "d")]


def test_similarity_neighbours_and_analogies_equal_gensim(wv):
    models = pytest.importorskip("gensim.models")
    kv = models.KeyedVectors(wv.dim)
    kv.add_vectors(list(wv.words), wv.vectors)
    assert wv.similarity("w1", "北京") == pytest.approx(float(kv.similarity("w1", "北京")), abs=1e-5)
    for w in ("w0", "w7", "日本"):
        ours, theirs = wv.most_similar(w, topn=6), kv.most_similar(w, topn=6)
        assert [a for a, _ in ours] == [a for a, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    ours = wv.analogy("中国", "北京", "东京", topn=3)  # 中国 - 北京 + 东京
    theirs = kv.most_similar(positive=["中国", "东京"], negative=["北京"], topn=3)
    assert [a for a, _ in ours] == [a for a, _ in theirs]
    # one word as a string is one word on either side (it was read as its characters when negative)
    ours = wv.most_similar("中国", "北京", topn=3)
    theirs = kv.most_similar(positive="中国", negative="北京", topn=3)
    assert [a for a, _ in ours] == [a for a, _ in theirs] == [a for a, _ in wv.most_similar(["中国"], ["北京"], 3)]


def test_spearman_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, size=50).astype(float), rng.normal(size=50)  # many ties in x
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_analogy_by_hand():
    v = WordVectors(("man", "woman", "king", "queen", "apple"),
                    np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, -1]], dtype=np.float32))
    assert v.analogy("king", "man", "woman")[0][0] == "queen"  # king - man + woman
    assert evaluate_analogies(v, [("man", "woman", "king", "queen"), ("man", "x", "y", "z")]) == {
        "accuracy": 1.0, "questions": 1, "oov_questions": 1}


def test_builtin_lists_parse_and_cover_pfr1998():
    zh, en = read_pairs("zh"), read_pairs("en")
    assert len(zh) >= 60 and len(en) >= 40 and all(0 <= s <= 10 for *_, s in zh + en)
    qs = read_analogies("zh")
    assert len(qs) >= 300 and all(len(q) == 4 for q in qs)
    corpora = pytest.importorskip("llmlab.data.corpora")
    try:
        words = {w for s in corpora.pfr1998_words("train") for w in s}
    except Exception as e:
        pytest.skip(f"pfr1998 unavailable: {e}")
    assert all(a in words and b in words for a, b, _ in zh)
    assert sum(all(w in words for w in q) for q in qs) / len(qs) > 0.95


def test_evaluate_similarity_perfect_when_cosines_follow_scores():
    v = WordVectors(("a", "b", "c", "d"), np.array([[1, 0], [1, 0.1], [1, 1], [-1, 0.2]], dtype=np.float32))
    pairs = [("a", "b", 9.0), ("a", "c", 5.0), ("a", "d", 1.0), ("a", "zz", 3.0)]
    assert evaluate_similarity(v, pairs) == {"spearman": pytest.approx(1.0), "pairs": 3, "oov_pairs": 1}


def test_onehot_versus_distributed(wv):
    pairs = [("w1", "w2", 8.0), ("w3", "w4", 2.0), ("北京", "东京", 6.0)]
    out = onehot_vs_distributed(wv, pairs)
    assert out["onehot"]["dim"] == len(wv) and out["onehot"]["cosine_any_two_words"] == 0.0
    assert out["distributed"]["dim"] == 12 and out["distributed"]["nonzero_share"] == 1.0


@pytest.mark.parametrize("bad", [dict(words=("a",), vectors=np.zeros((2, 3))),
                                 dict(words=("a b",), vectors=np.zeros((1, 3))),
                                 dict(words=("a", "a"), vectors=np.zeros((2, 3)))])
def test_bad_vectors_are_refused(bad):
    with pytest.raises(InputError):
        WordVectors(**bad)


def test_unknown_word_is_a_clear_error(wv):
    with pytest.raises(InputError, match="not in the vocabulary"):
        wv.most_similar("nope")


def test_words_with_any_character_but_space_and_newline_save_load_and_read_in_gensim(tmp_path):
    """The format cuts rows at spaces and lines at newlines only (gensim's reader too): a word holding an
    ideographic or no-break space, a tab or U+2028 is legal, saved, read back whole and read alike by gensim.
    Such a file was refused whole, naming no line or word."""
    models = pytest.importorskip("gensim.models")
    words = ("北京\u3000市", "a\xa0b", "tab\there", "x\u2028y", "w")
    wv = WordVectors(words, np.random.default_rng(0).normal(size=(len(words), 3)).astype(np.float32))
    path = tmp_path / "v.txt"
    wv.save_word2vec(path)
    back = WordVectors.load_word2vec(path)
    assert back.words == words and np.array_equal(back.vectors, wv.vectors)
    assert list(models.KeyedVectors.load_word2vec_format(str(path), binary=False).index_to_key) == list(words)
    for bad in ("a b", "a\nb", ""):  # what the format cannot hold is refused, naming the word
        with pytest.raises(InputError, match=f"word {re.escape(repr(bad))} .*word2vec text format cannot hold it"):
            WordVectors(("v", bad), np.zeros((2, 3)))


def test_blank_lines_after_the_counted_rows_are_ignored_as_gensim_does(tmp_path, wv):
    """gensim reads the header's count of rows and stops: a trailing blank line was refused here ("expected a
    word and 12 numbers, got 0"). Blank lines there are ignored; a row there, or an empty word, names its line."""
    models = pytest.importorskip("gensim.models")
    path, other = tmp_path / "v.txt", tmp_path / "o.txt"
    wv.save_word2vec(path)
    text = path.read_text(encoding="utf-8")
    other.write_text(text + "\n \n\n", encoding="utf-8")
    assert list(models.KeyedVectors.load_word2vec_format(str(other), binary=False).index_to_key) == list(wv.words)
    back = WordVectors.load_word2vec(other)
    assert back.words == wv.words and np.array_equal(back.vectors, wv.vectors)
    lines = text.splitlines()
    other.write_text(text + "\n" + lines[1] + "\n", encoding="utf-8")
    extra = rf"o\.txt:{len(lines) + 2}: header says {len(wv)} words, but the file goes on"
    with pytest.raises(InputError, match=extra):
        WordVectors.load_word2vec(other)
    other.write_text("\n".join([lines[0], " " + lines[1].split(" ", 1)[1], *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"o\.txt:2: the word is empty"):
        WordVectors.load_word2vec(other)
