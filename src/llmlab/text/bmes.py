"""B/M/E/S tag decoding shared by the HMM and the perceptron segmenters.

Tags are ints: B=0, M=1, E=2, S=3. Only legal sequences are searched: B and S follow E or S (or
start the text); M and E follow B or M; the text ends on E or S. So every decoded sequence is a
well-formed segmentation. Viterbi is a compiled loop (`llmlab.core.jit`): with four states and two
legal predecessors each, the per-character work is a handful of comparisons, which numpy calls
would only slow down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmlab.core.jit import jit
from llmlab.text.base import keep_runs_whole

B, M, E, S = 0, 1, 2, 3
TAGS = "BMES"
NEG = -1e30


def encode_tags(words: Sequence[str]) -> list[int]:
    """Tag ids per character.

    >>> encode_tags(["中国", "人"])
    [0, 2, 3]
    """
    out: list[int] = []
    for w in words:
        out.extend([S] if len(w) == 1 else [B] + [M] * (len(w) - 2) + [E])
    return out


@jit
def viterbi_kernel(em: np.ndarray, trans: np.ndarray, start: int, n: int, out: np.ndarray) -> None:
    """Best legal tags of rows start .. start + n of `em` into `out`; ties go to the first of the two
    predecessors (E before S, B before M), and the text ends on E when E and S tie."""
    t_eb, t_sb, t_bm, t_mm = trans[E, B], trans[S, B], trans[B, M], trans[M, M]
    t_be, t_me, t_es, t_ss = trans[B, E], trans[M, E], trans[E, S], trans[S, S]
    b, m, e, s = em[start, B], NEG, NEG, em[start, S]
    back = np.empty((n, 4), np.int8)  # the predecessor of each state at each step
    for i in range(1, n):  # two legal predecessors per state: one comparison each
        x = em[start + i]
        eb, sb, bm, mm = e + t_eb, s + t_sb, b + t_bm, m + t_mm
        be, me, es, ss = b + t_be, m + t_me, e + t_es, s + t_ss
        back[i, B], b = (E, eb + x[B]) if eb >= sb else (S, sb + x[B])
        back[i, M], m = (B, bm + x[M]) if bm >= mm else (M, mm + x[M])
        back[i, E], e = (B, be + x[E]) if be >= me else (M, me + x[E])
        back[i, S], s = (E, es + x[S]) if es >= ss else (S, ss + x[S])
    t = E if e >= s else S
    for i in range(n - 1, -1, -1):
        out[start + i] = t
        t = back[i, t]


@jit
def _viterbi_many(em: np.ndarray, lengths: np.ndarray, trans: np.ndarray) -> np.ndarray:
    out = np.empty(em.shape[0], np.int8)
    start = 0
    for n in lengths:
        if n > 0:
            viterbi_kernel(em, trans, start, n, out)
        start += n
    return out


def viterbi_bmes(emissions: Sequence[Sequence[float]] | np.ndarray, trans: Sequence[Sequence[float]]) -> list[int]:
    """Best legal tag sequence for per-character scores ``emissions[i][tag]`` and ``trans[from][to]``.

    >>> viterbi_bmes([[0, 0, 0, 1], [0, 0, 2, 0]], [[0] * 4] * 4)  # greedy S, E is illegal
    [0, 2]
    """
    em = np.asarray(emissions, dtype=np.float64).reshape(-1, 4)
    return viterbi_bmes_many(em, [len(em)], trans).tolist()


def viterbi_bmes_many(emissions: np.ndarray, lengths: Sequence[int] | np.ndarray,
                      trans: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """`viterbi_bmes` for many texts at once: `emissions` (N, 4) holds the texts' rows one after the
    other, `lengths` their lengths; returns the N tags (int8).

    >>> em = np.array([[0, 0, 0, 1], [0, 0, 2, 0], [5, 0, 0, 0]], dtype=float)
    >>> viterbi_bmes_many(em, [2, 1], [[0] * 4] * 4).tolist()  # texts of length 2 and 1
    [0, 2, 3]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.sum() != len(emissions) or (lengths < 0).any():
        raise ValueError(f"lengths must be >= 0 and add up to the {len(emissions)} emission rows")
    return _viterbi_many(np.ascontiguousarray(emissions, dtype=np.float64), lengths,
                         np.ascontiguousarray(trans, dtype=np.float64).reshape(4, 4))


def decode_runs(runs: Sequence[str], emissions: np.ndarray, trans: Sequence[Sequence[float]] | np.ndarray
                ) -> list[list[str]]:
    """The words of each run by `viterbi_bmes_many` over `emissions` (the runs' rows one after the
    other), with no cut inside a unit (`keep_runs_whole`).

    >>> em = np.array([[1, 0, 0, 0], [0, 0, 1, 0]] + [[0, 0, 0, 1]] * 3, dtype=float)  # B E S S S
    >>> decode_runs(["中国", "ab中"], em, np.zeros((4, 4)))  # "ab" is one unit
    [['中国'], ['ab', '中']]
    """
    lens = [len(r) for r in runs]
    tags = viterbi_bmes_many(emissions, lens, trans)
    ends = (np.flatnonzero(tags >= E) + 1).tolist()
    joined = "".join(runs)
    words = [joined[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    cuts = np.searchsorted(ends, np.cumsum(lens), side="right").tolist()
    return [keep_runs_whole(run, words[a:b]) for run, a, b in zip(runs, [0, *cuts[:-1]], cuts)]


def cut_by_tags(text: str, tags: Sequence[int]) -> list[str]:
    """Cut after every E or S tag; lossless for any tags.

    >>> cut_by_tags("中国人", [0, 2, 3])
    ['中国', '人']
    """
    ends = [i for i, t in enumerate(tags, 1) if t >= E]
    if not ends or ends[-1] < len(text):
        ends.append(len(text))
    return [text[a:b] for a, b in zip([0, *ends], ends) if b > a]
