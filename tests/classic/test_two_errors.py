"""Topic 18: recall errors move perplexity without bound, precision errors by at most 1/(1-m)."""

import math

import numpy as np
import pytest

from llmlab.classic.two_errors import plot_two_errors, two_errors_table, with_precision_errors, with_recall_errors
from llmlab.core.errors import InputError


def test_formulas_by_hand():
    lp = np.log(np.full(1000, 0.2))  # perplexity 5
    t = two_errors_table(lp, fractions=(0.01, 0.1), floors=(1e-3, 1e-9), wasted=(0.0, 0.5, 0.9))
    assert t["baseline"] == pytest.approx(5.0)
    for r in t["recall"]:  # geometric mean: x (p / floor) ** fraction
        assert r["perplexity"] == pytest.approx(5.0 * (0.2 / r["floor"]) ** r["fraction"])
    for r in t["precision"]:
        assert r["perplexity"] == pytest.approx(5.0 / (1 - r["wasted"]))


def test_recall_errors_grow_without_bound_precision_errors_do_not():
    lp = np.log(np.random.default_rng(0).uniform(0.05, 0.9, size=2000))
    recall = [two_errors_table(lp, fractions=(0.01,), floors=(10.0**-k,))["recall"][0]["perplexity"]
              for k in (10, 100, 300)]
    assert recall[0] < recall[1] < recall[2] and recall[2] / recall[0] > 50
    base = math.exp(-lp.mean())
    assert np.exp(-with_precision_errors(lp, 0.5).mean()) <= 2 * base + 1e-9
    assert (with_recall_errors(lp, 0.0, 1e-9) == lp).all()


def test_plot_is_written(tmp_path):
    t = two_errors_table(np.log(np.full(100, 0.3)))
    plot_two_errors(t, tmp_path / "e.png", title="test")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("call", [lambda: with_recall_errors(np.zeros(3), 1.5, 0.1),
                                  lambda: with_recall_errors(np.zeros(3), 0.5, 0.0),
                                  lambda: with_precision_errors(np.zeros(3), 1.0),
                                  lambda: two_errors_table([]), lambda: two_errors_table([-math.inf])])
def test_bad_input_is_refused(call):
    with pytest.raises(InputError):
        call()
