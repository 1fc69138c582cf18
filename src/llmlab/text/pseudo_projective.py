"""Pseudo-projective parsing (Nivre & Nilsson 2005): a projective parser learns non-projective trees.

`projectivize` turns a tree with crossing arcs into a projective one by *lifting* arcs: the arc h -> d
becomes head(h) -> d. An arc is non-projective when a word between its two ends is not dominated by its
head; the shortest such arc (the leftmost dependent among equally short ones) is lifted, once, and the
search starts again, until no arc is non-projective. A lifted arc never reaches the root (0): the root
word dominates every word, so its own arcs are never non-projective, and the tree keeps one root word.

Each lift is recorded in the dependent's label with the paper's *Head* scheme: a dependent d, attached by
label `l` to a head whose own arc has label `m`, gets the label ``l↑m`` (`SEP`, U+2191 UPWARDS ARROW,
which no Universal Dependencies label uses; labels that already hold it are refused). Lifting a word a
second time keeps its label: `m` always names its original (syntactic) head's arc, by that arc's label
in the input tree.

`deprojectivize` undoes it on a parser's output: the lifted words are taken breadth-first from the root
(in the tree as given); for a word labelled ``l↑m``, the subtree of its current head is searched
breadth-first, left to right, excluding the word's own subtree, for the first word whose label (before
any ``↑``) is `m`, and the word is attached to it. Its label becomes `l` in any case. A word whose search
fails is tried again after the others have moved (its original head may itself have been lifted out of
the subtree and not yet put back), for as long as a round moves some word; one that still finds nothing
keeps its arc. Where several words of the subtree carry the label `m`, the first may not be the original
head: the Head scheme cannot tell them apart, and the round trip is not exact. With every label in the
tree distinct it is (tested on a few thousand random trees).

>>> heads = [5, 1, 0, 5, 3, 3, 6, 3]  # "Z nich je jen jedna na kvalitu ." (the paper's Figure 1, one root)
>>> labels = ["AuxP", "Atr", "Pred", "AuxZ", "Sb", "AuxP", "Adv", "AuxK"]
>>> projectivize(heads, labels)  # Z's arc from jedna crosses je's: lifted to je
([3, 1, 0, 5, 3, 3, 6, 3], ['AuxP↑Sb', 'Atr', 'Pred', 'AuxZ', 'Sb', 'AuxP', 'Adv', 'AuxK'])
>>> deprojectivize(*projectivize(heads, labels)) == (heads, labels)
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from llmlab.core.errors import InputError
from llmlab.text.conllu import tree_error

SEP = "↑"


def _dominance(heads: Sequence[int]) -> np.ndarray:
    """(n + 1, n + 1) bool: [a, w] when a is w or one of its ancestors (0 the root)."""
    n = len(heads)
    dom = np.zeros((n + 1, n + 1), bool)
    dom[0, :] = True
    for w in range(1, n + 1):
        a = w
        while a != 0:
            dom[a, w] = True
            a = heads[a - 1]
    return dom


def nonprojective_arcs(heads: Sequence[int]) -> list[int]:
    """The dependents whose arcs are non-projective: some word between the arc's ends is not its head's
    descendant. A single-rooted tree has none exactly when `llmlab.text.dep_decode.projective` holds.

    >>> nonprojective_arcs([3, 0, 2]), nonprojective_arcs([2, 0, 2])  # 3 -> 1 spans the root word 2
    ([1], [])
    """
    dom = _dominance(heads)
    out = []
    for d, h in enumerate(heads, 1):
        lo, hi = min(h, d), max(h, d)
        if not dom[h, lo + 1: hi].all():
            out.append(d)
    return out


def _check(heads: Sequence[int], labels: Sequence[str]) -> None:
    if len(heads) != len(labels):
        raise InputError(f"{len(heads)} heads but {len(labels)} labels")
    err = tree_error(list(heads))
    if err is not None:
        raise InputError(f"not a tree: {err}")


def projectivize(heads: Sequence[int], labels: Sequence[str]) -> tuple[list[int], list[str]]:
    """A projective tree and its labels: the shortest non-projective arc lifted to its head's head, again
    and again, each lifted word's label ``l`` becoming ``l↑m`` (m: its original head's label; see the
    module docstring). A projective tree comes back unchanged.

    >>> projectivize([3, 4, 0, 3], ["a", "b", "root", "c"])  # 4 -> 2 spans the root word 3: lifted to 3
    ([3, 3, 0, 3], ['a', 'b↑c', 'root', 'c'])
    """
    _check(heads, labels)
    bad = [x for x in labels if SEP in x]
    if bad:
        raise InputError(f"label {bad[0]!r} holds {SEP!r}, which pseudo-projective parsing uses to encode lifts")
    heads, out = list(heads), list(labels)
    lifted = [False] * len(heads)
    while True:
        arcs = nonprojective_arcs(heads)
        if not arcs:
            return heads, out
        d = min(arcs, key=lambda x: (abs(heads[x - 1] - x), x))
        h = heads[d - 1]
        if not lifted[d - 1]:  # h is still the original head: its label is the input's
            out[d - 1], lifted[d - 1] = f"{labels[d - 1]}{SEP}{labels[h - 1]}", True
        heads[d - 1] = heads[h - 1]  # never 0: arcs of the root word are projective


def _children(heads: list[int], x: int) -> list[int]:
    return [c for c, h in enumerate(heads, 1) if h == x]


def _reattach(heads: list[int], d: int, want: str, base: list[str]) -> bool:
    """Attach d to the first word labelled `want` below its head, outside its own subtree; whether found."""
    queue = deque(c for c in _children(heads, heads[d - 1]) if c != d)
    while queue:
        x = queue.popleft()
        if base[x - 1] == want:
            heads[d - 1] = x
            return True
        queue.extend(_children(heads, x))  # d is never queued, so neither is its subtree
    return False


def deprojectivize(heads: Sequence[int], labels: Sequence[str]) -> tuple[list[int], list[str]]:
    """The tree `projectivize` encoded, as far as the labels tell: each ``l↑m`` word reattached to the first
    word labelled m (breadth-first, left to right) below its head and outside its own subtree, labelled l
    (see the module docstring for the order). Words without ``↑`` keep their arcs and labels. The result
    is a tree with the same root word.

    >>> deprojectivize([3, 3, 0, 3], ['a', 'b↑c', 'root', 'c'])
    ([3, 4, 0, 3], ['a', 'b', 'root', 'c'])
    >>> deprojectivize([2, 0], ['x↑none', 'root'])  # nothing labelled "none" below word 2: kept, label restored
    ([2, 0], ['x', 'root'])
    """
    _check(heads, labels)
    heads, labels = list(heads), list(labels)
    base = [x.split(SEP, 1)[0] for x in labels]
    want = {d: x.split(SEP, 1)[1] for d, x in enumerate(labels, 1) if SEP in x}
    order, queue = [], deque(_children(heads, 0))
    while queue:  # breadth-first from the root, in the tree as given
        x = queue.popleft()
        order.append(x)
        queue.extend(_children(heads, x))
    pending = [d for d in order if SEP in labels[d - 1]]
    for d in pending:
        labels[d - 1] = base[d - 1]
    while pending:  # a word whose search fails is tried again once others have moved, while any move
        left = [d for d in pending if not _reattach(heads, d, want[d], base)]
        if len(left) == len(pending):
            break
        pending = left
    return heads, labels
