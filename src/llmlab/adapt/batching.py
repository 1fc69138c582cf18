"""Batches of conversations for SFT (topic 34's batching, on chat data): each conversation's inputs, targets
and loss weights (`example_tensors`); padding to the batch's longest (`pad_batch`); which conversations a
step draws, uniformly or as neighbours in length order (`batch_indices`, bucketing); and padding-free
packing of whole conversations into rows (`pack_rows`, `pack_batch`), each read alone by the model
through its segments, so the loss and its gradients are the padded batch's.

An example is (ids, mask): the rendered conversation's token ids and 1 on the tokens the model learns
(the replies), 0 elsewhere.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def example_tensors(ids: list[int], mask: list[int], prompt_loss_weight: float = 0.0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One conversation's inputs, targets and loss weights (n,), n = len(ids) - 1: target t is token t + 1,
    weighing 1 if learned, else prompt_loss_weight; a target of weight 0 is -100.

    >>> [t.tolist() for t in example_tensors([5, 6, 7], [0, 0, 1])]
    [[5, 6], [-100, 7], [0.0, 1.0]]
    """
    learn = torch.tensor(mask[1:], dtype=torch.bool)  # (n,)
    w = torch.where(learn, 1.0, prompt_loss_weight)  # (n,)
    return torch.tensor(ids[:-1]), torch.tensor(ids[1:]).masked_fill(w == 0, -100), w


def pad_batch(examples: list[tuple[list[int], list[int]]], pad_id: int, prompt_loss_weight: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs (B, T), targets (B, T) and loss weights (B, T), T = longest example - 1. Targets are -100
    on padding and, when prompt_loss_weight is 0, on every token not learned; weights are 1 on learned
    tokens, prompt_loss_weight on the others, 0 on padding.

    >>> x, y, w = pad_batch([([5, 6, 7], [0, 0, 1]), ([5, 8], [0, 1])], pad_id=3)
    >>> x.tolist(), y.tolist(), w.tolist()
    ([[5, 6], [5, 3]], [[-100, 7], [8, -100]], [[0.0, 1.0], [1.0, 0.0]])
    """
    T = max(len(ids) for ids, _ in examples) - 1
    B = len(examples)
    x = torch.full((B, T), pad_id, dtype=torch.long)
    y = torch.full((B, T), -100, dtype=torch.long)
    w = torch.zeros(B, T)
    for b, (ids, mask) in enumerate(examples):
        n = len(ids) - 1
        x[b, :n], y[b, :n], w[b, :n] = example_tensors(ids, mask, prompt_loss_weight)
    return x, y, w


def first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Greedy first-fit bin packing in the given order: each item joins the first row with room for it,
    else opens a new row. Rows list item indices in order.

    >>> first_fit([5, 3, 4, 2], capacity=8)
    [[0, 1], [2, 3]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i, n in enumerate(lengths):
        if n > capacity:
            raise InputError(f"an item of {n} tokens cannot be packed into rows of {capacity}")
        r = next((r for r, left in enumerate(room) if left >= n), len(rows))
        if r == len(rows):
            rows.append([])
            room.append(capacity)
        rows[r].append(i)
        room[r] -= n
    return rows


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Items into the rows of a packed batch: first-fit decreasing (longest first) into rows of `capacity`,
    then the shortest row length (binary search) at which first-fit decreasing needs no more rows, so the
    rows come out even and the batch, padded to its longest row, holds little padding; first fit in the
    given order instead if that makes fewer positions (rows x longest row). Each row lists its items in
    the given order; rows follow their first item.

    >>> pack_rows([5, 3, 4, 2], capacity=10)  # first fit would make rows of 10 and 4; these are 7 and 7
    [[0, 3], [1, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))

    def rows_at(cap: int) -> list[list[int]]:
        return [[order[k] for k in row] for row in first_fit([lengths[i] for i in order], cap)]

    best = rows_at(capacity)
    lo, hi = max(lengths), capacity  # hi: a row length known to need no more rows than `best`
    lo = max(lo, -(-sum(lengths) // len(best)))
    while lo < hi:
        mid = (lo + hi) // 2
        rows = rows_at(mid)
        if len(rows) <= len(best):
            best, hi = rows, mid
        else:
            lo = mid + 1

    def positions(rows: list[list[int]]) -> int:
        return len(rows) * max(sum(lengths[i] for i in row) for row in rows)

    greedy = first_fit(lengths, capacity)
    return sorted(sorted(row) for row in min(best, greedy, key=positions))


def pack_batch(examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int,
               prompt_loss_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padding-free batching: the conversations packed whole into rows of at most `seq_len` tokens (`pack_rows`):
    inputs, targets, weights as `pad_batch` makes them, and segments (R, T), each token's conversation
    number in its row, the row's padding one more (T = the longest row). The model run with `segments` reads
    each conversation alone, so `weighted_lm_loss` over these rows is the padded batch's.

    >>> x, y, w, s = pack_batch([([5, 6, 7], [0, 0, 1]), ([5, 8], [0, 1]), ([4, 4, 4, 4], [0, 1, 1, 1])], 3, pad_id=0)
    >>> x.tolist(), y.tolist(), s.tolist()
    ([[5, 6, 5], [4, 4, 4]], [[-100, 7, 8], [4, 4, 4]], [[0, 0, 1], [0, 0, 0]])
    """
    rows = pack_rows([len(ids) - 1 for ids, _ in examples], seq_len)
    T = max(sum(len(examples[i][0]) - 1 for i in row) for row in rows)
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    y = torch.full((len(rows), T), -100, dtype=torch.long)
    w = torch.zeros(len(rows), T)
    seg = torch.zeros(len(rows), T, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for k, i in enumerate(row):
            ids, mask = examples[i]
            n = len(ids) - 1
            x[r, at:at + n], y[r, at:at + n], w[r, at:at + n] = example_tensors(ids, mask, prompt_loss_weight)
            seg[r, at:at + n] = k
            at += n
        seg[r, at:] = len(row)  # the padding: a segment of its own, which no conversation sees
    return x, y, w, seg


def batch_indices(lengths: list[int], batch_size: int, seed: int, bucket: bool = False) -> list[int]:
    """Which examples make a batch, a function of `seed` alone: uniform draws, or with `bucket` a run of
    `batch_size` neighbours in length order starting at a random place (similar lengths, little padding).

    >>> batch_indices([5, 1, 9, 2], 2, seed=0, bucket=True) in ([1, 3], [3, 0], [0, 2])
    True
    """
    g = torch.Generator().manual_seed(seed)
    n = len(lengths)
    if not bucket or n <= batch_size:
        return torch.randint(0, n, (batch_size,), generator=g).tolist()
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    start = int(torch.randint(0, n - batch_size + 1, (1,), generator=g))
    return order[start:start + batch_size]
