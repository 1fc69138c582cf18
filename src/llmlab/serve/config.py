"""The server's settings: where it listens and the limits every request must keep (topics 14, 62-63).
Plain data, importable without torch, so the CLI builds its flags from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmlab.core.config import changed_settings, check_applies
from llmlab.core.errors import InputError

TRUNCATIONS = ("error", "left", "middle")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # address to listen on; 0.0.0.0 opens it to the network (there is no authentication)
    port: int = 8000  # TCP port; 0 picks a free one
    model_name: str = ""  # the model id requests name and responses carry ("" = the model directory's name)
    max_body_bytes: int = 1_000_000  # a request body larger than this is refused with 413, unread
    max_prompt_tokens: int = 0  # most prompt tokens a request may use (0 = no limit but the model's context)
    max_tokens_limit: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 128  # max_tokens of a request that gives none (at most max_tokens_limit; lowered to fit)
    truncation: str = "error"  # over budget: error (400), left (keep the end), middle (both); chats cut around roles
    max_batch: int = 8  # requests decoded together (continuous batching); 1 = one at a time, the serial server
    prefill_chunk: int = 0  # prompt tokens prefilled per decode step at most (chunked prefill; 0 = each prompt whole)
    max_wait_seconds: float = 60.0  # a request waiting longer than this for a place among max_batch gets 503
    read_timeout: float = 30.0  # seconds a client may leave its connection silent before it is closed

    # settings that do nothing in some servers (`llmlab.core.config.check_applies`): the serial server decodes
    # each request by `stream` alone, whose prefill is one forward
    APPLIES = {"prefill_chunk": (lambda c: c.max_batch > 1, "to batched decoding (--max-batch N > 1); "
                                 "--max-batch 1 prefills each prompt in one forward")}

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host:
            raise InputError(f"host must be a non-empty address, got {self.host!r}")
        if not 0 <= self.port <= 65535:
            raise InputError(f"port must be in [0, 65535] (0 = any free port), got {self.port}")
        if self.max_body_bytes < 1:
            raise InputError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.max_prompt_tokens < 0:
            raise InputError(f"max_prompt_tokens must be >= 0 (0 = the model's context), got {self.max_prompt_tokens}")
        if self.max_batch < 1:
            raise InputError(f"max_batch must be >= 1 (1 = one request at a time), got {self.max_batch}")
        if self.prefill_chunk < 0:
            raise InputError(f"prefill_chunk must be >= 0 (0 = each prompt in one forward), got {self.prefill_chunk}")
        if self.max_tokens_limit < 1:
            raise InputError(f"max_tokens_limit must be >= 1, got {self.max_tokens_limit}")
        if self.default_max_tokens < 1:
            raise InputError(f"default_max_tokens must be >= 1, got {self.default_max_tokens}")
        if self.truncation not in TRUNCATIONS:
            raise InputError(f"truncation must be one of {TRUNCATIONS}, got {self.truncation!r}")
        for name in ("max_wait_seconds", "read_timeout"):
            value = getattr(self, name)
            if not (0 < value < math.inf):
                raise InputError(f"{name} must be a finite number of seconds > 0, got {value}")
        check_applies(self, changed_settings(self))
