"""The accuracy flagship: a structured averaged perceptron over B/M/E/S tags.

Per character, window features (`llmlab.text.features`) give a score per tag; transition
weights join them; Viterbi finds the best legal sequence. Training is Collins' structured
perceptron: decode, and where the prediction differs from the gold tags, add the gold features and
subtract the predicted ones; the returned weights are the average over all steps (Daume's trick:
``w_avg = w - u / c`` with ``u`` accumulating ``c * update``). Weights are saved with safetensors
(only non-zero rows), the rest as JSON; an external feature dictionary, if any, as ``dictionary.txt``,
the accessor-variety pseudo-lexicon as ``av_words.txt``.

Up to three lexicons feed features. The training words (jackknifed: a sentence sees only the other folds'
words, so the model learns how far a match on unseen text can be trusted) are the closed setting.
An external word list such as jieba's (`read_dictionary`, ``llmlab seg train --feature-dict``) adds
its own templates, as pkuseg and THULAC do: on pfr1998 it lifts OOV recall most. By default the
n-grams of the raw training text that occur in varied contexts (accessor variety >= `av_min`,
`llmlab.text.accessor`) become pseudo-words with templates of their own (no jackknife: unsupervised,
they are fixed at training and saved with the model): pfr1998 test F1 0.9576 -> 0.9593.

A saved model can be trained further on new text (`PerceptronSegmenter.train(init=model)`, ``llmlab seg
train --init-model``; pkuseg's ``init_model``): its weights are the starting point of the same training.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_path, read_safetensors, write_safetensors
from llmlab.core.jit import interpreted, jit
from llmlab.core.progress import progress
from llmlab.text.accessor import AccessorVariety
from llmlab.text.base import Segmenter, check_sentences, checked_array
from llmlab.text.bmes import decode_runs, encode_tags, viterbi_kernel
from llmlab.text.features import FEATURE_SET, PAD, emission_scores, feature_keys_many, type_table
from llmlab.text.hashindex import FeatureIndex
from llmlab.text.lexicon import DictSegmenter, Lexicon, read_user_dict, split_deletions
from llmlab.text.lexmatch import MAX_SPAN, SpanIndex

log = logging.getLogger(__name__)
WEIGHTS_FILE = "weights.safetensors"
DICTIONARY_FILE = "dictionary.txt"
AV_WORDS_FILE = "av_words.txt"


@dataclass(frozen=True)
class PerceptronConfig:
    epochs: int = 10  # passes over the training sentences
    min_feature_count: int = 1  # features seen fewer times in training get no weight
    lexicon_features: bool = True  # add features from the longest lexicon words around each character
    lexicon_min_count: int = 1  # training words seen fewer times stay out of the feature lexicon
    folds: int = 10  # jackknife: a sentence's lexicon features come from the other folds' words (1 = off; at most
    # one fold per training sentence is used)
    prune_below: float = 0.5  # after training, drop features whose largest averaged |weight| is at most this
    seed: int = 0  # shuffling order of the sentences each epoch
    av_lexicon: bool = True  # add features from accessor-variety pseudo-words of the raw training text
    av_min: int = 3  # a pseudo-word's min(left, right) accessor variety is at least this
    av_max_n: int = 5  # pseudo-words have 2..av_max_n characters

    def __post_init__(self):
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.min_feature_count < 1:
            raise InputError(f"min_feature_count must be >= 1, got {self.min_feature_count}")
        if self.folds < 1:
            raise InputError(f"folds must be >= 1, got {self.folds}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.prune_below < 0:
            raise InputError(f"prune_below must be >= 0, got {self.prune_below}")
        if self.lexicon_min_count < 1:
            raise InputError(f"lexicon_min_count must be >= 1, got {self.lexicon_min_count}")
        if not isinstance(self.av_lexicon, bool):
            raise InputError(f"av_lexicon must be true or false, got {self.av_lexicon!r}")
        if self.av_min < 1:
            raise InputError(f"av_min (least accessor variety of a pseudo-word) must be >= 1, got {self.av_min}")
        if not 2 <= self.av_max_n <= MAX_SPAN:
            raise InputError(f"av_max_n (longest pseudo-word) must be in 2..{MAX_SPAN}, got {self.av_max_n}")


class PerceptronSegmenter(DictSegmenter):
    """Averaged-perceptron BMES segmenter; owns its lexicon (training words plus user words), which
    feeds the lexicon features, optionally an external feature dictionary (fixed at training:
    its templates' weights are learnt against the training data) and, with ``config.av_lexicon``,
    the accessor-variety pseudo-words of the training text (`av_words`: word -> AV, also fixed).

    >>> seg = PerceptronSegmenter.train([["中国", "人民"], ["人民", "银行"], ["中国", "银行"]] * 4,
    ...                                 PerceptronConfig(epochs=3, folds=1))
    >>> seg.cut("中国人民银行")
    ['中国', '人民', '银行']
    """

    kind = "perceptron"

    def __init__(self, index: FeatureIndex, weights: np.ndarray, trans: np.ndarray | list, lexicon: Lexicon,
                 config: PerceptronConfig | None = None, dictionary: Lexicon | None = None,
                 av_words: dict[str, int] | None = None):
        super().__init__(lexicon)
        self.dictionary = dictionary
        self.config = config or PerceptronConfig()
        if self.config.av_lexicon != (av_words is not None):
            raise InputError("a perceptron with av_lexicon needs its pseudo-words (av_words), one without takes none")
        self.av_words = av_words
        if weights.shape != (index.size + 1, 4):
            raise InputError(f"weights must have shape ({index.size + 1}, 4), got {weights.shape}")
        self.index, self.weights = index, weights
        self.trans = checked_array("trans", trans, (4, 4))  # (4 from, 4 to)
        self._table = type_table()
        self._spans: tuple[tuple[int, int], SpanIndex] | None = None
        self._dict_spans: SpanIndex | None = None
        self._av_spans: SpanIndex | None = None

    def _span_index(self) -> SpanIndex | None:
        """Matcher over the width-normalised lexicon, rebuilt when its words change."""
        if not self.config.lexicon_features:
            return None
        key = (id(self.lexicon), self.lexicon.version)  # any change to the words
        if self._spans is None or self._spans[0] != key:
            self._spans = (key, SpanIndex(self.lexicon.counts))
        return self._spans[1]

    def _dict_index(self) -> SpanIndex | None:
        if self.dictionary is not None and self._dict_spans is None:
            self._dict_spans = SpanIndex(self.dictionary.counts)
        return self._dict_spans

    def _av_index(self) -> SpanIndex | None:
        if self.av_words is not None and self._av_spans is None:
            self._av_spans = SpanIndex(self.av_words)
        return self._av_spans

    def _windowed_emissions(self, text: str, window: int) -> np.ndarray:
        """`emissions` of a long text, `window` characters at a time: the features (the feature
        arrays take some 400 bytes a character) of each window's text plus `_reach` characters either
        side, which is all a character's features see, so the scores are the same."""
        n, reach = len(text), self._reach()
        parts = []
        for a in range(0, n, window):
            lo = max(0, a - reach)
            parts.append(self.emissions(text[lo:min(n, a + window + reach)])[a - lo:a - lo + window])
        return np.concatenate(parts)

    def _reach(self) -> int:
        """How far either side of a character its features look: the window, and lexicon words (of
        any length) beginning, ending or covering it or a window neighbour."""
        lexicons = [self.lexicon] if self.config.lexicon_features else []
        lexicons += [self.dictionary] if self.dictionary is not None else []
        longest = max([*(lex.max_len for lex in lexicons), *map(len, self.av_words or ())], default=0)
        return longest + 2 * PAD + 1

    def emissions(self, text: str) -> np.ndarray:
        """(n, 4) tag scores per character, before transitions."""
        return self._scores([text])

    def _scores(self, texts: list[str]) -> np.ndarray:
        """(characters of all texts, 4) emissions, in one compiled pass."""
        return emission_scores(texts, self._table, self.index, self.weights, self._span_index(), self._dict_index(),
                               self._av_index())

    def _cut_run(self, run: str) -> list[str]:
        return self._cut_runs([run])[0]

    def _cut_runs(self, runs: list[str], batch_chars: int = 50_000) -> list[list[str]]:
        """Features, lookups and scores for many runs in one numpy pass, about `batch_chars` characters
        at a time (a longer run alone, scored in windows of that size); Viterbi per run. A few runs
        (a line or two) are cut by the kernels' Python source, without loading numba (`interpreted`)."""
        with interpreted(sum(map(len, runs))):
            return [words for batch in self.batches(runs, batch_chars)
                    for words in decode_runs(batch, self.batch_emissions(batch, batch_chars), self.trans)]

    @staticmethod
    def batches(runs: list[str], batch_chars: int) -> Iterator[list[str]]:
        """Consecutive runs, about `batch_chars` characters a batch; a longer run is a batch of its own.

        >>> list(PerceptronSegmenter.batches(["ab", "c", "defgh", "i"], 3))
        [['ab', 'c'], ['defgh'], ['i']]
        """
        i = 0
        while i < len(runs):
            j, size = i, 0
            while j < len(runs) and (j == i or (size < batch_chars and len(runs[j]) <= batch_chars)):
                size += len(runs[j])
                j += 1
            yield runs[i:j]
            i = j

    def batch_emissions(self, batch: list[str], batch_chars: int) -> np.ndarray:
        """`emissions` of the runs of one `batches` batch, one after the other (a single run longer
        than `batch_chars` scored in windows)."""
        if len(batch) == 1 and len(batch[0]) > batch_chars:
            return self._windowed_emissions(batch[0], batch_chars)
        return self._scores(batch)

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: PerceptronConfig | None = None,
              dictionary: Lexicon | None = None, init: PerceptronSegmenter | None = None) -> PerceptronSegmenter:
        """Learn from segmented sentences; `dictionary` (e.g. jieba's word list, `read_dictionary`)
        adds external-dictionary features.

        With `init` (pkuseg's ``init_model``), training goes on from that model instead of from zero, on
        `sentences` alone: its weights and transitions are the starting point, the features it has keep
        their weights until the new sentences move them, and new ones start at zero. Its feature
        settings, external dictionary and pseudo-words stay (`config` may change only epochs, seed,
        folds, min_feature_count and prune_below; None keeps all of its settings), the new sentences'
        words join its lexicon, and its forced words stay forced. The model then fits the new text
        and, as any model trained on other text alone, may forget some of what it knew: mixing some of
        the first training text into `sentences` keeps that (rehearsal).
        """
        if init is not None and not isinstance(init, PerceptronSegmenter):
            raise InputError(f"training goes on from a perceptron segmenter, got {type(init).__name__}")
        config = config or (init.config if init is not None else PerceptronConfig())
        sents = check_sentences(sentences)
        if init is None:
            lexicon = Lexicon.from_sentences(sents, config.lexicon_min_count)
            av_words = None
            if config.av_lexicon:
                av_words = AccessorVariety(["".join(s) for s in sents]).words(config.av_min, config.av_max_n)
                log.info("%d accessor-variety pseudo-words", len(av_words))
        else:
            _check_init(init, config, dictionary)
            counts = Counter(init.lexicon.counts)
            counts.update(Lexicon.from_sentences(sents).counts)
            lexicon = Lexicon({w: c for w, c in counts.items() if c >= config.lexicon_min_count})
            dictionary, av_words = init.dictionary, init.av_words
        keys = _training_keys(sents, lexicon, config, dictionary, av_words)
        uniq, counts = np.unique(np.concatenate([k.ravel() for k in keys]), return_counts=True)
        kept = uniq[counts >= config.min_feature_count]
        index = FeatureIndex(kept if init is None else np.concatenate([init.index.keys, kept]))
        log.info("%d features (%d seen at least %d times)", len(uniq), kept.size, config.min_feature_count)
        lengths = np.array([len(k) for k in keys], dtype=np.int64)
        slots = index.lookup(np.concatenate(keys))  # (characters, templates)
        del keys
        golds = np.array([t for s in sents for t in encode_tags(s)], dtype=np.int8)
        w = np.zeros((index.size + 1, 4), np.float32)
        trans = np.zeros((4, 4))
        if init is not None:  # averaging from there (w - u / step below) averages its weights in at every step
            w[index.rows(init.index.keys)] = init.weights[: init.index.size]
            trans = np.array(init.trans, dtype=np.float64)
        u, trans_u = np.zeros(w.shape, np.float64), np.zeros((4, 4))
        rng = np.random.default_rng(config.seed)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        step = 1
        for epoch in progress(range(config.epochs), desc="epochs"):
            step, wrong_chars = _train_epoch(slots, starts, golds, rng.permutation(len(sents)), w, u, trans, trans_u,
                                             step)
            log.info("epoch %d: %d wrongly tagged training characters", epoch + 1, wrong_chars)
        subtract_average(w, u, step)
        w[index.missing] = 0.0
        index, w = prune(index, w, config.prune_below)
        seg = cls(index, w, trans - trans_u / step, lexicon, config, dictionary, av_words)
        if init is not None and init.forced:
            seg.force_words(init.forced.words)
        return seg

    def _state(self, directory: Path) -> dict:
        nz = np.nonzero(np.any(self.weights[: self.index.size] != 0, axis=1))[0]
        write_safetensors(directory / WEIGHTS_FILE, {"keys": self.index.keys[nz].view(np.int64),
                                                     "weights": self.weights[nz]})
        state = {"config": config_to_dict(self.config), "feature_set": FEATURE_SET, "trans": self.trans.tolist(),
                 "lexicon": self.lexicon.to_dict(), "weights_file": WEIGHTS_FILE}
        if self.dictionary is not None:
            _write_counts(directory / DICTIONARY_FILE, self.dictionary.counts)
            state["dictionary_file"] = DICTIONARY_FILE
        if self.av_words is not None:
            _write_counts(directory / AV_WORDS_FILE, self.av_words)
            state["av_words_file"] = AV_WORDS_FILE
        return state

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> PerceptronSegmenter:
        # models saved before the AV pseudo-lexicon existed have no av_* keys and no word list
        config = config_from_dict(PerceptronConfig, {"av_lexicon": False, **state["config"]})
        if state.get("feature_set", 1) != FEATURE_SET:
            raise InputError(f"perceptron model in {str(directory)!r} uses feature set {state.get('feature_set', 1)}, "
                             f"this llmlab computes feature set {FEATURE_SET}: retrain it with `llmlab seg train`")
        dictionary = None
        if state.get("dictionary_file"):
            dictionary = read_dictionary(directory / state["dictionary_file"], user=False)
        av_words = None
        if config.av_lexicon:
            av_words = _read_av_words(directory / state.get("av_words_file", AV_WORDS_FILE))
        arrays = read_safetensors(directory / state.get("weights_file", WEIGHTS_FILE), "perceptron weights",
                                  ("keys", "weights"))
        keys = arrays["keys"].view(np.uint64)
        index = FeatureIndex(keys)
        weights = np.zeros((index.size + 1, 4), np.float32)
        weights[index.rows(keys)] = arrays["weights"]
        return cls(index, weights, state["trans"], Lexicon.from_dict(state["lexicon"]), config, dictionary, av_words)


# the settings that decide a perceptron's features: a model trained further (`train(init=...)`) keeps them
FEATURE_SETTINGS = ("lexicon_features", "lexicon_min_count", "av_lexicon", "av_min", "av_max_n")


def _check_init(init: PerceptronSegmenter, config: PerceptronConfig, dictionary: Lexicon | None) -> None:
    if dictionary is not None:
        raise InputError("a model trained further keeps its own feature dictionary: give no other")
    check_kept(config, init.config, FEATURE_SETTINGS, "model")


def check_kept(config, init_config, names: tuple[str, ...], what: str) -> None:
    """Refuse a `config` whose settings `names` differ from `init_config`'s, the config of the `what` (a
    model, a tagger) that training goes on from: its weights belong to the features those settings make."""
    for name in names:
        if getattr(config, name) != getattr(init_config, name):
            raise InputError(f"{name} is {getattr(config, name)!r} but the {what} trained further has "
                             f"{getattr(init_config, name)!r}: its weights belong to its features")


def prune(index: FeatureIndex, weights: np.ndarray, below: float) -> tuple[FeatureIndex, np.ndarray]:
    """A smaller index and weight table without the features whose largest |weight| is <= `below`
    (a smaller table stays in cache: faster lookups, same cuts in practice).

    >>> idx = FeatureIndex(np.array([3, 7], dtype=np.uint64))
    >>> w = np.zeros((idx.size + 1, 4), np.float32)
    >>> w[idx.lookup(np.array([3, 7], dtype=np.uint64))] = [[0.1, 0, 0, 0], [0, 2.0, 0, 0]]
    >>> small, sw = prune(idx, w, 0.5)
    >>> small.present_keys().tolist(), sw[small.lookup(np.array([7], dtype=np.uint64))].tolist()
    ([7], [[0.0, 2.0, 0.0, 0.0]])
    """
    keys = index.present_keys()
    rows = weights[index.lookup(keys)]
    keep = np.abs(rows).max(axis=1) > below
    small = FeatureIndex(keys[keep])
    out = np.zeros((small.size + 1, weights.shape[1]), np.float32)
    out[small.lookup(keys[keep])] = rows[keep]
    return small, out


def subtract_average(w: np.ndarray, u: np.ndarray, step: int, rows: int = 1 << 15) -> None:
    """``w -= (u / step).astype(np.float32)`` in place (Daume's averaging), a block of `rows` rows at a
    time: the same numbers, without two temporaries as large as `u` (the POS tagger's is 460 MB).

    >>> w, u = np.ones((5, 2), np.float32), np.arange(10.0).reshape(5, 2)
    >>> subtract_average(w, u, 4, rows=2)
    >>> w[:, 0].tolist()
    [1.0, 0.5, 0.0, -0.5, -1.0]
    """
    for a in range(0, len(w), rows):
        w[a : a + rows] -= (u[a : a + rows] / step).astype(np.float32)


@jit
def score_rows(w: np.ndarray, slots: np.ndarray, a: int, n: int) -> np.ndarray:
    """(n, K) float64 scores of items a .. a + n: the sum of their feature rows ``w[slots[i]]``. The
    loop over K is written out: numba turns ``em[i] += w[r]`` into a slower array expression (the POS
    tagger's epoch took 2-3x as long)."""
    k = w.shape[1]
    em = np.zeros((n, k))
    for i in range(n):
        for r in slots[a + i]:
            for t in range(k):
                em[i, t] += w[r, t]
    return em


@jit
def update_rows(w: np.ndarray, u: np.ndarray, slots: np.ndarray, a: int, gold: np.ndarray, pred: np.ndarray,
                step: int) -> int:
    """The perceptron update of items a .. a + len(gold), shared by the segmenter and the POS tagger:
    where the predicted label is wrong, +1 to the gold label and -1 to the predicted one in every
    feature row of that item; `u` accumulates ``step`` times the same (for averaging). Returns the
    number of wrong items."""
    wrong = 0
    for i in range(gold.shape[0]):
        g, p = gold[i], pred[i]
        if g != p:
            wrong += 1
            for r in slots[a + i]:
                w[r, g] += 1.0
                w[r, p] -= 1.0
                u[r, g] += step
                u[r, p] -= step
    return wrong


@jit
def _train_epoch(slots: np.ndarray, starts: np.ndarray, golds: np.ndarray, order: np.ndarray, w: np.ndarray,
                 u: np.ndarray, trans: np.ndarray, trans_u: np.ndarray, step: int) -> tuple[int, int]:
    """One pass of the structured perceptron over the sentences in `order` (sentence i is rows
    starts[i]:starts[i + 1] of `slots` and `golds`): decode, and where the tags are wrong add the gold
    features and transitions and subtract the predicted ones.
    Updates w, u, trans, trans_u in place; returns the next step and the wrongly tagged characters."""
    wrong = 0
    for i in order:
        a, n = starts[i], starts[i + 1] - starts[i]
        pred = np.empty(n, np.int8)
        viterbi_kernel(score_rows(w, slots, a, n), trans, 0, n, pred)
        gold = golds[a : a + n]
        wrong += update_rows(w, u, slots, a, gold, pred, step)
        for k in range(1, n):
            g, p = gold[k], pred[k]
            if g != p or gold[k - 1] != pred[k - 1]:
                trans[gold[k - 1], g] += 1.0
                trans[pred[k - 1], p] -= 1.0
                trans_u[gold[k - 1], g] += step
                trans_u[pred[k - 1], p] -= step
        step += 1
    return step, wrong


def read_dictionary(path: str | os.PathLike, what: str = "feature dictionary", user: bool = True) -> Lexicon:
    """A feature dictionary from a jieba-style file (``word [count] [tag]`` lines; no count means 1, and
    a count of 0 leaves the word out; `read_user_dict`, whose `user` is false for the files a saved
    model holds)."""
    added, _ = split_deletions(read_user_dict(path, what, user))
    return Lexicon({w: c or 1 for w, c in added})


def _write_counts(path: Path, counts: dict[str, int]) -> None:
    """``word count`` lines (what `read_dictionary` reads with `user` false), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{w} {c}\n" for w, c in counts.items()), encoding="utf-8")


def _read_av_words(path: Path) -> dict[str, int]:
    """The accessor-variety word list `PerceptronSegmenter._state` wrote."""
    if not path.is_file():
        raise InputError(f"accessor-variety word list {str(path)!r} of the perceptron model is missing")
    return read_dictionary(path, "accessor-variety word list", user=False).counts


def jackknife_matchers(sents: list[list[str]], lexicon: Lexicon, folds: int, min_count: int) -> list[SpanIndex]:
    """One lexicon matcher per fold: fold f (sentences f, f + folds, ...) matches the words of the other
    folds seen at least `min_count` times there; one matcher of all of `lexicon` with folds <= 1.

    >>> from llmlab.text.features import codes_of
    >>> sents = [["中国", "人"], ["中国"], ["人民"]]
    >>> matchers = jackknife_matchers(sents, Lexicon.from_sentences(sents), 2, 1)
    >>> [m.spans(codes_of("中国人民"))[:, 0].tolist() for m in matchers]  # longest word beginning at each
    [[2, 0, 0, 0], [2, 0, 2, 0]]
    """
    folds = min(folds, len(sents))  # more folds than sentences would only add empty ones
    if folds <= 1:
        return [SpanIndex(lexicon.counts)]
    matchers = []
    for f in range(folds):
        held = Lexicon.from_sentences(sents[f::folds]).counts
        matchers.append(SpanIndex({w: c - held.get(w, 0) for w, c in lexicon.counts.items()
                                   if c - held.get(w, 0) >= min_count}))
    return matchers


def _training_keys(sents: list[list[str]], lexicon: Lexicon, config: PerceptronConfig,
                   dictionary: Lexicon | None = None, av_words: dict[str, int] | None = None) -> list[np.ndarray]:
    """Feature keys of each training sentence. With folds > 1 the lexicon features of fold f come
    from the words of the other folds, so the model learns how far a lexicon match can be trusted
    on text whose words it has not all seen (as at test time). The dictionary and the pseudo-words
    (`av_words`) are the same for every sentence."""
    table = type_table()
    matchers: list[SpanIndex | None] = [None]
    if config.lexicon_features:
        matchers = jackknife_matchers(sents, lexicon, config.folds, config.lexicon_min_count)
    external = SpanIndex(dictionary.counts) if dictionary is not None else None
    pseudo = SpanIndex(av_words) if av_words is not None else None
    keys: list[np.ndarray] = [np.zeros(0)] * len(sents)
    for f, matcher in enumerate(matchers):
        ids = list(range(f, len(sents), len(matchers)))
        for a in progress(range(0, len(ids), 1000), desc=f"features {f + 1}/{len(matchers)}"):
            chunk = ids[a : a + 1000]
            texts = ["".join(sents[i]) for i in chunk]
            ends = np.cumsum([len(t) for t in texts])[:-1]
            parts = np.split(feature_keys_many(texts, table, matcher, external, pseudo), ends)
            for i, part in zip(chunk, parts):
                keys[i] = part
    return keys


__all__ = ["PerceptronConfig", "PerceptronSegmenter", "Segmenter", "read_dictionary"]
