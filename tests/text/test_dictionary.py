"""Maximum matching, the word lattice and its paths: textbook cases, brute force, and jieba."""

import itertools
import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.text.base import normalize_text, unit_spans
from llmlab.text.lattice import (
    BigramSegmenter,
    LatticeConfig,
    UnigramSegmenter,
    build_dag,
    dag_best_path,
    k_best_paths,
    rank_segmentations,
    score_segmentation,
)
from llmlab.text.lexicon import Lexicon, read_user_dict
from llmlab.text.matching import MatchConfig, MaxMatchSegmenter, backward_match, choose_bidirectional, forward_match

LEX = Lexicon({"研究": 10, "研究生": 5, "生命": 10, "命": 1, "起源": 10, "结合": 10, "合成": 5, "成分": 10,
               "分子": 10, "结": 1, "子": 2})


def all_cuts(text):
    """Every segmentation of `text`: 2**(n-1) of them."""
    n = len(text)
    for mask in range(2 ** max(n - 1, 0)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        yield [text[a:b] for a, b in zip(cuts, cuts[1:])]


def lattice_cuts(text, lex):
    """The cuts of `text` that are paths of the word lattice, by brute force: every word is a lexicon
    word, or a single character where no lexicon word starts."""
    starts = {i for i in range(len(text)) if any(text[i:j] in lex for j in range(i + 1, len(text) + 1))}
    for ws in all_cuts(text):
        at = itertools.accumulate(map(len, ws), initial=0)
        if all(w in lex or (len(w) == 1 and i not in starts) for w, i in zip(ws, at)):
            yield ws


@pytest.mark.parametrize(
    ("text", "fmm", "bmm", "bi"),
    [
        ("研究生命起源", "研究生 命 起源", "研究 生命 起源", "研究 生命 起源"),
        ("结合成分子", "结合 成分 子", "结 合成 分子", "结 合成 分子"),  # full tie: backward
    ],
)
def test_maximum_matching_textbook_cases(text, fmm, bmm, bi):
    for direction, want in (("forward", fmm), ("backward", bmm), ("bidirectional", bi)):
        assert MaxMatchSegmenter(LEX, MatchConfig(direction)).cut(text) == want.split(), direction


def test_each_direction_cuts_its_own_way_and_bidirectional_picks_the_better():
    """A text where forward matching wins (same number of words, fewer single characters): backward
    must still cut backward, and bidirectional must take the forward cut."""
    lex = Lexicon({"甲乙": 3, "丙丁": 3, "乙丙丁": 3})
    fwd, bwd = ["甲乙", "丙丁"], ["甲", "乙丙丁"]
    assert forward_match("甲乙丙丁", lex.prefixes) == fwd and backward_match("甲乙丙丁", lex.suffixes) == bwd
    for direction, want in (("forward", fwd), ("backward", bwd), ("bidirectional", fwd)):
        assert MaxMatchSegmenter(lex, MatchConfig(direction)).cut("甲乙丙丁") == want, direction


def test_training_with_the_default_config_keeps_every_word_and_matches_forward():
    sents = [["研究生", "命"], ["研究", "生命"], ["研究", "起源"]]
    seg = MaxMatchSegmenter.train(sents)
    assert seg.config == MatchConfig("forward", min_count=1) and seg.kind == "fmm"
    assert all(w in seg.lexicon for s in sents for w in s)  # words seen once too
    assert seg.cut("研究生命起源") == ["研究生", "命", "起源"]
    assert "命" not in MaxMatchSegmenter.train(sents, MatchConfig(min_count=2)).lexicon


def test_bidirectional_tie_rules():
    # same number of words: fewer single characters wins
    assert choose_bidirectional(["ab", "c", "d"], ["a", "bcd", "e"]) == ["a", "bcd", "e"]
    # fewer words wins even with more single characters
    assert choose_bidirectional(["a", "b"], ["ab", "c", "d"]) == ["a", "b"]
    # full tie: backward
    assert choose_bidirectional(["ab", "c"], ["a", "bc"]) == ["a", "bc"]


def test_forward_matching_is_the_longest_match_by_brute_force(train_words):
    lex = Lexicon.from_sentences(train_words)
    for words in train_words[:40]:
        text = normalize_text("".join(words))  # the lexicon's tables hold width-normalised words
        got = forward_match(text, lex.prefixes)
        i = 0
        for w in got:  # each word is the longest lexicon word at its position, else one character
            longest = max((j for j in range(i + 1, len(text) + 1) if text[i:j] in lex), default=i + 1)
            assert len(w) == longest - i
            i += len(w)
        assert "".join(backward_match(text, lex.suffixes)) == text


def _unit_bounds(text):
    """Positions strictly inside a unit, and each unit's start -> end and end -> start."""
    spans = unit_spans(text)
    return {k for a, b in spans for k in range(a + 1, b)}, dict(spans), {b: a for a, b in spans}


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_the_segmenters_matching_is_the_longest_match_around_units_by_brute_force(direction, train_words):
    """Through `MaxMatchSegmenter` (which hands the matchers the text's units): each word is the
    longest lexicon word at its end of the scan that neither ends nor starts inside a unit, else the
    unit or one character. The hand-made words cross into units ("的Ａ" must not cut "ＡＢＣ")."""
    lex = Lexicon.from_sentences([*train_words, ["的Ａ", "Ｃ的", "年１", "研究"]])
    seg = MaxMatchSegmenter(lex, MatchConfig(direction))
    texts = ["".join(words) for words in train_words[:40]]
    texts += ["研究ABC的生命", "的ＡＢＣ的", "１９９８年１２月研究", "啊ab啊cd啊"]
    assert sum(bool(unit_spans(t)) for t in texts) > 10
    for text in texts:
        norm = normalize_text(text)
        inside, unit_end, unit_start = _unit_bounds(norm)
        got = seg.cut(text)
        assert "".join(got) == text
        if direction == "forward":
            i = 0
            for w in got:
                ends = [j for j in range(i + 1, len(norm) + 1) if norm[i:j] in lex and j not in inside]
                assert i + len(w) == max([unit_end.get(i, i + 1), *ends]), (text, got)
                i += len(w)
        else:
            j = len(norm)
            for w in reversed(got):
                starts = [i for i in range(j) if norm[i:j] in lex and i not in inside]
                assert j - len(w) == min([unit_start.get(j, j - 1), *starts]), (text, got)
                j -= len(w)


def test_latin_and_digit_runs_stay_whole():
    seg = MaxMatchSegmenter(LEX)
    assert seg.cut("研究ABC123生命") == ["研究", "ABC123", "生命"]
    assert MaxMatchSegmenter(LEX, MatchConfig("backward")).cut("研究3.14生命") == ["研究", "3.14", "生命"]
    assert UnigramSegmenter(LEX).cut("研究ｘｙｚ生命") == ["研究", "ｘｙｚ", "生命"]


def test_user_dictionary_is_owned_by_the_segmenter(tmp_path):
    path = tmp_path / "user.txt"
    path.write_text("# my words\n命起 \n生命起源 3 n\n", encoding="utf-8")
    assert read_user_dict(path) == [("命起", None), ("生命起源", 3)]
    a = UnigramSegmenter(Lexicon(dict(LEX.counts)))
    b = UnigramSegmenter(Lexicon(dict(LEX.counts)))
    a.add_user_dict([("研究生命", None)])
    assert a.cut("研究生命起源") == ["研究生命", "起源"]
    assert b.cut("研究生命起源") == ["研究", "生命", "起源"]  # other instances are untouched
    before = dict(a.lexicon.counts)
    for bad in (["研究生命 3"], [("研究", 3, "n")], [("研究", "3")], [("甲", 2.0)], [("甲", 2), ("乙", -1)],
                [("研究", 2), ("研究", 0)], [("甲", 2), ("乙 丙", 0)],
                [("甲", 2), ("乙 丙", None)], [("甲", 2), (None, None)]):
        with pytest.raises(InputError, match="pairs|count of|lexicon word|takes it out"):
            a.add_user_dict(bad)
        assert a.lexicon.counts == before  # nothing of it was added
    with pytest.raises(InputError, match="pairs"):
        UnigramSegmenter.from_dictionary(["研究 3"])
    c = MaxMatchSegmenter(Lexicon(dict(LEX.counts)))
    c.add_user_dict(path)
    assert c.cut("生命起源") == ["生命起源"]
    path.write_text("词 0\n", encoding="utf-8")  # a user's file takes the word out; llmlab writes no 0
    assert read_user_dict(path) == [("词", 0)]
    with pytest.raises(InputError, match="line 1: count must be from 1 to"):
        read_user_dict(path, user=False)
    # a count floats cannot hold exactly (one of 400 digits ended in a traceback when cutting)
    path.write_text(f"中国 {2**53}\n人 1{'0' * 400}\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: count must be from 0 to 2\\*\\*53"):
        read_user_dict(path)
    with pytest.raises(InputError, match="from 1 to 2\\*\\*53"):
        Lexicon({"中国": 2**53 + 1})


@pytest.mark.parametrize("count", ["²", "2.5", "1e3", "+", "-2.0", "３"])
def test_a_user_dictionary_count_is_ascii_digits(count, tmp_path):
    path = tmp_path / "user.txt"
    path.write_text(f"云计算 7 n\n区块链 nz\n#注释 5\n词 {count}\n", encoding="utf-8")
    want = f"^user dictionary .* line 4: count {re.escape(repr(count))} is not a whole number"
    with pytest.raises(InputError, match=want):
        read_user_dict(path)
    path.write_text(f"词 {count} n\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: count"):
        read_user_dict(path)
    path.write_text("云计算 7 n\n区块链 nz\n#注释 5\n词 +3\n", encoding="utf-8")
    assert read_user_dict(path) == [("云计算", 7), ("区块链", None), ("词", 3)]


def test_dag_always_has_a_path_and_holds_every_lexicon_word(train_words):
    from llmlab.text.base import unit_spans

    lex = Lexicon.from_sentences(train_words)
    for words in train_words[:40]:
        text = normalize_text("".join(words))  # what a DictSegmenter gives build_dag
        inside = {k for a, b in unit_spans(text) for k in range(a + 1, b)}
        dag = build_dag(text, lex)
        for i, ends in enumerate(dag):
            if i in inside:  # no path reaches a position inside a unit: no edges
                assert ends == []
                continue
            assert i + 1 in ends or any(text[i:j].isalnum() and j > i for j in ends)
            want = {j for j in range(i + 2, min(len(text), i + lex.max_len) + 1) if text[i:j] in lex}
            assert want - inside <= set(ends)  # all words, except those ending inside a digit run
            assert not set(ends) & inside


def test_a_long_latin_run_is_one_unit_looked_up_once(monkeypatch):
    seg = UnigramSegmenter(Lexicon(dict(LEX.counts)))
    looked_up = []
    logp = seg.lexicon.logp
    monkeypatch.setattr(seg.lexicon, "logp", lambda w: looked_up.append(len(w)) or logp(w))
    text = "研究" + "a" * 3000 + "生命" + "1" * 3000
    assert seg.cut(text) == ["研究", "a" * 3000, "生命", "1" * 3000]
    assert seg.k_best(text, 2)[0][1] == ["研究", "a" * 3000, "生命", "1" * 3000]
    assert sum(looked_up) < 6 * len(text)  # each run once per pass, not once per position inside it


def test_unigram_best_path_is_the_max_product_by_brute_force():
    seg = UnigramSegmenter(LEX)
    for text in ("研究生命起源", "结合成分子", "研究生结合"):
        paths = [ws for ws in all_cuts(text) if all(len(w) == 1 or w in LEX for w in ws)]
        best = max(paths, key=lambda ws: sum(LEX.logp(w) for w in ws))
        assert seg.cut(text) == best


def test_k_best_paths_match_brute_force():
    seg = UnigramSegmenter(LEX)
    text = "研究生命起源"
    dag = build_dag(text, LEX)
    allowed = list(lattice_cuts(text, LEX))
    scores = sorted((sum(LEX.logp(w) for w in ws) for ws in allowed), reverse=True)
    got = seg.k_best(text, k=6)
    assert [round(s, 9) for s, _ in got] == [round(s, 9) for s in scores[:6]]
    for s, words in got:
        assert "".join(words) == text
        assert math.isclose(s, sum(LEX.logp(w) for w in words))
    fewest = k_best_paths(text, dag, lambda w: -1.0, 3)
    assert [len(ws) for _, ws in fewest] == sorted(len(ws) for ws in allowed)[:3]
    assert fewest[0][1] in (["研究生", "命", "起源"], ["研究", "生命", "起源"])
    wide = UnigramSegmenter(Lexicon({"ＡＢ研究": 2, **LEX.counts})).k_best("AB研究生命", k=3)  # either width
    narrow = UnigramSegmenter(Lexicon({"AB研究": 2, **LEX.counts})).k_best("ＡＢ研究生命", k=3)
    assert [[len(w) for w in ws] for _, ws in wide] == [[len(w) for w in ws] for _, ws in narrow]
    assert wide[0][1][0] == "AB研究" and narrow[0][1][0] == "ＡＢ研究"  # the text's own characters


def test_bigram_best_path_by_brute_force(train_words):
    seg = BigramSegmenter.train(train_words[:200])
    lex = seg.lexicon
    for words in train_words[:15]:
        text = "".join(words)[:7]
        allowed = list(lattice_cuts(text, lex))

        def score(ws):
            seq = ["<s>", *ws, "</s>"]
            return sum(seg.logp(a, b) for a, b in itertools.pairwise(seq))

        best = max(allowed, key=score)
        assert math.isclose(score(seg.cut(text)), score(best), rel_tol=1e-9)


def test_bigram_best_path_is_the_first_of_the_k_best_ties_included():
    # the cut's own Viterbi keeps what bigram_k_best keeps at k = 1: integer scores make ties everywhere
    from llmlab.text.lattice import bigram_best_path, bigram_k_best

    rng = random.Random(4)
    for _ in range(300):
        n = rng.randint(1, 9)
        dag = [sorted({i + 1, *(j for j in range(i + 2, n + 1) if rng.random() < 0.4)}) for i in range(n)]
        table: dict[tuple[str, str], float] = {}

        def logp(v, w, table=table):
            return table.setdefault((v, w), float(rng.randint(-3, 0)))

        text = "".join(rng.choice("甲乙丙") for _ in range(n))
        assert bigram_best_path(text, dag, logp) == bigram_k_best(text, dag, logp, 1)[0][1]


def test_bigram_logp_takes_either_width():
    seg = BigramSegmenter.train([["ＡＢ", "中国"], ["AB", "中国"], ["中国", "人"]])
    assert seg.logp("ＡＢ", "中国") == seg.logp("AB", "中国")
    assert seg.logp("ＡＢ", "中国") > seg.logp("人", "中国")  # the pair was seen: the bigram term counts


def test_bigram_k_best_ranks_by_the_bigram_model(train_words, test_words):
    seg = BigramSegmenter.train(train_words[:200])

    def path_logp(ws):  # the model holds width-normalised words
        seq = ["<s>", *map(normalize_text, ws), "</s>"]
        return sum(seg.logp(a, b) for a, b in itertools.pairwise(seq))

    for words in test_words[:40]:
        text = "".join(words)
        got = seg.k_best(text, 4)
        assert got[0][1] == seg.cut(text)  # the best path is the model's cut
        assert [s for s, _ in got] == sorted((s for s, _ in got), reverse=True)
        for s, ws in got:
            assert "".join(ws) == text and math.isclose(s, path_logp(ws), rel_tol=1e-9)
    lex = seg.lexicon
    for words in train_words[:10]:  # the k best of all lexicon paths, by brute force
        text = "".join(w for w in words if not unit_spans(w))[:7]
        allowed = list(lattice_cuts(text, lex))
        want = sorted((path_logp(ws) for ws in allowed), reverse=True)[:5]
        assert [round(s, 9) for s, _ in seg.k_best(text, 5)] == [round(s, 9) for s in want]


def test_bigram_model_is_the_interpolation_of_the_training_counts(tmp_path):
    """P(w | v) = a * c(v, w) / c(v) + (1 - a) * P(w), with the pairs counted over <s> w1 .. wn </s>
    of each training sentence (width-normalised); the unigram share of </s> is 1 / |lexicon|."""
    sents = [["研究", "生命", "起源"], ["研究", "起源"], ["ＡＢ", "起源"], ["生命"]]
    a = 0.6
    seg = BigramSegmenter.train(sents, LatticeConfig(bigram_weight=a))
    pairs = [(s[i], s[i + 1]) for s in (["<s>", *map(normalize_text, x), "</s>"] for x in sents)
             for i in range(len(s) - 1)]
    assert seg.bigrams == {p: pairs.count(p) for p in pairs}
    words = {w for _, w in pairs}
    for v in {v for v, _ in pairs}:
        c_v = sum(1 for x, _ in pairs if x == v)
        for w in words:
            p_uni = 1 / len(seg.lexicon) if w == "</s>" else seg.lexicon.count(w) / seg.lexicon.total
            want = a * pairs.count((v, w)) / c_v + (1 - a) * p_uni
            assert seg.logp(v, w) == pytest.approx(math.log(want)), (v, w)
    assert seg.logp("未见", "研究") == pytest.approx(math.log((1 - a) * 2 / 8))  # no history: unigram only
    seg.save(tmp_path / "bigram")
    back = BigramSegmenter.load(tmp_path / "bigram")
    assert back.bigrams == seg.bigrams and back.history == seg.history and back.config == seg.config


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5, math.nan])
def test_bigram_weight_must_leave_room_for_the_unigram_model(weight):
    """At weight 1 an unseen pair has probability 0 (log 0 fails at cut time): [0, 1) only."""
    with pytest.raises(InputError, match="bigram_weight"):
        LatticeConfig(bigram_weight=weight)
    assert LatticeConfig(bigram_weight=0.0).bigram_weight == 0.0


@pytest.mark.parametrize("cls", [UnigramSegmenter, BigramSegmenter])
@pytest.mark.parametrize("by", ["prob", "words"])
def test_one_best_is_the_head_of_the_k_best_and_k_must_be_positive(cls, by, train_words, test_words):
    seg = cls.train(train_words[:100])
    for words in test_words[:10]:
        text = "".join(words)
        one, five = seg.k_best(text, 1, by), seg.k_best(text, 5, by)
        assert len(one) == 1 and one[0][0] == pytest.approx(five[0][0])
        if by == "prob":
            assert one[0][1] == seg.cut(text)
    with pytest.raises(InputError, match="k must be >= 1"):
        seg.k_best("研究生命", 0, by)
    text = "".join(test_words[0])
    assert seg.k_best(text, by=by) == seg.k_best(text, 5, by)  # five unless asked


@pytest.mark.parametrize("cls", [UnigramSegmenter, BigramSegmenter])
def test_k_best_cuts_whitespace_as_cut_does(cls, train_words, test_words):
    """Whitespace is a word of its own, as in `cut` (a run of it stayed one word in cut, two in
    k_best, and the bigram model scored it as a word); the runs between are independent."""
    seg = cls.train(train_words[:300])
    for words in test_words[:30]:
        text = "".join(words[:3]) + " " + "".join(words[3:6]) + " \t" + "".join(words[6:])
        got = seg.k_best(text, 4)
        assert got[0][1] == seg.cut(text)
        assert all("".join(ws) == text for _, ws in got)
        runs = [seg.k_best(r, 2) for r in text.split()]
        best = sum(r[0][0] for r in runs)
        assert got[0][0] == pytest.approx(best)
        if len(got) > 1:  # the second best changes one run to its second best
            assert got[1][0] == pytest.approx(max(best - r[0][0] + r[1][0] for r in runs if len(r) > 1))


def test_scoring_principles_rank_candidates():
    cands = [["研究生", "命", "起源"], ["研究", "生命", "起源"], ["研", "究", "生命", "起源"], ["研究生命", "起源"]]
    ranked = [ws for _, ws in rank_segmentations(cands, LEX)]
    assert ranked[0] == ["研究", "生命", "起源"]  # no OOV, 3 words, no single chars
    assert ranked[-1] == ["研究生命", "起源"]  # fewest words but an OOV word
    s = score_segmentation(["研", "究", "生命", "起源"], LEX)
    assert (s.n_words, s.n_single, s.n_oov) == (4, 2, 0)


def _jieba(tmp_path, lex):
    jieba = pytest.importorskip("jieba")
    path = tmp_path / "dict.txt"
    path.write_text("".join(f"{w} {c}\n" for w, c in lex.counts.items()), encoding="utf-8")
    tok = jieba.Tokenizer(dictionary=str(path))
    tok.tmp_dir = str(tmp_path)
    tok.initialize()
    return tok


def test_dag_and_best_path_match_jieba(tmp_path, train_words):
    """On Han-only text, with jieba given our lexicon's counts: our DAG is jieba's (single characters
    only where no word starts) and our best path is its cut (unknown count 1, its rounding on ties)."""
    from llmlab.text.lattice import best_path

    lex = Lexicon.from_sentences(train_words)
    tok = _jieba(tmp_path, lex)
    texts = ["".join(w for w in s if all("\u4e00" <= c <= "\u9fa5" for c in w)) for s in train_words[:150]]
    texts += ["研究生命起源", "结合成分子时", "乒乓球拍卖完了"]
    for text in filter(None, texts):
        assert build_dag(text, lex) == [sorted(j + 1 for j in tok.get_DAG(text)[i]) for i in range(len(text))]
        assert best_path(text, lex) == tok.lcut(text, HMM=False), text


def test_one_pass_best_path_equals_the_dag_dp(train_words, test_words):
    """The unigram hot path (`best_path`) is `dag_best_path` over `build_dag`, ties included."""
    from llmlab.text.lattice import best_path

    lex = Lexicon.from_sentences(train_words)
    texts = [normalize_text("".join(s)) for s in test_words]
    texts += ["Москва1998年３．１４米👨\u200d👩\u200d👧研究生命", "ab12中国" * 5, "x", "中"]
    tie = Lexicon({"甲": 2, "乙": 3, "甲乙": 1})  # 1/6 = 2/6 * 3/6: 甲乙 ties with 甲+乙
    assert tie.logp("甲乙") == pytest.approx(tie.logp("甲") + tie.logp("乙"))
    for lexicon, text in [(lex, t) for t in texts] + [(tie, "甲乙甲乙乙甲" * 3)]:
        want = dag_best_path(text, build_dag(text, lexicon), lexicon.logp)
        assert best_path(text, lexicon) == want, text


@pytest.fixture(scope="module")
def jieba_dict(test_words):
    """A unigram segmenter from jieba's shipped dict.txt (349k words, no training text), jieba's own
    tokenizer, and the Han runs of the test sentences plus hard cases."""
    jieba = pytest.importorskip("jieba")
    import os

    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    seg = UnigramSegmenter.from_dictionary(path)
    assert len(seg.lexicon) > 300_000
    runs = [r for words in test_words for r in re.findall("[\u4e00-\u9fa5]+", "".join(words))]
    assert len(runs) > 500
    runs += ["太太太差", "嚐试验", "啤酒醰"]  # a tie that rounding decides; a character that only begins
    # words (never cut alone); an unknown character (count 1)
    runs += ["中华人民共和国成立了", "研究生命起源", "南京市长江大桥"]  # overlapping words for the other modes
    return seg, jieba.Tokenizer(), runs


def test_unigram_on_jiebas_own_dictionary_cuts_as_jieba_without_hmm(jieba_dict):
    """With jieba's own dictionary: the same cuts as ``jieba.cut(HMM=False)`` on every Han run."""
    seg, tok, runs = jieba_dict
    assert [seg.cut(r) for r in runs] == [tok.lcut(r, HMM=False) for r in runs]


def test_search_and_full_modes_on_jiebas_own_dictionary_are_jiebas(jieba_dict):
    """Search mode gives ``jieba.cut_for_search(HMM=False)`` and its offsets ``jieba.tokenize(...,
    mode="search")``; full mode gives ``jieba.cut(cut_all=True)``, on every Han run."""
    seg, tok, runs = jieba_dict
    assert [seg.cut_for_search(r) for r in runs] == [tok.lcut_for_search(r, HMM=False) for r in runs]
    assert [seg.tokenize(r, "search") for r in runs] == [list(tok.tokenize(r, "search", HMM=False)) for r in runs]
    assert [seg.tokenize(r) for r in runs] == [list(tok.tokenize(r, HMM=False)) for r in runs]
    assert [seg.cut_all(r) for r in runs] == [tok.lcut(r, cut_all=True) for r in runs]
    full = seg.cut_all("南京市长江大桥")
    assert {"南京市", "市长", "长江", "长江大桥", "大桥"} <= set(full)  # the overlaps are there


def test_a_counted_user_word_takes_its_count_as_in_jieba(jieba_dict, tmp_path):
    """A counted user entry sets the word's count, as jieba's ``FREQ[word] = freq`` does, so a user can
    lower it too: with jieba's dictionary, ``add_word`` and ``load_userdict`` of ``中将 1`` (763 in
    dict.txt) give jieba's cuts, and of two lines for one word the later stands, as in jieba. The total
    stays the sum of the counts (jieba's only grows: given the sum here)."""
    jieba = pytest.importorskip("jieba")

    seg, _, runs = jieba_dict
    texts = ["中将军衔", "他升为中将军衔的那年", *(r for r in runs if "中将" in r)]
    path = tmp_path / "user.txt"
    for how, lines in (("add_word", None), ("load_userdict", "中将 1\n"), ("load_userdict", "中将 5000\n中将 1\n")):
        ours, tok = UnigramSegmenter(Lexicon(dict(seg.lexicon.counts))), jieba.Tokenizer()  # copies: the fixture stays
        tok.initialize()
        assert ours.lexicon.count("中将") == tok.FREQ["中将"] > 1
        if lines is None:
            ours.add_word("中将", 1)
            tok.add_word("中将", 1)
        else:
            path.write_text(lines, encoding="utf-8")
            ours.add_user_dict(path)
            tok.load_userdict(str(path))
        tok.total = sum(tok.FREQ.values())
        assert ours.lexicon.count("中将") == tok.FREQ["中将"] == 1, how
        assert ours.lexicon.total == sum(ours.lexicon.counts.values()) == tok.total, how
        assert [ours.cut(t) for t in texts] == [tok.lcut(t, HMM=False) for t in texts], how
        assert "中将" not in ours.cut("中将军衔"), how  # lowered, the word loses to 中 + 将军衔's best cut
    from_file = UnigramSegmenter.from_dictionary(path)  # a dictionary alone: the last count of a word stands
    assert from_file.lexicon.count("中将") == 1 and from_file.lexicon.total == 1


@given(st.lists(st.tuples(st.text(alphabet="甲乙丙丁", min_size=1, max_size=4),
                          st.one_of(st.none(), st.integers(1, 2000))), min_size=1, max_size=12),
       st.booleans())
@settings(max_examples=200, deadline=None)
def test_every_word_listed_without_a_count_wins(entries, onto_training_words):
    """Whatever the order, repeats and counts of the other entries, a dictionary word without a count
    is cut whole: from a dictionary alone, and added to a lexicon that already has words."""
    if onto_training_words:
        seg = UnigramSegmenter(Lexicon({"甲": 7, "乙丙": 3, "丁": 1}))
        seg.add_user_dict(entries)
    else:
        seg = UnigramSegmenter.from_dictionary(entries)
    for word, count in entries:
        if count is None:
            assert seg.cut(word) == [word], (word, seg.lexicon.counts)


@pytest.mark.parametrize("counts", [{"a": 1}, {"甲": 2, "乙": 3}, dict(LEX.counts)])
def test_logp_is_the_relative_count_and_equals_the_table(counts):
    lex = Lexicon(counts)
    total = sum(counts.values())
    for w in [*counts, "未知词", "ｚ"]:  # an unknown word counts 1
        want = math.log(counts.get(w, 1) / total)
        assert lex.logp(w) == pytest.approx(want) and lex.log_probs[w] == pytest.approx(want), w


@pytest.mark.parametrize(("counts", "word"), [
    ({"甲": 10, "乙": 10}, "甲乙"),
    ({"甲": 3, "乙": 40, "丙": 2, "丁戊己": 5}, "甲乙丙"),
    ({"甲乙": 7, "丙": 9, "甲": 30, "乙丙丁": 1}, "甲乙丙丁"),
])
def test_suggested_count_is_the_smallest_that_beats_every_split(counts, word):
    """By brute force over the splits into lexicon words or single characters (unknown ones count 1):
    the suggested count makes the word likelier than the best split, one less does not."""
    lex = Lexicon(counts)
    total = sum(counts.values())
    best = max(math.prod(max(lex.count(p), 1) / total for p in ws) for ws in all_cuts(word)
               if len(ws) > 1 and all(len(p) == 1 or p in lex for p in ws))
    c = lex.suggest_count(word)
    assert c / total > best and (c == 1 or (c - 1) / total <= best)


def test_an_uncounted_word_is_raised_to_the_suggested_count_not_by_it():
    lex = Lexicon({"甲": 10, "乙": 10, "甲乙": 2})
    need = lex.suggest_count("甲乙")
    assert need > 2
    lex.add_user_words([("甲乙", None)])
    assert lex.count("甲乙") == need and lex.total == 20 + need
    lex.add_user_words([("甲乙", None)])  # already enough: unchanged
    assert lex.count("甲乙") == need and lex.total == 20 + need


def test_adding_user_words_does_not_rebuild_the_probability_table(monkeypatch):
    """The lattice's log-probability table is built lazily: adding words one by one (each uncounted
    word's count depends on the lexicon so far) must not rebuild it per word, which took 25 s for 200
    words on jieba's 349k-word dictionary."""
    import llmlab.text.lexicon as lexicon

    lex = Lexicon({"甲": 5, "乙": 3})
    assert lex.log_probs["甲"] == lex.logp("甲")
    built, real = [], lexicon.LogProbs
    monkeypatch.setattr(lexicon, "LogProbs", lambda *a: built.append(a) or real(*a))
    lex.add_user_words([(f"甲乙{'丙' * k}", None) for k in range(20)])
    assert built == []
    assert UnigramSegmenter(lex).cut("甲乙丙丙") == ["甲乙丙丙"] and len(built) == 1


def test_dictionary_only_segmenters(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("研究 10\n研究生 5 n\n生命 8\n起源\n", encoding="utf-8")
    assert MaxMatchSegmenter.from_dictionary(path).cut("研究生命起源") == ["研究生", "命", "起源"]
    assert MaxMatchSegmenter.from_dictionary(path, MatchConfig("bidirectional")).cut("研究生命起源") == [
        "研究", "生命", "起源"]
    seg = UnigramSegmenter.from_dictionary(path)
    assert seg.cut("研究生命起源") == ["研究", "生命", "起源"]
    assert seg.lexicon.count("起源") >= 1 and seg.lexicon.total == 10 + 5 + 8 + seg.lexicon.count("起源")
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no words"):
        UnigramSegmenter.from_dictionary(path)
    with pytest.raises(InputError, match="word pairs"):
        BigramSegmenter.from_dictionary([("研究", 1)])
    with pytest.raises(InputError, match="min_count 5"):  # was an empty lexicon, saved without a word
        UnigramSegmenter.from_dictionary([("研究", 3), ("生命", 4)], LatticeConfig(min_count=5))


def test_lexicon_words_never_cut_into_a_digit_run():
    lex = Lexicon({"１万": 50, "３万": 50, "万": 5, "２１": 1, "年": 3, "１９９７年": 9})
    for direction in ("forward", "backward", "bidirectional"):
        seg = MaxMatchSegmenter(lex, MatchConfig(direction))
        assert seg.cut("２１万") == ["２１", "万"], direction
        assert seg.cut("１３６．３万") == ["１３６．３", "万"], direction
        assert seg.cut("１９９７年") == ["１９９７年"], direction
    for cls in (UnigramSegmenter, BigramSegmenter):
        seg = cls(lex) if cls is UnigramSegmenter else cls(lex, {})
        assert seg.cut("２１万") == ["２１", "万"]


def test_suggest_freq_gives_jiebas_counts_and_its_cuts_follow(tmp_path, train_words):
    """`suggest_freq` on a unigram lattice gives jieba's count for each suggestion on the same counts (a
    word kept whole, a word cut in two); tuned one after another, each word is then cut whole, or not
    whole, and the total stays the sum of the counts (jieba's add_word adds a re-added word's new
    count to its total without taking the old one out, so its later counts drift)."""
    lex = Lexicon.from_sentences(train_words)
    tok = _jieba(tmp_path, lex)
    seg = UnigramSegmenter(Lexicon(dict(lex.counts)))
    joined = [a + b for s in train_words[:60] for a, b in zip(s, s[1:])
              if a + b not in lex and all("\u4e00" <= c <= "\u9fa5" for c in a + b)][:25]
    split = [(w[:k], w[k:]) for w in sorted(lex.counts, key=lambda w: (-lex.counts[w], w))
             for k in range(1, len(w)) if w[:k] in lex and w[k:] in lex][:25]
    # jieba takes 0 for a piece that only begins longer words (llmlab 1, as its cut does): not compared
    joined = [w for w in joined if all(tok.FREQ.get(p, 1) for p in tok.lcut(w, HMM=False))]
    split = [p for p in split if all(tok.FREQ.get(w, 1) for w in p)]
    assert len(joined) >= 15 and len(split) >= 20
    suggestions = [x for pair in zip(joined, split) for x in pair]
    assert [seg.suggest_freq(x) for x in suggestions] == [tok.suggest_freq(x) for x in suggestions]
    assert seg.lexicon.counts == lex.counts  # without tune nothing changes
    for x in suggestions:
        count = seg.suggest_freq(x, tune=True)
        word = x if isinstance(x, str) else "".join(x)
        assert seg.lexicon.count(word) == count
        assert (seg.cut(word) == [word]) == isinstance(x, str), x
    assert seg.lexicon.total == sum(seg.lexicon.counts.values())


def test_a_user_dictionary_count_of_0_takes_words_out_as_jiebas(tmp_path, train_words):
    """jieba's user-dictionary line ``word 0`` takes the word out: with the same dictionary of deletions
    and new words, the unigram lattice cuts every Han sentence as jieba without its HMM does (jieba's
    total given the sum of its counts: its add_word adds to the total without taking the old count out)."""
    lex = Lexicon.from_sentences(train_words)
    tok = _jieba(tmp_path, lex)
    seg = UnigramSegmenter(Lexicon(dict(lex.counts)))
    texts = ["".join(s) for s in train_words[:400] if all("\u4e00" <= c <= "\u9fa5" for c in "".join(s))]
    whole = [w for w in dict.fromkeys(w for t in texts for w in seg.cut(t)) if len(w) >= 2]
    gone, new = whole[:40:2], [a + b for a, b in zip(whole[1:40:2], whole[3:42:2]) if a + b not in lex][:10]
    path = tmp_path / "user.txt"
    path.write_text("".join(f"{w} 0\n" for w in gone) + "".join(f"{w} 3 nz\n" for w in new), encoding="utf-8")
    seg.add_user_dict(path)
    tok.load_userdict(str(path))
    tok.total = sum(tok.FREQ.values())
    assert len(gone) == 20 and len(new) >= 5 and all(w not in seg.lexicon for w in gone)
    assert seg.lexicon.total == sum(seg.lexicon.counts.values())
    cuts = [seg.cut(t) for t in texts]
    assert cuts == [tok.lcut(t, HMM=False) for t in texts]
    assert not set(gone) & {w for c in cuts for w in c}
    seg.add_user_dict([(gone[0], 7)])  # and a word taken out comes back
    assert seg.lexicon.count(gone[0]) == 7


def test_a_count_of_0_takes_forced_words_out_too(segmenters, tmp_path):
    """With force, a user dictionary's words with a count are forced and those of count 0 are no longer;
    the HMM (no lexicon) takes such a dictionary only with force, as any other."""
    import copy

    hmm = copy.deepcopy(segmenters["hmm"])
    hmm.add_user_dict([("体育馆内", None), ("去体育", None)], force=True)
    path = tmp_path / "user.txt"
    path.write_text("去体育 0\n馆内看 n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no dictionary"):
        hmm.add_user_dict(path)
    assert hmm.forced.words == {"体育馆内", "去体育"}  # refused: nothing changed
    hmm.add_user_dict(path, force=True)
    assert hmm.forced.words == {"体育馆内", "馆内看"}
    uni = copy.deepcopy(segmenters["unigram"])
    uni.add_word("去体育馆", force=True)
    uni.add_word("去体育馆", 0)  # jieba's add_word(word, 0) is its del_word
    assert "去体育馆" not in uni.lexicon and not uni.forced


def test_del_word_takes_a_word_from_every_model(segmenters, train_words):
    """del_word: the lattice never gives the word again, the perceptron's lexicon features stop firing
    (its emissions come back exactly when the word does), a forced word is no longer forced, and a
    segmenter with neither dictionary nor forced words refuses."""
    import copy

    import numpy as np

    uni = copy.deepcopy(segmenters["unigram"])
    word = next(w for w in uni.lexicon.counts if len(w) == 2 and uni.cut(w) == [w])
    for kind in ("fmm", "bmm", "bimm", "unigram", "bigram"):  # their prefix tables and scans follow
        seg = uni if kind == "unigram" else copy.deepcopy(segmenters[kind])
        assert seg.cut("的" + word + "的") == ["的", word, "的"]
        seg.del_word(word)
        assert word not in seg.lexicon and word not in seg.cut("的" + word + "的"), kind
    perc = copy.deepcopy(segmenters["perceptron"])
    count, text = perc.lexicon.count(word), "".join(train_words[0]) + word
    before = perc.emissions(text)
    perc.del_word(word)
    assert word not in perc.lexicon and not np.array_equal(perc.emissions(text), before)
    perc.add_word(word, count)
    assert np.array_equal(perc.emissions(text), before)
    hmm = copy.deepcopy(segmenters["hmm"])
    with pytest.raises(InputError, match="no dictionary and no forced words"):
        hmm.del_word(word)
    with pytest.raises(InputError, match="no dictionary and no forced words"):  # a `word 0` line: the same
        hmm.add_user_dict([(word, 0)])
    hmm.force_words([word, "体育馆内", "川普通"])
    hmm.del_word("体育馆内")
    assert hmm.forced.words == {word, "川普通"} and hmm.cut("去体育馆内") == segmenters["hmm"].cut("去体育馆内")
    hmm.add_user_dict([("川普通", 0)])  # takes a forced word out without force=True, which only adds
    assert hmm.forced.words == {word}
    with pytest.raises(InputError, match="no dictionary to suggest"):
        hmm.suggest_freq(word)
    for bad in (("中",), ("中", ""), "", 3):
        with pytest.raises(InputError):
            uni.suggest_freq(bad)
