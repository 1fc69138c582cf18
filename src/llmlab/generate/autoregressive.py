"""Autoregressive generation (topic 11): one token at a time, each conditioned on all before it.

With the KV cache, the prompt is run once and each new token costs one position of attention over
the cache; without it, every step re-runs the whole sequence. Both give the same tokens, with one
exception: dynamic-NTK RoPE past its original trained length, where the rotation depends on the length
so far, so cached keys keep the rotation of the step that made them (as in Hugging Face's cache).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.generate.config import GenerationConfig
from llmlab.generate.penalties import apply_penalties, check_bans
from llmlab.generate.sampling import sample_next
from llmlab.models.decoder import context_length

log = logging.getLogger(__name__)


@torch.inference_mode()
def stream(model, prompt: list[int], cfg: GenerationConfig, eos_id: int | None = None,
           prefilled: tuple | None = None, *, n_prompt: int | None = None,
           generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield new token ids one by one until `eos_id` (not yielded) or `max_new_tokens`.

    The model sees at most its context (``max_seq_len``) of the latest tokens, as nanoGPT's sampler
    does: a longer prompt is cut on the left, and once prompt and output fill the context the window
    slides. Past that point each step runs the whole window afresh (the KV cache is refilled from
    it), so cached and uncached generation still give the same tokens. Beam search (``num_beams > 1``)
    knows its output only at the end: use `generate` for it.

    `prefilled` (cache, logits): the caller ran the prompt already (a chunk at a time, `RunningBatch`'s
    chunked prefill), into `cache` (``model.new_cache(1)``), and `logits` (1, V) are its last position's;
    decoding goes on from there. The prompt must then fit the context as given (it is not cut).

    Going on with an output after an interruption (an agent's tool call, `llmlab.generate.agent`): `n_prompt`
    of `prompt`'s tokens are the prompt and the rest is output already written, which the frequency and
    presence penalties count as output; `generator` is the one the earlier part drew from (default: a new one
    seeded with ``cfg.seed``), so the draws go on rather than start again.
    """
    if cfg.num_beams > 1:
        raise InputError("beam search cannot stream tokens one by one (the best beam is known only at the end): "
                         "use generate()")
    ctx = context_length(model)
    n_prompt = len(prompt) if n_prompt is None else n_prompt
    fitted = fit_prompt(prompt, ctx)
    n_prompt = max(n_prompt - (len(prompt) - len(fitted)), 0)  # output cut on the left is no longer seen
    cfg = check_bans(cfg, model.config.vocab_size, eos_id)
    with decoding(model) as device:
        g = torch.Generator(device=device).manual_seed(cfg.seed) if generator is None else generator
        yield from _decode(model, torch.tensor([fitted], device=device), ctx, cfg, g, eos_id, prefilled, n_prompt)


def fit_prompt(prompt: list[int], ctx: int) -> list[int]:
    """The prompt, cut on the left to the model's context `ctx`; an empty one is an InputError."""
    if not prompt:
        raise InputError("the prompt must hold at least one token (e.g. the BOS token)")
    if len(prompt) > ctx:
        log.warning("prompt of %d tokens cut on the left to the model's context of %d", len(prompt), ctx)
        prompt = prompt[-ctx:]
    return list(prompt)


@contextlib.contextmanager
def decoding(model) -> Iterator[torch.device]:
    """The model in eval mode, with fused q/k/v and gate/up matrices where it offers them (fewer calls per
    token), for the time of a decode; yields its device. Training mode is restored after."""
    fused = model.fused_inference() if hasattr(model, "fused_inference") else contextlib.nullcontext()
    with eval_mode(model), fused:
        yield next(model.parameters()).device


def _decode(model, ids: torch.Tensor, ctx: int, cfg: GenerationConfig, g: torch.Generator,
            eos_id: int | None, prefilled: tuple | None = None, n_prompt: int | None = None) -> Iterator[int]:
    if prefilled is None:
        cache = model.new_cache(1) if cfg.use_cache else None
        logits = model(ids, cache, logits_to_keep=1)[:, -1]  # (1, V)
    else:
        cache, logits = prefilled
    n_prompt = ids.shape[1] if n_prompt is None else n_prompt
    for i in range(cfg.max_new_tokens):
        logits = apply_penalties(logits, ids, n_prompt, cfg)
        nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, g)  # (1,)
        tok = int(nxt)
        if eos_id is not None and tok == eos_id:
            return
        yield tok
        if i == cfg.max_new_tokens - 1:
            return
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if cache is not None and cache.length < cache.max_len:
            logits = model(nxt[:, None], cache)[:, -1]  # one new position against the cache
        else:  # no cache, or a full window: run the latest `ctx` tokens
            if cache is not None:
                cache = model.new_cache(1)
            logits = model(ids[:, -ctx:], cache, logits_to_keep=1)[:, -1]


def generate(model, prompt: list[int], cfg: GenerationConfig | None = None, eos_id: int | None = None) -> list[int]:
    """New token ids after `prompt` (the prompt itself is not included): sampled, or the best beam of a
    beam search when ``cfg.num_beams > 1``."""
    cfg = cfg or GenerationConfig()
    if cfg.num_beams > 1:
        from llmlab.generate.beam import beam_search

        return beam_search(model, prompt, cfg, eos_id)
    return list(stream(model, prompt, cfg, eos_id))
