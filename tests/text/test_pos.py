"""POS taggers: Viterbi against brute force, learning on pfr1998, unknown words, save/load, joint use."""

import itertools
import math

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.metrics import tag_accuracy
from llmlab.text.pos import HmmTagger, cut_and_tag, load_tagger, viterbi
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig


@pytest.fixture(scope="module")
def taggers(train_tagged):
    return {"hmm": HmmTagger.train(train_tagged),
            "perceptron": PerceptronTagger.train(train_tagged, PerceptronTaggerConfig(epochs=3))}


def test_viterbi_matches_brute_force():
    rng = np.random.default_rng(1)
    for n in range(1, 5):
        em, trans, start = rng.normal(size=(n, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)

        def score(tags, em=em, trans=trans, start=start):
            return start[tags[0]] + sum(em[i, t] for i, t in enumerate(tags)) + sum(
                trans[a, b] for a, b in itertools.pairwise(tags))

        best = max(itertools.product(range(3), repeat=n), key=score)
        assert math.isclose(score(viterbi(em, trans, start)), score(best))


def _most_frequent_tag_baseline(train, test):
    from collections import Counter

    by_word = {}
    for s in train:
        for w, t in s:
            by_word.setdefault(w, Counter())[t] += 1
    default = Counter(t for s in train for _, t in s).most_common(1)[0][0]
    return [[by_word[w].most_common(1)[0][0] if w in by_word else default for w, _ in s] for s in test]


def test_taggers_beat_the_most_frequent_tag_baseline(taggers, train_tagged):
    from llmlab.data.corpora import pfr1998

    test = pfr1998("test")[:100]
    vocab = {w for s in train_tagged for w, _ in s}
    base = tag_accuracy(test, _most_frequent_tag_baseline(train_tagged, test), vocab)
    for name, tagger in taggers.items():
        acc = tag_accuracy(test, tagger.tag_sentences([[w for w, _ in s] for s in test]), vocab)
        assert acc["accuracy"] > base["accuracy"], name
        assert acc["unknown_accuracy"] > base["unknown_accuracy"] + 0.1, name  # suffix / char features work


def test_unknown_words_get_tags_from_their_characters(taggers):
    # unseen words: a person-name shape, a number, a place ending in 省/市
    tags = taggers["perceptron"].tag(["在", "１２３４５", "个", "人"])
    assert tags[1] == "m"
    hmm_tags = taggers["hmm"].tag(["他", "去", "过", "龘龘市"])
    assert hmm_tags[3] in ("ns", "n")


@pytest.mark.parametrize("kind", ["hmm", "perceptron"])
def test_save_load_round_trip(taggers, kind, tmp_path, train_tagged):
    tagger = taggers[kind]
    tagger.save(tmp_path / kind)
    back = load_tagger(tmp_path / kind)
    sents = [[w for w, _ in s] for s in train_tagged[:30]] + [["龘靐", "１２", "ＡＢＣ"]]
    assert back.tag_sentences(sents) == tagger.tag_sentences(sents)


def test_cut_and_tag_is_lossless(segmenters, taggers):
    text = "中国人民  银行ABC 2024年\t发行😀"
    pairs = cut_and_tag(segmenters["perceptron"], taggers["perceptron"], text)
    assert "".join(w for w, _ in pairs) == text
    assert all(t == "w" for w, t in pairs if w.isspace())
    assert taggers["hmm"].tag([]) == [] and taggers["perceptron"].tag([]) == []


def test_bad_training_data_is_rejected():
    with pytest.raises(InputError, match="bad"):
        HmmTagger.train([[("词", "")]])
    with pytest.raises(InputError, match="no tagged sentences"):
        PerceptronTagger.train([])


def test_tag_dictionary_restricts_frequent_words(train_tagged):
    from collections import Counter

    tagger = PerceptronTagger.train(train_tagged[:200], PerceptronTaggerConfig(epochs=1, tagdict_min_count=3))
    counts = Counter(w for s in train_tagged[:200] for w, _ in s)
    seen = {}
    for s in train_tagged[:200]:
        for w, t in s:
            seen.setdefault(w, set()).add(t)
    frequent = [w for w, c in counts.items() if c >= 3]
    assert frequent and set(tagger.tagdict) == set(frequent)
    for w, t in zip(frequent, tagger.tag(frequent)):
        assert t in seen[w]
