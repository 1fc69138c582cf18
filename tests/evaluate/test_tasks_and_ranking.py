"""Exact/numeric match, multiple choice by log-likelihood, Bradley-Terry rankings, per-slice disparity."""

import math

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.evaluate.ranking import BTConfig, bradley_terry, comparisons_from_records, fit_mm, fit_newton
from llmlab.evaluate.slices import slice_accuracy, slice_metric, slice_perplexity
from llmlab.evaluate.tasks import accuracy, choice_scores, choose, multiple_choice_accuracy, numeric_match


def test_numeric_match_on_arithmetic_answers():
    probs = arithmetic(50, "test", seed=3)
    right = [f"{p.question}{p.answer}" for p in probs]
    wrong = [f"{p.question}{int(p.answer) + 1}" for p in probs]
    golds = [p.answer for p in probs]
    assert accuracy(right, golds, "numeric") == 1.0
    assert accuracy(wrong, golds, "numeric") == 0.0
    assert numeric_match("结果是 1,234", "1234") and numeric_match("about 3.0", 3)
    assert not numeric_match("no number here", "3")


def test_exact_match_normalizes_space_case_and_width():
    assert accuracy(["  Beijing ", "ＡＢＣ", "x"], ["beijing", "abc", "y"]) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="2 predictions for 1"):
        accuracy(["a", "b"], ["a"])


def test_multiple_choice_sum_versus_length_normalised():
    # choice 0: 4 tokens of log 0.5 (sum -2.77, mean -0.69); choice 1: 1 token of log 0.1 (sum -2.30)
    lps = [[math.log(0.5)] * 4, [math.log(0.1)]]
    assert choose(lps, "sum") == 1 and choose(lps, "mean") == 0
    assert choice_scores(lps, "chars", ["abcdefgh", "ab"]) == pytest.approx([4 * math.log(0.5) / 8, math.log(0.1) / 2])
    assert multiple_choice_accuracy([lps, lps], [0, 1], "mean") == 0.5
    with pytest.raises(InputError, match="outside"):
        multiple_choice_accuracy([lps], [2])


def _simulate(strengths, n_games, seed):
    rng = np.random.default_rng(seed)
    names = list(strengths)
    comps = []
    for _ in range(n_games):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = strengths[a] / (strengths[a] + strengths[b])
        comps.append((a, b, 1.0 if rng.random() < p else 0.0))
    return comps


def test_two_players_have_the_closed_form_ratio():
    r = bradley_terry([("a", "b", 1.0)] * 7 + [("b", "a", 1.0)] * 2 + [("a", "b", 0.5)], BTConfig(n_bootstrap=0))
    wins_a, wins_b = 7.5, 2.5
    assert r.log_strength[0] - r.log_strength[1] == pytest.approx(math.log(wins_a / wins_b))


def test_mm_and_newton_agree_and_recover_the_true_order():
    truth = {"m1": 8.0, "m2": 4.0, "m3": 2.0, "m4": 1.0}
    comps = _simulate(truth, 3000, seed=0)
    mm = bradley_terry(comps, BTConfig(method="mm", n_bootstrap=0))
    nt = bradley_terry(comps, BTConfig(method="newton", n_bootstrap=0))
    assert mm.players == nt.players == ("m1", "m2", "m3", "m4")
    np.testing.assert_allclose(mm.log_strength, nt.log_strength, atol=1e-6)
    true_log = np.log([8, 4, 2, 1])
    np.testing.assert_allclose(mm.log_strength, true_log - true_log.mean(), atol=0.15)


def test_mle_gradient_is_zero_at_the_fit():
    w = np.array([[0, 5, 2], [3, 0, 4], [1, 2, 0]], dtype=float)
    for theta in (fit_mm(w), fit_newton(w)):
        prob = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
        np.testing.assert_allclose(w.sum(1), ((w + w.T) * prob).sum(1), atol=1e-7)


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate():
    comps = _simulate({"a": 3.0, "b": 1.0, "c": 1.0}, 300, seed=1)
    cfg = BTConfig(n_bootstrap=200, seed=7)
    r1, r2 = bradley_terry(comps, cfg), bradley_terry(comps, cfg)
    assert r1 == r2
    for lo, e, hi in zip(r1.ci_low, r1.elo, r1.ci_high):
        assert lo < e < hi
    assert r1.ci_low[0] > r1.ci_high[-1]  # a is clearly better than the weakest


def test_disconnected_preferences_need_a_prior():
    comps = [("a", "b", 1.0), ("a", "b", 1.0)]
    with pytest.raises(InputError, match="prior"):
        bradley_terry(comps, BTConfig(n_bootstrap=0))
    r = bradley_terry(comps, BTConfig(n_bootstrap=0, prior=1.0))  # 2.5 vs 0.5 wins with the prior
    assert r.players == ("a", "b") and r.log_strength[0] - r.log_strength[1] == pytest.approx(math.log(5))


def test_records_parse_and_bad_records_are_clear():
    assert comparisons_from_records([{"a": "x", "b": "y", "winner": "b"}]) == [("x", "y", 0.0)]
    with pytest.raises(InputError, match="record 1"):
        comparisons_from_records([{"a": "x", "winner": "q"}])


def test_slice_disparity_by_hand():
    d = slice_accuracy(["zh", "zh", "en", "en", "en"], [1, 1, 1, 0, 0])
    assert d.per_slice == {"zh": 1.0, "en": pytest.approx(1 / 3)} and d.worst == "en"
    assert d.gap == pytest.approx(2 / 3) and d.sizes == {"zh": 2, "en": 3}
    p = slice_perplexity(["a", "b", "b"], [[math.log(0.5)], [math.log(0.25)], [math.log(0.25)] * 2])
    assert p.worst == "b" and p.gap == pytest.approx(2.0)
    assert slice_metric(["x", "y", "y"], [10.0, 20.0, 40.0]).gap == pytest.approx(20.0)
