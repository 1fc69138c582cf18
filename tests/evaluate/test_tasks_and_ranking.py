"""Exact/numeric match, multiple choice by log-likelihood, Bradley-Terry rankings, per-slice disparity."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.evaluate.ranking import BTConfig, bradley_terry, comparisons_from_records, fit_mm, fit_newton
from llmlab.evaluate.slices import slice_accuracy, slice_metric, slice_perplexity
from llmlab.evaluate.tasks import accuracy, choice_scores, choose, multiple_choice_accuracy, numeric_match, parse_number


def test_numeric_match_on_arithmetic_answers():
    probs = arithmetic(50, "test", seed=3)
    right = [f"{p.question}{p.answer}" for p in probs]
    wrong = [f"{p.question}{int(p.answer) + 1}" for p in probs]
    golds = [p.answer for p in probs]
    assert accuracy(right, golds, "numeric") == 1.0
    assert accuracy(wrong, golds, "numeric") == 0.0
    assert numeric_match("结果是 1,234", "1234") and numeric_match("about 3.0", 3)
    assert not numeric_match("no number here", "3")


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(0, 10**9), st.sampled_from(["-", "+", "*", " - ", ", "]))
def test_parse_number_reads_the_last_number_and_no_operator_as_a_sign(a, b, op):
    assert parse_number(f"{a:,}") == a and parse_number(f"answer: {a}") == a  # thousands commas, signs
    assert parse_number(f"{a}{op}{b}") == b  # "2-3" ends in 3, not in -3; "1, 2" in 2
    assert parse_number(f"= {a}/{b}") == (a / b if b else None)
    assert parse_number(f"{a}.5e-1") == float(f"{a}.5e-1")


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


def test_elo_is_the_logistic_rating_of_the_strengths():
    """Elo: P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)), ratings centred on 1000. With 3 wins to 1 the
    fitted P(a beats b) is 3/4, so R_a - R_b = 400 log10(3)."""
    r = bradley_terry([("a", "b", 1.0)] * 3 + [("b", "a", 1.0)], BTConfig(n_bootstrap=0))
    assert r.elo[0] - r.elo[1] == pytest.approx(400 * math.log10(3))
    assert sum(r.elo) / 2 == pytest.approx(1000.0)
    assert 1 / (1 + 10 ** ((r.elo[1] - r.elo[0]) / 400)) == pytest.approx(0.75)


def test_n_games_counts_each_players_comparisons():
    comps = [("a", "b", 1.0), ("b", "c", 0.5), ("c", "a", 0.0), ("a", "c", 1.0), ("b", "a", 1.0)]
    r = bradley_terry(comps, BTConfig(n_bootstrap=0))
    want = {p: sum(p in (x, y) for x, y, _ in comps) for p in "abc"}
    assert dict(zip(r.players, r.n_games)) == want


def test_a_long_cycle_of_single_wins_is_connected_and_gives_equal_strengths():
    """a>b>c>...>h>a: everyone beats everyone indirectly (paths of up to 7 steps), so the MLE is finite and,
    by symmetry, all strengths are equal."""
    names = "abcdefgh"
    comps = [(names[i], names[(i + 1) % len(names)], 1.0) for i in range(len(names))]
    r = bradley_terry(comps, BTConfig(n_bootstrap=0))
    np.testing.assert_allclose(r.log_strength, 0.0, atol=1e-9)


def test_newton_converges_in_a_few_steps_where_it_is_asked_for():
    """Newton's method converges quadratically: 10 steps reach the MLE (zero gradient) on skewed strengths,
    through fit_newton and through BTConfig(method='newton')."""
    s = np.array([30.0, 10.0, 3.0, 1.0, 0.3])
    w = 20 * s[:, None] / (s[:, None] + s[None, :]) * (1 - np.eye(len(s)))

    def max_grad(theta):
        prob = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
        return np.abs(w.sum(1) - ((w + w.T) * prob).sum(1)).max()

    assert max_grad(fit_newton(w, max_iter=10)) < 1e-9
    names = [f"p{i}" for i in range(len(s))]  # the same games as comparisons: 20 per pair, scored s_i/(s_i+s_j)
    comps = [(names[i], names[j], s[i] / (s[i] + s[j])) for i in range(len(s)) for j in range(i + 1, len(s))] * 20
    r = bradley_terry(comps, BTConfig(method="newton", max_iter=10, n_bootstrap=0))
    assert max_grad(np.array([dict(zip(r.players, r.log_strength))[n] for n in names])) < 1e-9


def test_bootstrap_interval_is_the_central_share_of_resampled_ratings():
    """Two comparisons, one win each way: a resample holds b's win 0, 1 or 2 times with chances 1/4, 1/2, 1/4,
    so b's resampled Elo is very low, 1000, or very high. The central 40% is then exactly 1000, while the
    central 60% reaches both extremes. Also, per resample the two ratings sum to 2000, so b's interval
    mirrors a's."""
    comps = [("a", "b", 1.0), ("b", "a", 1.0)]
    narrow = bradley_terry(comps, BTConfig(n_bootstrap=1000, confidence=0.4))
    assert narrow.ci_low == pytest.approx((1000.0, 1000.0)) and narrow.ci_high == pytest.approx((1000.0, 1000.0))
    wide = bradley_terry(comps, BTConfig(n_bootstrap=1000, confidence=0.6))
    assert all(lo < 900 and hi > 1100 for lo, hi in zip(wide.ci_low, wide.ci_high))
    assert wide.ci_low[0] + wide.ci_high[1] == pytest.approx(2000.0)


def test_bootstrap_resamples_every_comparison_including_the_first():
    """b's only win is the first comparison: resamples that keep it (2 in 3 of them) put b at or above its
    estimate, so the interval must contain the estimate."""
    r = bradley_terry([("b", "a", 1.0)] + [("a", "b", 1.0)] * 3, BTConfig(n_bootstrap=400))
    assert r.players[1] == "b" and r.ci_low[1] < r.elo[1] < r.ci_high[1]


@pytest.mark.parametrize("bad", [dict(max_iter=0), dict(tol=0.0), dict(n_bootstrap=-1), dict(confidence=0.0),
                                 dict(confidence=1.0), dict(confidence=1.5), dict(prior=-1.0), dict(method="elo")],
                         ids=str)
def test_bad_bt_config_is_a_clear_error(bad):
    with pytest.raises(InputError):
        BTConfig(**bad)


def test_smallest_valid_bt_config_is_accepted():
    r = bradley_terry([("a", "b", 1.0), ("b", "a", 1.0)], BTConfig(max_iter=1, n_bootstrap=0))
    assert r.ci_low is None and r.log_strength == pytest.approx((0.0, 0.0))


@pytest.mark.parametrize("comp", [("a", "a", 1.0), ("a", "b", 1.5), ("a", "b", -0.5)], ids=str)
def test_bad_comparisons_are_clear_errors(comp):
    with pytest.raises(InputError, match="bad comparison"):
        bradley_terry([comp, ("a", "b", 0.5)], BTConfig(n_bootstrap=0))


def test_records_in_a_b_form_score_each_outcome():
    recs = [{"a": "x", "b": "y", "winner": w} for w in ("a", "b", "tie")]
    assert comparisons_from_records(recs) == [("x", "y", 1.0), ("x", "y", 0.0), ("x", "y", 0.5)]
    for bad in ({"a": "x", "b": "y", "winner": "c"}, {"winner": "a"}, ["x", "y"]):
        with pytest.raises(InputError, match="record 1"):
            comparisons_from_records([bad])


@pytest.mark.parametrize("bad", [{"a": None, "b": "y", "winner": "a"}, {"a": "x", "b": 5, "winner": "tie"},
                                 {"winner": ["x"], "loser": "y"}, {"winner": "x", "loser": {"n": 1}}])
def test_players_not_named_by_strings_are_refused(bad):
    """str() made them players named 'None', '5' or "['x']", ranked beside the real ones."""
    with pytest.raises(InputError, match="record 2: players are named by strings"):
        comparisons_from_records([{"winner": "x", "loser": "y"}, bad])


def test_errors_name_the_given_line_numbers_and_a_self_comparison():
    with pytest.raises(InputError, match="prefs.jsonl line 5 is not a JSON object"):
        comparisons_from_records([{"winner": "x", "loser": "y"}, [1]], lines=[1, 5], where="prefs.jsonl line")
    with pytest.raises(InputError, match="record 1 compares 'x' with itself"):
        comparisons_from_records([{"a": "x", "b": "x", "winner": "tie"}])


def test_multiple_choice_accuracy_counts_the_right_answers():
    lps = [[math.log(0.5)] * 4, [math.log(0.1)]]  # "sum" picks 1, "mean" picks 0
    assert multiple_choice_accuracy([lps] * 3, [0, 0, 1], "mean") == pytest.approx(2 / 3)
    assert multiple_choice_accuracy([lps] * 3, [0, 0, 1], "sum") == pytest.approx(1 / 3)
    texts = [["abcdefgh", "ab"]] * 3  # per char: 4 log .5 / 8 = -0.35 beats log .1 / 2 = -1.15 -> choice 0
    assert multiple_choice_accuracy([lps] * 3, [0, 0, 1], "chars", texts) == pytest.approx(2 / 3)


def test_chars_normalisation_divides_by_the_text_length_and_needs_one_text_per_choice():
    lp = math.log(0.2)
    assert choice_scores([[lp], [lp, lp]], "chars", ["a", "xyz"]) == pytest.approx([lp, 2 * lp / 3])
    assert choice_scores([[lp]], "chars", [""]) == pytest.approx([lp])  # an empty text is not divided by 0
    for texts in (None, ["a"]):
        with pytest.raises(InputError, match="choice_texts"):
            choice_scores([[lp], [lp]], "chars", texts)
