"""B/M/E/S tag decoding shared by the HMM and the perceptron segmenters.

Tags are ints: B=0, M=1, E=2, S=3. Only legal sequences are searched: B and S follow E or S (or
start the text); M and E follow B or M; the text ends on E or S. So every decoded sequence is a
well-formed segmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


def viterbi_bmes(emissions: Sequence[Sequence[float]], trans: Sequence[Sequence[float]]) -> list[int]:
    """Best legal tag sequence for per-character scores ``emissions[i][tag]`` and ``trans[from][to]``.

    Pure Python on purpose: with four states and two legal predecessors each, a loop over plain
    floats beats per-step numpy calls on the short runs segmenters see.

    >>> viterbi_bmes([[0, 0, 0, 1], [0, 0, 2, 0]], [[0] * 4] * 4)  # greedy S, E is illegal
    [0, 2]
    """
    n = len(emissions)
    if n == 0:
        return []
    t_eb, t_sb = trans[E][B], trans[S][B]
    t_bm, t_mm = trans[B][M], trans[M][M]
    t_be, t_me = trans[B][E], trans[M][E]
    t_es, t_ss = trans[E][S], trans[S][S]
    x = emissions[0]
    b, m, e, s = x[0], NEG, NEG, x[3]
    back = []
    push = back.append
    for x0, x1, x2, x3 in emissions[1:]:  # one comparison per state and step
        eb, sb, bm, mm = e + t_eb, s + t_sb, b + t_bm, m + t_mm
        be, me, es, ss = b + t_be, m + t_me, e + t_es, s + t_ss
        if eb >= sb:
            b, pb = eb + x0, E
        else:
            b, pb = sb + x0, S
        if bm >= mm:
            m, pm = bm + x1, B
        else:
            m, pm = mm + x1, M
        if be >= me:
            e, pe = be + x2, B
        else:
            e, pe = me + x2, M
        if es >= ss:
            s, ps = es + x3, E
        else:
            s, ps = ss + x3, S
        push((pb, pm, pe, ps))
    t = E if e >= s else S
    tags = [t]
    for ptr in reversed(back):
        t = ptr[t]
        tags.append(t)
    tags.reverse()
    return tags


def cut_by_tags(text: str, tags: Sequence[int]) -> list[str]:
    """Cut after every E or S tag; lossless for any tags.

    >>> cut_by_tags("中国人", [0, 2, 3])
    ['中国', '人']
    """
    ends = [i for i, t in enumerate(tags, 1) if t >= E]
    if not ends or ends[-1] < len(text):
        ends.append(len(text))
    return [text[a:b] for a, b in zip([0, *ends], ends) if b > a]


def _legal_matrix(trans: Sequence[Sequence[float]]) -> np.ndarray:
    """Transition scores with illegal moves at NEG, as a (4 from, 4 to) float64 array."""
    t = np.array(trans, dtype=np.float64)
    legal = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1]], dtype=bool)
    return np.where(legal, t, NEG)


def viterbi_bmes_batch(emissions: np.ndarray, lengths: Sequence[int], trans: Sequence[Sequence[float]],
                       bucket: int = 512) -> np.ndarray:
    """`viterbi_bmes` for many texts at once: `emissions` (N, 4) holds the texts' rows one after the
    other; returns the N tags. Texts are sorted by length into buckets and decoded together, one numpy
    step per position, so the per-step cost is shared by the whole bucket.

    >>> em = np.array([[0, 0, 0, 1], [0, 0, 2, 0], [5, 0, 0, 0]], dtype=float)
    >>> viterbi_bmes_batch(em, [2, 1], [[0] * 4] * 4).tolist()  # texts of length 2 and 1
    [0, 2, 3]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    tags = np.zeros(len(emissions), dtype=np.int64)
    t_mat = _legal_matrix(trans)
    first = np.array([0.0, NEG, NEG, 0.0])
    last = np.array([NEG, NEG, 0.0, 0.0])
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    for b in range(0, len(order), bucket):
        idx = order[b : b + bucket]
        lens, width = lengths[idx], int(lengths[idx].max())
        steps = np.arange(width)
        mask = steps[None, :] < lens[:, None]  # (B, L)
        gather = np.where(mask, starts[idx][:, None] + steps[None, :], 0)
        em = emissions[gather]  # (B, L, 4)
        score = em[:, 0] + first
        back = np.zeros((len(idx), width, 4), dtype=np.int8)
        for t in range(1, width):
            cand = score[:, :, None] + t_mat  # (B, 4 from, 4 to)
            ptr = cand.argmax(axis=1)  # (B, 4)
            new = np.take_along_axis(cand, ptr[:, None, :], axis=1)[:, 0] + em[:, t]
            score = np.where(mask[:, t, None], new, score)
            back[:, t] = ptr
        tag = (score + last).argmax(axis=1)
        rows = np.arange(len(idx))
        out = np.zeros((len(idx), width), dtype=np.int64)
        for t in range(width - 1, 0, -1):
            out[:, t] = tag
            tag = np.where(mask[:, t], back[rows, t, tag], tag)
        out[:, 0] = tag
        tags[gather[mask]] = out[mask]
    return tags
