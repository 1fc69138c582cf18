"""Input corruption for the non-causal objectives: BERT's masked LM (topic 26) and T5's span corruption
(topic 27). Pure functions of token ids and a generator; the losses are then ordinary cross-entropy on
the returned labels or targets.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def mlm_corrupt(ids: torch.Tensor, vocab_size: int, mask_id: int, special_ids: tuple[int, ...] = (),
                p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose each non-special token with probability `p`; of those, 80% become
    `mask_id`, 10% a random token, 10% stay. Returns (inputs, labels); labels are -100 where the token
    was not chosen, so only chosen positions are predicted."""
    if not 0 < p < 1:
        raise InputError(f"p must be in (0, 1), got {p}")
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    chosen = (torch.rand(ids.shape, generator=generator) < p) & ~special
    action = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (action < 0.8)] = mask_id
    randomize = chosen & (action >= 0.8) & (action < 0.9)
    inputs[randomize] = torch.randint(0, vocab_size, ids.shape, generator=generator)[randomize]
    labels = ids.masked_fill(~chosen, -100)
    return inputs, labels


def random_spans(length: int, noise_density: float, mean_span: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean (length,) noise mask with round(length * density) noise tokens in spans of mean length
    `mean_span`, alternating with kept spans, starting with a kept one (the T5 recipe).

    >>> random_spans(20, 0.15, 3.0, torch.Generator().manual_seed(0)).sum().item()
    3
    """
    n_noise = max(1, min(length - 1, round(length * noise_density)))
    n_spans = max(1, min(n_noise, round(n_noise / mean_span)))

    def split(total: int) -> list[int]:  # `total` items into n_spans non-empty parts, at random
        cuts = torch.randperm(total - 1, generator=generator)[: n_spans - 1].sort().values + 1
        edges = [0, *cuts.tolist(), total]
        return [b - a for a, b in zip(edges, edges[1:])]

    mask = []
    for keep, noise in zip(split(length - n_noise), split(n_noise)):
        mask += [False] * keep + [True] * noise
    return torch.tensor(mask)


def span_corrupt(ids: list[int], sentinel_ids: list[int], noise_density: float = 0.15, mean_span: float = 3.0,
                 generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5 span corruption: each noise span is replaced by one sentinel in the encoder input; the
    target lists each sentinel followed by the tokens it hid (and a final sentinel).

    `a b c d e` with span `c d` -> input `a b <s0> e`, target `<s0> c d <s1>`.
    """
    if len(ids) < 2:
        raise InputError("span corruption needs at least 2 tokens")
    noise = random_spans(len(ids), noise_density, mean_span, generator).tolist()
    inputs, targets, s = [], [], 0
    for i, (tok, is_noise) in enumerate(zip(ids, noise)):
        starts = is_noise and (i == 0 or not noise[i - 1])
        if starts:
            if s >= len(sentinel_ids) - 1:
                raise InputError(f"{len(sentinel_ids)} sentinels are too few for this many spans")
            inputs.append(sentinel_ids[s])
            targets.append(sentinel_ids[s])
            s += 1
        (targets if is_noise else inputs).append(tok)
    targets.append(sentinel_ids[s])
    return inputs, targets
