"""Entropy, cross-entropy, perplexity and bits per character (topic 12), from probabilities or from
per-token log-probabilities, so n-gram and neural models are scored by the same functions.

Log-probabilities are natural logs unless a function says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from llmlab.core.errors import InputError


def entropy(probs: Sequence[float], base: float = 2.0) -> float:
    """H(p) = -sum p log p, in units of log `base` (bits by default); zero-probability terms add 0.

    >>> entropy([0.5, 0.5]), entropy([1.0, 0.0]), round(entropy([0.25] * 4), 6)
    (1.0, 0.0, 2.0)
    """
    _check_distribution(probs, "probs")
    return 0.0 - sum(p * math.log(p) for p in probs if p > 0) / _log_base(base)


def cross_entropy(p: Sequence[float], q: Sequence[float], base: float = 2.0) -> float:
    """H(p, q) = -sum p log q; infinite when q gives zero to an outcome p can produce.

    >>> cross_entropy([0.5, 0.5], [0.25, 0.75]) > entropy([0.5, 0.5])
    True
    """
    if len(p) != len(q):
        raise InputError(f"p and q must have the same length, got {len(p)} and {len(q)}")
    log_base = _log_base(base)
    _check_distribution(p, "p")
    _check_distribution(q, "q")
    total = 0.0
    for pi, qi in zip(p, q):
        if pi > 0:
            if qi <= 0:
                return math.inf
            total -= pi * math.log(qi)
    return total / log_base


def perplexity_from_nll(nll_sum: float, n_tokens: int) -> float:
    """exp(mean negative log-likelihood per token).

    >>> round(perplexity_from_nll(4 * math.log(8), 4), 9)
    8.0
    """
    if n_tokens <= 0:
        raise InputError(f"n_tokens must be > 0, got {n_tokens}")
    _check_nll(nll_sum)
    mean = nll_sum / n_tokens
    return math.exp(mean) if mean < 700 else math.inf


def perplexity(logprobs: Iterable[float]) -> float:
    """Perplexity of a sequence from its per-token natural-log probabilities.

    >>> round(perplexity([math.log(0.5), math.log(0.125)]), 6)
    4.0
    """
    lps = list(logprobs)
    return perplexity_from_nll(-sum(lps), len(lps))


def bits_per_unit(logprobs: Iterable[float], n_units: int) -> float:
    """Total bits over a count of units (characters or bytes): -sum log2 p / n_units.

    Lets models with different tokenizers be compared on the same text.

    >>> bits_per_unit([math.log(0.5)] * 3, 6)
    0.5
    """
    if n_units <= 0:
        raise InputError(f"n_units must be > 0, got {n_units}")
    nll = -sum(logprobs)
    _check_nll(nll)
    return nll / math.log(2) / n_units


def _log_base(base: float) -> float:
    """log(base), for a base logarithms can have: finite, > 0 and not 1."""
    if not 0 < base < math.inf or base == 1:
        raise InputError(f"base must be a finite number > 0 other than 1, got {base}")
    return math.log(base)


def _check_nll(nll: float) -> None:
    """A summed negative log-likelihood is a number or +inf (a token of probability 0)."""
    if nll != nll or nll == -math.inf:
        raise InputError(f"the negative log-likelihood is {nll}: log-probabilities must not be NaN or +inf")


def _check_distribution(probs: Sequence[float], name: str) -> None:
    if any(p < 0 or p != p for p in probs):
        raise InputError(f"{name} has negative or NaN entries")
    s = sum(probs)
    if abs(s - 1.0) > 1e-6:
        raise InputError(f"{name} must sum to 1, sums to {s:.6g}")
