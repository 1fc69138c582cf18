"""Decoding settings: plain data, importable without torch."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from llmlab.core.errors import InputError

# The largest penalty (and, for the repetition penalty, its inverse the smallest): a logit moved by this much
# is banned or forced already, and the float32 logits overflow to inf (or NaN) not much further on
PENALTY_LIMIT = 1e9
WHY_LIMIT = "beyond, the float32 logits overflow, and this much already bans or forces a token"


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 100  # stop after this many new tokens
    temperature: float = 0.8  # 0 = greedy; higher = flatter distribution
    top_k: int = 0  # keep only the k most likely tokens (0 = off)
    top_p: float = 1.0  # nucleus sampling: keep the most likely tokens up to this mass (1 = off)
    seed: int = 0  # sampling seed
    use_cache: bool = True  # use the KV cache (same tokens but with dynamic-NTK RoPE past its trained length)
    repetition_penalty: float = 1.0  # CTRL's: shrink logits of tokens already in prompt or output by this (1 = off)
    frequency_penalty: float = 0.0  # minus this times each token's count in the output so far
    presence_penalty: float = 0.0  # minus this for each token already in the output
    no_repeat_ngram_size: int = 0  # never repeat an n-gram of prompt and output of this size (0 = off)
    num_beams: int = 1  # beam search with this many beams (1 = sample); beams take no temperature, top-k, top-p
    length_penalty: float = 1.0  # beam search: finished beams rank by log-probability / length ** this
    suppress_tokens: tuple[int, ...] = ()  # token ids never generated (Hugging Face's suppress_tokens)
    bad_words_ids: tuple[tuple[int, ...], ...] = ()  # id sequences never generated (HF's): see penalties.bad_words

    # settings of one way of decoding (`llmlab.core.config.check_applies`), checked for the flags given on the
    # command line; the config takes them all (an OpenAI request may send a seed with temperature 0)
    APPLIES = {
        **{k: (lambda c: c.temperature > 0 and c.num_beams == 1,
               "to sampling (--temperature > 0, without --num-beams)") for k in ("seed", "top_k", "top_p")},
        "temperature": (lambda c: c.num_beams == 1, "to sampling, not to beam search (--num-beams {cfg.num_beams})"),
        "length_penalty": (lambda c: c.num_beams > 1, "to beam search (--num-beams N > 1)"),
    }

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:
            raise InputError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1 / PENALTY_LIMIT <= self.repetition_penalty <= PENALTY_LIMIT:
            raise InputError(f"repetition_penalty must be in [{1 / PENALTY_LIMIT:g}, {PENALTY_LIMIT:g}] (> 0; "
                             f"{WHY_LIMIT}), got {self.repetition_penalty}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not abs(getattr(self, name)) <= PENALTY_LIMIT:
                raise InputError(f"{name} must be in [-{PENALTY_LIMIT:g}, {PENALTY_LIMIT:g}] ({WHY_LIMIT}), got "
                                 f"{getattr(self, name)}")
        if not math.isfinite(self.length_penalty):
            raise InputError(f"length_penalty must be a finite number, got {self.length_penalty}")
        if self.no_repeat_ngram_size < 0:
            raise InputError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.num_beams < 1:
            raise InputError(f"num_beams must be >= 1, got {self.num_beams}")
        if not 0 <= self.seed < 2**63:  # what torch.Generator takes
            raise InputError(f"seed must be in [0, 2**63), got {self.seed}")
        # lists (from JSON or a caller) are stored as tuples, so the config stays hashable
        object.__setattr__(self, "suppress_tokens", token_ids(self.suppress_tokens, "suppress_tokens"))
        bad = self.bad_words_ids
        if isinstance(bad, (str, bytes)) or not hasattr(bad, "__iter__"):
            raise InputError(f"bad_words_ids must be a list of token id sequences, got {bad!r}")
        object.__setattr__(self, "bad_words_ids", tuple(token_ids(s, f"bad_words_ids[{i}]", empty=False)
                                                        for i, s in enumerate(bad)))


def token_ids(ids, name: str, empty: bool = True) -> tuple[int, ...]:
    """`ids` as a tuple of ints >= 0; anything else (a string, a negative or fractional id, an empty
    sequence where `empty` is False) is an InputError naming `name`. Ids past the model's vocabulary are
    caught at generation time, where the vocabulary is known.

    >>> token_ids([3, 0], "suppress_tokens")
    (3, 0)
    >>> token_ids([], "bad_words_ids[0]", empty=False)
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: bad_words_ids[0] must hold at least one token id, got []
    """
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise InputError(f"{name} must be a sequence of token ids, got {ids!r}")
    out = []
    for i in ids:
        try:
            if isinstance(i, bool):  # True is an int to Python, never a token id
                raise TypeError
            out.append(operator.index(i))
        except TypeError:
            raise InputError(f"{name} must hold token ids (ints), got {i!r} in {ids!r}") from None
        if out[-1] < 0:
            raise InputError(f"{name} must hold token ids >= 0, got {out[-1]} in {ids!r}")
    if not out and not empty:
        raise InputError(f"{name} must hold at least one token id, got {ids!r}")
    return tuple(out)
