"""Input length limits (topics 14, 62-63): how many tokens a request may ask for, and fitting its prompt
into the model's context with room reserved for the output.

A request's prompt and its ``max_tokens`` must fit the model's context (``max_seq_len``) together: a
decoder never sees more, and llmlab's sampler would otherwise slide its window and forget the start of
the prompt unseen by the client. A prompt over its budget is refused (``truncation="error"``), or cut:
``left`` keeps its end (the latest text, which a completion continues), ``middle`` keeps its start and
its end (a system message and the latest turn)::

    >>> from llmlab.serve.config import ServeConfig
    >>> fit_prompt(list(range(10)), 3, 8, ServeConfig(truncation="left"))  # 5 prompt tokens fit beside 3
    [5, 6, 7, 8, 9]
    >>> fit_prompt(list(range(10)), 3, 8, ServeConfig(truncation="middle"))
    [0, 1, 2, 8, 9]

A chat prompt is cut by `fit_chat_prompt`, around its template's tokens rather than through them.
"""

from __future__ import annotations

from llmlab.serve.config import ServeConfig
from llmlab.serve.protocol import ApiError
from llmlab.tokenizers.truncation import truncate


def prompt_budget(max_tokens: int, context: int, cfg: ServeConfig) -> int:
    """Most prompt tokens a request with `max_tokens` may keep: the context less the output's room,
    and at most ``cfg.max_prompt_tokens`` when that is set."""
    room = context - max_tokens
    return min(room, cfg.max_prompt_tokens) if cfg.max_prompt_tokens else room


def choose_max_tokens(asked: int | None, n_prompt: int, context: int, cfg: ServeConfig,
                      param: str = "max_tokens") -> int:
    """The request's ``max_tokens``, checked against the server's limit and the context; a request that
    gives none gets ``cfg.default_max_tokens`` (at most ``cfg.max_tokens_limit``), lowered to what the
    context leaves after its prompt.

    >>> choose_max_tokens(None, 250, 256, ServeConfig(default_max_tokens=16))
    6
    """
    if asked is None:
        kept = min(n_prompt, prompt_budget(1, context, cfg))
        return max(1, min(cfg.default_max_tokens, cfg.max_tokens_limit, context - kept))
    if asked > cfg.max_tokens_limit:
        raise ApiError(400, f"{param} is {asked}; this server allows at most {cfg.max_tokens_limit} "
                       "(max_tokens_limit)", param)
    if asked >= context:
        raise ApiError(400, f"{param} is {asked}, but the model's context is {context} tokens and must also hold "
                       f"the prompt (at least one token): ask for at most {context - 1}", param,
                       "context_length_exceeded")
    return asked


def fit_prompt(ids: list[int], max_tokens: int, context: int, cfg: ServeConfig, param: str = "prompt") -> list[int]:
    """`ids` if they fit beside `max_tokens` new tokens (and under ``cfg.max_prompt_tokens``); else cut
    as ``cfg.truncation`` says, or an ApiError (400) naming the field, the lengths and the limit."""
    budget = prompt_budget(max_tokens, context, cfg)
    if len(ids) <= budget:
        return ids
    if cfg.truncation == "error":
        if cfg.max_prompt_tokens and budget == cfg.max_prompt_tokens:
            msg = (f"{param} is {len(ids)} tokens; this server allows at most {cfg.max_prompt_tokens} "
                   "(max_prompt_tokens)")
        else:
            msg = (f"{param} is {len(ids)} tokens and max_tokens is {max_tokens}: together more than the model's "
                   f"context of {context} tokens; shorten the {param} to at most {budget} tokens or lower max_tokens")
        raise ApiError(400, msg, param, "context_length_exceeded")
    return truncate(ids, budget, side=cfg.truncation)


def fit_chat_prompt(ids: list[int], end_id: int, max_tokens: int, context: int, cfg: ServeConfig,
                    param: str = "messages") -> list[int]:
    """`fit_prompt` for a chat prompt: turns (role token, content, `end_id`), then the assistant's header.
    It is cut around the template's tokens, never through them: the model never reads a turn without
    its role. ``left`` drops the oldest turns whole, then the start of the oldest kept turn's content,
    keeping its role token and end; ``middle`` keeps the first turn whole (a system message) where it
    fits beside the newest turn, and cuts the turns after it so. A budget too small for the newest turn's
    role, one token of its content, its end and the header is an ApiError (400).
    (Roles 7, 8, 9, end 0: two turns, then the header 9.)

    >>> left, middle = ServeConfig(truncation="left"), ServeConfig(truncation="middle")
    >>> ids = [7, 1, 2, 0, 8, 3, 4, 5, 0, 9]
    >>> fit_chat_prompt(ids, 0, 2, 11, left), fit_chat_prompt(ids, 0, 2, 10, left), fit_chat_prompt(ids, 0, 2, 7, left)
    ([7, 2, 0, 8, 3, 4, 5, 0, 9], [8, 3, 4, 5, 0, 9], [8, 4, 5, 0, 9])
    >>> fit_chat_prompt(ids, 0, 2, 10, middle), fit_chat_prompt(ids, 0, 2, 7, middle)
    ([7, 1, 2, 0, 8, 5, 0, 9], [8, 4, 5, 0, 9])
    """
    budget = prompt_budget(max_tokens, context, cfg)
    if len(ids) <= budget or cfg.truncation == "error":
        return fit_prompt(ids, max_tokens, context, cfg, param)
    ends = [i for i, t in enumerate(ids) if t == end_id]
    turns = [ids[a + 1:b + 1] for a, b in zip([-1, *ends], ends)]
    header = ids[ends[-1] + 1:] if ends else list(ids)  # the header the answer follows
    need = len(header) + (2 + min(1, len(turns[-1]) - 2) if turns else 0)
    if budget < need:
        raise ApiError(400, f"{param}: the newest message's role and end tokens, one token of its content and the "
                       f"assistant header need {need} tokens, but max_tokens {max_tokens} leaves the prompt "
                       f"{budget}; truncation never cuts the chat template's tokens: lower max_tokens",
                       param, "context_length_exceeded")
    if cfg.truncation == "middle" and len(turns) > 1 and len(turns[0]) + need <= budget:
        return turns[0] + _cut_left(turns[1:], header, budget - len(turns[0]))
    return _cut_left(turns, header, budget)


def _cut_left(turns: list[list[int]], header: list[int], budget: int) -> list[int]:
    """The newest `turns` that fit in `budget` beside `header`, the oldest of them cut at the start of its
    content (its role and end token kept; left out where no content token would stay)."""
    kept = header
    for turn in reversed(turns):
        if len(kept) + len(turn) > budget:  # the oldest turn kept: its role, its content's end, its end token
            room = budget - len(kept) - 2
            return ([turn[0], *turn[len(turn) - 1 - room:-1], turn[-1]] if room > 0 else []) + kept
        kept = turn + kept
    return kept
