"""Decoding settings: plain data, importable without torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmlab.core.errors import InputError


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
    num_beams: int = 1  # beam search with this many beams (1 = sample); beams ignore temperature, top-k, top-p
    length_penalty: float = 1.0  # beam search: finished beams rank by log-probability / length ** this

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:
            raise InputError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.repetition_penalty < math.inf:
            raise InputError(f"repetition_penalty must be a finite number > 0, got {self.repetition_penalty}")
        for name in ("frequency_penalty", "presence_penalty", "length_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.no_repeat_ngram_size < 0:
            raise InputError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.num_beams < 1:
            raise InputError(f"num_beams must be >= 1, got {self.num_beams}")
        if not 0 <= self.seed < 2**63:  # what torch.Generator takes
            raise InputError(f"seed must be in [0, 2**63), got {self.seed}")
