"""The word lattice's compiled scans (`llmlab.text.lexscan`) against the lattice's rules read directly
in Python: the DAG, the unigram best path, on any text and lexicon (units, astral characters); and the
bigram best path against `lattice.bigram_best_path`, the Python DP it replaces."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.jit import interpreted
from llmlab.text.base import normalize_text, unit_spans
from llmlab.text.lattice import (
    BOS,
    EOS,
    BigramSegmenter,
    LatticeConfig,
    best_path,
    bigram_best_path,
    build_dag,
    dag_best_path,
)
from llmlab.text.lexicon import Lexicon

CHARS = "中国人民银行研究生命ab1.😀👍🏽𠀀"


def _dag(text: str, lexicon: Lexicon) -> list[list[int]]:
    """`build_dag`'s rules, one substring at a time: every lexicon word from i that ends outside a unit;
    the position's own edge (a unit's whole, or one character where no word starts); nothing inside a
    unit."""
    spans = unit_spans(text)
    inside = {k for a, b in spans for k in range(a + 1, b)}
    unit_end = {a: b for a, b in spans}
    dag = []
    for i in range(len(text)):
        if i in inside:
            dag.append([])
            continue
        ends = [j for j in range(i + 1, len(text) + 1) if text[i:j] in lexicon.counts and j not in inside]
        own = unit_end.get(i, i + 1)
        if own not in ends and (own != i + 1 or not ends):
            ends = sorted([own, *ends])
        dag.append(ends)
    return dag


def _lexicons():
    words = st.text(st.sampled_from(CHARS), min_size=1, max_size=4)
    return st.dictionaries(words, st.integers(1, 50), max_size=25)


@settings(max_examples=200, deadline=None)
@given(_lexicons(), st.text(st.sampled_from(CHARS), max_size=30))
def test_scans_follow_the_lattice_rules(counts, text):
    lexicon = Lexicon(counts)
    assert build_dag(text, lexicon) == _dag(text, lexicon)
    words = best_path(text, lexicon)
    assert "".join(words) == text
    assert words == dag_best_path(text, _dag(text, lexicon), lexicon.logp)


def test_interpreted_scans_give_the_compiled_results(train_words, monkeypatch):
    """The kernels' Python source (what a small job runs, `llmlab.core.jit.interpreted`) scans alike."""
    from llmlab.core import jit as jit_module
    from llmlab.data.corpora import pfr1998_text

    lexicon = Lexicon.from_sentences(train_words)
    lines = [*pfr1998_text("test")[:15], "ＡＢＣ公司在１９９８年成立", "Москва和北京2024年", "#话题#😀👍🏽中文"]
    lines = [normalize_text(line) for line in lines]
    monkeypatch.setattr(jit_module, "_spent", 0)
    monkeypatch.setattr(jit_module, "INTERPRET_BUDGET", 0)  # everything compiled
    bigram = BigramSegmenter.train(train_words)

    def scans(t):
        return build_dag(t, lexicon), best_path(t, lexicon), bigram._best_path(t)

    want = [scans(t) for t in lines]
    monkeypatch.setattr(jit_module, "INTERPRET_BUDGET", 10**9)
    with interpreted(10**6) as slow:
        assert slow and [scans(t) for t in lines] == want


def test_ties_go_to_the_longer_word_and_a_unit_keeps_its_edge_in_order():
    lexicon = Lexicon({"中国": 5, "国人": 5, "中": 3, "人": 3, "国": 1})  # 中国+人 and 中+国人: equal sums
    assert best_path("中国人", lexicon) == ["中国", "人"] == dag_best_path("中国人", _dag("中国人", lexicon),
                                                                         lexicon.logp)
    lexicon = Lexicon({"ab中": 1, "中": 1})  # a word from a unit's start past its end
    assert build_dag("ab中", lexicon) == _dag("ab中", lexicon) == [[2, 3], [], [3]]
    assert best_path("ab中", lexicon) == ["ab中"]


def test_many_words_at_each_position_and_a_changed_lexicon():
    """More ends than the first pass has room for (8 a position on average), and an `add` between
    two scans: the index is built again."""
    lexicon = Lexicon({"中" * k: 1 for k in range(1, 21)})
    text = "中" * 40
    assert build_dag(text, lexicon) == _dag(text, lexicon)
    assert sum(map(len, build_dag(text, lexicon))) > 8 * len(text)
    assert best_path("研究生命", Lexicon({"研究": 5, "生命": 5})) == ["研究", "生命"]
    lexicon = Lexicon({"研究": 5, "生命": 5})
    assert best_path("研究生命", lexicon) == ["研究", "生命"]
    lexicon.add("研究生", 100)
    lexicon.add("命", 100)
    assert best_path("研究生命", lexicon) == ["研究生", "命"]
    assert math.isclose(sum(lexicon.logp(w) for w in ["研究生", "命"]),
                        max(sum(lexicon.logp(w) for w in cut) for cut in (["研究生", "命"], ["研究", "生命"])))


def _python_bigram_path(seg: BigramSegmenter, text: str) -> list[str]:
    return bigram_best_path(text, build_dag(text, seg.lexicon), seg._logp)


def _same_path_and_score(seg: BigramSegmenter, text: str) -> bool:
    """The compiled path is the Python DP's, and its score is that path's under `logp`, bit for bit."""
    ends, score = seg.scan_index().best_ends(text)
    words = _python_bigram_path(seg, text)
    seq = [BOS, *words, EOS]
    want = 0.0
    for v, w in zip(seq, seq[1:]):
        want += seg._logp(v, w)
    return [text[a:b] for a, b in zip([0, *ends], ends)] == words and score == want


def _pairs():
    word = st.one_of(st.text(st.sampled_from(CHARS), min_size=1, max_size=3), st.just(BOS))
    after = st.one_of(st.text(st.sampled_from(CHARS), min_size=1, max_size=3), st.just(EOS))
    return st.dictionaries(st.tuples(word, after), st.integers(1, 20), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_lexicons(), _pairs(), st.sampled_from([0.0, 0.3, 0.7, 0.99]), st.text(st.sampled_from(CHARS), max_size=30))
def test_compiled_bigram_path_is_the_python_dp(counts, pairs, weight, text):
    """Any lexicon and counts, pairs of words the lexicon lacks among them (a one-character edge of
    such a word still finds its pairs), any weight: the same cut as the Python DP, ties included."""
    seg = BigramSegmenter(Lexicon(counts), pairs, LatticeConfig(bigram_weight=weight))
    assert _same_path_and_score(seg, text)


def test_compiled_bigram_path_on_the_test_split(train_words, test_words):
    """Real counts and real lines: the same cuts and the same scores to the last bit (the kernel's logs
    are the C library's, as Python's are)."""
    seg = BigramSegmenter.train(train_words)
    lines = [normalize_text("".join(words)) for words in test_words]
    assert all(_same_path_and_score(seg, t) for t in lines)


def test_a_bigram_tie_keeps_the_first_found_and_the_index_follows_the_lexicon():
    """中国+人 and 中+国人 score alike (weight 0, equal counts): the path whose last word starts first
    wins, as in the Python DP; after an `add` the compiled model is built again."""
    seg = BigramSegmenter(Lexicon({"中国": 2, "国人": 2, "中": 2, "人": 2}), {}, LatticeConfig(bigram_weight=0.0))
    assert seg.cut("中国人") == ["中", "国人"] == _python_bigram_path(seg, "中国人")
    seg.lexicon.add("好", 2)  # 人 after 中国 and 国人 after 中 score alike before 好: 国人's was found first
    assert seg.cut("中国人好") == ["中", "国人", "好"] == _python_bigram_path(seg, "中国人好")
    seg.lexicon.add("中国人", 50)
    assert seg.cut("中国人") == ["中国人"] == _python_bigram_path(seg, "中国人")


def test_bigram_pairs_of_words_the_lexicon_lacks():
    """A word of the counts that the lexicon lacks (民) is an edge only where the text has it as a
    one-character edge, and there its pairs count; a pair never makes an edge (中国 below)."""
    lexicon = Lexicon({"中国": 3, "中": 1, "国": 1})
    seg = BigramSegmenter(lexicon, {("国", "民"): 50, (BOS, "中"): 1}, LatticeConfig(bigram_weight=0.9))
    assert seg.cut("中国民") == ["中", "国", "民"] == _python_bigram_path(seg, "中国民")
    seg = BigramSegmenter(lexicon, {("中国", "民"): 50}, LatticeConfig(bigram_weight=0.9))
    assert seg.cut("中国民") == ["中国", "民"] == _python_bigram_path(seg, "中国民")
    seg = BigramSegmenter(Lexicon({"中": 1, "国": 1}), {(BOS, "中国"): 5, ("中国", EOS): 5})
    assert seg.cut("中国") == ["中", "国"]
