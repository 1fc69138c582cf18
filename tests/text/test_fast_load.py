"""Loading the perceptron segmenter and tagger fast changes nothing: a loaded model cuts and tags
pfr1998 test lines exactly as the trained one in memory, interpreted (a line or two, no numba) and
compiled alike, and each numpy shortcut of loading matches the word-by-word way it replaces."""

import subprocess
import sys

import numpy as np
import pytest

from llmlab.core import jit as jit_module
from llmlab.core.jit import interpreted
from llmlab.data.corpora import pfr1998, pfr1998_words
from llmlab.text.base import load_segmenter
from llmlab.text.hashindex import FeatureIndex, SparseRows
from llmlab.text.lexicon import Lexicon, _entries_by_line, _plain_entries, read_user_dict
from llmlab.text.lexmatch import SpanIndex, _key, _span_fragments
from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter
from llmlab.text.pos import load_tagger
from llmlab.text.pos_perceptron import (
    PerceptronTagger,
    PerceptronTaggerConfig,
    _clusters_by_line,
    _clusters_in_one_scan,
)

N_LINES, N_INTERPRETED = 300, 60
ODD_LINES = ["ＡＢＣ公司在１９９８年　成立，ＷＴＯ。", "Москва 和 北京 2024年", "#话题# 😀👍🏽 中文"]


@pytest.fixture
def budget(monkeypatch):
    """budget(n): the process may interpret n more items (0: everything runs compiled)."""
    monkeypatch.setattr(jit_module, "_spent", 0)
    return lambda n: monkeypatch.setattr(jit_module, "INTERPRET_BUDGET", n)


@pytest.fixture(scope="module")
def seg_pair(train_words, tmp_path_factory):
    """A perceptron segmenter with every lexicon (training words, a feature dictionary with full-width
    words, accessor-variety words), and the folder it was saved to."""
    dictionary = Lexicon.from_sentences(pfr1998_words("dev")[:300])
    seg = PerceptronSegmenter.train(train_words, PerceptronConfig(epochs=2, folds=2), dictionary=dictionary)
    folder = tmp_path_factory.mktemp("seg")
    seg.save(folder)
    return seg, folder


@pytest.fixture(scope="module")
def tagger_pair(train_tagged, tmp_path_factory):
    """A perceptron tagger with clusters, rare words and a tag dictionary, and its saved folder."""
    config = PerceptronTaggerConfig(epochs=2, ensemble=1, clusters=(32, 8), rare_count=1, tagdict_min_count=3)
    tagger = PerceptronTagger.train(train_tagged, config)
    folder = tmp_path_factory.mktemp("pos")
    tagger.save(folder)
    return tagger, folder


@pytest.fixture(scope="module")
def test_lines():
    return ["".join(s) for s in pfr1998_words("test")[:N_LINES]] + ODD_LINES


def test_a_loaded_segmenter_cuts_as_the_trained_one_interpreted_and_compiled(seg_pair, test_lines, budget):
    seg, folder = seg_pair
    budget(0)
    want = seg.cut_lines(test_lines)
    loaded = load_segmenter(folder)
    assert loaded.cut_lines(test_lines) == want
    few = test_lines[:N_INTERPRETED] + ODD_LINES
    budget(10**9)
    with interpreted(10**6) as slow:
        assert slow
        scores = loaded._scores(few)
        cuts = loaded.cut_lines(few)
    assert cuts == seg.cut_lines(few) == [want[test_lines.index(x)] for x in few]
    assert np.array_equal(scores, seg._scores(few))  # the key array's sums are `_scored`'s, bit for bit
    budget(0)
    assert np.array_equal(loaded._scores(few), scores)


def test_a_loaded_tagger_tags_as_the_trained_one_interpreted_and_compiled(tagger_pair, budget):
    tagger, folder = tagger_pair
    sents = [[w for w, _ in s] for s in pfr1998("test")[:N_LINES]] + [line.split() for line in ODD_LINES]
    budget(0)
    want = tagger.tag_sentences(sents)
    loaded = load_tagger(folder)
    few = sents[:N_INTERPRETED]
    budget(10**9)
    with interpreted(10**6):
        assert loaded.tag_sentences(few) == want[:N_INTERPRETED]
        emissions = [loaded.emissions(s) for s in few]
    assert loaded._weights is None  # interpreted, the rows came from the sparse table
    budget(0)
    assert all(np.array_equal(e, tagger.emissions(s)) for e, s in zip(emissions, few))
    assert loaded.tag_sentences(sents) == want  # compiled, from the dense table
    keys = loaded.index.keys  # the dense table holds the trained weights (zero rows are not saved)
    assert np.array_equal(loaded.weights[loaded.index.lookup(keys)], tagger.weights[tagger.index.lookup(keys)])


def test_a_fresh_process_loads_cuts_and_tags_a_line_without_numba(seg_pair, tagger_pair, budget):
    (seg, seg_folder), (tagger, pos_folder) = seg_pair, tagger_pair
    line = "迈向充满希望的新世纪，１９９８年"
    budget(0)
    words = seg.cut(line)
    code = ("import sys\n"
            "from llmlab.text.base import load_segmenter\n"
            "from llmlab.text.pos import load_tagger\n"
            f"words = load_segmenter({str(seg_folder)!r}).cut({line!r})\n"
            f"tags = load_tagger({str(pos_folder)!r}).tag_sentences([words])[0]\n"
            "print(' '.join(words)); print(' '.join(tags)); print('numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split("\n")[:3] == [" ".join(words), " ".join(tagger.tag(words)), "False"]


def _reference_fragments(counts: dict[str, int]) -> tuple[list[int], list[int]]:
    """The keys and values `SpanIndex` stored before it was vectorised: a Python dict over (hash, length)."""
    values: dict[tuple[int, int], int] = {}
    for word, count in counts.items():
        h = 0
        for i, ch in enumerate(word, 1):
            h = (h * 0x100000001B3 + ord(ch)) % 2**64
            v = (1 if count < 10 else 2 if count < 100 else 3) if i == len(word) and i >= 2 else 0
            values[(h, i)] = max(values.get((h, i), -1), v)
    table = {int(_key(np.uint64(h), n)): v for (h, n), v in values.items()}  # the compiled key function
    return sorted(table), [table[k] for k in sorted(table)]


def test_span_index_fragments_match_the_dictionary_way(seg_pair):
    seg, _ = seg_pair
    odd = {"ＡＢ": 5, "AB": 50, "中": 3, "中国人民银行行长": 100, "\ud800x": 2, "𠀀𠀁": 12}  # unnormalised, lone
    # surrogate, astral characters, a one-character word
    for counts in (seg.lexicon.counts, seg.dictionary.counts, seg.av_words, odd, {}):
        keys, values = _span_fragments(counts)
        assert (keys.tolist(), values.tolist()) == _reference_fragments(counts)
    index = SpanIndex(odd)
    assert index.values[index.index.lookup(np.array([_key(np.uint64(0), 1)]))].tolist() == [-1]  # no fragment


def _wrapping_keys(n: int, bits: int, seed: int) -> np.ndarray:
    """n keys whose home slot (`probe`'s) in a table of 2**bits slots is the last one: they wrap round."""
    rng = np.random.default_rng(seed)
    cand = rng.integers(1, 2**63, 200_000, dtype=np.int64).view(np.uint64)
    home = (cand * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)
    return cand[home == (1 << bits) - 1][:n]


def test_feature_index_finds_every_key_compiled_and_by_binary_search(budget):
    rng = np.random.default_rng(1)
    last = _wrapping_keys(6, 6, 0)
    keys = np.concatenate([last, rng.integers(1, 2**63, 14, dtype=np.int64).view(np.uint64)])
    keys = np.concatenate([keys, keys[:5]])  # unsorted, with repeats
    index = FeatureIndex(keys)
    assert index.table.shape == (64, 2)
    ref = {k: r for r, k in enumerate(sorted(set(keys.tolist())))}
    slots = {int(k): s for s, k in enumerate(index.table[:, 0]) if k}
    at = sorted(slots[k] for k in last.tolist())
    assert at[-1] == 63 and at[4] < 8  # one of the six homed in the last slot sits there, five wrapped round
    queries = np.concatenate([keys, rng.integers(1, 2**63, 30, dtype=np.int64).view(np.uint64)])
    want = [ref.get(k, len(ref)) for k in queries.tolist()]
    budget(0)
    assert index.lookup(queries).tolist() == want
    budget(10**9)
    with interpreted(1):
        assert index.lookup(queries.reshape(-1, 1)).ravel().tolist() == want
    assert index.rows(keys).tolist() == want[: len(keys)]
    with pytest.raises(ValueError, match="missing"):
        index.rows(queries)
    assert FeatureIndex(np.zeros(0, np.uint64)).lookup(queries).tolist() == [0] * len(queries)


def test_sparse_rows_take_and_dense_match_entry_by_entry_assignment():
    rng = np.random.default_rng(2)
    rows, cols = rng.integers(0, 40, 300), rng.integers(0, 7, 300)  # unsorted, with repeated entries
    values = rng.normal(size=300).astype(np.float32)
    ref = np.zeros((41, 7), np.float32)
    for r, c, v in zip(rows, cols, values):
        ref[r, c] = v  # the last of a repeated entry wins
    table = SparseRows(41, 7, rows, cols, values)
    assert np.array_equal(table.dense(), ref)
    ask = rng.integers(0, 41, (5, 9))
    assert np.array_equal(table.take(ask), ref[ask])
    with pytest.raises(ValueError, match="outside"):
        SparseRows(41, 7, rows, cols + 1, values)


def test_a_lexicon_taken_whole_equals_one_built_word_by_word():
    plain = {w: c for w, c in Lexicon.from_sentences(pfr1998_words("train")[:300]).counts.items()}
    for counts in (plain, {"ＡＢ": 2, "AB": 3, "中国": 1}, {"中国": True}, {"中国人": 2, "中国": 1}):
        whole, by_word = Lexicon(counts), Lexicon()
        for w, c in counts.items():
            by_word.add(w, c)
        assert list(whole.counts.items()) == list(by_word.counts.items())
        assert all(type(c) is int for c in whole.counts.values())
        assert (whole.total, whole.max_len, whole.prefixes, whole.suffixes) == \
            (by_word.total, by_word.max_len, by_word.prefixes, by_word.suffixes)
    for bad in ({"中 国": 1}, {"": 1}, {"中国": 0}, {"中国": 2**53 + 1}, {"中国": 1.0}):
        with pytest.raises(Exception) as whole_error:
            Lexicon(bad)
        with pytest.raises(Exception) as word_error:
            Lexicon().add(*next(iter(bad.items())))
        assert str(whole_error.value) == str(word_error.value)


def test_dictionary_files_read_in_one_scan_as_line_by_line(seg_pair, tmp_path):
    _, folder = seg_pair
    for name in ("av_words.txt", "dictionary.txt"):
        text = (folder / name).read_text(encoding="utf-8")
        assert _plain_entries(text, False) == _entries_by_line(text, name, False)
    text = "#话题# 3\n中国 12\n人 1"
    assert _plain_entries(text, False) == _entries_by_line(text, "t", False)
    assert _plain_entries(text, True) is None  # a comment: line by line
    for declined in ("中国 3\r\n人 1\n", "中国 3\n\n人 1\n", "中国 nz\n", "中国 0\n", "中国 3 n\n", "中国  3\n"):
        assert _plain_entries(declined, True) is None
        (tmp_path / "d.txt").write_text(declined, encoding="utf-8")
        try:
            assert read_user_dict(tmp_path / "d.txt") == _entries_by_line(declined, "d", True)
        except Exception as e:
            assert "line" in str(e)


def test_cluster_files_read_in_one_scan_as_line_by_line(tagger_pair, tmp_path):
    _, folder = tagger_pair
    lines = (folder / "clusters.tsv").read_text(encoding="utf-8").split("\n")
    for body in (lines, [*lines[:3], "", *lines[3:]], [*lines[:3], "\t1\t2", *lines[3:]]):
        text = "\n".join(body)
        assert _clusters_in_one_scan(text, body, 2) == _clusters_by_line(body, tmp_path, 2)
    bad = [*lines[:3], "词\t1", *lines[3:]]
    assert _clusters_in_one_scan("\n".join(bad), bad, 2) is None

