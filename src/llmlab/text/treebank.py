"""A generated Chinese dependency treebank, so the parsers have data to learn from offline.

No dependency treebank ships with llmlab or its dependencies (pfr1998 has words and POS tags, no
trees), so `generate_treebank` writes one from a small probabilistic grammar, head-outward: a head
is chosen, then each of its dependents, each of which heads its own phrase in turn. Words are real:
each slot of the grammar draws a word of the right PKU tag from the pfr1998 train split, the more
frequent ones more often (weight: the square root of the count, among the 400 most frequent).

The grammar (labels as in Universal Dependencies):

- a sentence is a clause whose verb is the root, optionally followed by "，" and a second clause
  (``conj`` of the first verb, the comma its ``punct``); "。" ends it (``punct`` of the root);
- a clause: an optional time word (``obl:tmod``), a subject noun phrase (``nsubj``), adverbs
  (``advmod``), an optional prepositional phrase (preposition ``case`` of its noun, the noun ``obl``
  of the verb), the verb, an optional aspect particle 了 (``aux``), an optional object (``obj``);
- a noun phrase: a pronoun alone, or a noun with, in this order, an optional numeral + classifier
  (numeral ``nummod`` of the classifier, classifier ``clf`` of the noun), an optional 的-phrase (a noun,
  or a verb with its object, then 的: ``nmod`` + ``case``, or ``acl`` + ``mark:rel``), an optional
  adjective (``amod``), an optional noun compound (``compound``); sometimes coordinated with a second
  noun phrase (conjunction 和/与/及 ``cc`` of the second head, which is ``conj`` of the first).

Every tree is projective. It shows how the algorithms learn and decode, on trees with real ambiguity
(a noun after a verb may be its object or the start of the next noun phrase; 的 closes phrases of
several kinds) and real words; its accuracy figures say nothing about parsing real Chinese text,
whose constructions and label conventions are far richer.

Splits: `treebank_split` gives train, dev and test drawn with different seeds; the sizes below are
the built-in ones.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from llmlab.core.errors import InputError
from llmlab.text.conllu import DepSentence, Token, with_text

SPLIT_SIZES = {"train": 4000, "dev": 500, "test": 500}
SPLIT_SEEDS = {"train": 0, "dev": 1, "test": 2}
UPOS = {"n": "NOUN", "nr": "PROPN", "ns": "PROPN", "vn": "NOUN", "t": "NOUN", "v": "VERB", "a": "ADJ", "d": "ADV",
        "p": "ADP", "m": "NUM", "q": "NOUN", "r": "PRON", "u": "PART", "c": "CCONJ", "w": "PUNCT"}
FIXED = {"c": ["和", "与", "及"], "p": ["在", "对", "从", "向", "为", "与", "由", "把"]}
TOP = 400


@dataclass
class Node:
    word: str
    tag: str  # PKU tag (XPOS)
    rel: str = "root"
    left: list[Node] = field(default_factory=list)  # dependents before the head, in order
    right: list[Node] = field(default_factory=list)  # and after it


@functools.lru_cache(maxsize=1)
def _lexicon() -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """PKU tag -> (words, sampling probabilities) from the pfr1998 train split."""
    from llmlab.data.corpora import pfr1998

    counts: dict[str, Counter] = {t: Counter() for t in UPOS}
    for s in pfr1998("train"):
        for w, t in s:
            if t in counts and not any(c.isspace() for c in w):
                counts[t][w] += 1
    out = {}
    for t, c in counts.items():
        pairs = [(w, c[w] or 1) for w in FIXED[t]] if t in FIXED else c.most_common(TOP)
        if not pairs:
            raise InputError(f"pfr1998 has no words tagged {t!r} to build the treebank from")
        p = np.sqrt([k for _, k in pairs])
        out[t] = (tuple(w for w, _ in pairs), p / p.sum())
    return out


class _Grammar:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.lex = rng, _lexicon()

    def p(self, prob: float) -> bool:
        return bool(self.rng.random() < prob)

    def word(self, tag: str, rel: str) -> Node:
        words, probs = self.lex[tag]
        return Node(words[self.rng.choice(len(words), p=probs)], tag, rel)

    def noun(self, rel: str) -> Node:
        return self.word(str(self.rng.choice(["n", "n", "n", "n", "n", "nr", "ns", "vn"])), rel)

    def noun_phrase(self, rel: str, depth: int = 0) -> Node:
        if self.p(0.15):
            return self.word("r", rel)
        head = self.noun(rel)
        if self.p(0.2):
            clf = self.word("q", "clf")
            clf.left.append(self.word("m", "nummod"))
            head.left.append(clf)
        if depth == 0 and self.p(0.25):
            if self.p(0.7):
                mod = self.noun("nmod")
                mod.right.append(Node("的", "u", "case"))
            else:
                mod = self.word("v", "acl")
                mod.right += [self.noun("obj"), Node("的", "u", "mark:rel")]
            head.left.append(mod)
        if self.p(0.25):
            head.left.append(self.word("a", "amod"))
        if self.p(0.15):
            head.left.append(self.word("n", "compound"))
        if depth == 0 and self.p(0.1):
            other = self.noun_phrase("conj", depth + 1)
            other.left.insert(0, self.word("c", "cc"))
            head.right.append(other)
        return head

    def clause(self, rel: str, subject: float = 0.85) -> Node:
        verb = self.word("v", rel)
        if self.p(0.2):
            verb.left.append(self.word("t", "obl:tmod"))
        if self.p(subject):
            verb.left.append(self.noun_phrase("nsubj"))
        for _ in range(int(self.rng.choice([0, 0, 1, 1, 2]))):
            verb.left.append(self.word("d", "advmod"))
        if self.p(0.25):
            obl = self.noun_phrase("obl")
            obl.left.insert(0, self.word("p", "case"))
            verb.left.append(obl)
        if self.p(0.2):
            verb.right.append(Node("了", "u", "aux"))
        if self.p(0.7):
            verb.right.append(self.noun_phrase("obj"))
        return verb

    def sentence(self) -> Node:
        root = self.clause("root")
        if self.p(0.3):
            second = self.clause("conj", subject=0.5)
            second.left.insert(0, Node("，", "w", "punct"))
            root.right.append(second)
        root.right.append(Node("。", "w", "punct"))
        return root


def _linearize(node: Node, head: int, out: list[tuple[Node, int]]) -> None:
    """Append (node, head position) in word order; positions are 1-based, filled in as words land."""
    mine = len(out) + 1 + _size_left(node)
    for child in node.left:
        _linearize(child, mine, out)
    out.append((node, head))
    for child in node.right:
        _linearize(child, mine, out)


def _size_left(node: Node) -> int:
    return sum(_size(c) for c in node.left)


def _size(node: Node) -> int:
    return 1 + sum(_size(c) for c in node.left) + sum(_size(c) for c in node.right)


def generate_treebank(n: int, seed: int = 0, prefix: str = "synthetic") -> list[DepSentence]:
    """`n` generated sentences (see the module docstring); the same seed gives the same sentences.

    >>> s = generate_treebank(1, seed=3)[0]
    >>> s.parsed, s.comments[0]
    (True, '# sent_id = synthetic-3-1')
    """
    if n < 0:
        raise InputError(f"the number of sentences must be >= 0, got {n}")
    grammar = _Grammar(np.random.default_rng(seed))
    out = []
    for i in range(1, n + 1):
        words: list[tuple[Node, int]] = []
        _linearize(grammar.sentence(), 0, words)
        toks = [Token(k, w.word, "_", UPOS[w.tag], w.tag, "_", h, w.rel) for k, (w, h) in enumerate(words, 1)]
        # the text runs the words together, as Chinese is written: SpaceAfter=No on all but the last (UD's rule)
        text = "".join(w.word for w, _ in words)
        out.append(with_text(DepSentence(toks, [f"# sent_id = {prefix}-{seed}-{i}"]), text))
    return out


def treebank_split(split: str = "train", size: int | None = None) -> list[DepSentence]:
    """The built-in generated treebank's `split` ("train", "dev", "test"): `SPLIT_SIZES[split]` sentences
    (or the first `size`) from the split's own seed."""
    if split not in SPLIT_SIZES:
        raise InputError(f"unknown treebank split {split!r}; choose one of {sorted(SPLIT_SIZES)}")
    n = SPLIT_SIZES[split] if size is None else size
    return generate_treebank(n, SPLIT_SEEDS[split], prefix=f"synthetic-{split}")
