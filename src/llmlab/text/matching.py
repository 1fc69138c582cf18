"""Maximum matching: forward (FMM), backward (BMM) and bidirectional, the fast dictionary path.

At each position take the longest lexicon word; with none, one character (a unit of several code
points, `base.UNIT_RUN`, stays whole). Bidirectional runs both and keeps the one with fewer words,
then fewer single-character words; a full tie keeps backward matching, usually the better of the two
for Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.text.base import check_sentences, normalize_text, unit_ends, unit_spans, unit_starts, word_ends
from llmlab.text.lexicon import DictSegmenter, Lexicon, lexicon_from_dictionary

DIRECTIONS = ("forward", "backward", "bidirectional")
_KIND = {"forward": "fmm", "backward": "bmm", "bidirectional": "bimm"}


@dataclass(frozen=True)
class MatchConfig:
    direction: str = "forward"  # forward | backward | bidirectional
    min_count: int = 1  # training words seen fewer times stay out of the lexicon

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.min_count < 1:
            raise InputError(f"min_count must be >= 1, got {self.min_count}")


def forward_match(text: str, prefixes: dict[str, int], ends: dict[int, int] | None = None,
                  source: str | None = None) -> list[str]:
    """Longest match left to right over a prefix table (word -> count > 0, prefix -> 0); the words
    are cut from `source` (a text of the same length, say the one `text` normalises) if given.

    >>> forward_match("研究生命起源", {"研": 0, "研究": 1, "研究生": 1, "生": 0, "生命": 1, "起": 0, "起源": 1})
    ['研究生', '命', '起源']
    """
    words = []
    n = len(text)
    get = prefixes.get
    source = text if source is None else source
    i = 0
    while i < n:
        best = ends.get(i, i + 1) if ends else i + 1
        for j in word_ends(text, i, get):
            if j > best and not (ends and _inside(ends, j)):
                best = j
        words.append(source[i:best])
        i = best
    return words


def backward_match(text: str, suffixes: dict[str, int], starts: dict[int, int] | None = None,
                   source: str | None = None) -> list[str]:
    """Longest match right to left over a suffix table; `starts` maps an end to its run's start;
    the words are cut from `source` if given, as in `forward_match`.

    >>> table = {"究": 0, "研究": 1, "生": 0, "研究生": 1, "命": 0, "生命": 1, "源": 0, "起源": 1}
    >>> backward_match("研究生命起源", table)
    ['研究', '生命', '起源']
    """
    words = []
    get = suffixes.get
    source = text if source is None else source
    j = len(text)
    while j > 0:
        best = starts.get(j, j - 1) if starts else j - 1
        i = j - 1
        frag = text[i]
        while i >= 0:
            c = get(frag)
            if c is None:
                break
            if c and i < best and not (starts and _inside(starts, i + 1)):
                best = i
            i -= 1
            frag = text[i:j]
        words.append(source[best:j])
        j = best
    words.reverse()
    return words


def _inside(runs: dict[int, int], k: int) -> bool:
    """Whether boundary `k` falls strictly inside a unit, given a position -> unit map
    (`unit_ends`: char position -> unit end; `unit_starts`: end position -> unit start)."""
    return k in runs and k - 1 in runs and runs[k] == runs[k - 1]


def choose_bidirectional(fwd: list[str], bwd: list[str]) -> list[str]:
    """Fewer words wins, then fewer single-character words, then backward.

    >>> choose_bidirectional(["研究生", "命", "起源"], ["研究", "生命", "起源"])
    ['研究', '生命', '起源']
    """
    if fwd == bwd:
        return bwd
    key_f = (len(fwd), sum(len(w) == 1 for w in fwd))
    key_b = (len(bwd), sum(len(w) == 1 for w in bwd))
    return fwd if key_f < key_b else bwd


class MaxMatchSegmenter(DictSegmenter):
    """Maximum matching over an owned lexicon.

    >>> seg = MaxMatchSegmenter(Lexicon({"研究": 1, "研究生": 1, "生命": 1, "起源": 1}), MatchConfig("bidirectional"))
    >>> seg.cut("研究生命起源 ok")
    ['研究', '生命', '起源', ' ', 'ok']
    """

    def __init__(self, lexicon: Lexicon, config: MatchConfig | None = None):
        super().__init__(lexicon)
        self.config = config or MatchConfig()
        self.kind = _KIND[self.config.direction]

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: MatchConfig | None = None) -> MaxMatchSegmenter:
        config = config or MatchConfig()
        return cls(Lexicon.from_sentences(check_sentences(sentences), config.min_count), config)

    @classmethod
    def from_dictionary(cls, source, config: MatchConfig | None = None) -> MaxMatchSegmenter:
        """Maximum matching over a dictionary alone (`lexicon_from_dictionary`), no training text."""
        config = config or MatchConfig()
        return cls(lexicon_from_dictionary(source, config.min_count), config)

    def _cut_run(self, run: str) -> list[str]:
        """Matches the width-normalised run against the lexicon and cuts the words straight from the run
        (no second pass to map them back: this is the fast path)."""
        norm, spans = normalize_text(run), unit_spans(run)  # the units once, for both directions
        direction = self.config.direction
        if direction == "forward":
            return forward_match(norm, self.lexicon.prefixes, unit_ends(spans), run)
        bwd = backward_match(norm, self.lexicon.suffixes, unit_starts(spans), run)
        if direction == "backward":
            return bwd
        fwd = forward_match(norm, self.lexicon.prefixes, unit_ends(spans), run)
        return choose_bidirectional(fwd, bwd)

    def _state(self, directory: Path) -> dict:
        return {"config": config_to_dict(self.config), "lexicon": self.lexicon.to_dict()}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> MaxMatchSegmenter:
        return cls(Lexicon.from_dict(state["lexicon"]), config_from_dict(MatchConfig, state["config"]))
