"""Topic 18: how the two kinds of modelling error move perplexity.

- A **recall error** gives (almost) no probability to the token that actually comes: the model did not
  "cover" it. Perplexity is a geometric mean, so if a fraction f of tokens drop from p to a floor e,
  perplexity is multiplied by about (p / e)^f: without bound as e -> 0 (one zero makes it infinite).
- A **precision error** wastes probability mass m on continuations that never come. The true token keeps
  at least (1 - m) of its probability, so perplexity grows by at most 1 / (1 - m): bounded for m < 1.

Cross-entropy training therefore punishes missing the truth far more than spreading mass too widely,
which is why language models trained this way tend to "cover" rather than to be precise.

Both perturbations act on the per-token log-probabilities of any model (here an n-gram one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llmlab.classic.information import perplexity_from_nll
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_path


def with_recall_errors(logprobs: np.ndarray, fraction: float, floor: float, seed: int = 0) -> np.ndarray:
    """A `fraction` of the tokens (chosen with `seed`) get probability `floor` for the true token.

    >>> lp = np.log(np.full(4, 0.5))
    >>> np.exp(with_recall_errors(lp, 0.5, 1e-3)).round(4).tolist().count(0.001)
    2
    """
    if not 0 <= fraction <= 1:
        raise InputError(f"fraction must be in [0, 1], got {fraction}")
    if not 0 < floor <= 1:
        raise InputError(f"floor must be in (0, 1], got {floor}")
    lp = np.asarray(logprobs, dtype=np.float64).copy()
    hit = np.random.default_rng(seed).permutation(len(lp))[: int(round(fraction * len(lp)))]
    lp[hit] = np.minimum(lp[hit], np.log(floor))
    return lp


def with_precision_errors(logprobs: np.ndarray, wasted: float) -> np.ndarray:
    """Every prediction moves a share `wasted` of its mass onto wrong continuations.

    >>> np.exp(with_precision_errors(np.log([0.5, 0.8]), 0.5)).tolist()
    [0.25, 0.4]
    """
    if not 0 <= wasted < 1:
        raise InputError(f"wasted must be in [0, 1), got {wasted}")
    return np.asarray(logprobs, dtype=np.float64) + np.log1p(-wasted)


def _ppl(lp: np.ndarray) -> float:
    return perplexity_from_nll(float(-lp.sum()), len(lp))


def two_errors_table(logprobs: Sequence[float], fractions: Sequence[float] = (0.001, 0.01, 0.05),
                     floors: Sequence[float] = (1e-2, 1e-4, 1e-8, 1e-16, 1e-32, 1e-64),
                     wasted: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99), seed: int = 0) -> dict:
    """Perplexity of the unperturbed model and under each recall / precision perturbation."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if len(lp) == 0 or not np.isfinite(lp).all():
        raise InputError("two_errors_table needs a non-empty list of finite log-probabilities")
    return {
        "baseline": _ppl(lp),
        "recall": [{"fraction": f, "floor": e, "perplexity": _ppl(with_recall_errors(lp, f, e, seed))}
                   for f in fractions for e in floors],
        "precision": [{"wasted": m, "perplexity": _ppl(with_precision_errors(lp, m))} for m in wasted],
    }


def plot_two_errors(table: dict, path: str | Path, title: str = "") -> None:
    """Two panels, perplexity against the recall floor (one line per fraction) and against wasted mass."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    fractions = sorted({r["fraction"] for r in table["recall"]})
    for f in fractions:
        rows = [r for r in table["recall"] if r["fraction"] == f]
        left.plot([r["floor"] for r in rows], [r["perplexity"] for r in rows], marker="o", label=f"{f:.1%} of tokens")
    left.set_xscale("log")
    left.set_yscale("log")
    left.invert_xaxis()
    left.set_xlabel("probability left on the true token")
    left.set_ylabel("perplexity")
    left.set_title("recall errors (miss the truth)")
    left.axhline(table["baseline"], color="grey", linestyle=":", label="no error")
    left.legend(fontsize=8)
    rows = table["precision"]
    right.plot([r["wasted"] for r in rows], [r["perplexity"] for r in rows], marker="o", color="C3")
    right.axhline(table["baseline"], color="grey", linestyle=":")
    right.set_yscale("log")
    right.set_xlabel("mass wasted on wrong continuations")
    right.set_title("precision errors (bounded: x 1/(1-m))")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
