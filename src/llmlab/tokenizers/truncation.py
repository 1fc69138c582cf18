"""Fitting token sequences to a length: truncation, padding, and room for generation (topic 81).

>>> truncate([1, 2, 3, 4, 5], 3, side="right"), truncate([1, 2, 3, 4, 5], 3, side="left")
([1, 2, 3], [3, 4, 5])
>>> truncate([1, 2, 3, 4, 5, 6], 4, side="middle")  # keep the head and the tail
[1, 2, 5, 6]
>>> truncate_pair([1, 2, 3, 4, 5, 6], [7, 8, 9], 6)  # longest first: trim the longer one
([1, 2, 3], [7, 8, 9])
>>> pad([[1, 2, 3], [4]], pad_id=0)
([[1, 2, 3], [4, 0, 0]], [[1, 1, 1], [1, 0, 0]])
>>> fit_prompt(list(range(10)), context_len=8, max_new_tokens=3)  # keep the latest 5 prompt tokens
[5, 6, 7, 8, 9]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llmlab.core.errors import InputError

SIDES = ("right", "left", "middle")
PAIR_STRATEGIES = ("longest_first", "only_first", "only_second")


def truncate(ids: Sequence[int], max_len: int, side: str = "right") -> list[int]:
    """At most `max_len` ids, cutting at the end (right), the start (left) or the middle.

    Middle truncation keeps ceil(max_len / 2) ids from the start and the rest from the end.
    """
    if max_len < 0:
        raise InputError(f"max_len must be >= 0, got {max_len}")
    if side not in SIDES:
        raise InputError(f"truncation side must be one of {SIDES}, got {side!r}")
    ids = list(ids)
    if len(ids) <= max_len:
        return ids
    if side == "right":
        return ids[:max_len]
    if side == "left":
        return ids[len(ids) - max_len:]
    head = (max_len + 1) // 2
    return ids[:head] + ids[len(ids) - (max_len - head):]


def truncate_pair(a: Sequence[int], b: Sequence[int], max_len: int, strategy: str = "longest_first",
                  side: str = "right") -> tuple[list[int], list[int]]:
    """Fit two sequences (e.g. question and passage) into `max_len` ids together.

    ``longest_first`` (Hugging Face's rule) lets the shorter one keep up to ``max_len // 2`` ids (the
    first counts as the shorter on a tie) and gives the rest to the longer one; ``only_first`` and
    ``only_second`` trim just one of them, and refuse to trim it away entirely (as HF does), except
    that ``max_len`` 0 empties both under any strategy (as HF does too).
    """
    if max_len < 0:
        raise InputError(f"max_len must be >= 0, got {max_len}")
    if strategy not in PAIR_STRATEGIES:
        raise InputError(f"strategy must be one of {PAIR_STRATEGIES}, got {strategy!r}")
    a, b = list(a), list(b)
    excess = len(a) + len(b) - max_len
    if excess <= 0:
        return a, b
    if max_len == 0:
        return [], []
    if strategy == "only_first" or strategy == "only_second":
        first = strategy == "only_first"
        target = a if first else b
        if excess >= len(target):  # as in HF: trimming may not empty the sequence
            raise InputError(f"{strategy}: cannot fit {len(a)} + {len(b)} ids into {max_len} by trimming one side "
                             f"without emptying it")
        kept = truncate(target, len(target) - excess, side)
        return (kept, b) if first else (a, kept)
    total = len(a) + len(b)
    short, long_ = sorted((len(a), len(b)))
    keep_short = min(short, max_len // 2)
    keep_long = min(long_, max_len - keep_short)
    if len(a) > len(b):
        na, nb = keep_long, keep_short
    else:
        na, nb = keep_short, keep_long
    assert na + nb == min(total, max_len)
    return truncate(a, na, side), truncate(b, nb, side)


def pad(batch: Iterable[Iterable[int]], pad_id: int, side: str = "right", length: int | None = None,
        multiple_of: int | None = None) -> tuple[list[list[int]], list[list[int]]]:
    """Pad every sequence to the same length; returns (ids, attention mask with 1 for real tokens).

    `length` defaults to the longest sequence; `multiple_of` rounds it up (e.g. 8 for tensor cores).
    Left padding suits decoder-only generation, so every prompt ends at the last position.
    """
    if side not in ("right", "left"):
        raise InputError(f"padding side must be 'right' or 'left', got {side!r}")
    batch = [list(s) for s in batch]  # read once: a generator would be empty after the longest is found
    longest = max((len(s) for s in batch), default=0)
    n = longest if length is None else length
    if n < longest:
        raise InputError(f"pad length {n} is shorter than the longest sequence ({longest}); truncate first")
    if multiple_of is not None:
        if multiple_of < 1:
            raise InputError(f"multiple_of must be >= 1, got {multiple_of}")
        n = -(-n // multiple_of) * multiple_of
    ids, mask = [], []
    for s in batch:
        fill = n - len(s)
        if side == "right":
            ids.append(s + [pad_id] * fill)
            mask.append([1] * len(s) + [0] * fill)
        else:
            ids.append([pad_id] * fill + s)
            mask.append([0] * fill + [1] * len(s))
    return ids, mask


def fit_prompt(prompt: Sequence[int], context_len: int, max_new_tokens: int, side: str = "left") -> list[int]:
    """Truncate a prompt so that prompt + `max_new_tokens` generated tokens fit in `context_len`.

    Cutting on the left (the default) keeps the most recent text, which a chat or completion needs.
    """
    if not 0 <= max_new_tokens < context_len:
        raise InputError(f"max_new_tokens must be in [0, context_len={context_len}), got {max_new_tokens}")
    return truncate(prompt, context_len - max_new_tokens, side)
