"""Per-slice metrics and their disparity (topic 2, bias): the same metric computed on each slice of
an evaluation set (a dialect, a topic, a demographic group) and the largest gap between slices."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.evaluate.lm import corpus_perplexity


@dataclass(frozen=True)
class Disparity:
    per_slice: dict  # slice -> metric value
    sizes: dict  # slice -> number of items
    best: Hashable  # slice with the highest value
    worst: Hashable  # slice with the lowest value
    gap: float  # highest - lowest
    ratio: float  # lowest / highest (1.0 = parity; inf/nan guarded to 0 when highest is 0)


def disparity(per_slice: dict, sizes: dict | None = None) -> Disparity:
    """The spread of a metric over slices.

    >>> d = disparity({"north": 0.9, "south": 0.6})
    >>> d.best, d.worst, round(d.gap, 6), round(d.ratio, 6)
    ('north', 'south', 0.3, 0.666667)
    """
    if not per_slice:
        raise InputError("need at least one slice")
    best = max(per_slice, key=per_slice.get)
    worst = min(per_slice, key=per_slice.get)
    hi, lo = per_slice[best], per_slice[worst]
    return Disparity(dict(per_slice), dict(sizes or {}), best, worst, hi - lo, lo / hi if hi else 0.0)


def _group(slices: Sequence[Hashable], values: Sequence, what: str) -> dict:
    if len(slices) != len(values):
        raise InputError(f"{len(slices)} slice labels for {len(values)} {what}")
    if not slices:
        raise InputError(f"need at least one of {what}")
    groups: dict = {}
    for s, v in zip(slices, values):
        groups.setdefault(s, []).append(v)
    return groups


def slice_accuracy(slices: Sequence[Hashable], correct: Sequence[bool]) -> Disparity:
    """Accuracy per slice and the gap.

    >>> slice_accuracy(["a", "a", "b", "b"], [True, True, True, False]).gap
    0.5
    """
    groups = _group(slices, correct, "items")
    return disparity({s: sum(map(bool, v)) / len(v) for s, v in groups.items()},
                     {s: len(v) for s, v in groups.items()})


def slice_perplexity(slices: Sequence[Hashable], logprobs: Sequence[Sequence[float]]) -> Disparity:
    """Pooled perplexity per slice; here the worst slice is the one with the HIGHEST perplexity,
    so `best`/`worst` are swapped relative to accuracy and `gap` is still highest - lowest.

    >>> import math
    >>> d = slice_perplexity(["x", "y"], [[math.log(0.5)], [math.log(0.25)]])
    >>> d.best, d.worst, round(d.gap, 6)
    ('x', 'y', 2.0)
    """
    groups = _group(slices, logprobs, "log-prob lists")
    ppl = {s: corpus_perplexity(v) for s, v in groups.items()}
    d = disparity(ppl, {s: len(v) for s, v in groups.items()})
    return Disparity(d.per_slice, d.sizes, d.worst, d.best, d.gap, d.ratio)


def slice_metric(slices: Sequence[Hashable], values: Sequence[float]) -> Disparity:
    """Mean of any per-item score (BLEU, ROUGE F, reward...) per slice, and the gap."""
    groups = _group(slices, values, "values")
    return disparity({s: sum(v) / len(v) for s, v in groups.items()}, {s: len(v) for s, v in groups.items()})
