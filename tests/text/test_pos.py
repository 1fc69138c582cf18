"""POS taggers: Viterbi against brute force, learning on pfr1998, unknown words, save/load, joint use."""

import itertools
import math

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.metrics import tag_accuracy
from llmlab.text.pos import HmmTagger, cut_and_tag, load_tagger, top_ids, viterbi, viterbi2
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig


@pytest.fixture(scope="module")
def taggers(train_tagged):
    return {"hmm": HmmTagger.train(train_tagged),
            "perceptron": PerceptronTagger.train(train_tagged, PerceptronTaggerConfig(epochs=3))}


def test_words_of_other_spaced_scripts_have_the_shape_of_latin_words():
    """pfr1998's foreign words are Latin (tagged nx); a Cyrillic, Greek or Korean word shows the perceptron
    the same shape feature, instead of that of an unknown symbol."""
    from llmlab.text.features import type_table
    from llmlab.text.pos_perceptron import _shape

    t = type_table()
    assert _shape("Москва", t) == _shape("Moskva", t) == _shape("Ελλάδα", t)
    assert _shape("Αθήνα1", t) == _shape("Athen1", t)
    assert _shape("서울", t) == _shape("ab", t) != _shape("中国", t)
    assert _shape("2024", t) == _shape("٢٠٢٤", t) != _shape("ab", t)


@pytest.mark.parametrize("kind", ["hmm", "perceptron"])
def test_an_empty_word_gets_a_tag_like_any_unknown_word(taggers, kind):
    tags = taggers[kind].tag(["", "中国", ""])
    assert len(tags) == 3 and set(tags) <= set(taggers[kind].tags)


@pytest.mark.parametrize("kind", ["hmm", "perceptron"])
def test_whitespace_words_are_tagged_w_and_left_out_of_the_context(taggers, kind):
    """A whitespace word (a tokenizer's, or cut's output passed on) is punctuation-like `w`, as
    `cut_and_tag` tags it, not a guess from a character no word has (nr before); the other words are
    tagged as without it."""
    tagger = taggers[kind]
    words = ["我们", "热爱", "和平", "。"]
    spaced = [" ", "我们", "\u3000", "热爱", "\t\n", "和平", "。", "  "]
    tags = tagger.tag(spaced)
    assert [t for w, t in zip(spaced, tags) if w.isspace()] == ["w"] * 4
    assert [t for w, t in zip(spaced, tags) if not w.isspace()] == tagger.tag(words)
    assert tagger.tag_sentences([[" "], spaced, []]) == [["w"], tags, []]


@pytest.mark.parametrize("kind", ["hmm", "perceptron"])
def test_a_string_or_a_word_that_is_none_is_refused(taggers, kind):
    """A sentence given as a string would be tagged character by character: refused, as are words that
    are not strings (an AttributeError deep in the features before)."""
    tagger = taggers[kind]
    for call, match in ((lambda: tagger.tag("他跑"), "sentence 1 is a string"),
                        (lambda: tagger.tag_sentences([["他"], "他跑"]), "sentence 2 is a string"),
                        (lambda: tagger.tag_sentences("他跑"), "list of sentences"),
                        (lambda: tagger.tag(["他", None]), "sentence 1 has a word that is not a string"),
                        (lambda: tagger.tag_sentences([["他"], ["跑", 3]]), "sentence 2 has a word")):
        with pytest.raises(InputError, match=match):
            call()
    assert tagger.tag_sentences(w for w in [("他", "跑")]) == [tagger.tag(["他", "跑"])]  # any iterables


def test_viterbi_matches_brute_force():
    rng = np.random.default_rng(1)
    for n in range(1, 5):
        em, trans, start = rng.normal(size=(n, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)

        def score(tags, em=em, trans=trans, start=start):
            return start[tags[0]] + sum(em[i, t] for i, t in enumerate(tags)) + sum(
                trans[a, b] for a, b in itertools.pairwise(tags))

        best = max(itertools.product(range(3), repeat=n), key=score)
        assert math.isclose(score(viterbi(em, trans, start)), score(best))


def test_second_order_viterbi_matches_brute_force():
    rng = np.random.default_rng(2)
    for n in range(1, 6):
        em, trans, t3, start = rng.normal(size=(n, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3, 3)), \
            rng.normal(size=3)

        def score(tags, em=em, trans=trans, t3=t3, start=start):
            return (start[tags[0]] + sum(em[i, t] for i, t in enumerate(tags))
                    + sum(trans[a, b] for a, b in itertools.pairwise(tags))
                    + sum(t3[tags[i - 2], tags[i - 1], tags[i]] for i in range(2, len(tags))))

        best = max(itertools.product(range(3), repeat=n), key=score)
        assert math.isclose(score(viterbi2(em, trans, t3, start)), score(best))
        assert math.isclose(score(viterbi2(em, trans, t3, start, beam=3)), score(best))  # beam = K: exact
        top2 = [set(np.argsort(-row)[:2].tolist()) for row in em]
        pruned = max((t for t in itertools.product(range(3), repeat=n) if all(x in s for x, s in zip(t, top2))),
                     key=score)
        assert math.isclose(score(viterbi2(em, trans, t3, start, beam=2)), score(pruned))


@pytest.mark.parametrize("run", ["compiled", "py_func"])
def test_a_words_best_tags_are_a_stable_sorts_first_ones(run):
    """`top_ids` (the beam's candidates) equals ``np.argsort(-row, kind="stable")[:b]``, ties and
    banned (-1e6, -inf) tags included, compiled and as the Python source a small job runs."""
    rng, kernel = np.random.default_rng(5), getattr(top_ids, run)
    for _ in range(300):
        k = int(rng.integers(1, 12))
        row = rng.integers(-3, 4, size=k).astype(np.float64)  # few values: many ties
        row[rng.random(k) < 0.2] = rng.choice([-1e6, -np.inf])
        for b in range(1, k + 1):
            out = np.full(b, -1, np.int64)
            kernel(row, out)
            assert out.tolist() == np.argsort(-row, kind="stable")[:b].tolist()


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
def test_full_and_half_width_words_tag_alike(taggers, kind, train_tagged):
    """pfr1998 writes digits, Latin letters and punctuation full-width; text in the wild often does not."""
    from llmlab.text.base import normalize_text

    sents = [[w for w, _ in s] for s in train_tagged[:60] if any(w != normalize_text(w) for w, _ in s)]
    assert len(sents) > 20
    tagger = taggers[kind]
    assert tagger.tag_sentences([[normalize_text(w) for w in s] for s in sents]) == tagger.tag_sentences(sents)


def test_an_hmm_tagger_saved_before_width_normalisation_tags_as_before(tmp_path):
    """Its words were stored as written, so it must look them up as written."""
    tagger = HmmTagger.train([[("ＧＤＰ", "nx"), ("增长", "v")]] * 3 + [[("他", "r"), ("增长", "v")]])
    assert "GDP" in tagger.emit and "ＧＤＰ" not in tagger.emit
    assert tagger.tag(["GDP", "增长"]) == tagger.tag(["ＧＤＰ", "增长"]) == ["nx", "v"]
    state = tagger._state(tmp_path)
    state["emit"] = {"ＧＤＰ" if w == "GDP" else w: e for w, e in state["emit"].items()}  # as it was trained
    del state["normalized"]
    old = HmmTagger._from_state(state, tmp_path)
    assert not old.normalized and np.array_equal(old._emissions(["ＧＤＰ"]), tagger._emissions(["GDP"]))


@pytest.mark.parametrize("kind", ["hmm", "perceptron"])
def test_save_load_round_trip(taggers, kind, tmp_path, train_tagged):
    tagger = taggers[kind]
    tagger.save(tmp_path / kind)
    back = load_tagger(tmp_path / kind)
    sents = [[w for w, _ in s] for s in train_tagged[:30]] + [["龘靐", "１２", "ＡＢＣ"]]
    assert back.tag_sentences(sents) == tagger.tag_sentences(sents)


def test_perceptron_weights_saved_sparse_and_dense_files_still_load(taggers, tmp_path):
    from safetensors.numpy import load_file, save_file

    tagger = taggers["perceptron"]
    path = tagger.save(tmp_path / "p")
    back = load_tagger(path)
    keys = back.index.keys
    assert np.array_equal(back.weights[back.index.lookup(keys)], tagger.weights[tagger.index.lookup(keys)])
    assert not np.any(tagger.weights[tagger.index.lookup(np.setdiff1d(tagger.index.keys, keys))])  # only zeros left out
    weights_file = tmp_path / "p" / "weights.safetensors"
    sparse = load_file(str(weights_file))
    assert len(sparse["values"]) == np.count_nonzero(tagger.weights)
    save_file({"keys": sparse["keys"], "weights": back.weights[back.index.lookup(keys)]}, str(weights_file))  # dense
    old = load_tagger(path)
    assert np.array_equal(old.weights[old.index.lookup(keys)], back.weights[back.index.lookup(keys)])
    save_file({"keys": sparse["keys"], "rows": sparse["rows"]}, str(weights_file))  # neither layout whole
    with pytest.raises(InputError, match="neither dense rows nor sparse triplets"):
        load_tagger(path)
    weights_file.write_bytes(b"")  # a truncated file
    with pytest.raises(InputError, match="cannot be read"):
        load_tagger(path)


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

    from llmlab.text.base import normalize_text

    tagger = PerceptronTagger.train(train_tagged[:200], PerceptronTaggerConfig(epochs=1, tagdict_min_count=3))
    counts = Counter(normalize_text(w) for s in train_tagged[:200] for w, _ in s)
    seen = {}
    for s in train_tagged[:200]:
        for w, t in s:
            seen.setdefault(normalize_text(w), set()).add(t)
    frequent = [w for w, c in counts.items() if c >= 3]
    assert frequent and set(tagger.tagdict) == set(frequent)
    for w, t in zip(frequent, tagger.tag(frequent)):
        assert t in seen[w]
    # keyed by the width-normalised word, as the features are: half-width text was tagged without the
    # dictionary's bans, by scores trained to rely on them (GDP and ＧＤＰ got other tags)
    sents = [[w for w, _ in s] for s in train_tagged[:200] if any(w != normalize_text(w) for w, _ in s)]
    assert len(sents) > 20
    assert tagger.tag_sentences([[normalize_text(w) for w in s] for s in sents]) == tagger.tag_sentences(sents)


def test_damaged_tagger_files_are_refused_on_load(taggers, tmp_path):
    """A tag the tagger does not have, in the HMM's emissions or the perceptron's tag dictionary, failed
    only when tagging (KeyError, IndexError)."""
    import json

    tagger = PerceptronTagger.train([[("中国", "ns"), ("人民", "n")]] * 3, PerceptronTaggerConfig(
        epochs=1, ensemble=1, clusters=(), tagdict_min_count=1))
    for kind, model, damage in [("hmm", taggers["hmm"], lambda st: st["emit"].update({"中国": {"zz": -1.0}})),
                                ("perceptron", tagger, lambda st: st["tagdict"].update({"中国": [2]}))]:  # ids: 0, 1
        model.save(tmp_path / kind)
        doc_path = tmp_path / kind / "tagger.json"
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
        damage(doc["state"])
        doc_path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(InputError, match="damaged"):
            load_tagger(tmp_path / kind)


def test_a_tagger_of_another_feature_set_fails_to_load_clearly(taggers, tmp_path):
    import json

    taggers["perceptron"].save(tmp_path / "t")
    doc_path = tmp_path / "t" / "tagger.json"
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    del doc["state"]["feature_set"]  # as written before feature sets were recorded
    doc_path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match="feature set 1.*retrain"):
        load_tagger(tmp_path / "t")


def test_second_order_tagger_learns_tag_trigrams():
    # the last word's tag follows the tag two back; the trigram weights must say so
    data = [[("甲", "a"), ("中", "m"), ("乙", "x")], [("丙", "b"), ("中", "m"), ("乙", "y")]] * 20
    tagger = PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=5, order=2))
    assert tagger.tag(["甲", "中", "乙"]) == ["a", "m", "x"] and tagger.tag(["丙", "中", "乙"]) == ["b", "m", "y"]
    a, b, m, x, y = (tagger.tags.index(t) for t in "abmxy")
    assert tagger.trans3[a, m, x] > tagger.trans3[a, m, y] and tagger.trans3[b, m, y] > tagger.trans3[b, m, x]


def test_rare_words_share_one_identity_but_keep_their_characters():
    from llmlab.text.pos_perceptron import word_keys

    rare = np.array([False, True])
    k1, k2 = word_keys(["他", "龘市"], rare), word_keys(["他", "靐县"], rare)
    assert k1[1, 2] == k2[1, 2] and k1[0, 3] == k2[0, 3]  # the word itself, and as the next word of "他"
    assert (k1[1] != k2[1]).any()  # its characters still tell it apart
    plain = word_keys(["他", "龘市"])
    assert plain[1, 2] != k1[1, 2]


def test_rare_word_tagger_round_trips(train_tagged, tmp_path):
    tagger = PerceptronTagger.train(train_tagged[:200], PerceptronTaggerConfig(epochs=2, rare_count=1))
    tagger.save(tmp_path / "r")
    sents = [[w for w, _ in s] for s in train_tagged[200:260]] + [["龘靐市", "１２", "发展"]]
    assert load_tagger(tmp_path / "r").tag_sentences(sents) == tagger.tag_sentences(sents)


def test_an_ensemble_sums_its_members_weights(train_tagged):
    data = train_tagged[:100]
    both = PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=1, ensemble=2))
    a, b = (PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=1, seed=s, ensemble=1)) for s in (0, 1))
    assert np.allclose(both.weights, a.weights + b.weights) and np.allclose(both.trans3, a.trans3 + b.trans3)
    assert np.allclose(both.trans, a.trans + b.trans) and np.allclose(both.start, a.start + b.start)
    with pytest.raises(InputError, match="ensemble"):
        PerceptronTaggerConfig(ensemble=0)


def test_a_tagger_with_word_clusters_round_trips(train_tagged, tmp_path):
    import json

    config = PerceptronTaggerConfig(epochs=2, ensemble=1, clusters=(64, 8))
    tagger = PerceptronTagger.train(train_tagged[:300], config)
    assert tagger.clusters and all(len(ids) == 2 and ids[0] < 64 and ids[1] < 8 for ids in tagger.clusters.values())
    tagger.save(tmp_path / "c")
    assert json.loads((tmp_path / "c" / "tagger.json").read_text(encoding="utf-8"))["state"]["feature_set"] == 3
    back = load_tagger(tmp_path / "c")
    assert back.clusters == tagger.clusters and back.config == tagger.config
    sents = [[w for w, _ in s] for s in train_tagged[300:360]] + [["龘靐市", "１２", "发展"]]
    assert back.tag_sentences(sents) == tagger.tag_sentences(sents)
    (tmp_path / "c" / "clusters.tsv").write_text("not a cluster file\n", encoding="utf-8")
    with pytest.raises(InputError, match="clusters.tsv"):
        load_tagger(tmp_path / "c")


def test_a_cluster_file_with_ids_that_are_not_ascii_digits_is_refused(tmp_path):
    from llmlab.text.pos_perceptron import load_clusters, save_clusters

    table = {"猫": (1, 0), "跑": (12, 3)}
    save_clusters(tmp_path / "c.tsv", table, (16, 4))
    assert load_clusters(tmp_path / "c.tsv", 2) == table
    lines = (tmp_path / "c.tsv").read_text(encoding="utf-8").split("\n")
    for bad in ("狗\tx\t0", "狗\t٣\t0", "狗\t1", "狗\t1\t-2"):  # "٣" is a digit, int() reads it, but not ASCII
        (tmp_path / "c.tsv").write_text("\n".join([*lines[:2], bad, *lines[2:]]), encoding="utf-8")
        with pytest.raises(InputError, match="line 3: expected a word and 2 ids"):
            load_clusters(tmp_path / "c.tsv", 2)


def test_cluster_features_are_shared_by_words_of_one_cluster_and_by_rare_words():
    from llmlab.text.pos_perceptron import cluster_keys

    table = {"猫": (1, 0), "狗": (1, 0), "跑": (2, 1)}
    k1, k2 = cluster_keys(["猫", "跑"], table, 2), cluster_keys(["狗", "跑"], table, 2)
    assert (k1[:, :5] == k2[:, :5]).all()  # same clusters, same context: same keys ...
    assert k1[0, 5] != k2[0, 5]  # ... but for (cluster, last character)
    unknown = cluster_keys(["龘", "跑"], table, 2)
    masked = cluster_keys(["猫", "跑"], table, 2, np.array([True, False]))
    assert (np.delete(masked, 5, axis=1) == np.delete(unknown, 5, axis=1)).all()  # a rare word: no cluster
    assert masked[0, 0] != k1[0, 0] and masked[1, 1] != k1[1, 1]  # its cluster, and as the previous word


def test_a_tagger_without_clusters_uses_only_the_word_templates(train_tagged, tmp_path):
    import json

    from llmlab.text.pos_perceptron import tagger_keys, word_keys

    data = train_tagged[:150]
    plain = PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=1, ensemble=1, clusters=()))
    assert plain.clusters is None
    words = [w for w, _ in data[0]]
    assert np.array_equal(tagger_keys(words, None, 0), word_keys(words))
    plain.save(tmp_path / "p")
    assert not (tmp_path / "p" / "clusters.tsv").exists()
    doc_path = tmp_path / "p" / "tagger.json"
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    assert doc["state"]["feature_set"] == 2
    del doc["state"]["config"]["clusters"]  # as saved before word clusters existed
    doc_path.write_text(json.dumps(doc), encoding="utf-8")
    old = load_tagger(tmp_path / "p")
    assert old.clusters is None and old.config.clusters == ()
    sents = [[w for w, _ in s] for s in train_tagged[150:200]]
    assert old.tag_sentences(sents) == plain.tag_sentences(sents)
    with pytest.raises(InputError, match="clusters"):
        PerceptronTaggerConfig(clusters=(1,))
