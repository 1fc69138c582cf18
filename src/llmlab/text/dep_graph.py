"""Graph-based dependency parsing: a first-order (arc-factored) model trained with an averaged
structured perceptron (McDonald, Crammer & Pereira 2005, "MSTParser").

Every candidate arc h -> d gets a score, the sum of the weights of its features; a decoder
(`llmlab.text.dep_decode`: Eisner for projective trees, Chu-Liu/Edmonds for any tree) finds the tree
with the highest total. Training decodes each sentence with the current weights and, where the
predicted tree differs from the gold one, adds the features of the gold arcs and subtracts those of
the predicted ones (Collins' perceptron); the saved weights are the average over all steps.

Features of an arc, MSTParser's first-order set: the head's and the dependent's word and tag alone
and in pairs, tag 4-grams of the two words and their neighbours (h-1/h+1 with d-1/d+1), each also
joined with the arc's direction and distance (1..5, 6-10, more); and for each distinct tag that lies
between the two words, (head tag, that tag, dependent tag, direction + distance).

Labels come from a second classifier: a multiclass averaged perceptron over the same features of
the chosen arc, trained on the gold arcs alongside the tree model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.jit import jit
from llmlab.core.progress import progress
from llmlab.text.conllu import DepSentence
from llmlab.text.dep_decode import chu_liu_edmonds, eisner
from llmlab.text.dep_parser import (
    NONE,
    DepParser,
    Vocab,
    _mix,
    averaged,
    check_feature_set,
    check_perceptron_config,
    load_weights,
    resolved,
    save_weights,
    template_keys,
    templates_table,
)
from llmlab.text.hashindex import FeatureIndex

log = logging.getLogger(__name__)
FEATURE_SET = 1  # version of the templates below; saved with each model
HW, HP, DW, DP, HP_L, HP_R, DP_L, DP_R, ATT = range(9)  # atom columns of an arc
_BASE = [[HW, HP], [HW], [HP], [DW, DP], [DW], [DP], [HW, HP, DW, DP], [HP, DW, DP], [HW, DW, DP], [HW, HP, DP],
         [HW, HP, DW], [HW, DW], [HP, DP], [HP, HP_R, DP_L, DP], [HP_L, HP, DP_L, DP], [HP, HP_R, DP, DP_R],
         [HP_L, HP, DP, DP_R]]
TEMPLATES = templates_table([[ATT]] + _BASE + [t + [ATT] for t in _BASE])
BETWEEN = 1000  # template number of the in-between tag features


@dataclass(frozen=True)
class GraphParserConfig:
    epochs: int = 10  # passes over the training sentences
    decoder: str = "eisner"  # "eisner" (projective trees) or "cle" (Chu-Liu/Edmonds: any tree)
    word_min_count: int = 2  # rarer training words count as unknown, so the unknown-word features learn
    min_feature_count: int = 1  # features seen fewer times in training get no weight
    seed: int = 0  # shuffling order of the sentences each epoch
    tag_column: str = "auto"  # CoNLL-U column of the tags: "upos", "xpos", or "auto" (see llmlab.text.dep_parser)

    def __post_init__(self):
        check_perceptron_config(self)
        if self.decoder not in ("eisner", "cle"):
            raise InputError(f"decoder must be 'eisner' or 'cle', got {self.decoder!r}")


def arc_atoms(w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """((n + 1) * n, 9) atoms of every arc h -> d (h in 0..n, d in 1..n; row h * n + d - 1) of a sentence
    with root-first ids `w`, `t` (n + 1,). Direction and distance: ``8 * (h < d) + bucket(|h - d|)``."""
    n = len(w) - 1
    h, d = np.divmod(np.arange((n + 1) * n), n)
    d = d + 1
    tp = np.concatenate([[NONE], t, [NONE]])  # tp[i + 1] is the tag at i; beyond the sentence: NONE
    dist = np.abs(h - d)
    bucket = np.where(dist <= 5, dist, np.where(dist <= 10, 6, 7))
    att = 8 * (h < d) + bucket
    return np.stack([w[h], t[h], w[d], t[d], tp[h], tp[h + 2], tp[d], tp[d + 2], att], axis=1)


@jit
def _between_keys(t: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """(arcs, most distinct tags between any arc's ends) keys of the in-between features, 0 as padding."""
    n = t.shape[0] - 1
    seen = np.zeros(int(t.max()) + 1, np.int64)
    counts = np.zeros(atoms.shape[0], np.int64)
    stamp = 0
    for pass_ in range(2):
        width = counts.max() if pass_ else 0
        out = np.zeros((atoms.shape[0], max(width, 1)), np.uint64)
        for h in range(n + 1):
            for d in range(1, n + 1):
                if abs(h - d) < 2:
                    continue
                row = h * n + d - 1
                stamp += 1
                k = 0
                for b in range(min(h, d) + 1, max(h, d)):
                    if seen[t[b]] != stamp:
                        seen[t[b]] = stamp
                        if pass_:
                            key = _mix(_mix(_mix(_mix(np.uint64(BETWEEN), np.uint64(atoms[row, HP])),
                                                 np.uint64(t[b])), np.uint64(atoms[row, DP])),
                                       np.uint64(atoms[row, ATT]))
                            out[row, k] = key | np.uint64(1)
                        k += 1
                counts[row] = k
    return out


def arc_keys(w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """((n + 1) * n, F) feature keys of every arc (`arc_atoms`' rows); 0 pads the in-between ones."""
    atoms = arc_atoms(w, t)
    return np.concatenate([template_keys(atoms, TEMPLATES), _between_keys(t, atoms)], axis=1)


def arc_slots(index: FeatureIndex, keys: np.ndarray) -> np.ndarray:
    """Weight rows (int32, shaped as `keys`) of arc feature keys; key 0 (no feature) and unknown keys get
    the index's `missing` row, which stays 0."""
    slots = index.lookup(keys).astype(np.int32)
    slots[keys == 0] = index.missing
    return slots


def score_matrix(weights: np.ndarray, slots: np.ndarray, n: int) -> np.ndarray:
    """(n + 1, n + 1) arc scores from the rows of each arc's features; no arc into the root or a loop."""
    s = np.full((n + 1, n + 1), -np.inf)
    s[:, 1:] = weights[slots].sum(axis=1).reshape(n + 1, n)
    s[np.arange(n + 1), np.arange(n + 1)] = -np.inf
    return s


class GraphParser(DepParser):
    """First-order graph-based parser (see the module docstring).

    >>> from llmlab.text.treebank import generate_treebank
    >>> p = GraphParser.train(generate_treebank(200, seed=1), GraphParserConfig(epochs=2))
    >>> heads, rels = p.parse(["我们", "喜欢", "书", "。"], ["r", "v", "n", "w"])
    >>> heads, rels
    ([2, 0, 2, 2], ['nsubj', 'root', 'obj', 'punct'])
    """

    kind = "graph"

    def __init__(self, vocab: Vocab, index: FeatureIndex, arc_w: np.ndarray, label_w: np.ndarray,
                 config: GraphParserConfig):
        if arc_w.shape != (index.size + 1,) or label_w.shape != (index.size + 1, len(vocab.rels)):
            raise ValueError(f"weights of shapes {arc_w.shape} and {label_w.shape} do not fit {index.size} features "
                             f"and {len(vocab.rels)} relations")
        self.vocab, self.index, self.arc_w, self.label_w, self.config = vocab, index, arc_w, label_w, config

    def _slots(self, w: np.ndarray, t: np.ndarray) -> np.ndarray:
        return arc_slots(self.index, arc_keys(w, t))

    def _decode(self, s: np.ndarray) -> np.ndarray:
        return np.array((eisner if self.config.decoder == "eisner" else chu_liu_edmonds)(s), np.int64)

    def parse(self, words: Sequence[str], tags: Sequence[str]) -> tuple[list[int], list[str]]:
        if len(words) != len(tags):
            raise InputError(f"{len(words)} words but {len(tags)} tags")
        if not words:
            return [], []
        n = len(words)
        slots = self._slots(*self.vocab.encode(words, tags))
        heads = self._decode(score_matrix(self.arc_w, slots, n))
        arcs = heads * n + np.arange(n)
        labels = self.label_w[slots[arcs]].sum(axis=1).argmax(axis=1)  # (n, F, R) -> (n,)
        return heads.tolist(), [self.vocab.rels[i] for i in labels]

    @classmethod
    def train(cls, sentences: Sequence[DepSentence], config: GraphParserConfig | None = None) -> GraphParser:
        config, data = resolved(config or GraphParserConfig(), sentences)
        vocab = Vocab.build(data, config.word_min_count)
        keys = [arc_keys(*vocab.encode(ws, ts)) for ws, ts, _, _ in progress(data, desc="arc features")]
        uniq, counts = np.unique(np.concatenate([k.ravel() for k in keys]), return_counts=True)
        index = FeatureIndex(uniq[(counts >= config.min_feature_count) & (uniq != 0)])
        log.info("%d arc features", index.size)
        slots = [arc_slots(index, k) for k in keys]
        del keys
        golds = [(np.array(h, np.int64), np.array([vocab.rel_id[r] for r in rs])) for _, _, h, rs in data]
        arc_w, label_w = _train_weights(cls(vocab, index, np.zeros(index.size + 1, np.float32),
                                            np.zeros((index.size + 1, len(vocab.rels)), np.float32), config),
                                        slots, golds)
        return cls(vocab, index, arc_w, label_w, config)

    def _state(self, directory: Path) -> dict:
        save_weights(directory, self.index, np.concatenate([self.arc_w[:, None], self.label_w], axis=1))
        return {"config": config_to_dict(self.config), "feature_set": FEATURE_SET, "vocab": self.vocab.to_dict()}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> GraphParser:
        check_feature_set(state, directory, "graph", FEATURE_SET)
        vocab = Vocab.from_dict(state["vocab"])
        index, w = load_weights(directory, 1 + len(vocab.rels))
        return cls(vocab, index, np.ascontiguousarray(w[:, 0]), np.ascontiguousarray(w[:, 1:]),
                   config_from_dict(GraphParserConfig, state["config"]))


def _train_weights(model: GraphParser, slots: list[np.ndarray],
                   golds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Averaged arc and label weights after `model.config.epochs` perceptron passes; `model` holds the
    live (not averaged) weights meanwhile, so its decoder scores with them."""
    cfg, miss = model.config, model.index.missing
    w, lw = model.arc_w, model.label_w
    u, lu = np.zeros(w.shape, np.float64), np.zeros(lw.shape, np.float64)
    rng, step = np.random.default_rng(cfg.seed), 1
    for epoch in progress(range(cfg.epochs), desc="epochs"):
        wrong = 0
        for i in rng.permutation(len(slots)):
            gold, rels = golds[i]
            n, sl = len(gold), slots[i]
            pred = model._decode(score_matrix(w, sl, n))
            bad = np.flatnonzero(pred != gold)
            if bad.size:
                wrong += bad.size
                for heads, sign in ((gold, 1.0), (pred, -1.0)):
                    rows = sl[heads[bad] * n + bad].ravel()
                    np.add.at(w, rows, sign)
                    np.add.at(u, rows, sign * step)
                w[miss] = u[miss] = 0.0  # padding row: always zero
            gold_rows = sl[gold * n + np.arange(n)]  # (n, F)
            guess = lw[gold_rows].sum(axis=1).argmax(axis=1)
            miss_l = np.flatnonzero(guess != rels)
            for labels, sign in ((rels, 1.0), (guess, -1.0)):
                idx = (gold_rows[miss_l], labels[miss_l][:, None])
                np.add.at(lw, idx, sign)
                np.add.at(lu, idx, sign * step)
            lw[miss] = lu[miss] = 0.0
            step += 1
        log.info("epoch %d: %d wrong heads on the training sentences", epoch + 1, wrong)
    return averaged(w, u, step), averaged(lw, lu, step)
