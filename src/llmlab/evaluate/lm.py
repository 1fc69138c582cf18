"""Language-model scores from per-token log-probabilities: perplexity and bits per character.

The arithmetic is `llmlab.classic.information`'s, so n-gram and neural models are scored alike; this
module adds the corpus-level forms (tokens pooled over texts) and the checks evaluation needs.
Log-probabilities are natural logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmlab.classic.information import bits_per_unit, perplexity, perplexity_from_nll
from llmlab.core.errors import InputError


def _check_logprobs(lps: Sequence[float], where: str) -> None:
    for lp in lps:
        if lp != lp or lp > 1e-9:
            raise InputError(f"{where}: log-probabilities must be <= 0 and not NaN, got {lp}")


def text_perplexity(logprobs: Sequence[float]) -> float:
    """Perplexity of one text from its per-token log-probs.

    >>> round(text_perplexity([math.log(0.25)] * 3), 9)
    4.0
    """
    if not logprobs:
        raise InputError("cannot take the perplexity of zero tokens")
    _check_logprobs(logprobs, "text")
    return perplexity(logprobs)


def corpus_perplexity(logprobs_per_text: Sequence[Sequence[float]]) -> float:
    """Perplexity over all tokens of all texts pooled (not the mean of per-text perplexities).

    >>> round(corpus_perplexity([[math.log(0.5)], [math.log(0.125)]]), 9)
    4.0
    """
    nll, n = 0.0, 0
    for i, lps in enumerate(logprobs_per_text):
        _check_logprobs(lps, f"text {i}")
        nll -= math.fsum(lps)
        n += len(lps)
    if n == 0:
        raise InputError("cannot take the perplexity of zero tokens")
    return perplexity_from_nll(nll, n)


def bits_per_char(logprobs: Sequence[float], text: str) -> float:
    """Total bits of a text's tokens spread over its characters, comparable across tokenizers.

    >>> bits_per_char([math.log(0.5)] * 2, "abcd")
    0.5
    """
    if not text:
        raise InputError("cannot take bits per character of an empty text")
    _check_logprobs(logprobs, "text")
    return bits_per_unit(logprobs, len(text))


def corpus_bits_per_char(logprobs_per_text: Sequence[Sequence[float]], texts: Sequence[str]) -> float:
    """Bits per character over a corpus: all bits over all characters.

    >>> corpus_bits_per_char([[math.log(0.5)], [math.log(0.25)]], ["ab", "c"])
    1.0
    """
    if len(logprobs_per_text) != len(texts):
        raise InputError(f"{len(logprobs_per_text)} log-prob lists for {len(texts)} texts")
    flat = [lp for lps in logprobs_per_text for lp in lps]
    _check_logprobs(flat, "corpus")
    n_chars = sum(len(t) for t in texts)
    if n_chars == 0:
        raise InputError("cannot take bits per character of empty texts")
    return bits_per_unit(flat, n_chars)
