"""Transition-based dependency parsing: arc-standard moves chosen greedily by an averaged perceptron
(Nivre 2004; Zhang & Nivre 2011 for the feature set, reduced).

The parser reads the sentence left to right with a stack (the root on it at the start) and a buffer
of the words still to come. Three kinds of move build the tree:

- SHIFT: the next buffer word goes onto the stack;
- LEFT-ARC(label): the top word s0 heads the word below it, s1, which leaves the stack;
- RIGHT-ARC(label): s1 heads s0, which leaves the stack.

2n moves parse n words, and every sequence makes a projective tree. The root may only take its one
dependent last (a RIGHT-ARC from the root with the buffer empty), so the tree has one root word.

Training uses a *static oracle*: for a gold tree, the move sequence that builds it (LEFT-ARC when s1's
gold head is s0; RIGHT-ARC when s0's gold head is s1 and s0 has all its dependents; else SHIFT). A
non-projective gold tree has no such sequence (the oracle would have to shift past an empty buffer):
`oracle` raises `NonProjective`. With `pseudo_projective` (the default) training first makes such trees
projective (`llmlab.text.pseudo_projective`: crossing arcs lifted, each lift written into the
dependent's label as ``l↑m``), so the parser learns the encoded labels as any others, and `parse`
undoes the lifts on its output, which can then have crossing arcs. Without it training skips those
sentences and logs how many (the graph parser with Chu-Liu/Edmonds can learn them).

With the oracle's moves fixed, every configuration it passes is one classification example of a
multiclass perceptron, the same in every epoch, so the features are computed once and the epochs run
as one compiled loop.

Features of a configuration: words and tags of s0, s1, s2, b0, b1, b2; tags and labels of the
leftmost and rightmost dependents of s0 and s1; the s0-s1 distance; their numbers of dependents on
each side; and conjunctions of these.
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
from llmlab.text.dep_parser import (
    FIRST_ID,
    NONE,
    DepParser,
    Vocab,
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
from llmlab.text.pseudo_projective import deprojectivize, projectivize

log = logging.getLogger(__name__)
FEATURE_SET = 1
SHIFT, LEFT, RIGHT = 0, 1, 2  # move kinds; class ids: SHIFT, then LEFT per label, then RIGHT per label
(S0W, S0P, S1W, S1P, S2P, B0W, B0P, B1W, B1P, B2P, LS0P, LS0R, RS0P, RS0R, LS1P, LS1R, RS1P, RS1R, DIST, S0VL, S0VR,
 S1VL, S1VR) = range(23)
TEMPLATES = templates_table([
    [S0W, S0P], [S0W], [S0P], [S1W, S1P], [S1W], [S1P], [B0W, B0P], [B0W], [B0P], [B1W, B1P], [B1W], [B1P],
    [S0W, S0P, S1W, S1P], [S0W, S0P, S1W], [S0W, S1W, S1P], [S0P, S1W, S1P], [S0W, S0P, S1P], [S0W, S1W],
    [S0P, S1P], [S0P, B0P], [S0W, B0W], [S0W, S0P, B0P], [S0P, S1P, S2P], [S0P, S1P, B0P], [S0P, B0P, B1P],
    [B0P, B1P, B2P], [S1P, S0P, LS0P], [S1P, S0P, RS0P], [S1P, LS1P, S0P], [S1P, RS1P, S0P], [S0P, LS0R],
    [S0P, RS0R], [S1P, LS1R], [S1P, RS1R], [S0P, LS0P, RS0P], [S0W, DIST], [S0P, DIST], [S0P, S1P, DIST],
    [S0W, S1W, DIST], [S0W, S0VL], [S0P, S0VL], [S0W, S0VR], [S0P, S0VR], [S1W, S1VL], [S1P, S1VL], [S1W, S1VR],
    [S1P, S1VR],
])


class NonProjective(InputError):
    """A gold tree that arc-standard moves cannot build."""


@dataclass(frozen=True)
class TransitionParserConfig:
    epochs: int = 10  # passes over the oracle's configurations
    word_min_count: int = 2  # rarer training words count as unknown, so the unknown-word features learn
    min_feature_count: int = 1  # features seen fewer times in training get no weight
    seed: int = 0  # shuffling order of the configurations each epoch
    tag_column: str = "auto"  # CoNLL-U column of the tags: "upos", "xpos", or "auto" (see llmlab.text.dep_parser)
    # train on non-projective trees made projective, and undo the lifts on the output (Nivre & Nilsson 2005);
    # False skips those trees. Models saved before the field existed load with False: they were trained so.
    pseudo_projective: bool = True

    def __post_init__(self):
        check_perceptron_config(self)


class State:
    """An arc-standard configuration over n words (position 0 is the root)."""

    def __init__(self, n: int):
        self.n, self.stack, self.b = n, [0], 1
        self.heads = np.full(n + 1, -1, np.int64)
        self.rels = np.full(n + 1, -1, np.int64)
        self.lc = np.full(n + 1, -1, np.int64)  # leftmost dependent so far
        self.rc = np.full(n + 1, -1, np.int64)  # rightmost dependent so far
        self.nl = np.zeros(n + 1, np.int64)  # dependents on the left so far
        self.nr = np.zeros(n + 1, np.int64)

    @property
    def done(self) -> bool:
        return self.b > self.n and len(self.stack) == 1

    def legal(self) -> tuple[bool, bool, bool]:
        """Whether SHIFT, LEFT-ARC, RIGHT-ARC may be made."""
        k = len(self.stack)
        return self.b <= self.n, k >= 3, k >= 3 or (k == 2 and self.b > self.n)

    def apply(self, kind: int, rel: int) -> None:
        if kind == SHIFT:
            self.stack.append(self.b)
            self.b += 1
            return
        s0, s1 = self.stack[-1], self.stack[-2]
        h, d = (s0, s1) if kind == LEFT else (s1, s0)
        self.heads[d], self.rels[d] = h, rel
        if d < h:
            self.nl[h] += 1
            self.lc[h] = d if self.lc[h] < 0 else min(self.lc[h], d)
        else:
            self.nr[h] += 1
            self.rc[h] = max(self.rc[h], d)
        del self.stack[-2 if kind == LEFT else -1]

    def atoms(self, w: np.ndarray, t: np.ndarray) -> list[int]:
        """The 23 atom values of this configuration for root-first ids `w`, `t`."""
        st, n = self.stack, self.n
        s0, s1, s2 = (st[-i] if len(st) >= i else -1 for i in (1, 2, 3))
        b0, b1, b2 = (self.b + i if self.b + i <= n else -1 for i in (0, 1, 2))

        def word(i):
            return NONE if i < 0 else int(w[i])

        def tag(i):
            return NONE if i < 0 else int(t[i])

        def child(arr, i):  # (tag, label) of a dependent of i, NONE when absent
            c = -1 if i < 0 else int(arr[i])
            return (NONE, NONE) if c < 0 else (int(t[c]), FIRST_ID + int(self.rels[c]))

        dist = 0 if s1 < 0 else min(s0 - s1, 6)
        return [word(s0), tag(s0), word(s1), tag(s1), tag(s2), word(b0), tag(b0), word(b1), tag(b1), tag(b2),
                *child(self.lc, s0), *child(self.rc, s0), *child(self.lc, s1), *child(self.rc, s1), dist,
                min(self.nl[s0], 5) if s0 >= 0 else 0, min(self.nr[s0], 5) if s0 >= 0 else 0,
                min(self.nl[s1], 5) if s1 >= 0 else 0, min(self.nr[s1], 5) if s1 >= 0 else 0]


def oracle(heads: Sequence[int], rels: Sequence[int]) -> list[tuple[int, int]]:
    """The static arc-standard oracle's (move kind, label) sequence for a gold tree (1-based heads);
    `NonProjective` when the tree has crossing arcs.

    >>> oracle([2, 0, 2], [0, 1, 2])  # 1 <- 2 -> 3
    [(0, -1), (0, -1), (1, 0), (0, -1), (2, 2), (2, 1)]
    """
    return [m for m, _ in _walk(heads, rels)]


def _walk(heads: Sequence[int], rels: Sequence[int]):
    """(move, configuration before it) pairs of the oracle's sequence."""
    n = len(heads)
    gold = np.array([-1, *heads])
    need = np.bincount(gold[1:], minlength=n + 1)  # dependents each word still has to collect
    st = State(n)
    while not st.done:
        stack = st.stack
        s0, s1 = stack[-1], (stack[-2] if len(stack) >= 2 else -1)
        if s1 > 0 and gold[s1] == s0:
            move = (LEFT, rels[s1 - 1])
        elif s1 >= 0 and gold[s0] == s1 and need[s0] == 0:
            move = (RIGHT, rels[s0 - 1])
        elif st.b <= n:
            move = (SHIFT, -1)
        else:
            raise NonProjective("the tree is not projective: arc-standard moves cannot build it")
        yield move, st
        if move[0] != SHIFT:
            need[s0 if move[0] == LEFT else s1] -= 1
        st.apply(*move)


def _class_of(kind: int, rel: int, n_rels: int) -> int:
    return 0 if kind == SHIFT else 1 + rel + (n_rels if kind == RIGHT else 0)


def _class_mask(legal: tuple[bool, bool, bool], n_rels: int) -> np.ndarray:
    return np.repeat(np.array(legal), [1, n_rels, n_rels])


@jit
def _train_epoch(slots: np.ndarray, golds: np.ndarray, masks: np.ndarray, order: np.ndarray, w: np.ndarray,
                 u: np.ndarray, step: int, missing: int) -> tuple[int, int]:
    """One multiclass perceptron pass over the configurations in `order`; (next step, mistakes)."""
    c = w.shape[1]
    wrong = 0
    for i in order:
        best, arg = -np.inf, 0
        for k in range(c):
            if masks[i, k]:
                v = 0.0
                for j in range(slots.shape[1]):
                    v += w[slots[i, j], k]
                if v > best:
                    best, arg = v, k
        g = golds[i]
        if arg != g:
            wrong += 1
            for j in range(slots.shape[1]):
                r = slots[i, j]
                if r != missing:
                    w[r, g] += 1.0
                    w[r, arg] -= 1.0
                    u[r, g] += step
                    u[r, arg] -= step
        step += 1
    return step, wrong


class TransitionParser(DepParser):
    """Greedy arc-standard parser (see the module docstring).

    >>> from llmlab.text.treebank import generate_treebank
    >>> p = TransitionParser.train(generate_treebank(200, seed=1), TransitionParserConfig(epochs=3))
    >>> p.parse(["我们", "喜欢", "书", "。"], ["r", "v", "n", "w"])
    ([2, 0, 2, 2], ['nsubj', 'root', 'obj', 'punct'])
    """

    kind = "transition"

    def __init__(self, vocab: Vocab, index: FeatureIndex, weights: np.ndarray, config: TransitionParserConfig):
        if weights.shape != (index.size + 1, 1 + 2 * len(vocab.rels)):
            raise ValueError(f"weights of shape {weights.shape} do not fit {index.size} features and "
                             f"{len(vocab.rels)} relations")
        self.vocab, self.index, self.weights, self.config = vocab, index, weights, config

    def parse(self, words: Sequence[str], tags: Sequence[str]) -> tuple[list[int], list[str]]:
        if len(words) != len(tags):
            raise InputError(f"{len(words)} words but {len(tags)} tags")
        w, t = self.vocab.encode(words, tags)
        st, r = State(len(words)), len(self.vocab.rels)
        while not st.done:
            slots = self.index.lookup(template_keys(np.array([st.atoms(w, t)]), TEMPLATES))[0]
            scores = np.where(_class_mask(st.legal(), r), self.weights[slots].sum(axis=0), -np.inf)
            k = int(np.argmax(scores))
            st.apply(*((SHIFT, -1) if k == 0 else (LEFT, k - 1) if k <= r else (RIGHT, k - 1 - r)))
        heads, rels = st.heads[1:].tolist(), [self.vocab.rels[i] for i in st.rels[1:]]
        return deprojectivize(heads, rels) if self.config.pseudo_projective and heads else (heads, rels)

    @classmethod
    def train(cls, sentences: Sequence[DepSentence], config: TransitionParserConfig | None = None) -> TransitionParser:
        config, data = resolved(config or TransitionParserConfig(), sentences)
        if config.pseudo_projective:
            data, lifted = _projectivized(data)
            if lifted:
                log.info("%d of %d training trees are not projective: made projective by lifting arcs",
                         lifted, len(data))
        vocab = Vocab.build(data, config.word_min_count)
        r = len(vocab.rels)
        atoms, golds, masks, skipped = [], [], [], 0
        for ws, ts, hs, rs in progress(data, desc="oracle"):
            w, t = vocab.encode(ws, ts)
            try:
                steps = [(st.atoms(w, t), _class_of(*m, r), _class_mask(st.legal(), r))
                         for m, st in _walk(hs, [vocab.rel_id[x] for x in rs])]
            except NonProjective:
                skipped += 1
                continue
            for a, g, m in steps:
                atoms.append(a)
                golds.append(g)
                masks.append(m)
        if skipped:
            log.warning("%d of %d training trees are not projective: arc-standard cannot build them, skipped "
                        "(pseudo_projective would learn them)", skipped, len(data))
        if not atoms:
            raise InputError("no projective training tree: the transition parser has nothing to learn from")
        keys = template_keys(np.array(atoms), TEMPLATES)
        uniq, counts = np.unique(keys, return_counts=True)
        index = FeatureIndex(uniq[counts >= config.min_feature_count])
        log.info("%d configurations, %d features", len(keys), index.size)
        slots = index.lookup(keys)
        del keys
        golds_a, masks_a = np.array(golds, np.int64), np.array(masks)
        w = np.zeros((index.size + 1, 1 + 2 * r), np.float32)
        u = np.zeros(w.shape, np.float64)
        rng, step = np.random.default_rng(config.seed), 1
        for epoch in progress(range(config.epochs), desc="epochs"):
            step, wrong = _train_epoch(slots, golds_a, masks_a, rng.permutation(len(slots)), w, u, step,
                                       index.missing)
            log.info("epoch %d: %d of %d oracle moves mispredicted", epoch + 1, wrong, len(slots))
        return cls(vocab, index, averaged(w, u, step), config)

    def _state(self, directory: Path) -> dict:
        save_weights(directory, self.index, self.weights)
        return {"config": config_to_dict(self.config), "feature_set": FEATURE_SET, "vocab": self.vocab.to_dict()}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> TransitionParser:
        check_feature_set(state, directory, "transition", FEATURE_SET)
        vocab = Vocab.from_dict(state["vocab"])
        index, w = load_weights(directory, 1 + 2 * len(vocab.rels))
        # models saved before pseudo-projective parsing existed skipped non-projective trees and decoded as is
        config = config_from_dict(TransitionParserConfig, {"pseudo_projective": False, **state["config"]})
        return cls(vocab, index, w, config)


def _projectivized(data: list) -> tuple[list, int]:
    """`training_data` rows with every tree made projective, and how many had to change."""
    out, lifted = [], 0
    for ws, ts, hs, rs in data:
        ph, pr = projectivize(hs, rs)
        lifted += ph != hs
        out.append((ws, ts, ph, pr))
    return out, lifted
