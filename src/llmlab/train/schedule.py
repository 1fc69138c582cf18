"""Learning-rate schedules as pure functions of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """Linear warmup from 0 to `max_lr` over `warmup` steps, then cosine decay to `min_lr` at `total`.

    >>> [round(cosine_with_warmup(s, 1.0, 2, 6), 3) for s in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def constant_with_warmup(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """Linear warmup, then flat.

    >>> [constant_with_warmup(s, 1.0, 2, 6) for s in (0, 1, 5)]
    [0.5, 1.0, 1.0]
    """
    return max_lr * (step + 1) / warmup if step < warmup else max_lr


def linear_with_warmup(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """Linear warmup, then a straight line down to `min_lr` at `total`.

    >>> [linear_with_warmup(s, 1.0, 2, 6) for s in (1, 2, 4, 6)]
    [1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return max_lr + (min_lr - max_lr) * progress


def inverse_sqrt(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """The original Transformer's rule: warmup, then max_lr * sqrt(warmup / step). Without warmup it
    decays from the peak as max_lr / sqrt(step + 1) (the rule with warmup 1), not sqrt(0) = 0.

    >>> [round(inverse_sqrt(s, 1.0, 4, 100), 3) for s in (1, 3, 15)]
    [0.5, 1.0, 0.5]
    >>> [round(inverse_sqrt(s, 1.0, 0, 100), 3) for s in (0, 3, 15)]
    [1.0, 0.5, 0.25]
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    return max(min_lr, max_lr * math.sqrt(max(warmup, 1) / (step + 1)))


def warmup_stable_decay(step: int, max_lr: float, warmup: int, total: int, min_lr: float = 0.0,
                        decay_fraction: float = 0.2) -> float:
    """WSD: warmup, a long flat stretch, then a linear cool-down over the last `decay_fraction`.

    >>> [warmup_stable_decay(s, 1.0, 2, 10) for s in (0, 5, 8, 9, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:  # min_lr from `total` on, also when total * decay_fraction < 1 leaves no decay step
        return min_lr
    decay_start = total - int(total * decay_fraction)
    if step < decay_start:
        return max_lr
    progress = min(1.0, (step - decay_start) / max(1, total - decay_start))
    return max_lr + (min_lr - max_lr) * progress


SCHEDULES = {
    "cosine": cosine_with_warmup,
    "constant": constant_with_warmup,
    "linear": linear_with_warmup,
    "inverse_sqrt": inverse_sqrt,
    "wsd": warmup_stable_decay,
}
