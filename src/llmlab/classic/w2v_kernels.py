"""Compiled word2vec loops: the (centre, context) pairs of each epoch, and the SGD step: the mean of each
example's input vectors, the logistic steps of negative sampling and hierarchical softmax one (example,
output row) pair at a time, and the gradient added back to the input vectors, without the (pairs, d)
tensors torch would gather.

An example's input words are ctx[offsets[i]:offsets[i + 1]]: the context window for CBOW, one context
word for skip-gram. Kept apart from `word2vec` so that importing ``llmlab.classic`` loads neither numba
nor torch. The step's kernels are compiled with `llmlab.core.jit.jit_reassoc`: reassociation lets the
float32 loops over d vectorise (2.5-3x faster on pfr1998 than plain `jit`).
"""

from __future__ import annotations

import math

import numpy as np

from llmlab.core.jit import jit, jit_reassoc


@jit
def window_pairs_kernel(sent, reach):
    """(centre, context) positions, both (P,) int64: i with each j = i + 1, i - 1, ..., i + reach[i],
    i - reach[i] in that order that lies in the same sentence (sent[j] == sent[i], sent non-decreasing).
    """
    n = len(sent)
    c = np.empty(2 * reach.sum(), dtype=np.int64)
    x = np.empty_like(c)
    m = 0
    for i in range(n):
        for o in range(1, reach[i] + 1):
            for j in (i + o, i - o):
                if 0 <= j < n and sent[j] == sent[i]:
                    c[m], x[m] = i, j
                    m += 1
    return c[:m], x[:m]


@jit_reassoc
def apply_row_sums(w, rows, delta, seen, cap):
    """w[r] += delta[r] for each row r in rows (once, however often it is listed), scaled by cap / seen[r]
    where seen[r] > cap (cap = inf: a plain sum); delta[r] and seen[r] are zeroed again.

    The second pass of a batched step: delta (R, d) float32 holds each row's summed update and seen (R,)
    int64 how many updates went into it; a row not hit (seen 0) is left alone.
    """
    d = w.shape[1]
    for r in rows:
        if seen[r] == 0:  # not hit, or already applied
            continue
        scale = np.float32(min(1.0, cap / seen[r]))
        for k in range(d):
            w[r, k] += scale * delta[r, k]
            delta[r, k] = 0.0
        seen[r] = 0


@jit_reassoc
def logistic_update(w_out, h, grad_h, rows, labels, live, lr, cap, delta, seen):
    """One batched SGD step of sum log sigmoid(+-h[i] . w_out[rows[i, t]]) over the live (i, t).

    Pass 1, for each live (i, t), all from the batch's starting w_out: r = rows[i, t],
    g = (labels[i, t] - sigmoid(h[i] . w_out[r])) * lr; grad_h[i] += g * w_out[r]; the row's update sum
    delta[r] += g * h[i] and hit count seen[r] += 1. Pass 2 (`apply_row_sums`): w_out[r] += delta[r],
    scaled by cap / seen[r] where seen[r] > cap (cap = inf: a plain sum), and delta, seen are zeroed again.

    w_out (R, d), grad_h (B, d) float32 are updated in place; h (B, d) float32 is read only; rows (B, T)
    output row ids, labels (B, T) float32 the targets 0/1, live (B, T) bool which pairs count; delta
    (R, d) float32 and seen (R,) int64 scratch, zero on entry and on return.
    """
    d = h.shape[1]
    for i in range(rows.shape[0]):
        for t in range(rows.shape[1]):
            if not live[i, t]:
                continue
            r = rows[i, t]
            f = np.float32(0.0)
            for k in range(d):
                f += h[i, k] * w_out[r, k]
            g = np.float32((labels[i, t] - 1.0 / (1.0 + math.exp(-f))) * lr)
            for k in range(d):
                grad_h[i, k] += g * w_out[r, k]
                delta[r, k] += g * h[i, k]
            seen[r] += 1
    apply_row_sums(w_out, rows.ravel(), delta, seen, cap)


@jit_reassoc
def context_mean(w_in, ctx, offsets):
    """h (B, d) float32, h[i] the mean of w_in[ctx[j]] over offsets[i] <= j < offsets[i + 1] (B + 1 offsets,
    each example with at least one input word; a word there twice counts twice).
    """
    d = w_in.shape[1]
    h = np.zeros((len(offsets) - 1, d), dtype=np.float32)
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            r = ctx[j]
            for k in range(d):
                h[i, k] += w_in[r, k]
        n = np.float32(offsets[i + 1] - offsets[i])
        for k in range(d):
            h[i, k] /= n
    return h


@jit_reassoc
def add_to_context(w_in, ctx, offsets, grad_h, cap, delta, seen):
    """w_in[ctx[j]] += grad_h[i] for every input word j of example i, in place: each word gets the whole
    gradient of the mean (as in word2vec's C tool and gensim), once per time it is in the window. A row's
    updates are summed first and the sum scaled by cap / hits where the row had more than cap of them
    (`apply_row_sums`); delta (V, d) float32, seen (V,) int64 scratch, zero on entry and on return.
    """
    d = w_in.shape[1]
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            r = ctx[j]
            for k in range(d):
                delta[r, k] += grad_h[i, k]
            seen[r] += 1
    apply_row_sums(w_in, ctx[offsets[0] : offsets[-1]], delta, seen, cap)
