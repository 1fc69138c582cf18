"""Part-of-speech taggers over segmented words (PKU tagset from `pfr1998`): the tagger interface, a
bigram HMM tagger, the loader, and segment-then-tag.

Unknown words matter most: the HMM scores them with ``P(tag | last character) / P(tag)`` learnt
from rare training words (words of rare types behave like unseen ones); the perceptron tagger
(`llmlab.text.pos_perceptron`) uses character and suffix features.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.jit import jit
from llmlab.core.registry import load_class
from llmlab.text.base import (
    Segmenter,
    checked_array,
    from_model_doc,
    normalize_text,
    read_model_doc,
    write_model_doc,
)

FORMAT = "llmlab-pos-tagger"
VERSION = 1
MODEL_FILE = "tagger.json"
NEG = -1e30
SPACE_TAG = "w"  # the tag given to whitespace runs by `cut_and_tag`


def check_tagged(sentences: Iterable[Sequence[tuple[str, str]]], what: str = "training data"):
    """Tagged sentences as lists of (word, tag) with non-empty strings, or an InputError."""
    out = []
    for i, s in enumerate(sentences, 1):
        pairs = [tuple(p) for p in s]
        for p in pairs:
            if len(p) != 2 or not all(isinstance(x, str) and x for x in p):
                raise InputError(f"{what}: sentence {i} has a bad (word, tag) pair {p!r}")
        if pairs:
            out.append(pairs)
    if not out:
        raise InputError(f"{what}: no tagged sentences to train on")
    return out


@jit
def viterbi_kernel(em: np.ndarray, trans: np.ndarray, start: np.ndarray, out: np.ndarray) -> None:
    """First-order Viterbi over all K tags into `out` (n,); ties go to the lower tag id."""
    n, k = em.shape
    score = start + em[0]
    back = np.zeros((n, k), np.int64)
    for i in range(1, n):
        new = np.empty(k)
        for t in range(k):
            best, arg = score[0] + trans[0, t], 0
            for f in range(1, k):
                v = score[f] + trans[f, t]
                if v > best:
                    best, arg = v, f
            new[t] = best + em[i, t]
            back[i, t] = arg
        score = new
    t = np.argmax(score)
    for i in range(n - 1, -1, -1):
        out[i] = t
        t = back[i, t]


@jit
def top_ids(row: np.ndarray, out: np.ndarray) -> None:
    """The ids of `row`'s len(out) highest values into `out`, highest first, ties to the lower id (as a
    stable sort of ``-row``), by insertion: a word's few best tags without sorting all K.

    >>> out = np.zeros(3, np.int64); top_ids(np.array([1.0, 5.0, 2.0, 5.0, 0.0]), out); out.tolist()
    [1, 3, 2]
    """
    b, m = len(out), 0
    for t in range(len(row)):
        v = row[t]
        if m == b and v <= row[out[b - 1]]:
            continue
        j = m if m < b else b - 1  # the slot freed: the end, or the last one's
        while j > 0 and row[out[j - 1]] < v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = t
        m = min(m + 1, b)


@jit
def viterbi2_kernel(em: np.ndarray, trans: np.ndarray, trans3: np.ndarray, start: np.ndarray, beam: int,
                    out: np.ndarray) -> None:
    """Second-order Viterbi into `out` (n >= 2,) over each word's `beam` best tags by emission
    (ties to the lower tag id); the state is the pair (slot of the previous tag, slot of the tag)."""
    n, k = em.shape
    b = min(beam, k)
    cands = np.empty((n, b), np.int64)
    for i in range(n):
        top_ids(em[i], cands[i])
    score = np.empty((b, b))
    for p in range(b):
        for q in range(b):
            c0, c1 = cands[0, p], cands[1, q]
            score[p, q] = start[c0] + em[0, c0] + trans[c0, c1] + em[1, c1]
    back = np.zeros((n, b, b), np.int64)  # back[i, q, r]: best slot at i - 2 for slots q, r at i - 1, i
    new = np.empty((b, b))
    for i in range(2, n):
        for q in range(b):
            tb = cands[i - 1, q]
            for r in range(b):
                tc = cands[i, r]
                best, arg = score[0, q] + trans3[cands[i - 2, 0], tb, tc], 0
                for p in range(1, b):
                    v = score[p, q] + trans3[cands[i - 2, p], tb, tc]
                    if v > best:
                        best, arg = v, p
                new[q, r] = best + trans[tb, tc] + em[i, tc]
                back[i, q, r] = arg
        score, new = new, score
    flat = np.argmax(score)
    q, r = flat // b, flat % b
    for i in range(n - 1, 1, -1):
        out[i] = cands[i, r]
        q, r = back[i, q, r], q
    out[1], out[0] = cands[1, r], cands[0, q]


def viterbi(emissions: np.ndarray, trans: np.ndarray, start: np.ndarray) -> list[int]:
    """Best label sequence for ``emissions`` (n, K), ``trans`` (K from, K to) and ``start`` (K).

    >>> viterbi(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, -5.0], [0.0, 0.0]]), np.zeros(2))
    [0, 0]
    """
    em = np.ascontiguousarray(emissions, dtype=np.float64)
    out = np.zeros(len(em), np.int64)
    if len(em):
        viterbi_kernel(em, np.ascontiguousarray(trans, dtype=np.float64), np.asarray(start, np.float64), out)
    return out.tolist()


def viterbi2(emissions: np.ndarray, trans: np.ndarray, trans3: np.ndarray, start: np.ndarray,
             beam: int | None = None) -> list[int]:
    """Second-order Viterbi: scores ``start[t0] + sum emissions[i, ti] + sum trans[t(i-1), ti]
    + sum trans3[t(i-2), t(i-1), ti]``; the state is the pair (previous tag, tag). With `beam`, each
    word only considers its `beam` best tags by emission score (K^3 work per word becomes beam^3).

    >>> t3 = np.zeros((2, 2, 2)); t3[0, 0, 0] = -5.0  # no three 0s in a row
    >>> viterbi2(np.array([[2.0, 0.0], [2.0, 0.0], [1.0, 0.0]]), np.zeros((2, 2)), t3, np.zeros(2))
    [0, 0, 1]
    """
    n, k = emissions.shape
    if n < 2:
        return viterbi(emissions, trans, start)
    out = np.zeros(n, np.int64)
    viterbi2_kernel(np.ascontiguousarray(emissions, dtype=np.float64), np.ascontiguousarray(trans, dtype=np.float64),
                    np.ascontiguousarray(trans3, dtype=np.float64), np.asarray(start, np.float64),
                    k if beam is None else beam, out)
    return out.tolist()


def tag_mask(words: Sequence[str], tagdict: dict[str, list[int]], k: int,
             first: dict[str, list[int]] | None = None) -> np.ndarray:
    """(n, k) additive mask: 0 for allowed tags, a large negative score for the others (`tagdict`'s
    words are width-normalised; so is each word looked up). A word in `first` (the user's tags) takes
    its entry there instead of `tagdict`'s.

    >>> tag_mask(["的", "书"], {"的": [0]}, 2).tolist()
    [[0.0, -1000000.0], [0.0, 0.0]]
    >>> tag_mask(["的", "书"], {"的": [0]}, 2, first={"的": [1]}).tolist()
    [[-1000000.0, 0.0], [0.0, 0.0]]
    """
    mask = np.zeros((len(words), k))
    for i, w in enumerate(words):
        key = normalize_text(w)
        allowed = first.get(key) if first else None
        if allowed is None:
            allowed = tagdict.get(key)
        if allowed is not None:
            mask[i] = -1e6
            mask[i, allowed] = 0.0
    return mask


def _checked_words(words: Sequence[str], i: int) -> list[str]:
    """Sentence `i`'s words as a list, or an InputError: a string (whose characters would be taken for
    its words), or a word that is not a string (an empty one is tagged as any unknown word)."""
    if isinstance(words, str):
        raise InputError(f"sentence {i} is a string {words!r:.40}; a tagger takes its words (a list: cut it "
                         "first, or use cut_and_tag)")
    words = list(words)
    for w in words:
        if not isinstance(w, str):
            raise InputError(f"sentence {i} has a word that is not a string: {w!r:.40}")
    return words


class PosTagger(ABC):
    """Words -> tags. Subclasses implement `tag`, `train`, `_state` and `_from_state`, and honour
    `add_user_tags` where they score tags (`user_tag_ids`)."""

    kind: ClassVar[str] = ""
    tags: list[str]

    def add_user_tags(self, entries: Iterable[tuple[str, str]]) -> None:
        """Fix the tags of words (jieba's user-dictionary tags, as `lexicon.read_user_tags` reads them):
        each of these words, compared width-normalised, gets its tag wherever it occurs, and the words
        around it are tagged knowing that. Not saved with the model. A tag outside the tagger's tagset
        is an InputError.

        >>> t = HmmTagger.train([[("他", "r"), ("跑", "v")], [("书", "n")]])
        >>> t.add_user_tags([("跑", "n")])
        >>> t.tag(["他", "跑"])
        ['r', 'n']
        """
        ids = {t: i for i, t in enumerate(self.tags)}
        user = dict(self.user_tag_ids())
        for entry in entries:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str) and entry[0]):
                raise InputError(f"user tags are (word, tag) pairs, got {entry!r:.80}")  # "跑n" would unpack
            word, tag = entry
            if tag not in ids:
                raise InputError(f"user tag {tag!r} of {word!r} is not one of this tagger's tags: "
                                 f"{' '.join(sorted(self.tags))}")
            user[normalize_text(word)] = [ids[tag]]
        self._user_tag_ids = user

    def user_tag_ids(self) -> dict[str, list[int]]:
        """The user's tags (`add_user_tags`) as a tag dictionary for `tag_mask`: width-normalised word ->
        [the index of its tag in `tags`]; empty without any."""
        return getattr(self, "_user_tag_ids", {})

    def tag(self, words: Sequence[str]) -> list[str]:
        """One tag per word of a sentence's words (a list: a string's characters are not its words).
        A whitespace word is tagged `SPACE_TAG` and left out of the context of the others."""
        return self.tag_sentences([words])[0]

    def tag_sentences(self, sentences: Iterable[Sequence[str]]) -> list[list[str]]:
        """`tag` of each sentence, batched where the tagger can."""
        if isinstance(sentences, str):
            raise InputError("tag_sentences takes a list of sentences, each a list of words, not a string")
        sentences = [_checked_words(s, i) for i, s in enumerate(sentences, 1)]
        tagged = iter(self._tag_sentences([[w for w in s if not w.isspace()] for s in sentences]))
        out = []
        for words in sentences:
            tags = iter(next(tagged))
            out.append([SPACE_TAG if w.isspace() else next(tags) for w in words])
        return out

    @abstractmethod
    def _tag(self, words: list[str]) -> list[str]:
        """`tag` of checked words."""

    def _tag_sentences(self, sentences: list[list[str]]) -> list[list[str]]:
        return [self._tag(s) for s in sentences]

    @classmethod
    @abstractmethod
    def train(cls, sentences: Iterable[Sequence[tuple[str, str]]], config: Any = None) -> PosTagger: ...

    @abstractmethod
    def _state(self, directory: Path) -> dict: ...

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict, directory: Path) -> PosTagger: ...

    def save(self, directory: str | os.PathLike) -> Path:
        return write_model_doc(directory, MODEL_FILE, FORMAT, VERSION, self.kind, self._state)


TAGGER_KINDS: dict[str, str] = {
    "hmm": "llmlab.text.pos:HmmTagger",
    "perceptron": "llmlab.text.pos_perceptron:PerceptronTagger",
    "neural": "llmlab.text.pos_neural:NeuralTagger",
    "hybrid": "llmlab.text.pos_hybrid:HybridTagger",
}


def tagger_class(kind: str) -> type[PosTagger]:
    return load_class(TAGGER_KINDS, kind, "POS tagger")


def load_tagger(directory: str | os.PathLike) -> PosTagger:
    """Load a tagger saved with `PosTagger.save`, dispatching on its kind."""
    doc, path = read_model_doc(directory, MODEL_FILE, FORMAT, VERSION, "POS tagger")
    return from_model_doc(tagger_class(str(doc.get("kind"))), doc, path)


def cut_and_tag(segmenter: Segmenter, tagger: PosTagger, text: str) -> list[tuple[str, str]]:
    """Segment, then tag the words; whitespace runs stay as words tagged `SPACE_TAG`.

    The words joined give back `text` exactly.
    """
    return cut_and_tag_lines(segmenter, tagger, [text])[0]


def cut_and_tag_lines(segmenter: Segmenter, tagger: PosTagger, lines: Iterable[str]) -> list[list[tuple[str, str]]]:
    """`cut_and_tag` of each line, segmenting all lines in one batch (`Segmenter.cut_lines`) and tagging
    them in one `tag_sentences` call (the neural taggers batch it)."""
    cuts = segmenter.cut_lines(lines)
    return [list(zip(words, tags)) for words, tags in zip(cuts, tagger.tag_sentences(cuts))]


@dataclass(frozen=True)
class HmmTaggerConfig:
    smoothing: float = 0.1  # add-k for transitions and the suffix model, > 0
    rare_count: int = 2  # words seen at most this often train the unknown-word (suffix) model

    def __post_init__(self):
        if not self.smoothing > 0:
            raise InputError(f"smoothing must be > 0, got {self.smoothing}")
        if self.rare_count < 1:
            raise InputError(f"rare_count must be >= 1, got {self.rare_count}")


class HmmTagger(PosTagger):
    """Bigram HMM: ``P(tag | previous tag) * P(word | tag)``, Viterbi decoding. Words are
    width-normalised (`normalize_text`) in training and tagging, so "ＧＤＰ" and "GDP" are one word
    (models saved before this, ``normalized`` false, tag as they were trained).

    >>> t = HmmTagger.train([[("他", "r"), ("跑", "v")], [("我", "r"), ("跑", "v")], [("跑", "v")]])
    >>> t.tag(["我", "跑"])
    ['r', 'v']
    """

    kind = "hmm"

    def __init__(self, tags: list[str], start: list[float], trans: list[list[float]],
                 emit: dict[str, dict[str, float]], suffix: dict[str, list[float]], unknown: list[float],
                 config: HmmTaggerConfig | None = None, normalized: bool = True):
        self.tags, self.emit, self.suffix, self.config = tags, emit, suffix, config or HmmTaggerConfig()
        self.normalized = normalized
        k = len(tags)
        self.start, self.trans = checked_array("start", start, (k,)), checked_array("trans", trans, (k, k))
        self.unknown = checked_array("unknown", unknown, (k,))
        if any(np.shape(v) != (k,) for v in suffix.values()):
            raise ValueError(f"suffix scores must each hold {k} values, one per tag")
        self._tag_id = {t: i for i, t in enumerate(tags)}
        if any(t not in self._tag_id for scores in emit.values() for t in scores):
            raise ValueError("emission scores name a tag that is not among the tags")

    @classmethod
    def train(cls, sentences, config: HmmTaggerConfig | None = None) -> HmmTagger:
        config = config or HmmTaggerConfig()
        sents = [[(normalize_text(w), t) for w, t in s] for s in check_tagged(sentences)]
        k = config.smoothing
        tags = sorted({t for s in sents for _, t in s})
        tid = {t: i for i, t in enumerate(tags)}
        start, trans = np.full(len(tags), k), np.full((len(tags), len(tags)), k)
        pair, word_count, tag_count = Counter(), Counter(), Counter()
        for s in sents:
            start[tid[s[0][1]]] += 1
            for (_, a), (_, b) in zip(s, s[1:]):
                trans[tid[a], tid[b]] += 1
            pair.update(s)
            word_count.update(w for w, _ in s)
            tag_count.update(t for _, t in s)
        emit: dict[str, dict[str, float]] = {}
        for (w, t), c in pair.items():
            emit.setdefault(w, {})[t] = math.log(c / tag_count[t])
        suffix, unknown = _suffix_model(pair, word_count, tag_count, tags, config)
        start_lp = np.log(start / start.sum())
        trans_lp = np.log(trans / trans.sum(axis=1, keepdims=True))
        return cls(tags, start_lp.tolist(), trans_lp.tolist(), emit, suffix, unknown, config)

    def _emissions(self, words: Sequence[str]) -> np.ndarray:
        em = np.full((len(words), len(self.tags)), NEG)
        for i, w in enumerate(map(normalize_text, words) if self.normalized else words):
            known = self.emit.get(w)
            if known:
                for t, lp in known.items():
                    em[i, self._tag_id[t]] = lp
            else:
                em[i] = self.suffix.get(w[-1:], self.unknown)  # an empty word has no last character
        return em

    def _tag(self, words: list[str]) -> list[str]:
        em = self._emissions(words)
        if self.user_tag_ids():
            fixed = tag_mask(words, self.user_tag_ids(), len(self.tags)) < 0
            em[fixed.any(axis=1)] = 0.0  # a user's word: certain of its tag, whatever its training counts say
            em[fixed] = NEG
        return [self.tags[i] for i in viterbi(em, self.trans, self.start)]

    def _state(self, directory: Path) -> dict:
        return {"config": config_to_dict(self.config), "tags": self.tags, "start": self.start.tolist(),
                "trans": self.trans.tolist(), "emit": self.emit, "suffix": self.suffix,
                "unknown": self.unknown.tolist(), "normalized": self.normalized}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> HmmTagger:
        return cls(state["tags"], state["start"], state["trans"], state["emit"], state["suffix"],
                   state["unknown"], config_from_dict(HmmTaggerConfig, state["config"]), state.get("normalized", False))


def _suffix_model(pair: Counter, word_count: Counter, tag_count: Counter, tags: list[str], config: HmmTaggerConfig):
    """Unknown-word emission scores ``log P(tag | last char) - log P(tag)`` (Bayes: proportional to
    ``log P(word | tag)``), P(tag | last char) from rare words, smoothed toward their tag distribution."""
    k = config.smoothing
    rare_tag = Counter()
    by_last: dict[str, Counter] = {}
    for (w, t), c in pair.items():
        if word_count[w] <= config.rare_count:
            rare_tag[t] += c
            by_last.setdefault(w[-1], Counter())[t] += c
    total = sum(rare_tag.values()) + k * len(tags)
    prior = np.array([(rare_tag[t] + k) / total for t in tags])
    all_tags = np.array([tag_count[t] for t in tags], dtype=float)
    log_all = np.log(all_tags / all_tags.sum())
    suffix = {}
    for ch, cnt in by_last.items():
        n = sum(cnt.values())
        p = (np.array([cnt[t] for t in tags]) + 5.0 * prior) / (n + 5.0)  # 5 pseudo-counts of prior
        suffix[ch] = (np.log(p) - log_all).tolist()
    return suffix, (np.log(prior) - log_all).tolist()
