"""Scoring text with a causal model: the log-probability of each token given all before it
(topics 10, 11), the input of every perplexity and bits-per-character figure."""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.models.decoder import context_length


def text_start(tok) -> list[int]:
    """The context a new text starts from, for a model llmlab pretrained: its token streams end every
    line with EOS (`encode_stream`) and hold no BOS, so each text it learned from followed an EOS.
    Generation, scoring and attention plots all start there (BOS would be a token it never saw)."""
    return [tok.eos_id]


@torch.no_grad()
def token_logprobs(model, ids: list[int], start_id: int | None = None, stride: int | None = None) -> list[float]:
    """Natural-log probability of each of `ids` under `model`, by the chain rule.

    With `start_id`, the first token is predicted from it; without it, the first token is not scored.
    A sequence longer than the context is read in windows of the context's length, each scoring the
    tokens the one before did not reach. By default the windows do not overlap (each restarts its
    context, so the tokens just after a boundary see little of the text and score pessimistically);
    with ``stride`` < context each window starts `stride` tokens after the one before, so every token
    beyond the first window is predicted from at least ``context - stride`` tokens before it, at the
    cost of context / stride forwards per context of text (the sliding window of Hugging Face's
    "Perplexity of fixed-length models"; ``stride=1`` gives every token the whole context).
    """
    seq = ([start_id] if start_id is not None else []) + list(ids)
    if len(seq) < 2:
        return []
    ctx = context_length(model)
    stride = ctx if stride is None else stride
    if not 1 <= stride <= ctx:
        raise InputError(f"stride must be in [1, {ctx}] (the model's context), got {stride}")
    device = next(model.parameters()).device
    out: list[float] = []
    begin, done = 0, 0  # window start; tokens 1..done are scored
    with eval_mode(model):
        while done < len(seq) - 1:
            end = min(begin + ctx, len(seq) - 1)  # this window predicts seq[begin + 1 .. end]
            window = torch.tensor([seq[begin:end + 1]], device=device)  # (1, <= ctx + 1)
            logp = model(window[:, :-1]).float().log_softmax(-1)[0]  # (T, V): row j predicts seq[begin + j + 1]
            new = slice(done - begin, end - begin)  # the rows predicting seq[done + 1 .. end]
            out += logp[new].gather(-1, window[0, new.start + 1:new.stop + 1, None])[:, 0].tolist()
            done, begin = end, begin + stride
    return out
