"""Dependency parsers: the shared interface, vocabulary, feature hashing and model folders.

A parser maps a sentence's words and POS tags to a tree: each word's head (0 = the root) and the
relation's label. Two families implement it: graph-based (`llmlab.text.dep_graph`: score every arc,
find the best tree) and transition-based (`llmlab.text.dep_transition`: build the tree left to right
with shift/reduce moves chosen by a classifier). Both learn with an averaged perceptron over hashed
templates: a template names a few *atoms* (a word id, a tag id, a direction and distance), and
`template_keys` mixes the template number and the atoms' values into one 64-bit key, which a
`FeatureIndex` (the POS perceptron's) maps to a weight row. Atom ids: 0 an unknown word or tag, 1 the
root, 2 "no word here" (beyond the sentence, an absent child); the vocabulary's entries start at 3.

Tags come from one CoNLL-U column, `tag_column`: "upos", "xpos", or "auto" (XPOS when every training
word has one, else UPOS), resolved at training and saved with the model.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.io import read_safetensors, write_safetensors
from llmlab.core.jit import jit
from llmlab.core.registry import load_class
from llmlab.text.base import from_model_doc, normalize_text, read_model_doc, write_model_doc
from llmlab.text.conllu import DepSentence
from llmlab.text.hashindex import FeatureIndex

FORMAT = "llmlab-dep-parser"
VERSION = 1
MODEL_FILE = "parser.json"
WEIGHTS_FILE = "weights.safetensors"
UNK, ROOT, NONE = 0, 1, 2
FIRST_ID = 3
TAG_COLUMNS = ("auto", "upos", "xpos")

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@jit
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    h = (h ^ v) * _M1 + _M2
    h ^= h >> np.uint64(31)
    h *= _M3
    return h ^ (h >> np.uint64(29))


@jit
def _template_keys(atoms: np.ndarray, templates: np.ndarray, first: int) -> np.ndarray:
    n, t = atoms.shape[0], templates.shape[0]
    out = np.empty((n, t), np.uint64)
    for i in range(n):
        for j in range(t):
            h = _mix(np.uint64(0), np.uint64(first + j + 1))
            for k in range(templates.shape[1]):
                a = templates[j, k]
                if a < 0:
                    break
                h = _mix(h, np.uint64(atoms[i, a]))
            out[i, j] = h | np.uint64(1)  # never 0, the index's empty slot
    return out


def template_keys(atoms: np.ndarray, templates: np.ndarray, first: int = 0) -> np.ndarray:
    """(N, T) keys: row i, template j mixes the template's number (`first` + j) and the atoms its row of
    `templates` names (column indices into `atoms`, -1 padding). Equal atoms, equal keys:

    >>> k = template_keys(np.array([[5, 7], [5, 8]]), np.array([[0, -1], [0, 1]]))
    >>> bool(k[0, 0] == k[1, 0]), bool(k[0, 1] != k[1, 1]), bool((k != 0).all())
    (True, True, True)
    """
    return _template_keys(np.ascontiguousarray(atoms, np.int64), np.ascontiguousarray(templates, np.int64), first)


def templates_table(specs: Sequence[Sequence[int]]) -> np.ndarray:
    """A -1-padded (T, K) int64 table of atom columns."""
    width = max(len(s) for s in specs)
    return np.array([list(s) + [-1] * (width - len(s)) for s in specs], np.int64)


class Vocab:
    """Word and tag ids (from `FIRST_ID`; words width-normalised, as the POS taggers see them) and
    relation labels (0..R-1)."""

    def __init__(self, words: list[str], tags: list[str], rels: list[str]):
        self.words, self.tags, self.rels = words, tags, rels
        self._w = {w: i for i, w in enumerate(words, FIRST_ID)}
        self._t = {t: i for i, t in enumerate(tags, FIRST_ID)}
        self.rel_id = {r: i for i, r in enumerate(rels)}

    @classmethod
    def build(cls, sents: list[tuple[list[str], list[str], list[int], list[str]]], min_count: int) -> Vocab:
        counts = Counter(normalize_text(w) for ws, _, _, _ in sents for w in ws)
        words = sorted(w for w, c in counts.items() if c >= min_count)
        return cls(words, sorted({t for _, ts, _, _ in sents for t in ts}), sorted({r for s in sents for r in s[3]}))

    def encode(self, words: Sequence[str], tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n + 1,) word and tag ids, position 0 the root."""
        w = [ROOT] + [self._w.get(normalize_text(x), UNK) for x in words]
        t = [ROOT] + [self._t.get(x, UNK) for x in tags]
        return np.array(w, np.int64), np.array(t, np.int64)

    def to_dict(self) -> dict:
        return {"words": self.words, "tags": self.tags, "rels": self.rels}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(list(d["words"]), list(d["tags"]), list(d["rels"]))


def resolve_tag_column(sents: Sequence[DepSentence], column: str) -> str:
    """"upos" or "xpos": `column`, or for "auto" XPOS when every word has one, else UPOS."""
    if column not in TAG_COLUMNS:
        raise InputError(f"tag_column must be one of {TAG_COLUMNS}, got {column!r}")
    if column == "auto":
        return "xpos" if all(t.xpos != "_" for s in sents for t in s.tokens) else "upos"
    return column


def training_data(sents: Sequence[DepSentence], column: str) -> list[tuple[list[str], list[str], list[int], list[str]]]:
    """(words, tags, heads, rels) of parsed sentences, or InputError naming the first unparsed one."""
    out = []
    for i, s in enumerate(sents, 1):
        if not s.parsed:
            raise InputError(f"training sentence {i} has no heads (HEAD is '_'): a treebank is needed to train")
        out.append((s.words, s.tags(column), [int(h) for h in s.heads], s.rels))
    if not out:
        raise InputError("no training sentences")
    return out


def check_perceptron_config(cfg) -> None:
    """The settings both parsers' configs share: epochs, the two count thresholds, the seed."""
    if cfg.epochs < 1:
        raise InputError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.word_min_count < 1 or cfg.min_feature_count < 1:
        raise InputError("word_min_count and min_feature_count must be >= 1, got "
                         f"{cfg.word_min_count} and {cfg.min_feature_count}")
    if cfg.seed < 0:
        raise InputError(f"seed must be >= 0, got {cfg.seed}")


def resolved(config, sentences: Sequence[DepSentence]):
    """`config` with its tag column settled on `sentences` (`resolve_tag_column`), and their training rows."""
    config = dataclasses.replace(config, tag_column=resolve_tag_column(sentences, config.tag_column))
    return config, training_data(sentences, config.tag_column)


def check_feature_set(state: dict, directory: Path, kind: str, feature_set: int) -> None:
    """InputError unless a saved parser computes the features this llmlab computes."""
    if state.get("feature_set") != feature_set:
        raise InputError(f"{kind} parser in {str(directory)!r} uses feature set {state.get('feature_set')}, this "
                         f"llmlab computes {feature_set}: retrain it with `llmlab parse train`")


def averaged(w: np.ndarray, u: np.ndarray, step: int) -> np.ndarray:
    """The perceptron's averaged weights (Daume's trick): ``w - u / step``, where `u` summed each
    update times the step it happened at.

    >>> averaged(np.array([2.0]), np.array([3.0]), 3).tolist()  # +1 at steps 1 and 2: weights 1, 2, 2 -> mean 5/3
    [1.0]
    """
    return (w - u / step).astype(np.float32)


def save_weights(directory: Path, index: FeatureIndex, weights: np.ndarray) -> None:
    """The rows of (features + 1, C) `weights` that are not all zero, with their keys, as safetensors."""
    nz = np.flatnonzero(np.any(weights[: index.size] != 0, axis=1))
    write_safetensors(directory / WEIGHTS_FILE, {"keys": index.keys[nz].view(np.int64),
                                                 "weights": weights[nz].astype(np.float32, copy=False)})


def load_weights(directory: Path, columns: int) -> tuple[FeatureIndex, np.ndarray]:
    """The index and (features + 1, `columns`) weights `save_weights` wrote (the last row: unknown features)."""
    arrays = read_safetensors(directory / WEIGHTS_FILE, "parser weights", ("keys", "weights"))
    keys, rows = arrays["keys"].view(np.uint64), arrays["weights"]
    if rows.shape != (len(keys), columns):
        raise ValueError(f"parser weights have shape {rows.shape}, expected ({len(keys)}, {columns})")
    index = FeatureIndex(keys)
    weights = np.zeros((index.size + 1, columns), np.float32)
    weights[index.lookup(keys)] = rows
    return index, weights


class DepParser(ABC):
    """Words + tags -> heads + relation labels. Subclasses implement `parse`, `train`, `_state`, `_from_state`."""

    kind: ClassVar[str] = ""
    config: Any
    vocab: Vocab

    @abstractmethod
    def parse(self, words: Sequence[str], tags: Sequence[str]) -> tuple[list[int], list[str]]:
        """Each word's head (0 = root) and relation."""

    @classmethod
    @abstractmethod
    def train(cls, sentences: Sequence[DepSentence], config: Any = None) -> DepParser: ...

    @abstractmethod
    def _state(self, directory: Path) -> dict: ...

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict, directory: Path) -> DepParser: ...

    def parse_sentences(self, sentences: Sequence[DepSentence]) -> list[DepSentence]:
        """Copies with heads and relations filled in, tags read from the model's column."""
        out = []
        for i, s in enumerate(sentences, 1):
            tags = s.tags(self.config.tag_column)
            if "_" in tags:
                raise InputError(f"sentence {i}: word {tags.index('_') + 1} has no {self.config.tag_column.upper()} "
                                 f"tag, and this parser reads that column")
            out.append(s.with_arcs(*self.parse(s.words, tags)))
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        return write_model_doc(directory, MODEL_FILE, FORMAT, VERSION, self.kind, self._state)


PARSER_KINDS: dict[str, str] = {
    "graph": "llmlab.text.dep_graph:GraphParser",
    "transition": "llmlab.text.dep_transition:TransitionParser",
}


def parser_class(kind: str) -> type[DepParser]:
    return load_class(PARSER_KINDS, kind, "dependency parser")


def load_parser(directory: str | os.PathLike) -> DepParser:
    """A parser saved with `DepParser.save`, of whichever kind."""
    doc, path = read_model_doc(directory, MODEL_FILE, FORMAT, VERSION, "dependency parser")
    return from_model_doc(parser_class(str(doc.get("kind"))), doc, path)
