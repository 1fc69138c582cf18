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
    with pytest.raises(InputError, match="from a perceptron segmenter, got HmmSegmenter"):
        PerceptronSegmenter.train(train_words[:20], init=segmenters["hmm"])


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
    assert rc == 2 and "--init-model applies to --algo perceptron" in err
