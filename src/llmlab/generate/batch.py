"""Batched generation of prompts of different lengths (topic 34): smart batching by length, left padding
and one KV cache per batch.

Prompts are sorted by length and cut into batches of at most `batch_size` (`length_batches`), so the rows
of one batch need little padding; results come back in the input order. A batch is padded on the left,
so that every row's last prompt token sits in the same cache slot and each step appends one column to
the cache. Each row's tokens get their own positions, from 0 at its first real token (after a soft
prompt's virtual tokens), and a mask hides the padding keys from every query, in the prefill and in
every step (`llmlab.nn.masks.left_padded_mask`): each row computes what `generate` computes for it alone,
so greedy decoding writes the same tokens (tested at every position scheme).

- Positions: RoPE (static scalings: none, linear, NTK, YaRN), learned, sinusoidal and NoPE read per-row
  positions. ALiBi needs none: its bias depends on the distance between query and key, which left padding
  leaves unchanged among a row's tokens; with a soft prompt the padding would sit between them and the
  virtual tokens, so that is refused.
- Dynamic-NTK RoPE rotates by the length so far once past its trained length, and cached keys keep the
  rotation of the step that made them: a row that would go there is decoded alone with `generate`.
- Context: a row whose prompt and output would pass the model's context slides `generate`'s window (each
  step then runs the whole window afresh): it is decoded alone with `generate`, so it gets its tokens.
- EOS: a row that writes `eos_id` stops (it still runs with the batch, its outputs ignored); a batch ends
  when every row stopped or after ``max_new_tokens``.
- Penalties and bans act on each running row's own ids (prompt without padding, and output), one row at a
  time, through the same `apply_penalties` as `generate`: exactly its logits.
- Sampling draws every batch's rows from one generator seeded by ``cfg.seed``; a single prompt draws as
  `generate` does, several draw other (equally distributed) tokens than one `generate` call each. A row
  decoded alone is `generate`'s call, with its own generator seeded by ``cfg.seed``.
- Beam search (``num_beams > 1``) keeps its beams as a batch of their own: each prompt is searched alone
  with `generate`. ``use_cache=False`` is refused (batching is decoding with the cache).
- Causal decoders only (`CausalLM`); encoders and encoder-decoders are refused.
"""

from __future__ import annotations

import logging

import torch

from llmlab.core.errors import InputError
from llmlab.generate.autoregressive import decoding, fit_prompt, generate
from llmlab.generate.config import GenerationConfig
from llmlab.generate.penalties import apply_penalties, check_bans
from llmlab.generate.sampling import sample_next
from llmlab.models.decoder import CausalLM, context_length, n_virtual
from llmlab.nn.masks import left_padded_mask

log = logging.getLogger(__name__)


def length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indices of `lengths` sorted by length (ties in input order), cut into batches of at most `size`.

    >>> length_batches([5, 1, 3, 1], 2)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i:i + size] for i in range(0, len(order), size)]


@torch.inference_mode()
def generate_batch(model, prompts: list[list[int]], cfg: GenerationConfig | None = None, eos_id: int | None = None,
                   batch_size: int = 16) -> list[list[int]]:
    """New token ids after each of `prompts` (prompts not included), in their order: for each, what
    `generate(model, prompt, cfg, eos_id)` gives (the same tokens when greedy), decoded `batch_size`
    prompts of similar lengths at a time. See the module docstring for what is batched and what is not."""
    cfg = cfg or GenerationConfig()
    check_batchable(model, cfg, batch_size)
    ctx = context_length(model)
    prompts = [checked_prompt(p, i, ctx, model.config.vocab_size) for i, p in enumerate(prompts)]
    if cfg.max_new_tokens == 0:
        return [[] for _ in prompts]
    out: list[list[int]] = [[] for _ in prompts]
    limit = batched_length(model, ctx)
    # generate's last forward reads len(prompt) + max_new_tokens - 1 tokens: past `limit`, only it is exact
    alone = [i for i, p in enumerate(prompts) if cfg.num_beams > 1 or len(p) + cfg.max_new_tokens - 1 > limit]
    for i in alone:
        out[i] = generate(model, prompts[i], cfg, eos_id)
    if alone and cfg.num_beams == 1:
        log.info("%d of %d prompts would pass %d tokens with their output: decoded one at a time",
                 len(alone), len(prompts), limit)
    rest = sorted(set(range(len(prompts))) - set(alone))
    cfg = check_bans(cfg, model.config.vocab_size, eos_id)
    with decoding(model) as device:
        g = torch.Generator(device=device).manual_seed(cfg.seed)
        for batch in length_batches([len(prompts[i]) for i in rest], batch_size):
            rows = [rest[j] for j in batch]
            for i, ids in zip(rows, decode_batch(model, [prompts[i] for i in rows], cfg, g, eos_id, device)):
                out[i] = ids
    return out


def check_batchable(model, cfg: GenerationConfig, batch_size: int) -> None:
    if not isinstance(model, CausalLM):
        raise InputError(f"generate_batch decodes a causal decoder (CausalLM), not a {type(model).__name__}: "
                         "encoders and encoder-decoders are not supported")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if not cfg.use_cache:
        raise InputError("generate_batch decodes with the KV cache (the same tokens as without it): use_cache=False "
                         "is for generate, one prompt at a time")
    if model.config.position == "alibi" and n_virtual(model):
        raise InputError("ALiBi with a soft prompt cannot be batched: a row's left padding would sit between its "
                         "tokens and the virtual ones, lengthening ALiBi's distances; use generate")


def checked_prompt(prompt: list[int], i: int, ctx: int, vocab_size: int) -> list[int]:
    """`prompt` cut on the left to the context as `generate` cuts it; empty or with an id past the
    vocabulary, an InputError naming it by its index `i`."""
    if not prompt:
        raise InputError(f"prompt {i} must hold at least one token (e.g. the BOS token)")
    bad = [t for t in prompt if not 0 <= t < vocab_size]
    if bad:
        raise InputError(f"prompt {i} holds token id {bad[0]} past the model's vocabulary of {vocab_size} "
                         f"(ids 0..{vocab_size - 1})")
    return fit_prompt(prompt, ctx)


def batched_length(model, ctx: int) -> int:
    """The most tokens a row may reach in a batch: the context, or dynamic NTK's trained length (less any
    soft prompt) when that is shorter, past which only `generate` computes its rotation."""
    cfg = model.config
    if cfg.position == "rope" and cfg.rope_scaling == "dynamic":
        return min(ctx, cfg.rope.original_max_positions - n_virtual(model))
    return ctx


def decode_batch(model, prompts: list[list[int]], cfg: GenerationConfig, g: torch.Generator, eos_id: int | None,
                 device) -> list[list[int]]:
    """Decode left-padded `prompts` together (each fits in the batched length with its output)."""
    B, P, n = len(prompts), max(map(len, prompts)), n_virtual(model)
    pad = [P - len(p) for p in prompts]
    pads = torch.tensor(pad, device=device)  # (B,)
    ids = torch.tensor([[0] * k + p for k, p in zip(pad, prompts)], device=device)  # (B, P): pad id 0, never seen
    cache = model.new_cache(B, P + cfg.max_new_tokens - 1)
    slot = torch.arange(n + P + cfg.max_new_tokens - 1, device=device)  # (S,)
    real = (slot < n) | (slot >= n + pads[:, None])  # (B, S): virtual and real tokens, not padding
    pos = (torch.arange(P, device=device) - pads[:, None]).clamp(min=0)  # (B, P): padding at 0, never seen
    logits = model(ids, cache, left_padded_mask(real[:, :n + P], P), positions=pos, logits_to_keep=1)[:, -1]  # (B, V)
    seqs = torch.cat([ids, ids.new_zeros(B, cfg.max_new_tokens)], dim=1)  # (B, P + new): for the penalties
    lengths = torch.tensor([len(p) for p in prompts], device=device)  # (B,): each row's next position
    out: list[list[int]] = [[] for _ in prompts]
    running = list(range(B))
    for i in range(cfg.max_new_tokens):
        logits = row_penalties(logits, seqs[:, :P + i], pad, P, running, cfg)
        nxt = sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, g)  # (B,)
        toks = nxt.tolist()
        for b in running:
            if toks[b] != eos_id:
                out[b].append(toks[b])
        running = [b for b in running if toks[b] != eos_id]
        if not running or i == cfg.max_new_tokens - 1:
            break
        seqs[:, P + i] = nxt
        S = cache.length + 1
        # stopped rows run on with the rest (cheaper than copying the cache smaller); their tokens are dropped
        logits = model(nxt[:, None], cache, left_padded_mask(real[:, :S], 1), positions=lengths[:, None] + i)[:, -1]
    return out


def row_penalties(logits: torch.Tensor, seqs: torch.Tensor, pads: list[int], P: int, running: list[int],
                  cfg: GenerationConfig) -> torch.Tensor:
    """`apply_penalties` on each running row of `logits` (B, V) with its own ids: `seqs` (B, P + i) less
    its left padding (`pads`), the prompt being its first P - pad. One row at a time, as `generate` does:
    the n-gram and bad-word matches must not see padding, and a stopped row must not raise a ban's error."""
    if not penalized(cfg):
        return logits
    logits = logits.clone()
    for b in running:
        logits[b] = apply_penalties(logits[b:b + 1], seqs[b:b + 1, pads[b]:], P - pads[b], cfg)[0]
    return logits


def penalized(cfg: GenerationConfig) -> bool:
    """Whether `cfg` sets any penalty or ban."""
    return (cfg.repetition_penalty != 1.0 or cfg.frequency_penalty != 0 or cfg.presence_penalty != 0
            or cfg.no_repeat_ngram_size > 0 or bool(cfg.suppress_tokens) or bool(cfg.bad_words_ids))
