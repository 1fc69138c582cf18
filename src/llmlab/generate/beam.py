"""Beam search (topics 59-61): keep the `num_beams` most likely partial outputs at every step, not one.

Greedy decoding commits to the single most likely token each step and can miss an output that starts
less likely but ends more likely; beam search keeps k candidates ("beams") scored by their summed
log-probability. Each step extends every beam by every token, and of the k x V extensions keeps the best
2k: one that ends (EOS, or the last allowed token) and ranks among the first k becomes a finished
hypothesis, scored by its log-probability / length ** `length_penalty`; the best k that go on are the
next beams. The search stops once no running beam can beat the worst of k finished hypotheses (judged
at its current length, Hugging Face's default heuristic), and returns the best finished one.

This follows Hugging Face's beam search step for step (same candidates, scores, finishing and stopping
rules, and repetition penalties and bans applied to log-probabilities), so both return the same tokens for the
same weights; the tests check that against ``transformers``.
"""

from __future__ import annotations

import torch

from llmlab.generate.autoregressive import decoding, fit_prompt
from llmlab.generate.config import GenerationConfig
from llmlab.generate.penalties import apply_penalties, check_bans
from llmlab.models.decoder import context_length

DEAD = -1e9  # Hugging Face's score for "not a candidate": beams 1..k-1 before the first step


@torch.inference_mode()
def beam_search(model, prompt: list[int], cfg: GenerationConfig, eos_id: int | None = None) -> list[int]:
    """The new token ids of the best finished beam (without its EOS), after `prompt`."""
    k, ctx = cfg.num_beams, context_length(model)
    prompt = fit_prompt(prompt, ctx)
    cfg = check_bans(cfg, model.config.vocab_size, eos_id)
    if cfg.max_new_tokens == 0:
        return []
    n_prompt = len(prompt)
    with decoding(model) as device:
        seqs = torch.tensor([prompt] * k, device=device)  # (k, T): every beam starts as the prompt
        scores = torch.full((k,), DEAD, device=device)
        scores[0] = 0.0  # one live beam at first, so the first step does not pick the same token k times
        finished: list[tuple[float, list[int]]] = []  # (length-normalised score, new ids), best first
        cache = model.new_cache(k) if cfg.use_cache else None
        logits = model(seqs, cache, logits_to_keep=1)[:, -1]
        for step in range(1, cfg.max_new_tokens + 1):
            logp = apply_penalties(torch.log_softmax(logits.float(), -1), seqs, n_prompt, cfg)
            top, flat = torch.topk((scores[:, None] + logp).reshape(-1), 2 * k)  # best 2k extensions
            beam, tok = flat // logp.shape[-1], flat % logp.shape[-1]
            ends = tok == eos_id if eos_id is not None else torch.zeros_like(tok, dtype=torch.bool)
            if step == cfg.max_new_tokens:
                ends[:] = True
            # only the first k may finish; the other k are spares that keep k beams running
            finished += [(float(top[r]) / step ** cfg.length_penalty, seqs[beam[r], n_prompt:].tolist() + [int(tok[r])])
                         for r in range(k) if ends[r]]
            finished = sorted(finished, key=lambda f: -f[0])[:k]
            if step == cfg.max_new_tokens:
                break
            going = (~ends).nonzero().squeeze(1)[:k]  # at most k end (one EOS per beam): k go on
            scores, rows = top[going], beam[going]
            seqs = torch.cat([seqs[rows], tok[going, None]], dim=1)
            if len(finished) == k and float(scores[0]) / step ** cfg.length_penalty <= finished[-1][0]:
                break  # no running beam can beat the worst finished one any more
            if cache is not None and cache.length < cache.max_len:
                cache.reorder(rows)
                logits = model(seqs[:, -1:], cache)[:, -1]
            else:  # no cache, or a full window: run the latest `ctx` tokens of every beam
                cache = model.new_cache(k) if cache is not None else None
                logits = model(seqs[:, -ctx:], cache, logits_to_keep=1)[:, -1]
    best = finished[0][1]
    return best[:-1] if eos_id is not None and best and best[-1] == eos_id else best
