"""Autoregressive generation (topic 11): one token at a time, each conditioned on all before it.

With the KV cache, the prompt is run once and each new token costs one position of attention over
the cache; without it, every step re-runs the whole sequence. Both give the same tokens.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from llmlab.core.errors import InputError
from llmlab.generate.config import GenerationConfig
from llmlab.generate.sampling import sample_next

log = logging.getLogger(__name__)


@torch.inference_mode()
def stream(model, prompt: list[int], cfg: GenerationConfig, eos_id: int | None = None) -> Iterator[int]:
    """Yield new token ids one by one until `eos_id` (not yielded) or `max_new_tokens`."""
    if not prompt:
        raise InputError("the prompt must hold at least one token (e.g. the BOS token)")
    ctx = model.config.max_seq_len
    if len(prompt) + cfg.max_new_tokens > ctx:
        keep = max(1, ctx - cfg.max_new_tokens)
        if keep < len(prompt):
            log.warning("prompt of %d tokens truncated on the left to %d to leave room for %d new tokens",
                        len(prompt), keep, cfg.max_new_tokens)
            prompt = prompt[-keep:]
    budget = min(cfg.max_new_tokens, ctx - len(prompt))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    ids = torch.tensor([prompt], device=device)  # (1, T)
    cache = model.new_cache(1) if cfg.use_cache else None
    # q/k/v and gate/up as one matrix each while generating (models that offer it): fewer calls per token
    fused = model.fused_inference() if hasattr(model, "fused_inference") else contextlib.nullcontext()
    try:
        with fused:
            yield from _decode(model, ids, cache, budget, cfg, g, eos_id)
    finally:
        model.train(was_training)


def _decode(model, ids: torch.Tensor, cache, budget: int, cfg: GenerationConfig, g: torch.Generator,
            eos_id: int | None) -> Iterator[int]:
    logits = model(ids, cache)[:, -1]  # (1, V)
    for i in range(budget):
        nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, g)  # (1,)
        tok = int(nxt)
        if eos_id is not None and tok == eos_id:
            return
        yield tok
        if i == budget - 1:
            return
        if cache is not None:
            logits = model(nxt[:, None], cache)[:, -1]
        else:
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            logits = model(ids)[:, -1]


def generate(model, prompt: list[int], cfg: GenerationConfig | None = None, eos_id: int | None = None) -> list[int]:
    """New token ids after `prompt` (the prompt itself is not included)."""
    return list(stream(model, prompt, cfg or GenerationConfig(), eos_id))
