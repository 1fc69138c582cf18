"""Accessor variety and the perceptron's pseudo-lexicon built from it."""

import json

import numpy as np
import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.text.accessor import AccessorVariety
from llmlab.text.base import load_segmenter, normalize_text
from llmlab.text.features import PUNCT, type_table
from llmlab.text.perceptron import AV_WORDS_FILE, PerceptronConfig, PerceptronSegmenter

SMALL = PerceptronConfig(epochs=2, folds=2)


def brute_variety(texts, n):
    """(left AV, right AV) of every n-gram: distinct neighbours, each text edge a context of its own."""
    left, right = {}, {}
    for k, t in enumerate(texts):
        for i in range(len(t) - n + 1):
            g = t[i : i + n]
            left.setdefault(g, set()).add(t[i - 1] if i > 0 else ("edge", k, i))
            right.setdefault(g, set()).add(t[i + n] if i + n < len(t) else ("edge", k, i))
    return {g: (len(left[g]), len(right[g])) for g in left}


def test_accessor_variety_equals_brute_force(train_words):
    extra = ["中国中国中国", "", "国", "ＡＢ，中国"]  # repeats, an empty text, full-width forms
    texts = [normalize_text(t) for t in ["".join(s) for s in train_words[:150]] + extra]
    av = AccessorVariety(texts)
    for n in (1, 2, 3, 5):
        assert av.variety(n) == brute_variety(texts, n)
    table = type_table()
    stop = {ch for t in texts for ch in t if ch.isspace() or (ord(ch) < 0x10000 and table[ord(ch)] == PUNCT)}
    want = {g: min(v) for n in range(2, 5) for g, v in brute_variety(texts, n).items()
            if min(v) >= 2 and not stop & set(g)}
    assert av.words(min_av=2, max_n=4) == want and len(want) > 50


@pytest.mark.parametrize("texts", [["a"], [""], ["中国"], ["a", "b"], ["中国人"]])
def test_texts_shorter_than_the_longest_pseudo_word(texts, tmp_path):
    av = AccessorVariety(texts)
    for n in range(1, 7):
        assert av.variety(n) == brute_variety(texts, n)
    assert av.words(min_av=1, max_n=5) == {g: min(v) for n in range(2, 6) for g, v in brute_variety(texts, n).items()}
    if "".join(texts):  # a perceptron trains on text shorter than its longest pseudo-word (av_max_n)
        seg = PerceptronSegmenter.train([[t] for t in texts if t], SMALL)
        assert seg.cut(texts[0]) == [texts[0]]


def test_pseudo_lexicon_holds_an_unseen_word_from_varied_contexts(train_words):
    # 龘靐齉 is never a training word (its characters are), but it shows up between many different characters
    heads, tails = "我你他她它们这那", "的了在是有和就也"
    sents = [*train_words[:200], *[[h, "龘", "靐", "齉", t] for h, t in zip(heads, tails)]]
    seg = PerceptronSegmenter.train(sents, SMALL)
    assert seg.av_words["龘靐齉"] >= 3 and "龘靐齉" not in seg.lexicon.counts
    assert not any(ch in w for w in seg.av_words for ch in "，。 ")
    plain = PerceptronSegmenter.train(sents, PerceptronConfig(epochs=2, folds=2, av_lexicon=False))
    assert plain.av_words is None
    assert not np.allclose(seg.emissions("我们龘靐齉了"), plain.emissions("我们龘靐齉了"))


def test_av_model_round_trips_and_old_models_load_without_it(train_words, test_words, tmp_path):
    seg = PerceptronSegmenter.train(train_words[:300], SMALL)
    assert seg.config.av_lexicon and len(seg.av_words) > 100
    seg.save(tmp_path / "m")
    back = load_segmenter(tmp_path / "m")
    texts = ["".join(s) for s in test_words[:30]] + ["ＡＢ１２😀 中文"]
    assert back.av_words == seg.av_words and back.cut_lines(texts) == seg.cut_lines(texts)
    # a model saved before the AV pseudo-lexicon existed: no av_* config keys, no word list
    old = PerceptronSegmenter.train(train_words[:300], PerceptronConfig(epochs=2, folds=2, av_lexicon=False))
    old.save(tmp_path / "old")
    doc_path = tmp_path / "old" / "segmenter.json"
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    doc["state"]["config"] = {k: v for k, v in doc["state"]["config"].items() if not k.startswith("av_")}
    doc_path.write_text(json.dumps(doc), encoding="utf-8")
    loaded = load_segmenter(tmp_path / "old")
    assert loaded.config.av_lexicon is False and loaded.av_words is None
    assert loaded.cut_lines(texts) == old.cut_lines(texts)
    (tmp_path / "m" / AV_WORDS_FILE).unlink()
    with pytest.raises(InputError, match="accessor-variety word list.*missing"):
        load_segmenter(tmp_path / "m")


def test_av_config_is_validated():
    for kw, match in (({"av_min": 0}, "av_min"), ({"av_max_n": 1}, "av_max_n"), ({"av_max_n": 9}, "av_max_n"),
                      ({"av_lexicon": "no"}, "av_lexicon")):
        with pytest.raises(InputError, match=match):
            PerceptronConfig(**kw)


def test_cli_no_av_lexicon(train_words, tmp_path, capsys):
    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[:100]), encoding="utf-8")
    args = ["seg", "train", "--algo", "perceptron", "--train", str(train), "--epochs", "1", "--folds", "1"]
    assert main([*args, "-o", str(tmp_path / "plain"), "--no-av-lexicon"]) == 0
    assert main([*args, "-o", str(tmp_path / "av")]) == 0
    capsys.readouterr()
    assert load_segmenter(tmp_path / "plain").av_words is None
    assert load_segmenter(tmp_path / "av").av_words
