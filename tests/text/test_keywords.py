"""Keywords (`llmlab.text.keywords`): TF-IDF and TextRank against jieba.analyse on the same words, TextRank's
fixed point against a direct linear solve, the idf table, and `llmlab seg keywords` / `seg idf`."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.data.corpora import pfr1998_text
from llmlab.text.keywords import (
    STOP_WORDS,
    TEXTRANK_TAGS,
    IdfTable,
    pfr1998_idf,
    read_stop_words,
    textrank_keywords,
    tfidf_keywords,
)


@pytest.fixture(scope="module")
def jieba_docs():
    """jieba.analyse, and documents of 30 lines of the pfr1998 test split cut by jieba (words, and posseg's
    (word, flag) pairs)."""
    jieba = pytest.importorskip("jieba")
    analyse, posseg = pytest.importorskip("jieba.analyse"), pytest.importorskip("jieba.posseg")
    jieba.setLogLevel(60)
    lines = pfr1998_text("test")
    docs = ["\n".join(lines[i:i + 30]) for i in range(0, 600, 30)]
    return analyse, [(d, jieba.lcut(d), [(p.word, p.flag) for p in posseg.lcut(d)]) for d in docs]


def _same_ranking(ours, ref, tol=1e-12):
    """The same words and weights (to `tol`), in the same order except among weights within `tol`."""
    assert dict(ours).keys() == dict(ref).keys()
    assert all(math.isclose(x, dict(ref)[w], rel_tol=0, abs_tol=tol) for w, x in ours)
    ref_rank = {w: k for k, (w, _) in enumerate(ref)}
    for (a, x), (b, y) in zip(ours, ours[1:]):
        assert ref_rank[a] < ref_rank[b] or abs(x - y) <= tol, (a, b)


def test_tfidf_is_jiebas_on_the_same_words_and_idf(jieba_docs):
    analyse, docs = jieba_docs
    from jieba.analyse.tfidf import DEFAULT_IDF

    idf = IdfTable.read(DEFAULT_IDF)
    assert idf.default == analyse.default_tfidf.median_idf and analyse.default_tfidf.stop_words == STOP_WORDS
    tags = ("ns", "n", "vn", "v", "nr")
    for text, words, pairs in docs:
        assert tfidf_keywords(words, idf, None) == analyse.extract_tags(text, topK=None, withWeight=True)
        assert tfidf_keywords(pairs, idf, 20, tags) == analyse.extract_tags(text, topK=20, withWeight=True,
                                                                             allowPOS=tags)


def test_textrank_with_jiebas_ten_sweeps_is_jiebas(jieba_docs):
    analyse, docs = jieba_docs
    for text, _, pairs in docs:
        ours = textrank_keywords(pairs, None, tol=0, max_sweeps=10)
        _same_ranking(ours, analyse.textrank(text, topK=None, withWeight=True))
        assert ours[0][1] == 1.0 and ours[-1][1] > 0


def _linear_solve(tokens, window, damping):
    """TextRank's scores straight from their definition: build the weighted graph, solve
    (I - d M) s = (1 - d) 1, scale as jieba does."""
    cands = [w if len(w) >= 2 else None for w in tokens]
    nodes = sorted({w for i, w in enumerate(cands) if w and any(cands[i + 1:i + window])}
                   | {w for i, w in enumerate(cands) if w and any(cands[max(0, i - window + 1):i])})
    if not nodes:
        return {}
    at = {w: k for k, w in enumerate(nodes)}
    weight = np.zeros((len(nodes), len(nodes)))
    for i, a in enumerate(cands):
        for b in cands[i + 1:i + window]:
            if a and b:
                weight[at[a], at[b]] += 1
                weight[at[b], at[a]] += 1
    m = weight / weight.sum(axis=0)  # column u: u's score spread over its edges
    s = np.linalg.solve(np.eye(len(nodes)) - damping * m, np.full(len(nodes), 1 - damping))
    low, high = s.min(), s.max()
    return {w: (s[at[w]] - low / 10) / (high - low / 10) for w in nodes}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["经济", "发展", "改革", "中国", "的", "市场", "了", "企业", "开放"]), max_size=40),
       st.integers(2, 6), st.floats(0.5, 0.95))
def test_textrank_converges_to_the_linear_solution(tokens, window, damping):
    """Gauss-Seidel to convergence reaches the fixed point of TextRank's update, whatever the graph
    (self-loops, repeated pairs, several components); one-character words stay out."""
    ours = dict(textrank_keywords(tokens, None, None, window, damping, tol=1e-13, max_sweeps=10_000))
    ref = _linear_solve(tokens, window, damping)
    assert ours.keys() == ref.keys()
    assert all(math.isclose(ours[w], ref[w], abs_tol=1e-9) for w in ref)


def test_tfidf_ties_keep_the_order_of_the_text():
    idf = IdfTable({"甲乙": 1.0, "丙丁": 1.0, "戊己": 1.0})
    words = ["戊己", "甲乙", "丙丁", "甲乙", "丙丁", "戊己"]
    assert [w for w, _ in tfidf_keywords(words, idf)] == ["戊己", "甲乙", "丙丁"]


def test_candidates_follow_jiebas_rule():
    """At least two non-space characters, stop words out in any case, and with allow_tags the tag decides."""
    idf = IdfTable({"中国": 1.0})
    words = ["The", "中国", "的", " 国", "国 ", "AND", "Python", "中国"]
    assert tfidf_keywords(words, idf, None) == [("中国", 2 * (1.0 / 3)), ("Python", 1 * (1.0 / 3))]
    assert tfidf_keywords(words, idf, None, stop_words=()) == tfidf_keywords(words, idf, None, stop_words=set())
    assert [w for w, _ in tfidf_keywords(words, idf, None, stop_words=())] == ["中国", "The", "AND", "Python"]
    pairs = [("中国", "ns"), ("经济", "n"), ("发展", "v"), ("迅速", "ad")]
    assert [w for w, _ in tfidf_keywords(pairs, idf, None, ["n", "v"])] == ["经济", "发展"]
    assert len(tfidf_keywords(pairs, idf, None)) == 4  # pairs without allow_tags: every tag
    triangle = dict(textrank_keywords(pairs))  # three words, each near the other two: equal at the fixed point
    assert triangle.keys() == {"中国", "经济", "发展"} and min(triangle.values()) > 1 - 1e-9


def test_bad_arguments_are_refused():
    for kwargs, match in (({"top_k": 0}, "top_k"), ({"top_k": -1}, "top_k"), ({"top_k": True}, "top_k"),
                          ({"window": 1}, "window"), ({"damping": 1.0}, "damping"), ({"max_sweeps": 0}, "max_sweeps"),
                          ({"tol": -1.0}, "tol")):
        with pytest.raises(InputError, match=match):
            textrank_keywords([("中国", "n")], **kwargs)
    with pytest.raises(InputError, match="bare word"):
        tfidf_keywords(["中国"], IdfTable({"中国": 1.0}), allow_tags=["n"])
    with pytest.raises(InputError, match="token 1"):
        tfidf_keywords(["中国", ("经济",)], IdfTable({"中国": 1.0}))
    assert tfidf_keywords([], IdfTable({})) == [] and textrank_keywords([]) == []
    for rank in (lambda t: tfidf_keywords(t, IdfTable({"中国": 1.0})), lambda t: textrank_keywords(t, allow_tags=None)):
        with pytest.raises(InputError, match="not the text"):
            rank("中国经济发展")


def test_idf_from_documents_counts_each_document_once_in_any_width():
    docs = [["ＧＤＰ", "增长", "增长"], ["GDP", "下降"], ["增长", " "], []]
    t = IdfTable.from_documents(docs)
    assert t.idf == {"GDP": math.log(4 / 2), "增长": math.log(4 / 2), "下降": math.log(4 / 1)}
    assert t["ＧＤＰ"] == t["GDP"] == math.log(2) and t["没有"] == t.default == math.log(2)  # the median
    wide = IdfTable({"ＧＤＰ": 3.0, "GDP": 2.0, "ＣＰＩ": 1.0})
    assert wide["ＧＤＰ"] == 3.0 and wide["GDP"] == 2.0 and wide["ＧDP"] == 2.0 and wide["CPI"] == 1.0


def test_idf_file_round_trip_and_damage(tmp_path):
    t = IdfTable({"中国": 0.1 + 0.2, "经济": 1e-300, "#号": 7.25})
    t.save(tmp_path / "idf.txt")
    back = IdfTable.read(tmp_path / "idf.txt")
    assert back.idf == t.idf and back.default == t.default
    for text, match in (("中国 1.5\n经济\n", "line 2"), ("中国 x\n", "line 1"), ("中国 nan\n", "line 1"),
                        ("中国 1 2\n", "line 1"), ("\n\n", "no `word idf`")):
        (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=match):
            IdfTable.read(tmp_path / "bad.txt")
    for bad in ({"中国": math.inf}, {"中 国": 1.0}, {"": 1.0}, {"中国": "1.0"}, {"中国": True}):
        with pytest.raises(InputError, match="finite"):
            IdfTable(bad)
    (tmp_path / "stop.txt").write_text("The\n\n 之一 \n", encoding="utf-8")
    assert read_stop_words(tmp_path / "stop.txt") == {"the", "之一"}


def test_builtin_idf_is_the_train_split_by_line():
    from llmlab.data.corpora import pfr1998_words

    t = pfr1998_idf()
    docs = pfr1998_words("train")
    holding = sum("经济" in d for d in docs)
    assert t["经济"] == pytest.approx(math.log(len(docs) / holding), rel=1e-12) and t["的"] < t["经济"]


def test_default_models_give_keywords(defaults):
    import llmlab.text
    from llmlab.text.default import default_segmenter, default_tagger
    from llmlab.text.pos import cut_and_tag

    text = "中国经济发展迅速。中国企业走向世界，经济改革不断深化。"
    words = default_segmenter().cut(text)
    assert llmlab.text.extract_tags(text, 5, True) == tfidf_keywords(words, pfr1998_idf(), 5)
    assert llmlab.text.extract_tags(text, 5) == [w for w, _ in tfidf_keywords(words, pfr1998_idf(), 5)]
    pairs = cut_and_tag(default_segmenter(), default_tagger(), text)
    assert llmlab.text.textrank(text, None, True) == textrank_keywords(pairs, None, TEXTRANK_TAGS)
    assert llmlab.text.textrank(text, allow_tags=None) == [w for w, _ in textrank_keywords(words, 20, None)]


def test_cli_keywords(segmenters, train_tagged, tmp_path, cli):
    """`seg keywords` ranks the words of the given models as the API does, over the whole input or per
    line, with the idf table `seg idf` writes; bad settings are refused before anything is read."""
    from llmlab.text.pos import HmmTagger, cut_and_tag_lines

    seg, tagger = segmenters["perceptron"], HmmTagger.train(train_tagged)
    seg.save(tmp_path / "seg")
    tagger.save(tmp_path / "pos")
    lines = pfr1998_text("test")[:40]
    text = "\n".join(lines) + "\n"
    cuts = seg.cut_lines(lines)
    base = ["seg", "keywords", "--model", str(tmp_path / "seg")]

    rc, out, _ = cli([*base, "--weights", "-k", "0"], text)
    doc = [w for words in cuts for w in [*words, "\n"]]
    ranked = tfidf_keywords(doc, pfr1998_idf(), None)
    assert rc == 0 and out == " ".join(f"{w}/{x:.6g}" for w, x in ranked) + "\n"
    rc, out, _ = cli([*base, "--per-line", "-k", "3"], text)
    assert rc == 0 and out.split("\n")[:-1] == [" ".join(w for w, _ in tfidf_keywords(c, pfr1998_idf(), 3))
                                                for c in cuts]

    rc, _, err = cli(["seg", "idf", "--train", str(_segmented(tmp_path, cuts)), "-o", str(tmp_path / "idf.txt")])
    table = IdfTable.read(tmp_path / "idf.txt")
    assert rc == 0 and table.idf == IdfTable.from_documents(cuts).idf and "wrote idf" in err
    raw = tmp_path / "raw.txt"
    raw.write_text(text.replace("\n", "\n\n \u3000\n", 3), encoding="utf-8")  # blank lines are no documents
    rc, _, _ = cli(["seg", "idf", "--input", str(raw), "--model", str(tmp_path / "seg"), "-o", str(tmp_path / "r.txt")])
    assert rc == 0 and IdfTable.read(tmp_path / "r.txt").idf == table.idf  # raw text cut by the model: the same
    for argv, match in ((["--input", str(raw), "--split", "dev"], "--split does not apply"),
                        (["--model", str(tmp_path / "seg")], "--model cuts --input")):
        rc, _, err = cli(["seg", "idf", *argv, "-o", str(tmp_path / "x.txt")])
        assert rc == 2 and match in err and not (tmp_path / "x.txt").exists()
    for argv in (["--train", str(tmp_path / "docs.txt")], ["--input", str(raw), "--model", str(tmp_path / "seg")]):
        before = (path := Path(argv[1])).read_bytes()  # an idf table written over the corpus it counts
        rc, _, err = cli(["seg", "idf", *argv, "-o", argv[1]])
        assert rc == 2 and "is the same file as" in err and path.read_bytes() == before
    rc, out, _ = cli([*base, "--idf", str(tmp_path / "idf.txt"), "-k", "5"], text)
    assert out.split() == [w for w, _ in tfidf_keywords(doc, table, 5)]

    pos = ["--pos-model", str(tmp_path / "pos")]
    rc, out, _ = cli([*base, "--method", "textrank", *pos, "--window", "3", "-k", "8"], text)
    tagged = [p for pairs in cut_and_tag_lines(seg, tagger, lines) for p in [*pairs, ("\n", "w")]]
    assert rc == 0 and out.split() == [w for w, _ in textrank_keywords(tagged, 8, TEXTRANK_TAGS, 3)]
    rc, out, _ = cli([*base, "--allow-tags", "ns,nr", *pos], text)
    assert out.split() == [w for w, _ in tfidf_keywords(tagged, pfr1998_idf(), 20, ["ns", "nr"])]
    stop = tmp_path / "stop.txt"
    stop.write_text(out.split()[0] + "\n", encoding="utf-8")
    rc, out2, _ = cli([*base, "--allow-tags", "ns,nr", *pos, "--stop-words", str(stop)], text)
    assert out2.split() == [w for w, _ in tfidf_keywords(tagged, pfr1998_idf(), 20, ["ns", "nr"],
                                                         STOP_WORDS | {out.split()[0]})]

    for argv, match in ((["--method", "textrank", "--idf", "x"], "--idf is for"),
                        (["--window", "3"], "--window is for"), ([*pos], "--pos-model tags"), (["-k", "-1"], "--top-k"),
                        (["--method", "textrank", "--window", "1"], "window"),
                        (["--method", "textrank", "--window", "0"], "window"),
                        (["--allow-tags", "n,zz", *pos], "zz not among"), (["--idf", str(stop)], "line 1")):
        rc, out, err = cli([*base, *argv], "never read\n")
        assert rc == 2 and match in err and out == ""


def _segmented(tmp_path: Path, cuts) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text("".join(" ".join(w for w in c if not w.isspace()) + "\n" for c in cuts), encoding="utf-8")
    return path


def test_cli_keywords_user_dict_tags(segmenters, train_tagged, tmp_path, cli):
    """`seg keywords --user-dict` gives the dictionary's tags to the tagger, as jieba and `load_userdict` do:
    --allow-tags keeps a user word by the tag the user gave it, not by the tagger's guess."""
    from llmlab.text.base import load_segmenter
    from llmlab.text.pos import HmmTagger, cut_and_tag_lines

    segmenters["perceptron"].save(tmp_path / "seg")
    seg, tagger = load_segmenter(tmp_path / "seg"), HmmTagger.train(train_tagged)  # a copy: the fixture's is shared
    tagger.save(tmp_path / "pos")
    (tmp_path / "ud.txt").write_text("区块链 5 nz\n", encoding="utf-8")
    text = "区块链技术发展迅速，区块链公司很多。区块链应用越来越广泛，企业在研究区块链。\n"
    base = ["seg", "keywords", "--model", str(tmp_path / "seg"), "--pos-model", str(tmp_path / "pos"),
            "--user-dict", str(tmp_path / "ud.txt"), "--force-words"]
    seg.add_user_dict(tmp_path / "ud.txt", force=True)
    guessed = [t for pairs in cut_and_tag_lines(seg, tagger, [text]) for w, t in pairs if w == "区块链"]
    assert len(guessed) == 4 and "nz" not in guessed  # the tagger alone would drop it
    rc, out, _ = cli([*base, "--allow-tags", "nz"], text)
    assert rc == 0 and out.split() == ["区块链"]
    tagger.add_user_tags([("区块链", "nz")])
    tagged = [p for pairs in cut_and_tag_lines(seg, tagger, [text.strip()]) for p in [*pairs, ("\n", "w")]]
    rc, out, _ = cli([*base, "--allow-tags", "nz,n,v", "-k", "0", "--weights"], text)
    assert rc == 0 and out == " ".join(f"{w}/{x:.6g}" for w, x in tfidf_keywords(tagged, pfr1998_idf(), None,
                                                                                ["nz", "n", "v"])) + "\n"
    (tmp_path / "ud.txt").write_text("区块链 5 zz\n", encoding="utf-8")
    rc, out, err = cli([*base, "--allow-tags", "nz"], "never read\n")
    assert rc == 2 and "'zz'" in err and out == ""  # a tag outside the tagset, refused before any text is read
