"""Mixing a domain corpus into general text at a chosen share (topic 42: continued pretraining on a
domain without losing general ability, which comes from keeping general text in the mix).

`mix_plan` takes every domain document and as many general documents, drawn at random without
replacement, as bring the domain's share of the mix (in characters or in documents) to `share`; when
the general corpus is too small for that, it takes all of it and draws from the domain instead. The
mix is shuffled with the seed; each entry names its corpus and the document's index there.

>>> plan = mix_plan(["d1", "d2"], ["g1", "g2", "g3", "g4", "g5"], share=0.5, by="docs")
>>> len(plan), sorted(plan)[:2]
(4, [('domain', 0), ('domain', 1)])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmlab.core.errors import InputError

UNITS = ("chars", "docs")


def _sizes(texts: Sequence[str], by: str) -> np.ndarray:
    return np.array([len(t) for t in texts] if by == "chars" else [1] * len(texts), dtype=np.int64)


def _reaches(total, want: float):
    """total >= want, where `want` (a share's float arithmetic: 2 x (2/3) / (1/3) = 4.000000000000001) may
    have landed a rounding error above the whole number it stands for."""
    return total >= want * (1 - 1e-12)


def _take(sizes: np.ndarray, want: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random subset whose sizes first reach `want` (all of them if they never do)."""
    order = rng.permutation(len(sizes))
    reached = _reaches(np.cumsum(sizes[order]), want)
    stop = int(np.argmax(reached)) + 1 if reached.any() else len(order)
    return np.sort(order[:stop])


def mix_plan(domain: Sequence[str], general: Sequence[str], share: float, by: str = "chars",
             seed: int = 0) -> list[tuple[str, int]]:
    """The mix, in order: ("domain", i) for domain[i], ("general", j) for general[j], such that the
    domain makes up `share` of it, measured `by` characters or documents."""
    if not 0 < share < 1:
        raise InputError(f"share must be in (0, 1), got {share}")
    if by not in UNITS:
        raise InputError(f"by must be one of {UNITS}, got {by!r}")
    d_sizes, g_sizes = _sizes(domain, by), _sizes(general, by)
    if not d_sizes.sum() or not g_sizes.sum():
        raise InputError(f"both corpora need text to mix: the domain has {len(domain)} documents "
                         f"({int(d_sizes.sum())} {by}), the general corpus {len(general)} ({int(g_sizes.sum())} {by})")
    rng = np.random.default_rng(seed)
    want_general = d_sizes.sum() * (1 - share) / share
    if _reaches(g_sizes.sum(), want_general):
        d_idx, g_idx = np.arange(len(domain)), _take(g_sizes, want_general, rng)
    else:  # too little general text: all of it, and a share of the domain
        d_idx, g_idx = _take(d_sizes, g_sizes.sum() * share / (1 - share), rng), np.arange(len(general))
    items = [("domain", int(i)) for i in d_idx] + [("general", int(j)) for j in g_idx]
    return [items[k] for k in rng.permutation(len(items))]


def domain_share(plan: Sequence[tuple[str, int]], domain: Sequence[str], general: Sequence[str],
                 by: str = "chars") -> float:
    """The share of a mix (`mix_plan`), by characters or documents, that comes from the domain.

    >>> domain_share([("domain", 0), ("general", 0)], ["aaa"], ["b"])
    0.75
    """
    corpora = {"domain": domain, "general": general}
    sizes = _sizes([corpora[c][i] for c, i in plan], by)
    mask = np.array([c == "domain" for c, _ in plan])
    return float(sizes[mask].sum() / sizes.sum())
