"""A soft prompt's settings (`llmlab.adapt.prompt_tuning`): plain data, importable without torch (the fine-tuning
config validates its prompt flags with it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmlab.core.errors import InputError

INITS = ("random", "vocab", "text")


@dataclass(frozen=True)
class PromptConfig:
    n_virtual: int = 20  # virtual tokens before every sequence (they take context positions); >= 1
    init: str = "vocab"  # random: N(0, init_std) | vocab: tokens drawn uniformly from the vocabulary | text: init_text
    init_text: str = ""  # init="text": its tokens, repeated or cut to n_virtual (PEFT's TEXT init; e.g. label words)
    init_std: float = 0.0  # init="random": its std; 0 = the token embeddings' own (soft) or 1 (deep, as PEFT's)
    deep: bool = False  # a key and value prefix in every layer (P-tuning v2) instead of input vectors
    projection: int = 0  # deep: learn the prefixes through prefix tuning's MLP of this hidden width; 0 = directly
    seed: int = 0  # seed of the random and vocab inits

    def __post_init__(self):
        for name in ("n_virtual", "projection", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "n_virtual" else 0):
                raise InputError(f"prompt {name} must be an integer >= {1 if name == 'n_virtual' else 0}, got {v!r}")
        if self.init not in INITS:
            raise InputError(f"prompt init must be one of {INITS}, got {self.init!r}")
        if self.init == "text" and not (isinstance(self.init_text, str) and self.init_text):
            raise InputError("prompt init 'text' needs a non-empty init_text (e.g. the task's label words)")
        if not isinstance(self.init_std, (int, float)) or not 0 <= self.init_std < math.inf:
            raise InputError(f"prompt init_std must be a finite number >= 0 (0 = automatic), got {self.init_std!r}")
        if self.projection and not self.deep:
            raise InputError("prompt projection (prefix tuning's MLP) applies to deep prompts only: set deep")
        if self.projection and self.init != "random":
            raise InputError(f"prompt init {self.init!r} sets the prefixes themselves, which a projection computes: "
                             "use init 'random' with a projection")
