"""Scoring text with a causal model: the log-probability of each token given all before it
(topics 10, 11), the input of every perplexity and bits-per-character figure."""

from __future__ import annotations

import torch

from llmlab.models.decoder import context_length


def text_start(tok) -> list[int]:
    """The context a new text starts from, for a model llmlab pretrained: its token streams end every
    line with EOS (`encode_stream`) and hold no BOS, so each text it learned from followed an EOS.
    Generation, scoring and attention plots all start there (BOS would be a token it never saw)."""
    return [tok.eos_id]


@torch.no_grad()
def token_logprobs(model, ids: list[int], start_id: int | None = None) -> list[float]:
    """Natural-log probability of each of `ids` under `model`, by the chain rule.

    With `start_id`, the first token is predicted from it; without it, the first token is not scored.
    Sequences longer than the context are scored in consecutive windows (each window restarts its
    context, so scores there are slightly pessimistic).
    """
    seq = ([start_id] if start_id is not None else []) + list(ids)
    if len(seq) < 2:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ctx = context_length(model)
    out: list[float] = []
    for start in range(0, len(seq) - 1, ctx):
        window = torch.tensor([seq[start:start + ctx + 1]], device=device)  # (1, <= ctx + 1)
        logp = model(window[:, :-1]).float().log_softmax(-1)  # (1, T, V)
        out += logp[0].gather(-1, window[0, 1:, None])[:, 0].tolist()
    model.train(was_training)
    return out
