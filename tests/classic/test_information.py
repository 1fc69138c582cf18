"""Information theory: hand-computed values and the inequalities that must hold."""

import math

import numpy as np
import pytest

from llmlab.classic.information import bits_per_unit, cross_entropy, entropy, perplexity, perplexity_from_nll
from llmlab.core.errors import InputError


def test_entropy_by_hand():
    assert entropy([0.5, 0.25, 0.25]) == pytest.approx(1.5)
    assert entropy([0.5, 0.5], base=math.e) == pytest.approx(math.log(2))
    assert entropy([1.0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_gibbs_inequality_and_uniform_maximum(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(8))
    assert cross_entropy(p, q) >= entropy(p) - 1e-12
    assert cross_entropy(p, p) == pytest.approx(entropy(p))
    assert entropy(p) <= math.log2(8) + 1e-12


def test_cross_entropy_infinite_when_q_misses_support():
    assert cross_entropy([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert cross_entropy([1.0, 0.0], [1.0, 0.0]) == 0.0


def test_perplexity_of_uniform_guess_is_the_number_of_choices():
    assert perplexity([math.log(1 / 7)] * 11) == pytest.approx(7.0)
    assert perplexity([math.log(0.5), -math.inf]) == math.inf  # a token of probability 0, not an error
    assert perplexity_from_nll(10 * 1000.0, 10) == math.inf  # overflow reported as inf, not an error
    assert perplexity([math.log(1 / 3)]) == pytest.approx(3.0)  # one token is enough


def test_bits_per_unit_relates_perplexity_and_characters():
    lps = [math.log(0.25)] * 4  # 4 tokens, 8 bits in all
    assert bits_per_unit(lps, 16) == pytest.approx(0.5)
    assert 2 ** bits_per_unit(lps, 4) == pytest.approx(perplexity(lps))
    assert bits_per_unit(lps, 1) == pytest.approx(8.0)  # one unit is enough


@pytest.mark.parametrize(
    "call",
    [lambda: entropy([0.5, 0.6]), lambda: entropy([-0.5, 1.5]), lambda: cross_entropy([1.0], [0.5, 0.5]),
     lambda: perplexity([]), lambda: bits_per_unit([0.0], 0),
     *[lambda b=b: entropy([0.5, 0.5], base=b) for b in (1, 0, -2, math.inf, math.nan)],
     lambda: cross_entropy([0.5, 0.5], [0.5, 0.5], base=1),
     lambda: perplexity([math.nan]), lambda: perplexity([math.inf]), lambda: perplexity_from_nll(math.nan, 2),
     lambda: bits_per_unit([math.nan], 2)],
)
def test_bad_input_is_refused(call):
    with pytest.raises(InputError):
        call()
