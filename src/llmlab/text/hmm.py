"""A first-order HMM over B/M/E/S character tags, decoded with Viterbi.

Emissions ``P(char | tag)`` use width-normalised characters with add-k smoothing (an unseen
character gets the smoothed zero count); transitions and the start distribution are counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.text.base import Segmenter, check_sentences, checked_array, keep_runs_whole, normalize_text
from llmlab.text.bmes import NEG, cut_by_tags, encode_tags, viterbi_bmes


@dataclass(frozen=True)
class HmmConfig:
    smoothing: float = 0.5  # add-k for emissions and transitions, > 0

    def __post_init__(self):
        if not self.smoothing > 0:
            raise InputError(f"smoothing must be > 0, got {self.smoothing}")


def _log_normalise(row: list[float], k: float, allowed: list[bool]) -> list[float]:
    """Add-k log probabilities over the allowed cells; disallowed cells get NEG.

    >>> [round(v, 3) for v in _log_normalise([3, 1, 0, 0], 0.0, [True, True, False, False])]
    [-0.288, -1.386, -1e+30, -1e+30]
    """
    total = sum(r + k for r, a in zip(row, allowed) if a)
    return [math.log((r + k) / total) if a and r + k > 0 else NEG for r, a in zip(row, allowed)]


# legal (from, to) transitions: B->M/E, M->M/E, E->B/S, S->B/S
LEGAL = [[False, True, True, False], [False, True, True, False], [True, False, False, True], [True, False, False, True]]


class HmmSegmenter(Segmenter):
    """BMES HMM segmenter.

    >>> seg = HmmSegmenter.train([["中国", "人"], ["人", "民"], ["中国", "民"]] * 3)
    >>> seg.cut("中国人")
    ['中国', '人']
    """

    kind = "hmm"

    def __init__(self, start: list[float], trans: list[list[float]], emit: dict[str, list[float]],
                 unknown: list[float], config: HmmConfig | None = None):
        self.start = checked_array("start", start, (4,)).tolist()
        self.trans = checked_array("trans", trans, (4, 4)).tolist()
        self.unknown = checked_array("unknown", unknown, (4,)).tolist()
        if any(len(v) != 4 or not all(isinstance(x, (int, float)) for x in v) for v in emit.values()):
            raise ValueError("emission scores must each hold 4 numbers, one per B/M/E/S tag")
        self.emit = emit
        self.config = config or HmmConfig()

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: HmmConfig | None = None) -> HmmSegmenter:
        config = config or HmmConfig()
        k = config.smoothing
        start = [0.0] * 4
        trans = [[0.0] * 4 for _ in range(4)]
        counts: dict[str, list[float]] = {}
        for words in check_sentences(sentences):
            chars = normalize_text("".join(words))
            tags = encode_tags(words)
            start[tags[0]] += 1
            for a, b in zip(tags, tags[1:]):
                trans[a][b] += 1
            for ch, t in zip(chars, tags):
                counts.setdefault(ch, [0.0] * 4)[t] += 1
        per_tag = [sum(c[t] for c in counts.values()) for t in range(4)]
        v = len(counts) + 1
        emit = {ch: [math.log((c[t] + k) / (per_tag[t] + k * v)) for t in range(4)] for ch, c in counts.items()}
        unknown = [math.log(k / (per_tag[t] + k * v)) for t in range(4)]
        start_lp = _log_normalise(start, k, [True, False, False, True])
        trans_lp = [_log_normalise(trans[a], k, LEGAL[a]) for a in range(4)]
        return cls(start_lp, trans_lp, emit, unknown, config)

    def _cut_run(self, run: str) -> list[str]:
        get, unk = self.emit.get, self.unknown
        em = [get(ch, unk) for ch in normalize_text(run)]
        em[0] = [a + b for a, b in zip(em[0], self.start)]
        return keep_runs_whole(run, cut_by_tags(run, viterbi_bmes(em, self.trans)))

    def _state(self, directory: Path) -> dict:
        return {"config": config_to_dict(self.config), "start": self.start, "trans": self.trans,
                "emit": self.emit, "unknown": self.unknown}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> HmmSegmenter:
        return cls(state["start"], state["trans"], state["emit"], state["unknown"],
                   config_from_dict(HmmConfig, state["config"]))
