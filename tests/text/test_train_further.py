"""Training a saved perceptron segmenter further (`PerceptronSegmenter.train(init=...)`, `seg train
--init-model`): from an empty model it is plain training, text the model already cuts right leaves it
as it was, and new text is learnt without touching the model it started from."""

import copy
import dataclasses

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.base import load_segmenter
from llmlab.text.hashindex import FeatureIndex
from llmlab.text.lexicon import Lexicon
from llmlab.text.metrics import seg_scores
from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter


def _same_model(a: PerceptronSegmenter, b: PerceptronSegmenter) -> bool:
    return (np.array_equal(a.index.keys, b.index.keys) and np.array_equal(a.weights, b.weights)
            and np.array_equal(a.trans, b.trans) and a.lexicon.counts == b.lexicon.counts)


def test_training_further_from_an_empty_model_is_training(train_words):
    """An empty start (no features, zero weights and transitions, no words) gives exactly the model
    that training from zero gives: the same features, updates, averages and lexicon."""
    config = PerceptronConfig(epochs=2, folds=2, av_lexicon=False)
    empty = PerceptronSegmenter(FeatureIndex(np.zeros(0, np.uint64)), np.zeros((1, 4), np.float32),
                                np.zeros((4, 4)), Lexicon(), config)
    sents = train_words[:300]
    assert _same_model(PerceptronSegmenter.train(sents, init=empty), PerceptronSegmenter.train(sents, config))


def test_text_the_model_cuts_right_leaves_it_as_it_was(segmenters, train_words):
    """No sentence is cut wrongly, so no update: the averaged weights are the start's, bit for bit."""
    base = segmenters["perceptron"]
    known = [s for s in train_words if all(w in base.lexicon for w in s) and base.cut("".join(s)) == s]
    assert len(known) >= 30
    further = PerceptronSegmenter.train(known, init=base)
    assert np.array_equal(further.index.keys, base.index.keys) and np.array_equal(further.weights, base.weights)
    assert np.array_equal(further.trans, base.trans)
    assert all(further.lexicon.count(w) == base.lexicon.count(w) + n
               for w, n in Lexicon.from_sentences(known).counts.items())


def test_new_text_is_learnt_and_the_start_is_untouched(train_words, test_words):
    """Trained further on new text, the model cuts that text better than the start did, knows its
    words, keeps the start's forced words and settings; the start itself does not change."""
    base = PerceptronSegmenter.train(train_words[:300], PerceptronConfig(epochs=2, folds=2))
    base.force_words(["龘靐"])
    saved = copy.deepcopy(base)
    new = train_words[300:]
    further = PerceptronSegmenter.train(new, dataclasses.replace(base.config, epochs=3, seed=1), init=base)
    assert _same_model(base, saved)
    f1 = lambda seg, sents: seg_scores(sents, seg.cut_lines(["".join(s) for s in sents])).f1  # noqa: E731
    assert f1(further, new) > f1(base, new) + 0.02
    assert all(w in further.lexicon for s in new for w in s)
    assert further.forced.words == {"龘靐"} and further.av_words == base.av_words
    assert further.config == dataclasses.replace(base.config, epochs=3, seed=1)
    assert f1(further, test_words) > 0.8


def test_what_cannot_change_is_refused(segmenters, train_words):
    base = segmenters["perceptron"]
    for change in ({"av_lexicon": False}, {"av_min": 4}, {"lexicon_min_count": 2}):
        with pytest.raises(InputError, match=f"{next(iter(change))} is .* its weights belong to its features"):
            PerceptronSegmenter.train(train_words[:20], dataclasses.replace(base.config, **change), init=base)
    with pytest.raises(InputError, match="keeps its own feature dictionary"):
        PerceptronSegmenter.train(train_words[:20], dictionary=Lexicon({"中国": 1}), init=base)
    for other in (segmenters["hmm"], "model"):
        with pytest.raises(InputError, match="from a perceptron segmenter, got (HmmSegmenter|str)"):
            PerceptronSegmenter.train(train_words[:20], init=other)


def test_cli_init_model(segmenters, train_words, tmp_path, cli):
    """`seg train --init-model`: the model trained further, saved; --epochs and --seed change, a
    feature flag that would change the features, --feature-dict or a model of another kind is refused."""
    base = segmenters["perceptron"]
    base.save(tmp_path / "base")
    segmenters["hmm"].save(tmp_path / "hmm")
    train = tmp_path / "new.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[300:400]), encoding="utf-8")
    args = ["seg", "train", "--init-model", str(tmp_path / "base"), "--train", str(train)]
    assert cli([*args, "--epochs", "1", "--seed", "3", "-o", str(tmp_path / "more")])[0] == 0
    want = PerceptronSegmenter.train(train_words[300:400], dataclasses.replace(base.config, epochs=1, seed=3),
                                     init=load_segmenter(tmp_path / "base"))
    assert _same_model(load_segmenter(tmp_path / "more"), want)
    for extra, msg in ((["--no-av-lexicon"], "av_lexicon is False but the model trained further has True"),
                       (["--feature-dict", str(train)], "--feature-dict does not apply with --init-model"),
                       (["--init-model", str(tmp_path / "hmm")], "holds a 'hmm' segmenter")):
        rc, _, err = cli([*args, *extra, "-o", str(tmp_path / "bad")])
        assert rc == 2 and msg in err and not (tmp_path / "bad").exists()
    rc, _, err = cli(["seg", "train", "--algo", "unigram", "--init-model", str(tmp_path / "base"), "-o",
                      str(tmp_path / "bad")])
    assert rc == 2 and "--init-model applies to --algo perceptron / neural / hybrid, not unigram" in err


# the POS perceptron, trained further (`PerceptronTagger.train(init=...)`, `pos train --init-model`)

def _small_tagger_config(**kw):
    from llmlab.text.pos_perceptron import PerceptronTaggerConfig

    return PerceptronTaggerConfig(epochs=2, ensemble=2, clusters=(), **kw)


def _same_tagger(a, b) -> bool:
    return (a.tags == b.tags and np.array_equal(a.index.keys, b.index.keys) and np.array_equal(a.weights, b.weights)
            and all(np.array_equal(x, y) for x, y in ((a.trans, b.trans), (a.start, b.start), (a.trans3, b.trans3))))


def test_a_tagger_trained_further_from_an_empty_one_is_trained(train_tagged):
    """From no tags, features or weights, with an ensemble of two: exactly plain training."""
    from llmlab.text.pos_perceptron import PerceptronTagger

    config = _small_tagger_config()
    empty = PerceptronTagger([], FeatureIndex(np.zeros(0, np.uint64)), np.zeros((1, 0), np.float32),
                             np.zeros((0, 0)), np.zeros(0), config)
    sents = train_tagged[:200]
    assert _same_tagger(PerceptronTagger.train(sents, init=empty), PerceptronTagger.train(sents, config))


def test_a_tagger_starts_from_its_weights_under_new_tags():
    """Each member starts from its share of the tagger: its features' rows, its tags' columns among
    the new tag list (a new tag's column and n-grams at zero)."""
    from llmlab.text.pos_perceptron import PerceptronTagger, _begin

    rng = np.random.default_rng(0)
    index = FeatureIndex(np.array([5, 9], np.uint64))
    w = np.vstack([rng.normal(size=(2, 2)), np.zeros((1, 2))]).astype(np.float32)
    init = PerceptronTagger(["a", "c"], index, w, rng.normal(size=(2, 2)), rng.normal(size=2),
                            _small_tagger_config(), trans3=rng.normal(size=(2, 2, 2)))
    bigger = FeatureIndex(np.array([3, 5, 9], np.uint64))
    bw, tr, st, t3 = _begin(init, bigger, ["a", "b", "c"], 2)
    assert np.array_equal(bw[bigger.rows(np.array([5, 9], np.uint64))][:, [0, 2]], w[:2] / 2)
    assert not bw[:, 1].any() and not bw[bigger.rows(np.array([3], np.uint64))].any() and not bw[-1].any()
    assert np.array_equal(tr[np.ix_([0, 2], [0, 2])], init.trans / 2) and not tr[1].any() and not tr[:, 1].any()
    assert np.array_equal(st[[0, 2]], init.start / 2) and st[1] == 0
    assert np.array_equal(t3[np.ix_([0, 2], [0, 2], [0, 2])], init.trans3 / 2) and not t3[:, 1].any()


def test_a_tagger_trained_further_learns_new_text_and_tags(train_tagged):
    """New text with a tag the tagger never saw: the tag joins its tags, the new text is tagged
    better than before, the start is untouched; what decides the features cannot change."""
    from llmlab.text.pos_perceptron import PerceptronTagger

    base = PerceptronTagger.train(train_tagged[:300], _small_tagger_config())
    saved = copy.deepcopy(base)
    new = [[(w, "zz" if t == "nt" else t) for w, t in s] for s in train_tagged[300:]]
    further = PerceptronTagger.train(new, dataclasses.replace(base.config, epochs=3), init=base)
    assert _same_tagger(base, saved) and "zz" in further.tags and "zz" not in base.tags

    def accuracy(tagger, sents):
        pred = tagger.tag_sentences([[w for w, _ in s] for s in sents])
        return np.mean([p == t for s, ps in zip(sents, pred) for (_, t), p in zip(s, ps)])

    assert accuracy(further, new) > accuracy(base, new) + 0.02
    for change in ({"order": 1}, {"clusters": (16,)}, {"rare_count": 1}):
        with pytest.raises(InputError, match=f"{next(iter(change))} is .* its weights belong to its features"):
            PerceptronTagger.train(new[:20], dataclasses.replace(base.config, **change), init=base)
    with pytest.raises(InputError, match="from a perceptron tagger"):
        PerceptronTagger.train(new[:20], init="model")


def test_cli_pos_init_model(train_tagged, tmp_path, cli):
    from llmlab.text.pos import HmmTagger, load_tagger
    from llmlab.text.pos_perceptron import PerceptronTagger

    base = PerceptronTagger.train(train_tagged[:300], _small_tagger_config())
    base.save(tmp_path / "base")
    HmmTagger.train(train_tagged[:50]).save(tmp_path / "hmm")
    data = tmp_path / "new.txt"
    data.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in train_tagged[300:400]),
                    encoding="utf-8")
    args = ["pos", "train", "--init-model", str(tmp_path / "base"), "--train", str(data)]
    assert cli([*args, "--epochs", "1", "--ensemble", "1", "-o", str(tmp_path / "more")])[0] == 0
    want = PerceptronTagger.train(train_tagged[300:400], dataclasses.replace(base.config, epochs=1, ensemble=1),
                                  init=load_tagger(tmp_path / "base"))
    got = load_tagger(tmp_path / "more")
    words = [[w for w, _ in s] for s in train_tagged[400:500]]
    assert got.tags == want.tags and got.tag_sentences(words) == want.tag_sentences(words)
    for extra, msg in ((["--order", "1"], "order is 1 but the tagger trained further has 2"),
                       (["--init-model", str(tmp_path / "hmm")], "holds a 'hmm' tagger")):
        rc, _, err = cli([*args, *extra, "-o", str(tmp_path / "bad")])
        assert rc == 2 and msg in err and not (tmp_path / "bad").exists()
    rc, _, err = cli(["pos", "train", "--algo", "hmm", "--init-model", str(tmp_path / "base"), "-o",
                      str(tmp_path / "bad")])
    assert rc == 2 and "--init-model applies to --algo perceptron / neural / hybrid, not hmm" in err


def test_every_setting_is_kept_or_free_to_change():
    """A new config field must be placed: kept from the model trained further, or free to change (as the
    docstrings and the CLI help list them)."""
    from llmlab.text.perceptron import FEATURE_SETTINGS
    from llmlab.text.pos_perceptron import TAGGER_SETTINGS, PerceptronTaggerConfig

    free = {"epochs", "seed", "folds", "min_feature_count", "prune_below"}
    assert {f.name for f in dataclasses.fields(PerceptronConfig)} == set(FEATURE_SETTINGS) | free
    free = {"epochs", "seed", "ensemble", "beam", "min_feature_count"}
    assert {f.name for f in dataclasses.fields(PerceptronTaggerConfig)} == set(TAGGER_SETTINGS) | free


def test_cli_init_model_without_a_folder_trains_the_default_models_further(defaults, train_words, train_tagged,
                                                                             tmp_path, cli):
    """`--init-model` alone is the default model (`seg cut` and `pos tag` without --model): trained on first
    use and cached, as they would be, then trained further like a saved one."""
    from llmlab.text.default import default_segmenter, default_tagger
    from llmlab.text.pos import load_tagger
    from llmlab.text.pos_perceptron import PerceptronTagger

    trained, clear, _ = defaults
    words, tagged = tmp_path / "words.txt", tmp_path / "tagged.txt"
    words.write_text("".join(" ".join(s) + "\n" for s in train_words[300:400]), encoding="utf-8")
    tagged.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in train_tagged[300:400]),
                      encoding="utf-8")
    assert cli(["seg", "train", "--train", str(words), "--init-model", "-o", str(tmp_path / "seg")])[0] == 0
    assert cli(["pos", "train", "--init-model", "--train", str(tagged), "--epochs", "1", "-o",
                str(tmp_path / "pos")])[0] == 0
    assert trained == {"seg": 1, "pos": 1}
    clear()
    seg = PerceptronSegmenter.train(train_words[300:400], init=default_segmenter())
    assert _same_model(load_segmenter(tmp_path / "seg"), seg)
    base = default_tagger()
    pos = PerceptronTagger.train(train_tagged[300:400], dataclasses.replace(base.config, epochs=1), init=base)
    got, sents = load_tagger(tmp_path / "pos"), [[w for w, _ in s] for s in train_tagged[400:500]]
    assert got.tags == pos.tags and got.tag_sentences(sents) == pos.tag_sentences(sents)
    assert trained == {"seg": 1, "pos": 1}
    rc, _, err = cli(["seg", "train", "--init-model", "--algo", "hybrid", "--train", str(words), "-o",
                      str(tmp_path / "bad")])
    assert rc == 2 and "the default model is a perceptron segmenter, not hybrid" in err
    clear()  # a new process: refused before the default tagger is loaded (or trained)
    rc, _, err = cli(["pos", "train", "--init-model", "--algo", "hmm", "-o", str(tmp_path / "bad")])
    assert rc == 2 and "--init-model applies to --algo perceptron / neural / hybrid, not hmm" in err
    assert not default_tagger.loaded()
