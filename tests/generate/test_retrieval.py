"""BM25 retrieval: scores equal rank_bm25's, passages cut losslessly, the index saves and loads, and on
real news text a span of a paragraph finds its paragraph."""

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.data.corpora import pfr1998_text
from llmlab.generate.passages import cjk_terms, split_passages
from llmlab.generate.retrieval import BM25Index, IndexConfig, idf_weights, top_k

rank_bm25 = pytest.importorskip("rank_bm25")

WHOLE = IndexConfig(passage_chars=0)  # one passage per document, as rank_bm25 sees a corpus


def random_corpus(rng: random.Random, n_docs: int, vocab: int = 12) -> list[list[str]]:
    """Documents over a small skewed vocabulary, so common words sit in most documents (negative idf)."""
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (i + 1) for i in range(vocab)]
    return [rng.choices(words, weights, k=rng.randint(1, 15)) for _ in range(n_docs)]


@pytest.mark.parametrize("seed", range(8))
def test_scores_equal_rank_bm25_okapi(seed):
    rng = random.Random(seed)
    docs = random_corpus(rng, rng.randint(1, 40))
    index = BM25Index.build([" ".join(d) for d in docs], WHOLE, tokenize=str.split)
    ref = rank_bm25.BM25Okapi(docs)
    df = {w: sum(w in d for d in docs) for d in docs for w in d}
    assert len(docs) < 3 or any(2 * n > len(docs) for n in df.values())  # some terms have a negative idf
    queries = [rng.choices([f"w{i}" for i in range(14)], k=rng.randint(1, 8)) for _ in range(20)]
    queries += [["w0", "w0", "w0"], ["absent"], ["w1", "absent", "w1"]]  # repeats; a term no document has
    for q in queries:
        np.testing.assert_allclose(index.get_scores(" ".join(q)), ref.get_scores(q), rtol=1e-12, atol=1e-12)


def test_negative_idf_is_floored_as_rank_bm25_does():
    docs = [["a", "b"], ["a", "c"], ["a", "d"], ["b"]]  # "a" in 3 of 4: log(1.5 / 3.5) < 0
    ref = rank_bm25.BM25Okapi(docs)
    index = BM25Index.build([" ".join(d) for d in docs], WHOLE, tokenize=str.split)
    idf = dict(zip(index.vocab, index.idf))
    assert idf == pytest.approx(ref.idf) and idf["a"] == pytest.approx(0.25 * ref.average_idf) and idf["a"] > 0
    np.testing.assert_allclose(index.get_scores("a"), ref.get_scores(["a"]))


def test_lucene_idf_and_bm25_plus():
    rng = random.Random(1)
    docs = random_corpus(rng, 30)
    texts = [" ".join(d) for d in docs]
    lucene = BM25Index.build(texts, IndexConfig(passage_chars=0, idf="lucene"), tokenize=str.split)
    df = np.diff(lucene.indptr)
    np.testing.assert_allclose(lucene.idf, np.log(1 + (30 - df + 0.5) / (df + 0.5)))
    assert (lucene.idf > 0).all()
    # rank_bm25's BM25Plus adds idf * delta to every passage, holding the term or not; BM25+ (Lv and Zhai)
    # adds it where the term is present, which is what we do: the difference is that, for absent terms
    plus = BM25Index.build(texts, IndexConfig(passage_chars=0, idf="plus", delta=1.0), tokenize=str.split)
    ref = rank_bm25.BM25Plus(docs)
    for q in (["w0", "w3"], ["w5", "w5", "w11"]):
        absent = sum(ref.idf.get(t, 0) * np.array([t not in d for d in docs]) for t in q)
        np.testing.assert_allclose(plus.get_scores(" ".join(q)), ref.get_scores(q) - absent, atol=1e-12)


def test_search_is_the_top_k_of_the_scores_with_ties_to_the_lower_index():
    docs = ["x y", "x z", "y y", "x y", "q"]  # passages 0 and 3 are the same: they tie
    index = BM25Index.build(docs, WHOLE, tokenize=str.split)
    scores = index.get_scores("x y")
    hits = index.search("x y", k=3)
    assert scores[0] == scores[3] > scores[2] > scores[1] > 0  # "y y": y twice beats x once beside a rare z
    assert [h.index for h in hits] == [0, 3, 2]
    assert [h.score for h in hits] == pytest.approx(sorted(scores, reverse=True)[:3])
    assert hits[0].text == "x y" and (hits[0].doc, hits[0].start, hits[0].end) == (0, 0, 3)
    assert [h.index for h in index.search("x y", k=10)] == [0, 3, 2, 1]  # "q" holds no query term: no hit
    assert index.search("nothing here", k=3) == []
    assert [h.index for h in index.search_batch(["q", "z"], k=1)[1]] == [1]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_matches_a_full_stable_sort(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=50).astype(float)  # many ties
    among = rng.random(50) < 0.7
    for k in (1, 5, 50):
        ranked = [i for i in sorted(range(50), key=lambda i: -scores[i]) if among[i]][:k]
        assert top_k(scores, k, among).tolist() == ranked


def test_cjk_terms_and_idf_by_hand():
    assert cjk_terms("ＡＢ，中国人 see 3.5") == ["ab", "中", "国", "人", "中国", "国人", "see", "3", "5"]
    assert cjk_terms("。，  ") == []
    np.testing.assert_allclose(idf_weights(np.array([1]), 2, "plus"), [np.log(3)])


TEXTS = ["", "短。", "这是第一句。这是第二句！第三句没有句号但是很长很长很长很长" * 3, "abc " * 40,
         "新华社北京１月１日电。" * 20 + "尾巴", "a\nb\nc\n" * 30]


@pytest.mark.parametrize("size,overlap", [(10, 0), (10, 3), (25, 8), (7, 6), (0, 0)])
@pytest.mark.parametrize("text", TEXTS)
def test_passages_are_lossless_and_fit(text, size, overlap):
    spans = split_passages(text, size, overlap)
    if not text:
        assert spans == []
        return
    pieces = [text[s:e] for s, e in spans]
    assert pieces[0] + "".join(p[overlap:] for p in pieces[1:]) == text
    assert all(spans[i + 1][0] == spans[i][1] - overlap for i in range(len(spans) - 1))
    assert size == 0 or all(0 < e - s <= size for s, e in spans)


def test_passages_end_at_sentence_ends_where_they_can():
    text = "一二三。四五六七八九十。" * 4
    spans = split_passages(text, size=10, overlap=2)
    assert all(text[e - 1] == "。" for _, e in spans)
    assert split_passages("abcdefghij", 4, 1) == [(0, 4), (3, 7), (6, 10)]  # no sentence end: cut at the size


def test_index_keeps_the_source_span_of_each_passage():
    docs = ["第一段。" * 30, "", "短文档。"]
    index = BM25Index.build(docs, IndexConfig(passage_chars=40, overlap_chars=8))
    assert len(index) == len(split_passages(docs[0], 40, 8)) + 1
    for i in range(len(index)):
        doc, start, end = index.spans[i]
        assert index.passage(i) == docs[doc][start:end] and doc != 1  # the empty document has no passage
    hit = index.search("短文档", k=1)[0]
    assert (hit.doc, hit.start, hit.end, hit.text) == (2, 0, 4, "短文档。")


def test_save_and_load_give_the_same_scores(tmp_path):
    docs = pfr1998_text("dev")[:200]
    index = BM25Index.build(docs, IndexConfig(passage_chars=60, overlap_chars=10, idf="lucene"))
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["index.json", "postings.safetensors"]
    loaded = BM25Index.load(tmp_path / "idx")
    assert loaded.config == index.config
    queries = [d[5:17] for d in docs[:30]]
    for q in queries:
        np.testing.assert_array_equal(loaded.get_scores(q), index.get_scores(q))
    assert loaded.search_batch(queries, 5) == index.search_batch(queries, 5)
    index.save(tmp_path / "idx")  # a save replaces an earlier index
    (tmp_path / "idx" / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="not its own"):
        index.save(tmp_path / "idx")


def test_custom_tokenizer_is_needed_again_to_load(tmp_path):
    BM25Index.build(["a b", "c"], WHOLE, tokenize=str.split).save(tmp_path / "idx")
    with pytest.raises(InputError, match="custom tokenizer"):
        BM25Index.load(tmp_path / "idx")
    assert BM25Index.load(tmp_path / "idx", tokenize=str.split).search("c", 1)[0].doc == 1


def test_segmenter_terms_are_an_option_that_saves_by_name(tmp_path):
    docs = ["北京是中国的首都。", "上海是中国最大的城市。", "长城在北京以北。"]
    index = BM25Index.build(docs, IndexConfig(tokenizer="cut"))
    assert {"北京", "首都", "城市"} <= set(index.vocab) and "京是" not in index.vocab  # words, not bigrams
    index.save(tmp_path / "idx")
    loaded = BM25Index.load(tmp_path / "idx")
    assert loaded.config.tokenizer == "cut" and loaded.search("首都在哪", 2) == index.search("首都在哪", 2)
    (tmp_path / "idx" / "index.json").write_text('{"format": "llmlab-bm25-1", "config": {"k2": 1}}')
    with pytest.raises(InputError, match=r"index\.json: unknown field\(s\) \['k2'\] for IndexConfig"):
        BM25Index.load(tmp_path / "idx")


@pytest.mark.parametrize("edit,msg", [
    (lambda d: d.update(documents=None), "'documents' must be a list of strings"),  # was a TypeError traceback
    (lambda d: d["documents"].__setitem__(0, 5), "'documents' must be a list of strings"),  # was loaded
    (lambda d: d.update(vocab=d["vocab"][:1] * len(d["vocab"])), "'vocab' must be a list of distinct strings"),
    (lambda d: d["config"].update(k1="1.5"), r"IndexConfig\.k1 must be a float, got '1\.5'"),  # "'<=' not supported"
    (lambda d: d.update(config=None), "IndexConfig must be a JSON object"),  # "argument after ** must be a mapping"
    (lambda d: d.update(documents=d["documents"][:1]), "postings do not match"),  # a hit would be an IndexError
])
def test_a_damaged_index_file_is_named_not_a_traceback_or_garbage(tmp_path, edit, msg):
    BM25Index.build(["a b", "c d", "e"], WHOLE).save(tmp_path / "idx")
    path = tmp_path / "idx" / "index.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=msg):
        BM25Index.load(tmp_path / "idx")


def test_a_span_of_a_paragraph_finds_its_paragraph():
    """Measured with the default config over seeds 0-29 of this draw: 0.94 to 0.99 (mean 0.96) in the
    top 1. The misses are real near-duplicates (a headline and the paragraph under it, two articles of a
    law sharing a clause), so the bound sits at 0.90: below every seed measured, with room to spare."""
    docs = pfr1998_text("dev")
    index = BM25Index.build(docs)
    rng = random.Random(0)
    long_enough = [i for i, d in enumerate(docs) if len(d) >= 12]
    sources = [rng.choice(long_enough) for _ in range(200)]
    queries = [docs[i][s: s + 12] for i in sources for s in [rng.randrange(len(docs[i]) - 11)]]
    hits = index.search_batch(queries, k=1)
    found = sum(docs[h[0].doc] == docs[i] for h, i in zip(hits, sources))  # a duplicate paragraph counts too
    assert found / 200 >= 0.90


def test_bad_input_is_named(tmp_path):
    with pytest.raises(InputError, match="nothing to index"):
        BM25Index.build([])
    with pytest.raises(InputError, match="nothing to index"):
        BM25Index.build(["", ""])
    index = BM25Index.build(["a"])
    with pytest.raises(InputError, match="k must be >= 1"):
        index.search("a", k=0)
    with pytest.raises(InputError, match="does not exist"):
        BM25Index.load(tmp_path / "missing")
    with pytest.raises(InputError, match="overlap"):
        IndexConfig(passage_chars=10, overlap_chars=10)
    with pytest.raises(InputError, match="idf must be one of"):
        IndexConfig(idf="bm11")
    with pytest.raises(InputError, match="list of queries"):
        index.search_batch("a")


def test_importing_retrieval_does_not_load_torch():
    code = "import sys, llmlab.generate.retrieval, llmlab.generate.rag; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
