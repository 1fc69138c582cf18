"""BLEU (Papineni et al. 2002) at corpus and sentence level, with sacrebleu's tokenizers, smoothing
methods, closest-reference brevity penalty and signature, giving sacrebleu's numbers.

A corpus is scored from summed sufficient statistics: hypothesis length, closest reference length, and
per order the clipped n-gram matches and the hypothesis n-gram count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmlab import __version__
from llmlab.core.errors import InputError
from llmlab.evaluate.bleu_tokenize import BLEU_TOKENIZERS, get_bleu_tokenizer

SMOOTH_DEFAULTS: dict[str, float | None] = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}


@dataclass(frozen=True)
class BleuConfig:
    tokenize: str = "13a"  # one of 13a, intl, zh, char, none (sacrebleu's rules)
    lowercase: bool = False  # lowercase hypotheses and references before tokenizing
    smooth_method: str = "exp"  # none, floor, add-k or exp (Chen & Cherry 2014 methods)
    smooth_value: float | None = None  # epsilon for floor (default 0.1), k for add-k (default 1)
    max_ngram_order: int = 4  # largest n-gram order counted
    effective_order: bool = False  # average only orders the hypothesis has; use for sentence BLEU

    # the CLI refuses --smooth-value where it does nothing; the config takes it, as sacrebleu's BLEU does
    APPLIES = {"smooth_value": (lambda c: c.smooth_method in ("floor", "add-k"),
                                "to --smooth-method floor (epsilon) and add-k (k), not {cfg.smooth_method}")}

    def __post_init__(self):
        get_bleu_tokenizer(self.tokenize)
        if self.smooth_method not in SMOOTH_DEFAULTS:
            raise InputError(f"smooth_method must be one of {list(SMOOTH_DEFAULTS)}, got {self.smooth_method!r}")
        if self.smooth_value is not None and not 0 <= self.smooth_value < math.inf:
            raise InputError(f"smooth_value must be a finite number >= 0, got {self.smooth_value}")
        if self.max_ngram_order < 1:
            raise InputError(f"max_ngram_order must be >= 1, got {self.max_ngram_order}")


@dataclass(frozen=True)
class BleuScore:
    score: float  # 0..100
    precisions: tuple[float, ...]  # per-order precision in percent, after smoothing
    counts: tuple[float, ...]  # per-order clipped matches (after add-k)
    totals: tuple[float, ...]  # per-order hypothesis n-grams (after add-k)
    bp: float  # brevity penalty
    sys_len: int  # hypothesis tokens
    ref_len: int  # closest-reference tokens

    def format(self, signature: str = "") -> str:
        """sacrebleu's one-line summary."""
        prec = "/".join(f"{p:.1f}" for p in self.precisions)
        ratio = self.sys_len / self.ref_len if self.ref_len else 0
        name = f"BLEU|{signature}" if signature else "BLEU"
        return (f"{name} = {self.score:.2f} {prec} (BP = {self.bp:.3f} ratio = {ratio:.3f} "
                f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})")


def ngram_counts(tokens: Sequence[str], max_order: int) -> list[Counter]:
    """One Counter per order 1..max_order; unigrams are keyed by the token, longer n-grams by tuples.

    >>> [dict(c) for c in ngram_counts("a b a".split(), 2)]
    [{'a': 2, 'b': 1}, {('a', 'b'): 1, ('b', 'a'): 1}]
    """
    out = [Counter(tokens)]
    for n in range(2, max_order + 1):
        out.append(Counter(zip(*(tokens[i:] for i in range(n)))))
    return out


def closest_ref_len(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length nearest the hypothesis length; ties go to the shorter reference.

    >>> closest_ref_len(10, [8, 12, 15])
    8
    """
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def clipped_matches(hyp: Counter, ref: Counter) -> int:
    """sum over shared n-grams of min(hyp count, ref count), looped in C.

    >>> clipped_matches(Counter("aab"), Counter("abb"))
    2
    """
    common = hyp.keys() & ref.keys()
    return sum(map(min, map(hyp.__getitem__, common), map(ref.__getitem__, common)))


def _merge_max(counters: list[list[Counter]]) -> list[Counter]:
    """Per order, the maximum count of each n-gram over references."""
    if len(counters) == 1:
        return counters[0]
    merged = [c.copy() for c in counters[0]]
    for ref in counters[1:]:
        for m, c in zip(merged, ref):
            for g, k in c.items():
                if k > m.get(g, 0):
                    m[g] = k
    return merged


def segment_stats(hyp_tokens: list[str], refs_tokens: list[list[str]], max_order: int) -> list[int]:
    """[hyp_len, ref_len, matches_1..N, totals_1..N] for one segment, as sacrebleu counts them.

    >>> segment_stats("the cat sat".split(), ["the cat sat down".split()], 2)
    [3, 4, 3, 2, 3, 2]
    """
    refs = [ngram_counts(r, max_order) for r in refs_tokens]
    return stats_from_counts(ngram_counts(hyp_tokens, max_order), len(hyp_tokens), refs,
                             [len(r) for r in refs_tokens])


def stats_from_counts(hyp: list[Counter], hyp_len: int, refs: list[list[Counter]], ref_lens: list[int]) -> list[int]:
    """Segment statistics from n-gram counts already made (self-BLEU reuses them across pairs)."""
    max_order = len(hyp)
    ref_len = closest_ref_len(hyp_len, ref_lens) if ref_lens else 0
    ref_ngrams = _merge_max(refs) if refs else None
    correct, total = [0] * max_order, [0] * max_order
    for n, h in enumerate(hyp):
        total[n] = max(0, hyp_len - n)
        if ref_ngrams is None:
            continue
        correct[n] = clipped_matches(h, ref_ngrams[n])
    return [hyp_len, ref_len, *correct, *total]


def _log(x: float) -> float:
    return math.log(x) if x != 0.0 else -9999999999  # sacrebleu floors log(0) to this constant


def bleu_from_stats(stats: Sequence[float], cfg: BleuConfig) -> BleuScore:
    """The BLEU score from summed segment statistics, with smoothing (sacrebleu's compute_bleu).

    >>> round(bleu_from_stats([4, 4, 4, 3, 2, 1, 4, 3, 2, 1], BleuConfig()).score, 6)
    100.0
    """
    order = cfg.max_ngram_order
    sys_len, ref_len = int(stats[0]), int(stats[1])
    correct, total = list(stats[2:2 + order]), list(stats[2 + order:2 + 2 * order])
    k = cfg.smooth_value if cfg.smooth_value is not None else SMOOTH_DEFAULTS[cfg.smooth_method]
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * order
    if not any(correct):
        return BleuScore(0.0, tuple(precisions), tuple(correct), tuple(total), bp, sys_len, ref_len)
    smooth_mteval, eff_order = 1.0, order
    for n in range(1, order + 1):
        if cfg.smooth_method == "add-k" and n > 1:
            correct[n - 1] += k
            total[n - 1] += k
        if total[n - 1] == 0:
            break
        if cfg.effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            if cfg.smooth_method == "exp":
                smooth_mteval *= 2
                precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
            elif cfg.smooth_method == "floor":
                precisions[n - 1] = 100.0 * k / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    score = bp * math.exp(sum([_log(p) for p in precisions[:eff_order]]) / eff_order)
    return BleuScore(score, tuple(precisions), tuple(correct), tuple(total), bp, sys_len, ref_len)


def bleu_tokens(line: str, cfg: BleuConfig, tok=None) -> list[str]:
    """The tokens BLEU counts for `line` under `cfg` (lowercasing, trailing-space strip, tokenizer).

    >>> bleu_tokens("Hello, World!  ", BleuConfig(lowercase=True))
    ['hello', ',', 'world', '!']
    """
    tok = tok or BLEU_TOKENIZERS[cfg.tokenize]
    if cfg.lowercase:
        line = line.lower()
    return tok(line.rstrip()).split()


def corpus_stats(hyps: Sequence[str], refs: Sequence[Sequence[str | None]], cfg: BleuConfig) -> list[list[int]]:
    """Per-segment statistics; `refs` is a list of reference streams, each as long as `hyps`.

    A reference entry of None means that segment has fewer references (sacrebleu's convention).
    """
    hyps, refs = check_streams(hyps, refs)
    tok = BLEU_TOKENIZERS[cfg.tokenize]
    order = cfg.max_ngram_order
    out = []
    for i, hyp in enumerate(hyps):
        seg_refs = [bleu_tokens(stream[i], cfg, tok) for stream in refs if stream[i] is not None]
        out.append(segment_stats(bleu_tokens(hyp, cfg, tok), seg_refs, order))
    return out


def check_streams(hyps: Iterable[str], refs: Iterable[Iterable[str | None]]) -> tuple[list, list[list]]:
    """(hyps, refs) as lists, once checked: hypotheses are strings; refs a non-empty list of streams as long
    as the hypotheses, of strings, where None marks a missing reference but every segment keeps at least
    one. Any iterables will do (a generator is read once, here); a string where a list belongs is refused,
    not read as its characters.

    >>> check_streams(["a b", "c"], [["a b", None]])
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: segment 1 has no reference: every reference stream holds None there
    """
    hyps = string_list(hyps, "hyps", "hypothesis")
    if isinstance(refs, (str, bytes)) or not isinstance(refs, Iterable):
        raise InputError(f"refs must be a list of reference streams (lists of strings), got {type(refs).__name__}")
    refs = [string_list(stream, f"reference stream {j}", "reference", none=True) for j, stream in enumerate(refs)]
    if not refs:
        raise InputError("need at least one reference stream, got none")
    for j, stream in enumerate(refs):
        if len(stream) != len(hyps):
            raise InputError(f"reference stream {j} has {len(stream)} lines but there are {len(hyps)} hypotheses")
    for i, seg_refs in enumerate(zip(*refs)):
        if all(r is None for r in seg_refs):
            raise InputError(f"segment {i} has no reference: every reference stream holds None there")
    return hyps, refs


def string_list(items, what: str, one: str, none: bool = False) -> list:
    """`items` as a list of strings (or None, where `none`), else an InputError naming `what`."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise InputError(f"{what} must be a list of strings, got {type(items).__name__}")
    items = list(items)
    bad = next((i for i, x in enumerate(items) if not (isinstance(x, str) or (none and x is None))), None)
    if bad is not None:
        raise InputError(f"{what}: {one} {bad} is {type(items[bad]).__name__} {items[bad]!r:.40}, not a string")
    return items


def corpus_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str | None]], cfg: BleuConfig | None = None) -> BleuScore:
    """Corpus BLEU of hypotheses against one or more reference streams.

    >>> round(corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]]).score, 4)
    53.7285
    """
    cfg = cfg or BleuConfig()
    stats = corpus_stats(hyps, refs, cfg)
    if not stats:
        raise InputError("need at least one hypothesis, got none")
    summed = [sum(col) for col in zip(*stats)]
    return bleu_from_stats(summed, cfg)


def sentence_bleu(hyp: str, refs: Sequence[str], cfg: BleuConfig | None = None) -> BleuScore:
    """BLEU of one hypothesis against its references (pass effective_order=True for sacrebleu's advice).

    >>> round(sentence_bleu("a b c d", ["a b c d"]).score, 6)
    100.0
    """
    return corpus_bleu([hyp], [[r] for r in string_list(refs, "refs", "reference")], cfg)


def bleu_signature(cfg: BleuConfig, n_refs: int | str) -> str:
    """sacrebleu's signature string, with llmlab's version as the version field.

    >>> bleu_signature(BleuConfig(smooth_method="floor"), 1)
    'nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|version:llmlab-0.1.0'
    """
    smooth = cfg.smooth_method
    default = SMOOTH_DEFAULTS[smooth]
    if default is not None:
        smooth += f"[{cfg.smooth_value if cfg.smooth_value is not None else default:.2f}]"
    return (f"nrefs:{n_refs}|case:{'lc' if cfg.lowercase else 'mixed'}|eff:{'yes' if cfg.effective_order else 'no'}"
            f"|tok:{cfg.tokenize}|smooth:{smooth}|version:llmlab-{__version__}")
