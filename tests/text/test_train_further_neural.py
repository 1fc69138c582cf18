"""Training a saved BiLSTM or hybrid segmenter or tagger further (`train(init=...)`, `seg train` and `pos
train --init-model`): the start is the saved network, with new characters, bigrams and words starting
as the unknown one and a new tag as the least likely, so before any step it scores text as the saved
model does; new text is learnt, the model it started from is untouched, and the network's shape stays."""

import copy
import dataclasses
import math

import numpy as np
import pytest

import llmlab.text.pos_neural as pos_neural
import llmlab.text.seg_neural as seg_neural
from llmlab.core.errors import InputError
from llmlab.text.base import load_segmenter
from llmlab.text.metrics import seg_scores
from llmlab.text.perceptron import PerceptronSegmenter
from llmlab.text.pos import load_tagger
from llmlab.text.pos_hybrid import HybridTagger, HybridTaggerConfig
from llmlab.text.pos_neural import NeuralTagger, NeuralTaggerConfig
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig
from llmlab.text.script import to_traditional
from llmlab.text.seg_hybrid import HybridSegmenter, HybridSegmenterConfig
from llmlab.text.seg_neural import NeuralSegmenter, NeuralSegmenterConfig

SMALL_TAGGER = NeuralTaggerConfig(epochs=2, word_dim=32, char_dim=16, filters=32, length_dim=4, hidden=32,
                                  batch_size=8, lr=1e-2, holdout=10)


def _no_steps(net, *args, **kwargs):
    """`fit_epochs` that trains nothing: the network comes back as it started."""
    return net.eval(), 0, math.nan


def _traditional(sents):
    return [[to_traditional(w) for w in s] for s in sents]


def _f1(seg, sents) -> float:
    return seg_scores(sents, seg.cut_lines(["".join(s) for s in sents])).f1


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_before_any_step_a_grown_segmenter_scores_text_as_the_saved_one(segmenters, test_words, monkeypatch):
    """New characters and bigrams join the vocabularies at the unknown one's embedding: with no training
    step the start gives the saved network's log-probabilities on text full of them."""
    base = segmenters["neural"]
    monkeypatch.setattr(seg_neural, "fit_epochs", _no_steps)
    new = _traditional(test_words[:40])
    start = NeuralSegmenter.train(new, init=base)
    assert start.chars[: len(base.chars)] == base.chars and len(start.chars) > len(base.chars) + 20
    assert start.bigram_list[: len(base.bigram_list)] == base.bigram_list
    assert len(start.bigram_list) > len(base.bigram_list)
    texts = ["".join(s) for s in new]
    start.lexicon = base.lexicon  # the lexicon matches are the same too: only the network is compared
    for a, b in zip(start.log_probs_runs(texts), base.log_probs_runs(texts)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_neural_segmenter_learns_new_text_and_the_start_is_untouched(segmenters, test_words):
    base = segmenters["neural"]
    base.force_words(["龘靐"])
    saved = copy.deepcopy(base.weights)
    new = _traditional(test_words)
    try:
        further = NeuralSegmenter.train(new, dataclasses.replace(base.config, epochs=3, seed=1), init=base)
    finally:
        base.forced.remove(["龘靐"])
    assert _same_weights(base.weights, saved)
    assert _f1(further, new) > _f1(base, new) + 0.05
    assert all(w in further.lexicon for s in new for w in s)
    assert all(further.lexicon.count(w) >= c for w, c in base.lexicon.counts.items())
    assert further.av_words == base.av_words and further.forced.words == {"龘靐"}
    assert further.config == dataclasses.replace(base.config, epochs=3, seed=1)


def test_a_neural_segmenter_keeps_its_shape(segmenters, train_words):
    base = segmenters["neural"]
    for change in ({"hidden": 8}, {"char_dim": 8}, {"av_lexicon": False}, {"layers": 2}):
        with pytest.raises(InputError, match=f"{next(iter(change))} is .* its weights belong to its features"):
            NeuralSegmenter.train(train_words[:20], dataclasses.replace(base.config, **change), init=base)
    with pytest.raises(InputError, match="from a neural segmenter, got PerceptronSegmenter"):
        NeuralSegmenter.train(train_words[:20], init=segmenters["perceptron"])


def test_a_hybrid_segmenter_trains_both_parts_further(segmenters, test_words):
    """Each part goes on from the hybrid's own part (the perceptron exactly as trained further alone);
    ``lam`` and the emission scale stay, so the parts weigh as before."""
    base = segmenters["hybrid"]
    new = _traditional(test_words)
    config = dataclasses.replace(base.config, neural=dataclasses.replace(base.neural.config, epochs=1))
    further = HybridSegmenter.train(new, config, init=base)
    alone = PerceptronSegmenter.train(new, base.perceptron.config, init=base.perceptron)
    assert np.array_equal(further.perceptron.weights, alone.weights)
    assert np.array_equal(further.perceptron.index.keys, alone.index.keys)
    assert len(further.neural.chars) > len(base.neural.chars)
    assert (further.lam, further.scale) == (base.lam, base.scale)
    assert _f1(further, new) > _f1(base, new) + 0.05
    with pytest.raises(InputError, match="trains its own perceptron further"):
        HybridSegmenter.train(new, HybridSegmenterConfig(perceptron_model="p"), init=base)
    with pytest.raises(InputError, match="from a hybrid segmenter, got NeuralSegmenter"):
        HybridSegmenter.train(new, init=base.neural)


def test_cli_trains_a_hybrid_segmenter_further(segmenters, test_words, tmp_path, cli):
    """`seg train --init-model` takes the kind from the model; --epochs goes to the BiLSTM, --lam to the
    hybrid; another --algo, or a flag that would change the network, is refused before anything is written."""
    base = segmenters["hybrid"]
    base.save(tmp_path / "base")
    new = _traditional(test_words[:40])
    data = tmp_path / "new.txt"
    data.write_text("".join(" ".join(s) + "\n" for s in new), encoding="utf-8")
    args = ["seg", "train", "--init-model", str(tmp_path / "base"), "--train", str(data)]
    rc, out, _ = cli([*args, "--epochs", "1", "--lam", "0.5", "-o", str(tmp_path / "more")])
    assert rc == 0 and "saved hybrid segmenter" in out
    got = load_segmenter(tmp_path / "more")
    config = dataclasses.replace(base.config, lam=0.5, neural=dataclasses.replace(base.neural.config, epochs=1))
    want = HybridSegmenter.train(new, config, init=load_segmenter(tmp_path / "base"))
    texts = ["".join(s) for s in test_words[40:]]
    assert got.kind == "hybrid" and got.lam == 0.5 and got.cut_lines(texts) == want.cut_lines(texts)
    for extra, msg in ((["--algo", "perceptron"], "holds a hybrid segmenter, not perceptron"),
                       (["--layers", "2"], "layers is 2 but the segmenter trained further has 1"),
                       (["--perceptron-model", str(tmp_path / "base" / "perceptron")],
                        "--perceptron-model does not apply with --init-model")):
        rc, _, err = cli([*args, *extra, "-o", str(tmp_path / "bad")])
        assert rc == 2 and msg in err and not list(tmp_path.glob("bad*"))


# the taggers

@pytest.fixture(scope="module")
def tagged(train_tagged):
    return train_tagged[:300]


@pytest.fixture(scope="module")
def neural_tagger(tagged):
    return NeuralTagger.train(tagged, SMALL_TAGGER)


def _new_tagged(train_tagged):
    """Other sentences in traditional characters, with a tag the taggers never saw (nt -> zz)."""
    return [[(to_traditional(w), "zz" if t == "nt" else t) for w, t in s] for s in train_tagged[300:]]


def _accuracy(tagger, sents) -> float:
    pred = tagger.tag_sentences([[w for w, _ in s] for s in sents])
    return float(np.mean([p == t for s, ps in zip(sents, pred) for (_, t), p in zip(s, ps)]))


def test_before_any_step_a_grown_tagger_scores_as_the_saved_one(neural_tagger, train_tagged, monkeypatch):
    """New words and characters start as the unknown one, and a new tag with no weights at the lowest
    bias: with no training step the old tags' log-probabilities differ from the saved tagger's by one
    constant per word (the new tag's share of the normaliser), so every word keeps its best tag."""
    monkeypatch.setattr(pos_neural, "fit_epochs", _no_steps)
    new = _new_tagged(train_tagged)
    start = NeuralTagger.train(new, init=neural_tagger)
    k = len(neural_tagger.tags)
    assert start.tags[:k] == neural_tagger.tags and "zz" in start.tags[k:]
    assert set(start.tags) == set(neural_tagger.tags) | {t for s in new for _, t in s}
    assert start.words[: len(neural_tagger.words)] == neural_tagger.words
    assert len(start.words) > len(neural_tagger.words)
    assert start.chars[: len(neural_tagger.chars)] == neural_tagger.chars
    for s in new[:30]:
        words = [w for w, _ in s]
        gap = start.log_probs(words)[:, :k] - neural_tagger.log_probs(words)
        np.testing.assert_allclose(gap, gap[:, :1] + np.zeros_like(gap), atol=1e-4)
        assert start.tag(words) == neural_tagger.tag(words)


def test_a_neural_tagger_learns_new_text_and_a_new_tag(neural_tagger, train_tagged):
    saved = copy.deepcopy(neural_tagger.weights)
    new = _new_tagged(train_tagged)
    further = NeuralTagger.train(new, dataclasses.replace(neural_tagger.config, epochs=3), init=neural_tagger)
    assert _same_weights(neural_tagger.weights, saved)
    assert _accuracy(further, new) > _accuracy(neural_tagger, new) + 0.05
    assert "zz" in {t for s in further.tag_sentences([[w for w, _ in s] for s in new]) for t in s}
    for change in ({"hidden": 8}, {"filters": 8}, {"max_chars": 4}):
        with pytest.raises(InputError, match=f"{next(iter(change))} is .* its weights belong to its features"):
            NeuralTagger.train(new[:20], dataclasses.replace(neural_tagger.config, **change), init=neural_tagger)
    with pytest.raises(InputError, match="from a neural tagger"):
        NeuralTagger.train(new[:20], init="model")


def test_a_hybrid_tagger_trains_both_parts_further_and_the_cli_too(neural_tagger, tagged, train_tagged, tmp_path,
                                                                   cli):
    perceptron = PerceptronTagger.train(tagged, PerceptronTaggerConfig(epochs=2, ensemble=1, clusters=()))
    base = HybridTagger(perceptron, neural_tagger, 0.2, 3.0)
    base.save(tmp_path / "base")
    new = _new_tagged(train_tagged)[:150]
    config = dataclasses.replace(base.config, neural=dataclasses.replace(neural_tagger.config, epochs=1))
    further = HybridTagger.train(new, config, init=base)
    assert "zz" in further.tags and (further.lam, further.scale) == (0.2, 3.0)
    assert _accuracy(further, new) > _accuracy(base, new) + 0.05
    with pytest.raises(InputError, match="trains its own perceptron further"):
        HybridTagger.train(new, HybridTaggerConfig(perceptron_model="p"), init=base)

    data = tmp_path / "new.txt"
    data.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in new), encoding="utf-8")
    args = ["pos", "train", "--init-model", str(tmp_path / "base"), "--train", str(data)]
    rc, out, _ = cli([*args, "--epochs", "1", "-o", str(tmp_path / "more")])
    assert rc == 0 and "saved hybrid tagger" in out
    words = [[w for w, _ in s] for s in _new_tagged(train_tagged)[150:220]]
    assert load_tagger(tmp_path / "more").tag_sentences(words) == further.tag_sentences(words)
    for extra, msg in ((["--algo", "neural"], "holds a hybrid tagger, not neural"),
                       (["--layers", "2"], "layers is 2 but the tagger trained further has 1"),
                       (["--perceptron-model", str(tmp_path / "base" / "perceptron")],
                        "--perceptron-model does not apply with --init-model")):
        rc, _, err = cli([*args, *extra, "-o", str(tmp_path / "bad")])
        assert rc == 2 and msg in err and not list(tmp_path.glob("bad*"))


def test_every_network_setting_is_kept_or_free_to_change():
    """A new config field must be placed: kept by a model trained further (its network's shape and
    inputs), or free to change (training settings)."""
    free = {"epochs", "bigram_min_count", "dropout", "folds", "pretrain", "batch_size", "lr", "decay", "decay_from",
            "clip", "holdout", "seed", "threads"}
    assert {f.name for f in dataclasses.fields(NeuralSegmenterConfig)} == set(seg_neural.NET_SETTINGS) | free
    free = {"epochs", "dropout", "word_dropout", "min_count", "pretrain", "batch_size", "lr", "decay", "decay_from",
            "clip", "holdout", "seed", "threads"}
    assert {f.name for f in dataclasses.fields(NeuralTaggerConfig)} == set(pos_neural.NET_SETTINGS) | free
    assert HybridTaggerConfig().neural == NeuralTaggerConfig()
