"""Discouraging repetition at decoding time (topics 6, 59-61): penalties on the logits of tokens already seen.

Each function takes logits (R, V), one row per sequence being decoded, and the ids of those sequences
(R, T), and returns new logits; R is 1 when sampling and the beam count in beam search.

- `repetition_penalty` (CTRL, Keskar et al. 2019; Hugging Face's ``repetition_penalty``): every token that
  occurs anywhere in the sequence, prompt included, has its logit divided by the penalty when positive and
  multiplied by it when negative, so a penalty > 1 always makes it less likely, however often it occurred.
- `frequency_presence_penalty` (OpenAI's API; vLLM's): subtract ``frequency * count + presence * (count > 0)``
  where count is how often the token occurs in the generated part only. The frequency term grows with
  every repeat, so it damps loops; the presence term is a flat cost for any reuse.
- `no_repeat_ngram` (Hugging Face's ``no_repeat_ngram_size``): a token that would complete an n-gram that
  already occurs in the sequence gets -inf, so no n-gram ever occurs twice.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError

NEG_INF = float("-inf")


def repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty on every token id in `ids` (R, T); 1.0 leaves the logits as they are.

    >>> repetition_penalty(torch.tensor([[2.0, -2.0, 2.0]]), torch.tensor([[0, 1, 1]]), 2.0).tolist()
    [[1.0, -4.0, 2.0]]
    """
    if penalty == 1.0 or ids.shape[-1] == 0:
        return logits
    seen = logits.gather(-1, ids)
    return logits.scatter(-1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))


def token_counts(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in each row of `ids` (R, T): (R, V) float counts.

    >>> token_counts(torch.tensor([[2, 0, 2]]), 4).tolist()
    [[1.0, 0.0, 2.0, 0.0]]
    """
    counts = torch.zeros(ids.shape[0], vocab_size, dtype=torch.float32, device=ids.device)
    return counts.scatter_add_(-1, ids, torch.ones(ids.shape, dtype=torch.float32, device=ids.device))


def frequency_presence_penalty(logits: torch.Tensor, generated: torch.Tensor, frequency: float,
                               presence: float) -> torch.Tensor:
    """Subtract ``frequency * count + presence * (count > 0)``, counting ids in `generated` (R, T).

    >>> frequency_presence_penalty(torch.zeros(1, 3), torch.tensor([[2, 2]]), 0.5, 1.0).tolist()
    [[0.0, 0.0, -2.0]]
    """
    if (frequency == 0 and presence == 0) or generated.shape[-1] == 0:
        return logits
    counts = token_counts(generated, logits.shape[-1])
    return logits - (frequency * counts + presence * (counts > 0)).to(logits.dtype)


def no_repeat_ngram(logits: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """-inf for every token that would repeat an n-gram of `ids` (R, T); n = 0 bans nothing.

    The next token completes the n-gram (last n - 1 ids, token); it is banned where some earlier window
    of n ids starts with those same n - 1 ids (for n = 1: every id seen so far).

    >>> no_repeat_ngram(torch.zeros(1, 4), torch.tensor([[1, 2, 3, 1]]), 2).tolist()  # 1 was followed by 2
    [[0.0, 0.0, -inf, 0.0]]
    """
    T = ids.shape[-1]
    if n <= 0 or n > T:
        return logits
    windows = ids.unfold(-1, n, 1)  # (R, T - n + 1, n): every n-gram so far
    prefix = ids[:, T - n + 1:]  # (R, n - 1): what the next token would extend
    match = (windows[..., :-1] == prefix[:, None]).all(-1)  # (R, T - n + 1)
    banned = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    rows, cols = match.nonzero(as_tuple=True)
    banned[rows, windows[rows, cols, -1]] = True
    if banned.all(-1).any():
        raise InputError(f"no_repeat_ngram_size {n} bans every token of the vocabulary ({logits.shape[-1]}): "
                         "nothing is left to generate; use a larger size")
    return logits.masked_fill(banned, NEG_INF)


def apply_penalties(logits: torch.Tensor, ids: torch.Tensor, n_prompt: int, cfg) -> torch.Tensor:
    """All three penalties of a `GenerationConfig`, in Hugging Face's order (repetition, then n-grams; the
    frequency and presence terms last); `ids` (R, T) holds prompt and generated ids, the first `n_prompt`
    of them the prompt."""
    logits = repetition_penalty(logits, ids, cfg.repetition_penalty)
    logits = no_repeat_ngram(logits, ids, cfg.no_repeat_ngram_size)
    return frequency_presence_penalty(logits, ids[:, n_prompt:], cfg.frequency_penalty, cfg.presence_penalty)
