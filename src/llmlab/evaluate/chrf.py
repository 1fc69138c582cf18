"""chrF (Popović 2015) and chrF++ (Popović 2017): character n-gram F-beta, plus word n-grams for ++,
computed as sacrebleu 2.x does (best reference per segment, statistics summed over the corpus).

Character n-grams ignore whitespace, so the score needs no tokenizer and works on Chinese as it is.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import add

from llmlab import __version__
from llmlab.core.errors import InputError
from llmlab.evaluate.bleu import check_streams, clipped_matches, string_list

_PUNCTS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


@dataclass(frozen=True)
class ChrfConfig:
    char_order: int = 6  # largest character n-gram
    word_order: int = 0  # largest word n-gram; 2 gives chrF++
    beta: float = 2.0  # recall is beta times as important as precision
    lowercase: bool = False  # compare case-insensitively
    whitespace: bool = False  # keep spaces inside character n-grams
    eps_smoothing: bool = False  # chrF++.py-style epsilon smoothing instead of effective order

    def __post_init__(self):
        if self.char_order < 1 and self.word_order < 1:
            raise InputError(f"need char_order or word_order >= 1, got {self.char_order}, {self.word_order}")
        if self.char_order < 0 or self.word_order < 0:
            raise InputError(f"orders must be >= 0, got {self.char_order}, {self.word_order}")
        if not 0 < self.beta < math.inf:
            raise InputError(f"beta must be a finite number > 0, got {self.beta}")


def split_punctuation(sent: str) -> list[str]:
    """chrF++'s word split: one ASCII punctuation mark is peeled off the end, else off the start.

    >>> split_punctuation("(hi) there, ok")
    ['(hi', ')', 'there', ',', 'ok']
    """
    out: list[str] = []
    for w in sent.split():
        if len(w) == 1:
            out.append(w)
        elif w[-1] in _PUNCTS:
            out += [w[:-1], w[-1]]
        elif w[0] in _PUNCTS:
            out += [w[0], w[1:]]
        else:
            out.append(w)
    return out


def chrf_ngrams(sent: str, cfg: ChrfConfig) -> tuple[list[Counter], list[int]]:
    """Character n-gram counts for orders 1..char_order, then word n-grams 1..word_order, and the
    number of n-grams of each order.

    >>> grams, sizes = chrf_ngrams("ab a", ChrfConfig(char_order=2))
    >>> [dict(c) for c in grams], sizes
    ([{'a': 2, 'b': 1}, {'ab': 1, 'ba': 1}], [3, 2])
    """
    line = sent if cfg.whitespace else "".join(sent.split())
    out = [Counter(line)] if cfg.char_order >= 1 else []
    sizes = [len(line)] if cfg.char_order >= 1 else []
    grams = list(line)
    for n in range(2, cfg.char_order + 1):
        grams = list(map(add, grams, line[n - 1:]))  # n-grams = (n-1)-grams + next char (map stops at the shorter)
        out.append(Counter(grams))
        sizes.append(len(grams))
    if cfg.word_order:
        words = split_punctuation(sent)
        for n in range(1, cfg.word_order + 1):
            out.append(Counter([" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]))
            sizes.append(max(0, len(words) - n + 1))
    return out, sizes


def _match_stats(hyp: list[Counter], hyp_sizes: list[int], ref: list[Counter], ref_sizes: list[int]) -> list[int]:
    stats: list[int] = []
    for h, h_size, r, r_size in zip(hyp, hyp_sizes, ref, ref_sizes):
        stats += [h_size if r else 0, r_size, clipped_matches(h, r)]
    return stats


def chrf_from_stats(stats: Sequence[float], cfg: ChrfConfig) -> float:
    """The chrF score (0..100) from [hyp, ref, match] triples per order (sacrebleu's _compute_f_score).

    >>> chrf_from_stats([3, 3, 3, 2, 2, 2], ChrfConfig(char_order=2))
    100.0
    """
    eps, factor = 1e-16, cfg.beta ** 2
    score, eff, avg_p, avg_r = 0.0, 0, 0.0, 0.0
    for i in range(cfg.char_order + cfg.word_order):
        n_hyp, n_ref, n_match = stats[3 * i:3 * i + 3]
        prec = n_match / n_hyp if n_hyp > 0 else eps
        rec = n_match / n_ref if n_ref > 0 else eps
        denom = factor * prec + rec
        score += ((1 + factor) * prec * rec / denom) if denom > 0 else eps
        if n_hyp > 0 and n_ref > 0:
            avg_p += prec
            avg_r += rec
            eff += 1
    if cfg.eps_smoothing:
        return 100 * score / (cfg.char_order + cfg.word_order)
    if eff == 0:
        return 0.0
    avg_p, avg_r = avg_p / eff, avg_r / eff
    if not avg_p + avg_r:
        return 0.0
    # sacrebleu's order of operations, to the last bit: with several references the best one is
    # picked by this score, so a rounding difference on a near-tie picks another reference
    score = (1 + factor) * avg_p * avg_r
    score /= factor * avg_p + avg_r
    return 100 * score


def segment_chrf_stats(hyp: str, refs: Sequence[str], cfg: ChrfConfig) -> list[int]:
    """Statistics against the reference with the best segment score (the first one on ties)."""
    prep = str.lower if cfg.lowercase else (lambda s: s)
    h, h_sizes = chrf_ngrams(prep(hyp), cfg)
    best, best_f = [], -1.0
    for ref in refs:
        stats = _match_stats(h, h_sizes, *chrf_ngrams(prep(ref), cfg))
        f = chrf_from_stats(stats, cfg)
        if f > best_f:
            best, best_f = stats, f
    return best


def corpus_chrf(hyps: Sequence[str], refs: Sequence[Sequence[str | None]], cfg: ChrfConfig | None = None) -> float:
    """Corpus chrF of hypotheses against reference streams (a None entry: fewer references there).

    >>> round(corpus_chrf(["the cat sat"], [["the cat sat down"]]), 4)
    66.0176
    """
    cfg = cfg or ChrfConfig()
    hyps, refs = check_streams(hyps, refs)
    if not hyps:
        raise InputError("need at least one hypothesis, got none")
    total = [0] * (3 * (cfg.char_order + cfg.word_order))
    for i, hyp in enumerate(hyps):
        seg = segment_chrf_stats(hyp, [s[i] for s in refs if s[i] is not None], cfg)
        total = [a + b for a, b in zip(total, seg)]
    return chrf_from_stats(total, cfg)


def sentence_chrf(hyp: str, refs: Sequence[str], cfg: ChrfConfig | None = None) -> float:
    """chrF of one hypothesis against its references."""
    return corpus_chrf([hyp], [[r] for r in string_list(refs, "refs", "reference")], cfg)


def chrf_signature(cfg: ChrfConfig, n_refs: int | str) -> str:
    """sacrebleu's chrF signature string, with llmlab's version.

    >>> chrf_signature(ChrfConfig(word_order=2), 1)
    'nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:llmlab-0.1.0'
    """
    return (f"nrefs:{n_refs}|case:{'lc' if cfg.lowercase else 'mixed'}|eff:{'no' if cfg.eps_smoothing else 'yes'}"
            f"|nc:{cfg.char_order}|nw:{cfg.word_order}|space:{'yes' if cfg.whitespace else 'no'}"
            f"|version:llmlab-{__version__}")
