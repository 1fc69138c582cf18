"""Out-of-domain detection (topic 55): a text is flagged when its perplexity under a reference model
exceeds a threshold calibrated on in-domain text, e.g. the 95th percentile of in-domain perplexities,
which by construction lets about 5% of in-domain text through as false alarms.

The model is any callable ``score(text) -> list of per-token natural-log probabilities``: an n-gram
model, a neural LM, or a toy built in a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.core.errors import InputError
from llmlab.evaluate.lm import text_perplexity

ScoreFn = Callable[[str], Sequence[float]]


@dataclass(frozen=True)
class OODConfig:
    quantile: float = 0.95  # in-domain perplexity quantile used as the threshold

    def __post_init__(self):
        if not 0 < self.quantile <= 1:
            raise InputError(f"quantile must be in (0, 1], got {self.quantile}")


@dataclass(frozen=True)
class OODReport:
    threshold: float  # perplexity above which a text is flagged
    detection_rate: float  # share of out-of-domain texts flagged (true positive rate)
    false_alarm_rate: float  # share of held-out in-domain texts flagged (false positive rate)
    n_in: int  # held-out in-domain texts
    n_out: int  # out-of-domain texts


def perplexities(score: ScoreFn, texts: Sequence[str]) -> list[float]:
    """Per-text perplexity under `score`; a text the model gives no tokens is an error."""
    out = []
    for i, t in enumerate(texts):
        lps = list(score(t))
        if not lps:
            raise InputError(f"text {i} ({t[:30]!r}) got no token log-probs from the model")
        out.append(text_perplexity(lps))
    return out


class OODDetector:
    """Calibrate on in-domain text, then flag texts whose perplexity exceeds the threshold.

    >>> import math
    >>> score = lambda t: [math.log(0.5 if c == "a" else 0.01) for c in t]
    >>> det = OODDetector(score).calibrate(["aa", "aaa", "aab"])
    >>> det.flag(["aaaa", "bbb"])
    [False, True]
    """

    def __init__(self, score: ScoreFn, cfg: OODConfig | None = None):
        self.score = score
        self.cfg = cfg or OODConfig()
        self.threshold: float | None = None

    def calibrate(self, in_domain: Sequence[str]) -> OODDetector:
        if not in_domain:
            raise InputError("calibration needs at least one in-domain text")
        ppl = perplexities(self.score, in_domain)
        self.threshold = float(np.quantile(ppl, self.cfg.quantile))
        return self

    def flag(self, texts: Sequence[str]) -> list[bool]:
        if self.threshold is None:
            raise InputError("calibrate the detector on in-domain text before flagging")
        return [p > self.threshold for p in perplexities(self.score, texts)]

    def evaluate(self, held_out_in: Sequence[str], out_of_domain: Sequence[str]) -> OODReport:
        """Detection rate on out-of-domain texts and false alarms on held-out in-domain texts."""
        if not held_out_in or not out_of_domain:
            raise InputError("evaluation needs held-out in-domain and out-of-domain texts")
        fa = self.flag(held_out_in)
        det = self.flag(out_of_domain)
        return OODReport(self.threshold, sum(det) / len(det), sum(fa) / len(fa), len(fa), len(det))
