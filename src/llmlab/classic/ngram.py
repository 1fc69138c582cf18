"""N-gram language models of any order over words or characters (topics 10, 11 and 13).

A sentence is scored as ``<s> w1 .. wm </s>``: the chain rule multiplies p(w_i | the n-1 tokens before
it) for every word and for ``</s>``, the first words seeing shorter contexts (one ``<s>``, as SRILM and
KenLM do). Tokens outside the vocabulary are ``<unk>``.

>>> m = NgramModel.train([["a", "b"], ["a", "c"]], NgramConfig(order=2, smoothing="add_k", k=1.0))
>>> round(m.prob("b", ["a"]), 6)  # (1 + 1) / (2 + 1 * 5): <unk> a b c </s> can follow "a"
0.285714
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llmlab.classic.information import bits_per_unit, perplexity_from_nll
from llmlab.classic.ngram_counts import NgramTables, count_ngrams, position_index
from llmlab.classic.smoothing import SMOOTHINGS, NgramParams, build_params
from llmlab.classic.vocab import (
    BOS_ID,
    EOS_ID,
    Vocab,
    build_encoded,
    encode_sentences,
    token_list,
    token_sentences,
)
from llmlab.core.config import config_from_dict
from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_folder,
    atomic_write_json,
    check_folder,
    read_json,
    read_safetensors,
    write_safetensors,
)

log = logging.getLogger(__name__)

FORMAT = "llmlab-ngram-1"
FILES = ("config.json", "counts.safetensors")  # a model folder, as `NgramModel.save` writes it


@dataclass(frozen=True)
class NgramConfig:
    order: int = 3  # n: predict each token from the n-1 before it; >= 1
    smoothing: str = "modified_kn"  # mle, add_k, absolute, kn, modified_kn, katz ("arpa": read from a file)
    k: float = 1.0  # add-k pseudo-count (add_k only); 1 is Laplace; > 0
    discounts: tuple[float, ...] = ()  # fixed discount per order 1..n in [0, 1] (absolute, kn); () = estimate
    unit: str = "word"  # "word" (whitespace-separated tokens) or "char" (every non-space character)
    min_count: int = 1  # rarer training tokens become <unk>; >= 1
    max_vocab: int = 0  # keep only the most frequent tokens; 0 = no limit

    # a setting of one smoothing (`llmlab.core.config.check_applies`), checked for the flags given: the config
    # does not check it itself, so a model saved with an unused k still loads
    APPLIES = {"k": (lambda c: c.smoothing == "add_k", "to --smoothing add_k, not {cfg.smoothing}")}

    def __post_init__(self):
        if not isinstance(self.order, int) or self.order < 1:
            raise InputError(f"order must be an integer >= 1, got {self.order!r}")
        if self.smoothing not in (*SMOOTHINGS, "arpa"):
            raise InputError(f"smoothing must be one of {SMOOTHINGS}, got {self.smoothing!r}")
        if not self.k > 0:
            raise InputError(f"k must be > 0, got {self.k}")
        object.__setattr__(self, "discounts", tuple(float(d) for d in self.discounts))
        if self.discounts:
            if self.smoothing not in ("absolute", "kn"):
                raise InputError(f"discounts apply to absolute and kn only, not {self.smoothing!r}")
            if len(self.discounts) != self.order or not all(0 <= d <= 1 for d in self.discounts):
                raise InputError(f"discounts must be {self.order} numbers in [0, 1], got {self.discounts}")
        if self.unit not in ("word", "char"):
            raise InputError(f"unit must be 'word' or 'char', got {self.unit!r}")
        if self.min_count < 1:
            raise InputError(f"min_count must be >= 1, got {self.min_count}")
        if self.max_vocab < 0:
            raise InputError(f"max_vocab must be >= 0, got {self.max_vocab}")


def split_units(line: str, unit: str) -> list[str]:
    """Tokens of one text line: whitespace-separated words, or its non-space characters.

    >>> split_units("我 爱 北京", "word"), split_units("我 爱", "char")
    (['我', '爱', '北京'], ['我', '爱'])
    """
    return line.split() if unit == "word" else [c for c in line if not c.isspace()]


def _take(values: np.ndarray, idx: np.ndarray, default: float) -> np.ndarray:
    """values[idx] where idx >= 0, else `default` (values may be empty: no n-gram of that order).

    >>> _take(np.array([0.5, 0.25]), np.array([1, -1]), 1.0).tolist()
    [0.25, 1.0]
    """
    if len(values) == 0:
        return np.full(idx.shape, default)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], default)


def corpus_sentences(name: str, split: str = "train", unit: str = "word") -> list[list[str]]:
    """Tokenised sentences of a corpus: pfr1998 words come segmented by hand; any other built-in corpus
    or text file (one sentence per line, words separated by spaces) is split by `unit`. Blank lines
    are skipped."""
    from llmlab.data.corpora import corpus_text, pfr1998_words

    if unit not in ("word", "char"):
        raise InputError(f"unit must be 'word' or 'char', got {unit!r}")
    if name == "pfr1998" and unit == "word":
        return pfr1998_words(split)
    return [t for t in (split_units(line, unit) for line in corpus_text(name, split)) if t]


def model_folder_entries(directory: str | os.PathLike) -> tuple[str, ...]:
    """The entries of `directory` that an earlier `NgramModel.save` wrote (`FILES`, when its config.json
    is an n-gram model's), which a save there may replace; none otherwise."""
    try:
        doc = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return FILES if isinstance(doc, dict) and doc.get("format") == FORMAT else ()


def check_model_folder(directory: str | os.PathLike) -> Path:
    """`directory` as a Path, or InputError now, before training, if `NgramModel.save` could not write
    there later: it must be new, empty or hold an earlier n-gram model and nothing else.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text('{"dim": 64}')
    >>> check_model_folder(d)
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: model folder '...' holds files that are not its own (config.json): ...
    """
    return check_folder(directory, model_folder_entries(directory), "model folder")


class NgramModel:
    """Tables of seen n-grams plus per-level numbers (see llmlab.classic.smoothing); counts when trained."""

    def __init__(self, config: NgramConfig, vocab: Vocab, tables: NgramTables, params: NgramParams,
                 counts: list[np.ndarray] | None = None):
        self.config, self.vocab, self.tables, self.params, self.counts = config, vocab, tables, params, counts

    @classmethod
    def train(cls, sentences: Sequence[Sequence[str]], config: NgramConfig | None = None) -> NgramModel:
        """Count every n-gram of orders 1..n in the tokenised `sentences` and smooth."""
        config = config or NgramConfig()
        if config.smoothing == "arpa":
            raise InputError(f"smoothing 'arpa' is for models read from ARPA files; train with one of {SMOOTHINGS}")
        sentences = token_sentences(sentences)
        if not sentences:
            raise InputError("cannot train an n-gram model on zero sentences")
        vocab, ids, sent = build_encoded(sentences, config.min_count, config.max_vocab or None)
        keys, counts = count_ngrams(ids, sent, config.order, len(vocab))
        return cls.from_counts(config, vocab, keys, counts)

    @classmethod
    def from_counts(cls, config, vocab, keys, counts) -> NgramModel:
        tables = NgramTables(len(vocab), tuple(keys))
        params = build_params(tables, counts, config.smoothing, config.k, config.discounts)
        return cls(config, vocab, tables, params, counts)

    @property
    def order(self) -> int:
        return self.tables.order

    # ---- scoring -------------------------------------------------------------------------------

    def token_logprobs(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Natural-log probability of every predicted token (each word and each ``</s>``), and the ids.

        Vectorised: the table index of every n-gram of the text is looked up at once, then the
        levels are applied from the unigram up.
        """
        return self._logprobs(token_sentences(sentences))

    def _logprobs(self, sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """`token_logprobs` of sentences already checked (`token_sentences`)."""
        V, n = self.tables.vocab_size, self.order
        ids, sent = encode_sentences(self.vocab, sentences)
        idx = position_index(list(self.tables.keys), ids, sent, V)
        targets = np.flatnonzero(ids != BOS_ID)
        p = self.params.base[ids[targets]]
        for k in range(1, n + 1):
            start = targets - (k - 1)
            ok = start >= 0
            s = np.where(ok, start, 0)
            c = np.where(ok, idx[k - 1][s], -1)  # context: the k-1 tokens before the target
            g = np.where(ok, idx[k][s], -1)  # the k-gram ending at the target
            num = _take(self.params.num[k], g, 0.0)
            bow = _take(self.params.bow[k - 1], c, 1.0)
            if self.params.interpolate[k]:
                p = num + bow * p
            else:
                p = np.where(g >= 0, num, bow * p)
        with np.errstate(divide="ignore"):
            return np.log(p), ids[targets]

    def sentence_logprob(self, sentence: Sequence[str]) -> float:
        """ln p(<s> w1..wm </s>) by the chain rule (-inf when some factor is 0, MLE only)."""
        return float(self.token_logprobs([sentence])[0].sum())

    def evaluate(self, sentences: Sequence[Sequence[str]]) -> dict:
        """Perplexity and cross-entropy per predicted token (``</s>`` included), with OOV counts.

        ``bits_per_char`` spreads the same total over the characters of the tokens plus one newline per
        sentence, so word and character n-gram models compare on one scale; so do neural ones
        (``llmlab eval ppl``) on text written without spaces, such as pfr1998. Spaces between words are
        not counted: in a segmented Chinese file they are not part of the text, while for English
        ``eval ppl`` counts them and its figure is lower by about their share of the characters.

        With MLE any unseen event has probability 0: perplexity is then reported as inf and ``n_zero``
        says how many tokens caused it (every other smoothing keeps it finite).
        """
        sentences = token_sentences(sentences)
        lp, ids = self._logprobs(sentences)
        if len(lp) == 0:
            raise InputError("cannot evaluate on zero sentences")
        n_zero = int(np.isneginf(lp).sum())
        if n_zero:
            log.warning("%d of %d tokens have probability 0 under %s: perplexity is infinite",
                        n_zero, len(lp), self.config.smoothing)
        nll = float(-lp.sum())
        n_chars = sum(len(t) for s in sentences for t in s) + len(sentences)
        return {
            "perplexity": perplexity_from_nll(nll, len(lp)) if n_zero == 0 else math.inf,
            "bits_per_token": nll / len(lp) / math.log(2),
            "bits_per_char": float(bits_per_unit(lp, n_chars)),
            "n_tokens": len(lp),
            "n_sentences": len(sentences),
            "n_oov": int((ids == 0).sum()),
            "n_zero": n_zero,
        }

    def context_ids(self, context: Sequence[str], bos: bool = True) -> list[int]:
        """The last n-1 ids of ``<s>`` + `context` (the history a next-token prediction sees)."""
        ids = ([BOS_ID] if bos else []) + self.vocab.encode(token_list(context, "context"))
        return ids[max(len(ids) - (self.order - 1), 0):] if self.order > 1 else []

    def distribution_ids(self, history: list[int]) -> np.ndarray:
        """p(w | history) for every id w (``<s>`` gets 0); sums to one."""
        p = self.params.base.copy()
        for k in range(1, self.order + 1):
            if len(history) < k - 1:
                break
            c = self.tables.context_index(history[len(history) - (k - 1):] if k > 1 else [])
            if c < 0:
                continue
            lo, hi = self.tables.followers(k, c)
            words = self.tables.word(k)[lo:hi]
            bow = self.params.bow[k - 1][c]
            if self.params.interpolate[k]:
                p *= bow
                p[words] += self.params.num[k][lo:hi]
            else:
                p *= bow
                p[words] = self.params.num[k][lo:hi]
        return p

    def distribution(self, context: Sequence[str], bos: bool = True) -> dict[str, float]:
        """p(w | context) for every vocabulary token but ``<s>``; `bos` puts ``<s>`` before `context`."""
        p = self.distribution_ids(self.context_ids(context, bos))
        return {t: float(p[i]) for i, t in enumerate(self.vocab.tokens) if i != BOS_ID}

    def prob(self, word: str, context: Sequence[str], bos: bool = True) -> float:
        """p(word | context), the context starting a sentence when `bos`."""
        return float(self.distribution_ids(self.context_ids(context, bos))[self.vocab.id(word)])

    def sample(self, seed: int = 0, max_tokens: int = 50, prefix: Sequence[str] = (),
               temperature: float = 1.0) -> list[str]:
        """Draw tokens one by one from p(. | history) until ``</s>`` or `max_tokens`; returns the new tokens."""
        if max_tokens < 0:
            raise InputError(f"max_tokens must be >= 0, got {max_tokens}")
        if not 0 < temperature < math.inf:
            raise InputError(f"temperature must be a finite number > 0, got {temperature}")
        rng = np.random.default_rng(seed)
        history = [BOS_ID] + self.vocab.encode(token_list(prefix, "prefix"))
        out: list[str] = []
        for _ in range(max_tokens):
            p = self.distribution_ids(history[len(history) - (self.order - 1):] if self.order > 1 else [])
            if temperature != 1.0:  # p ** (1 / T) in log space: at low T the powers underflow to 0
                with np.errstate(divide="ignore", over="ignore"):  # log 0; a tiny T overflows to -inf
                    logp = np.log(p)
                    # shifted to the maximum before dividing: the maximum stays at 0 whatever T, so a tiny T
                    # samples the most likely token where dividing first sent every log-probability to -inf
                    p = np.exp((logp - logp.max()) / temperature)
            w = int(rng.choice(len(p), p=p / p.sum()))
            if w == EOS_ID:
                break
            out.append(self.vocab.tokens[w])
            history.append(w)
        return out

    # ---- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """``config.json`` (format, config, vocabulary) and ``counts.safetensors`` (keys and counts), written
        as a whole (`atomic_folder`): a failed save leaves the old model, and only a folder holding an
        earlier n-gram model may be replaced (`check_model_folder`)."""
        if self.counts is None:
            raise InputError("this model has no counts (read from ARPA): save it with to_arpa instead")
        arrays = {}
        for k in range(1, self.order + 1):
            arrays[f"keys.{k}"] = np.ascontiguousarray(self.tables.keys[k])
            arrays[f"counts.{k}"] = np.ascontiguousarray(self.counts[k])
        with atomic_folder(directory, model_folder_entries(directory), "model folder") as tmp:
            write_safetensors(tmp / "counts.safetensors", arrays, metadata={"format": FORMAT})
            atomic_write_json(tmp / "config.json", {"format": FORMAT, "config": asdict(self.config),
                                                    "vocab": list(self.vocab.tokens)})

    @classmethod
    def load(cls, directory: str | Path) -> NgramModel:
        d = Path(directory)
        meta_path = d / "config.json"
        meta = read_json(meta_path, "n-gram model config")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise InputError(f"{meta_path}: format {got!r} is not {FORMAT!r}")
        if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("vocab"), list):
            raise InputError(f"{meta_path}: an n-gram model config needs a 'config' object and a 'vocab' list")
        config = config_from_dict(NgramConfig, meta["config"], str(meta_path))
        try:
            vocab = Vocab(tuple(meta["vocab"]))
        except InputError as e:
            raise InputError(f"{meta_path}: {e}") from None
        n = config.order
        arrays = read_safetensors(d / "counts.safetensors", "n-gram counts",
                                  tuple(f"{a}.{k}" for k in range(1, n + 1) for a in ("keys", "counts")))
        keys = [np.zeros(1, dtype=np.int64)] + [arrays[f"keys.{k}"] for k in range(1, n + 1)]
        counts = [np.array([0])] + [arrays[f"counts.{k}"] for k in range(1, n + 1)]
        if any(c.dtype.kind not in "iu" or (c < 0).any() for c in counts[1:]):
            raise InputError(f"n-gram counts {str(d / 'counts.safetensors')!r} are damaged: counts must be whole "
                             "numbers >= 0")
        counts[0] = np.array([int(counts[1].sum())])
        return cls.from_counts(config, vocab, keys, counts)
