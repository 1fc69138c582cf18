"""Diversity and repetition of generated text: distinct-n over a set of texts, rep-n within one text,
and self-BLEU (each text scored against all the others).

Texts are split into units by `units`: ``"auto"`` uses characters for text with CJK characters and
whitespace words otherwise; ``"words"`` and ``"chars"`` force one or the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from llmlab.core.errors import InputError
from llmlab.evaluate.bleu import BleuConfig, bleu_from_stats, bleu_tokens, ngram_counts, stats_from_counts
from llmlab.evaluate.rouge import has_cjk

UNITS = ("auto", "words", "chars")


def text_units(text: str, units: str = "auto") -> list[str]:
    """The units n-grams are made of.

    >>> text_units("a b  c"), text_units("你好 吗"), text_units("ab", "chars")
    (['a', 'b', 'c'], ['你', '好', '吗'], ['a', 'b'])
    """
    if units not in UNITS:
        raise InputError(f"units must be one of {UNITS}, got {units!r}")
    if not isinstance(text, str):
        raise InputError(f"the text must be a string, got {type(text).__name__}")
    if units == "chars" or (units == "auto" and has_cjk(text)):
        return [c for c in text if not c.isspace()]
    return text.split()


def _ngrams(units: list[str], n: int) -> list[tuple[str, ...]]:
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    return list(zip(*(units[i:] for i in range(n))))


def distinct_n(texts: Sequence[str], n: int = 2, units: str = "auto") -> float:
    """Distinct n-grams over all n-grams in a set of texts (Li et al. 2016); 0 when there are none.

    >>> distinct_n(["a b a b", "a b c"], n=1)
    0.42857142857142855
    """
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings, got a single string")
    seen: set = set()
    total = 0
    for t in texts:
        grams = _ngrams(text_units(t, units), n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def rep_n(text: str, n: int = 4, units: str = "auto") -> float:
    """Share of a text's n-grams that repeat an earlier one: 1 - distinct/total (Welleck et al. 2019).

    >>> rep_n("a b a b a b", n=2)
    0.6
    """
    grams = _ngrams(text_units(text, units), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngrams(text: str, n: int = 4, units: str = "auto") -> dict[tuple[str, ...], int]:
    """The n-grams a text repeats, with their counts: what rep-n is made of.

    >>> repeated_ngrams("a b a b", n=2)
    {('a', 'b'): 2}
    """
    return {g: c for g, c in Counter(_ngrams(text_units(text, units), n)).items() if c > 1}


def self_bleu(texts: Sequence[str], cfg: BleuConfig | None = None) -> float:
    """Mean sentence BLEU of each text against all the other texts as references (Zhu et al. 2018).

    Higher means the texts resemble each other more (less diverse). Defaults to sentence-BLEU settings:
    exp smoothing with effective order, and the `zh` tokenizer when the texts hold CJK characters.

    >>> round(self_bleu(["a b c d", "a b c d"]), 6)
    100.0
    """
    if isinstance(texts, str) or len(texts) < 2:
        raise InputError("self-BLEU needs a list of at least 2 texts")
    if cfg is None:
        tok = "zh" if any(has_cjk(t) for t in texts) else "13a"
        cfg = BleuConfig(tokenize=tok, effective_order=True)
    toks = [bleu_tokens(t, cfg) for t in texts]
    counts = [ngram_counts(t, cfg.max_ngram_order) for t in toks]
    total = 0.0
    for i in range(len(texts)):
        others = [j for j in range(len(texts)) if j != i]
        stats = stats_from_counts(counts[i], len(toks[i]), [counts[j] for j in others], [len(toks[j]) for j in others])
        total += bleu_from_stats(stats, cfg).score
    return total / len(texts)
