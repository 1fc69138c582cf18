"""Out-of-domain detection with a character bigram model trained in the test on pfr1998 text."""

import math
from collections import Counter

import pytest

from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic, pfr1998_text
from llmlab.evaluate.ood import OODConfig, OODDetector


def char_bigram(texts, alpha=0.1):
    """An add-alpha character bigram model with a <s> start and an open vocabulary bucket."""
    uni, bi = Counter(), Counter()
    for t in texts:
        prev = "<s>"
        for c in t:
            uni[prev] += 1
            bi[prev, c] += 1
            prev = c
    vocab = len({c for t in texts for c in t}) + 1

    def score(text):
        out, prev = [], "<s>"
        for c in text:
            out.append(math.log((bi[prev, c] + alpha) / (uni[prev] + alpha * vocab)))
            prev = c
        return out

    return score


@pytest.fixture(scope="module")
def zh():
    train = [s for s in pfr1998_text("train")[:4000] if s]
    dev = [s for s in pfr1998_text("dev") if s][:400]
    test = [s for s in pfr1998_text("test") if s][:400]
    return char_bigram(train), dev, test


def test_detects_arithmetic_and_english_against_chinese_news(zh, gen):
    score, dev, test = zh
    det = OODDetector(score, OODConfig(quantile=0.95)).calibrate(dev)
    out = [p.text for p in arithmetic(200, "test", seed=0)] + [gen.english(5, 15) for _ in range(200)]
    out = [t for t in out if t]
    rep = det.evaluate(test, out)
    assert rep.detection_rate > 0.95
    assert rep.false_alarm_rate < 0.15  # calibrated at 5% on dev; test is another month slice
    assert rep.n_in == len(test) and rep.n_out == len(out)


def test_threshold_is_the_in_domain_quantile(zh):
    score, dev, _ = zh
    det = OODDetector(score, OODConfig(quantile=0.8)).calibrate(dev)
    flagged = det.flag(dev)
    assert sum(flagged) / len(dev) == pytest.approx(0.2, abs=0.01)


def test_unfitted_detector_and_bad_quantile_are_clear_errors(zh):
    with pytest.raises(InputError, match="calibrate"):
        OODDetector(zh[0]).flag(["x"])
    with pytest.raises(InputError, match="quantile"):
        OODConfig(quantile=0)


def _toy_score(text):
    """'a' has probability 0.5 and anything else 0.1, so perplexities are known in closed form."""
    return [math.log(0.5 if c == "a" else 0.1) for c in text]


def test_rates_by_hand_with_the_maximum_as_threshold():
    # quantile 1: the threshold is the largest in-domain perplexity, ppl("ab") = sqrt(2 * 10); only texts
    # strictly above it are flagged, so no calibration text is
    det = OODDetector(_toy_score, OODConfig(quantile=1.0)).calibrate(["a", "ab"])
    assert det.threshold == pytest.approx(math.sqrt(20))
    assert det.flag(["a", "ab"]) == [False, False]
    # held-in ppl: 2, 2, sqrt(20), 200^(1/3) ~ 5.85 -> 1 of 4; out: 10, 10, sqrt(20), 10 -> 3 of 4
    rep = det.evaluate(["a", "aa", "ab", "abb"], ["b", "bb", "ab", "bbb"])
    assert (rep.false_alarm_rate, rep.detection_rate, rep.n_in, rep.n_out) == (0.25, 0.75, 4, 4)


def test_bad_inputs_to_the_detector_are_clear_errors():
    with pytest.raises(InputError, match="quantile"):
        OODConfig(quantile=1.5)
    det = OODDetector(_toy_score).calibrate(["a", "ab"])
    for held_in, out in (([], ["b"]), (["a"], [])):
        with pytest.raises(InputError, match="held-out in-domain and out-of-domain"):
            det.evaluate(held_in, out)
    with pytest.raises(InputError, match="no token log-probs"):
        det.flag(["a", ""])
