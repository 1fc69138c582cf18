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
