"""Maximum spanning trees over arc scores: the decoders of graph-based dependency parsing.

An arc-factored parser scores every possible arc; `scores[h, d]` is the score of word `h` heading word
`d` (row and column 0 are the artificial root, words are 1..n). A tree's score is the sum of its arcs'
scores, and decoding finds the best tree. Both decoders here return exactly one word attached to the
root (UD's rule; without it, a parser happily hangs several fragments off the root).

- `eisner`: the best *projective* tree (no two arcs cross when drawn above the sentence) by dynamic
  programming over spans, O(n^3) (Eisner 1996). A span [s, t] is *complete* when its head is an end
  point and the far end has taken all its dependents, *incomplete* when it is just the arc s-t plus
  the two complete halves under it. The single root is chosen last: the words form one projective
  tree under some word r, so the answer is the best r of ``left[1, r] + right[r, n] + scores[0, r]``.
- `chu_liu_edmonds`: the best tree of any shape (non-projective) in O(n^3): every word takes its best
  head; if that has a cycle, the cycle is contracted into one node (an arc into it pays for the cycle
  arc it replaces) and the smaller problem solved recursively, then expanded (Chu & Liu 1965,
  Edmonds 1967). One root: every root arc's score is lowered by a constant larger than any two trees'
  difference, so the best tree uses as few root arcs as a tree can, one, and among those is the best.

>>> s = np.array([[0, 9, 0, 1], [0, 0, 8, 0], [0, 0, 0, 7], [0, 0, 0, 0]], dtype=float)
>>> eisner(s), chu_liu_edmonds(s)
([0, 1, 2], [0, 1, 2])
"""

from __future__ import annotations

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.jit import jit

NEG = -np.inf


def _check(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise InputError(f"arc scores must be an (n + 1, n + 1) matrix with n >= 1 words, got shape {s.shape}")
    if np.isnan(s).any():
        raise InputError("arc scores hold NaN")
    return s


@jit
def _eisner_kernel(s: np.ndarray, heads: np.ndarray) -> None:
    """Fill `heads` (n + 1,; heads[0] unused) with the best single-rooted projective tree."""
    n = s.shape[0] - 1
    # [a, b, 0]: head b, dependents leftwards; [a, b, 1]: head a, rightwards. Words 1..n.
    comp = np.zeros((n + 2, n + 2, 2))
    inc = np.zeros((n + 2, n + 2, 2))
    comp_arg = np.zeros((n + 2, n + 2, 2), np.int64)
    inc_arg = np.zeros((n + 2, n + 2), np.int64)
    for k in range(1, n):
        for a in range(1, n - k + 1):
            b = a + k
            best, arg = -np.inf, a
            for r in range(a, b):  # the arc a-b over two complete spans meeting between r and r + 1
                v = comp[a, r, 1] + comp[r + 1, b, 0]
                if v > best:
                    best, arg = v, r
            inc[a, b, 0], inc[a, b, 1], inc_arg[a, b] = best + s[b, a], best + s[a, b], arg
            best, arg = -np.inf, a
            for r in range(a, b):  # head b: a complete span a..r under r, then the incomplete arc r <- b
                v = comp[a, r, 0] + inc[r, b, 0]
                if v > best:
                    best, arg = v, r
            comp[a, b, 0], comp_arg[a, b, 0] = best, arg
            best, arg = -np.inf, b
            for r in range(a + 1, b + 1):  # head a: the incomplete arc a -> r, then r's complete span to b
                v = inc[a, r, 1] + comp[r, b, 1]
                if v > best:
                    best, arg = v, r
            comp[a, b, 1], comp_arg[a, b, 1] = best, arg
    best, root = -np.inf, 1
    for r in range(1, n + 1):
        v = comp[1, r, 0] + comp[r, n, 1] + s[0, r]
        if v > best:
            best, root = v, r
    heads[root] = 0
    # backtrack: (a, b, direction, complete?) spans still to expand
    stack = [(1, root, 0, 1), (root, n, 1, 1)]
    while stack:
        a, b, d, c = stack.pop()
        if a == b:
            continue
        if c == 1:
            r = comp_arg[a, b, d]
            if d == 0:
                stack.append((a, r, 0, 1))
                stack.append((r, b, 0, 0))
            else:
                stack.append((a, r, 1, 0))
                stack.append((r, b, 1, 1))
        else:
            r = inc_arg[a, b]
            if d == 0:
                heads[a] = b
            else:
                heads[b] = a
            stack.append((a, r, 1, 1))
            stack.append((r + 1, b, 0, 1))


def eisner(scores) -> list[int]:
    """Heads of the best projective tree with one root word: `heads[d - 1]` is word d's head (0 = root).

    >>> eisner([[0, 1, 5], [0, 0, 2], [0, 3, 0]])  # 0 -> 2 -> 1
    [2, 0]
    """
    s = _check(scores)
    heads = np.zeros(s.shape[0], np.int64)
    _eisner_kernel(np.ascontiguousarray(s), heads)
    return heads[1:].tolist()


def _find_cycle(heads: np.ndarray) -> list[int] | None:
    """Nodes of a cycle in `heads` (heads[0] ignored: the root), or None."""
    m = len(heads)
    color = np.zeros(m, np.int8)  # 0 new, 1 on the current walk, 2 done
    color[0] = 2
    for start in range(1, m):
        walk, v = [], start
        while color[v] == 0:
            color[v] = 1
            walk.append(v)
            v = heads[v]
        if color[v] == 1:  # the walk came back to itself
            return walk[walk.index(v):]
        color[walk] = 2
    return None


def _mst(s: np.ndarray) -> np.ndarray:
    """Heads of the maximum spanning arborescence from node 0 of `s` (m, m), -inf for absent arcs."""
    m = s.shape[0]
    heads = np.argmax(s, axis=0)
    heads[0] = 0
    cycle = _find_cycle(heads)
    if cycle is None:
        return heads
    in_cycle = np.zeros(m, bool)
    in_cycle[cycle] = True
    rest = np.flatnonzero(~in_cycle)  # node 0 among them
    c = len(rest)  # the contracted node's index in the smaller problem
    sub = np.full((c + 1, c + 1), NEG)
    sub[:c, :c] = s[np.ix_(rest, rest)]
    cyc = np.array(cycle)
    # into the cycle at d: the arc h -> d replaces d's cycle arc
    gain = s[np.ix_(rest, cyc)] - s[heads[cyc], cyc][None, :]  # (rest, cycle)
    enter = np.argmax(gain, axis=1)
    sub[:c, c] = gain[np.arange(c), enter]
    leave = np.argmax(s[np.ix_(cyc, rest)], axis=0)  # out of the cycle: its best member as the head
    sub[c, :c] = s[cyc[leave], rest]
    sub_heads = _mst(sub)
    out = heads.copy()
    for i, v in enumerate(rest[1:], 1):
        out[v] = cyc[leave[i]] if sub_heads[i] == c else rest[sub_heads[i]]
    h = sub_heads[c]
    out[cyc[enter[h]]] = rest[h]
    return out


def chu_liu_edmonds(scores) -> list[int]:
    """Heads of the best tree of any shape with one root word (`eisner`'s layout).

    >>> chu_liu_edmonds([[0, 1, 1, 1], [0, 0, 0, 9], [0, 9, 0, 0], [0, 0, 9, 0]])  # cycle 1 -> 3 -> 2 -> 1
    [0, 3, 1]
    """
    s = _check(scores).copy()
    s[:, 0] = NEG
    np.fill_diagonal(s, NEG)
    finite = s[np.isfinite(s)]
    if finite.size:  # one root arc: any tree with two loses more than any difference between trees gains
        s[0, 1:] -= 1.0 + s.shape[0] * (finite.max() - finite.min())
    return _mst(s)[1:].tolist()


def projective(heads: list[int]) -> bool:
    """Whether no two arcs (root arc included) cross.

    >>> projective([2, 0, 2]), projective([3, 4, 0, 3])
    (True, False)
    """
    arcs = [(min(h, d), max(h, d)) for d, h in enumerate(heads, 1)]
    return not any(a < c < b < e for a, b in arcs for c, e in arcs)
