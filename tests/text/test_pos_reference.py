"""POS taggers on tiny hand-made data, against brute force and independently computed values."""

import itertools
import logging
import math
from collections import Counter

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.features import type_table
from llmlab.text.pos import viterbi, viterbi2
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig, word_keys

TINY = [[("他", "r"), ("跑", "v"), ("了", "u")], [("我", "r"), ("跑", "v")], [("书", "n"), ("的", "u")],
        [("他", "r"), ("的", "u"), ("书", "n")], [("跑", "v"), ("书", "n")], [("我", "r"), ("走", "v"), ("了", "u")]]


def _reference_perceptron(tagger, data, config, seed):
    """A plain structured perceptron, averaged over the snapshots before the first and after each
    sentence, written without the compiled loops: its (weights, trans, start, trans3), and the wrongly
    tagged words of each epoch."""
    tags = tagger.tags
    k = len(tags)
    slots = [tagger.index.lookup(word_keys([w for w, _ in s])) for s in data]
    golds = [[tags.index(t) for _, t in s] for s in data]
    w = np.zeros((tagger.index.size + 1, k))
    tr, st, t3 = np.zeros((k, k)), np.zeros(k), np.zeros((k, k, k))
    sums = [np.zeros_like(x) for x in (w, tr, st, t3)]
    rng, snapshots, wrong = np.random.default_rng(seed), 1, []
    for _ in range(config.epochs):
        wrong.append(0)
        for i in rng.permutation(len(data)):
            em = w[slots[i]].sum(axis=1)
            if config.order == 2:
                pred = viterbi2(em, tr, t3, st, config.beam)
            else:
                pred = viterbi(em, tr, st)
            gold = golds[i]
            wrong[-1] += sum(g != p for g, p in zip(gold, pred))
            if pred != gold:
                for x, (g, p) in enumerate(zip(gold, pred)):
                    w[slots[i][x], g] += 1
                    w[slots[i][x], p] -= 1
                st[gold[0]] += 1
                st[pred[0]] -= 1
                for x in range(1, len(gold)):
                    tr[gold[x - 1], gold[x]] += 1
                    tr[pred[x - 1], pred[x]] -= 1
                    if config.order == 2 and x >= 2:
                        t3[gold[x - 2], gold[x - 1], gold[x]] += 1
                        t3[pred[x - 2], pred[x - 1], pred[x]] -= 1
            for total, x in zip(sums, (w, tr, st, t3)):
                total += x
            snapshots += 1
    return [total / snapshots for total in sums], wrong


@pytest.mark.parametrize("order", [1, 2])
def test_perceptron_training_matches_a_plain_averaged_perceptron(order):
    config = PerceptronTaggerConfig(epochs=3, order=order, beam=2, ensemble=2, clusters=(), seed=5)
    tagger = PerceptronTagger.train(TINY, config)
    members = [_reference_perceptron(tagger, TINY, config, seed)[0] for seed in (5, 6)]
    w, tr, st, t3 = (a + b for a, b in zip(*members))
    w[tagger.index.missing] = 0
    assert np.abs(w).sum() > 0 and np.abs(tr).sum() > 0
    assert np.allclose(tagger.weights, w, atol=1e-5) and np.allclose(tagger.trans, tr)
    assert np.allclose(tagger.start, st) and np.allclose(tagger.trans3, t3)


def test_training_logs_the_wrongly_tagged_words_of_each_epoch(caplog):
    config = PerceptronTaggerConfig(epochs=3, order=2, beam=2, ensemble=1, clusters=(), seed=5)
    with caplog.at_level(logging.INFO, logger="llmlab.text.pos_perceptron"):
        tagger = PerceptronTagger.train(TINY, config)
    wrong = _reference_perceptron(tagger, TINY, config, 5)[1]
    assert wrong[0] > 0
    assert [r.getMessage() for r in caplog.records if "wrongly" in r.getMessage()] == [
        f"epoch {e + 1}: {n} wrongly tagged training words" for e, n in enumerate(wrong)]


def test_hmm_probabilities_are_the_smoothed_counts():
    from llmlab.text.pos import HmmTagger, HmmTaggerConfig

    k = 0.5
    tagger = HmmTagger.train(TINY, HmmTaggerConfig(smoothing=k, rare_count=2))
    tags = tagger.tags
    assert tags == sorted({t for s in TINY for _, t in s})
    n_tags = len(tags)
    firsts = Counter(s[0][1] for s in TINY)
    for a in tags:
        want = (firsts[a] + k) / (len(TINY) + k * n_tags)
        assert math.isclose(math.exp(tagger.start[tags.index(a)]), want)
    bigrams = Counter((x[1], y[1]) for s in TINY for x, y in itertools.pairwise(s))
    for a, b in itertools.product(tags, tags):
        out_of_a = sum(c for (x, _), c in bigrams.items() if x == a)
        want = (bigrams[a, b] + k) / (out_of_a + k * n_tags)
        assert math.isclose(math.exp(tagger.trans[tags.index(a), tags.index(b)]), want)
    pairs = Counter(p for s in TINY for p in s)
    tag_count = Counter(t for s in TINY for _, t in s)
    assert tagger.emit == {w: {t: pytest.approx(math.log(c / tag_count[t])) for (w2, t), c in pairs.items() if w2 == w}
                           for w, _ in pairs}
    # unknown words: P(tag | last character) from the words seen at most twice (5 pseudo-counts of their tag
    # distribution), divided by P(tag)
    words = Counter(w for s in TINY for w, _ in s)
    rare = Counter(t for (w, t), c in pairs.items() for _ in range(c) if words[w] <= 2)
    prior = {t: (rare[t] + k) / (sum(rare.values()) + k * n_tags) for t in tags}
    p_tag = {t: tag_count[t] / sum(tag_count.values()) for t in tags}
    assert tagger.unknown.tolist() == pytest.approx([math.log(prior[t] / p_tag[t]) for t in tags])
    assert set(tagger.suffix) == {w[-1] for w, c in words.items() if c <= 2}
    for ch, scores in tagger.suffix.items():
        by_tag = Counter(t for (w, t), c in pairs.items() for _ in range(c) if words[w] <= 2 and w[-1] == ch)
        n = sum(by_tag.values())
        assert scores == pytest.approx([math.log((by_tag[t] + 5 * prior[t]) / (n + 5) / p_tag[t]) for t in tags])


def test_hmm_tags_maximise_the_joint_score():
    from llmlab.text.pos import HmmTagger

    tagger = HmmTagger.train(TINY)
    tags = tagger.tags
    for words in (["他", "跑"], ["书", "龘", "了"], ["我", "走", "的", "书"], ["龘"]):
        em = tagger._emissions(words)
        for i, w in enumerate(words):  # a known word: its emissions only; an unknown one: its last character's
            known = tagger.emit.get(w)
            want = [known.get(t, -1e30) for t in tags] if known else tagger.suffix.get(w[-1], tagger.unknown)
            assert em[i].tolist() == pytest.approx(list(want))

        def score(seq, em=em):
            return (tagger.start[seq[0]] + sum(em[i, t] for i, t in enumerate(seq))
                    + sum(tagger.trans[a, b] for a, b in itertools.pairwise(seq)))

        best = max(itertools.product(range(len(tags)), repeat=len(words)), key=score)
        assert tagger.tag(words) == [tags[i] for i in best]


def test_bad_training_data_names_its_sentence():
    from llmlab.core.errors import InputError
    from llmlab.text.pos import HmmTagger

    with pytest.raises(InputError, match="sentence 2 "):
        HmmTagger.train([[("他", "r")], [("跑", "v"), ("了", "")]])


# which words each `word_keys` template reads, by offset from the word tagged (from its docstring and list);
# the shape (12) too, but the words swapped below keep their shapes (and have middles)
_WORD_TEMPLATE_OFFSETS = {-2: {0, 23}, -1: {1, 5, 7, 14, 21, 23}, 1: {3, 6, 7, 15, 22}, 2: {4},
                          0: {2, 5, 6, 8, 9, 10, 11, 13, 16, 17, 18, 19, 20, 21, 22}}


def test_each_word_template_reads_only_its_words():
    words = ["中华人民", "共和国", "成立了", "庆典会", "大会堂"]
    other = ["甲乙丙丁", "戊己庚", "辛壬癸", "子丑寅", "卯辰巳"]
    base = word_keys(words)
    assert len(set(base[2].tolist())) == base.shape[1]  # one key per template
    for j in range(len(words)):
        keys = word_keys([other[j] if x == j else w for x, w in enumerate(words)])
        for i in range(len(words)):
            changed = set(np.flatnonzero(keys[i] != base[i]).tolist())
            assert changed == _WORD_TEMPLATE_OFFSETS.get(j - i, set()), (i, j)


def test_word_templates_tell_apart_words_that_share_parts():
    """A word's first, last and middle characters, its first and last two and three, its length and shape."""

    def cols(a, b):
        ka, kb = word_keys(["他", a, "了"])[1], word_keys(["他", b, "了"])[1]
        return set(np.flatnonzero(ka != kb).tolist())

    same = {0, 1, 3, 4, 7, 14, 15, 23}  # the neighbours' templates
    assert cols("甲乙丙丁", "甲戊己丁") == set(range(24)) - same - {8, 9, 12, 13, 18, 19}  # same edges, shape
    assert cols("甲乙丙", "甲乙丁") == set(range(24)) - same - {8, 10, 12, 19, 20}  # same start, middle, shape
    assert cols("甲乙", "甲乙丙") >= {12, 13, 19} and 8 not in cols("甲乙", "甲乙丙")  # length
    assert cols("ab", "12") >= {12, 13, 19}  # shape


def test_tied_scores_decode_to_the_lowest_tag_ids():
    """Ties go to the lower tag id (a perceptron's first decodes, all scores zero, depend on it)."""
    for n in (1, 2, 4):
        zeros = np.zeros((n, 3))
        assert viterbi(zeros, np.zeros((3, 3)), np.zeros(3)) == [0] * n
        assert viterbi2(zeros, np.zeros((3, 3)), np.zeros((3, 3, 3)), np.zeros(3)) == [0] * n
        assert viterbi2(zeros, np.zeros((3, 3)), np.zeros((3, 3, 3)), np.zeros(3), beam=2) == [0] * n


def test_the_shape_template_is_the_end_types_and_capped_length():
    """`_shape`'s documented code: words share the shape key (template 12) exactly when their first and
    last characters' types and their lengths capped at 6 agree; the empty word has a shape of its own."""
    from llmlab.text.pos_perceptron import _char_type

    table = type_table()
    words = ["○", "×", "○×", "a", "ab", "a1", "1a", "1", "12", "中", "中国", "中国人民银行总行", "中国人民银行总部",
             "○中", "中○", "的", "ＡＢ", ""]
    keys = word_keys(words)[:, 12]

    def spec(w):
        return (_char_type(w[0], table), _char_type(w[-1], table), min(len(w), 6)) if w else None

    for a, b in itertools.combinations(range(len(words)), 2):
        assert (keys[a] == keys[b]) == (spec(words[a]) == spec(words[b])), (words[a], words[b])


# which `cluster_keys` templates (2 levels) read the finest cluster of the word at each offset, and which
# the coarse one; the (word, last character) template also reads the word's last character
_FINE_OFFSETS = {-1: {1, 3, 6}, 0: {0, 3, 4, 5}, 1: {2, 4, 6}}
_COARSE_OFFSETS = {-1: {8}, 0: {7}, 1: {9}}


def test_each_cluster_template_reads_only_its_clusters():
    from llmlab.text.pos_perceptron import cluster_keys

    words = ["甲一", "乙二", "丙三", "丁四", "戊五"]
    table = {w: (10 + i, 20 + i) for i, w in enumerate(words)}
    table |= {"子" + w[-1]: (30 + i, 20 + i) for i, w in enumerate(words)}  # same coarse cluster, last char
    table |= {"丑" + w[-1]: (10 + i, 40 + i) for i, w in enumerate(words)}  # same fine cluster, last char
    base = cluster_keys(words, table, 2)
    assert len(set(base[2].tolist())) == base.shape[1]  # one key per template
    for swap, offsets in (("子", _FINE_OFFSETS), ("丑", _COARSE_OFFSETS)):
        for j in range(len(words)):
            keys = cluster_keys([swap + w[-1] if x == j else w for x, w in enumerate(words)], table, 2)
            for i in range(len(words)):
                changed = set(np.flatnonzero(keys[i] != base[i]).tolist())
                assert changed == offsets.get(j - i, set()), (swap, i, j)
    last = cluster_keys(["甲一", "乙六", "丙三"], {**table, "乙六": table["乙二"]}, 2)
    assert set(np.flatnonzero(last[1] != base[1]).tolist()) == {5}
    # beyond the sentence's edge is not an unknown word: "甲一" after "龘" and at the start differ
    after_unknown = cluster_keys(["龘", *words], table, 2)[1:]
    assert set(np.flatnonzero(after_unknown[0] != base[0]).tolist()) == {1, 3, 6, 8}
    before_unknown = cluster_keys([*words, "龘"], table, 2)[:-1]
    assert set(np.flatnonzero(before_unknown[-1] != base[-1]).tolist()) == {2, 4, 6, 9}


def test_a_beam_of_one_tags_each_word_by_its_best_emission():
    tagger = PerceptronTagger.train(TINY, PerceptronTaggerConfig(epochs=1, order=2, beam=1, ensemble=1,
                                                                 clusters=()))
    em = np.random.default_rng(0).normal(size=(7, len(tagger.tags)))
    assert tagger.decode(em) == [tagger.tags[i] for i in em.argmax(axis=1)]
    with pytest.raises(InputError, match="beam"):
        PerceptronTaggerConfig(beam=0)
