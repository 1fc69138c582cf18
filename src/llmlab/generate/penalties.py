"""Discouraging repetition at decoding time (topics 6, 59-61): penalties on the logits of tokens already seen,
and bans on tokens a user never wants to see.

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
- `suppress_tokens` (Hugging Face's ``suppress_tokens``): the given ids get -inf at every step, e.g. ``<unk>``,
  which a small or undertrained model writes a lot.
- `bad_words` (Hugging Face's ``bad_words_ids``): a banned id sequence's last id gets -inf whenever the
  sequence so far ends with the rest of it, so the whole sequence never appears; a one-id sequence is banned
  at every step. It bans what follows a prefix, so the prefix itself can still be written.

Where bans leave a row no token at all, Hugging Face greedy-picks id 0 (a banned one) and its sampler fails
on the NaN probabilities; llmlab raises an InputError that names the setting instead.
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from llmlab.core.errors import InputError

log = logging.getLogger(__name__)

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
    return ban(logits, banned, f"no_repeat_ngram_size {n}", "use a larger size")


def bad_words(logits: torch.Tensor, ids: torch.Tensor, sequences: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """-inf for the last id of each of `sequences` whose other ids end `ids` (R, T); a one-id sequence always.

    Sequences are matched in groups of one length, all rows and sequences of a group in one comparison;
    one longer than the ids so far cannot match yet.

    >>> bad_words(torch.zeros(2, 4), torch.tensor([[1, 2], [2, 1]]), ((3,), (2, 0), (1, 2, 1))).tolist()
    [[-inf, -inf, 0.0, -inf], [0.0, 0.0, 0.0, -inf]]
    """
    if not sequences:
        return logits
    T = ids.shape[-1]
    banned = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    by_length: dict[int, list[tuple[int, ...]]] = {}
    for s in sequences:
        by_length.setdefault(len(s), []).append(s)
    for n, group in by_length.items():
        if n - 1 > T:
            continue
        prefixes = torch.tensor([s[:-1] for s in group], dtype=ids.dtype, device=ids.device)  # (G, n - 1)
        last = torch.tensor([s[-1] for s in group], device=ids.device)  # (G,)
        match = (ids[:, None, T - n + 1:] == prefixes).all(-1)  # (R, G); n = 1: every row
        rows, cols = match.nonzero(as_tuple=True)
        banned[rows, last[cols]] = True
    return ban(logits, banned, "bad_words_ids")


def suppress_tokens(logits: torch.Tensor, token_ids: tuple[int, ...]) -> torch.Tensor:
    """-inf for every id in `token_ids` (each < V; `check_bans` says so clearly), in every row.

    >>> suppress_tokens(torch.zeros(2, 3), (0, 2)).tolist()
    [[-inf, 0.0, -inf], [-inf, 0.0, -inf]]
    """
    if not token_ids:
        return logits
    banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    banned[list(token_ids)] = True
    return ban(logits, banned, "suppress_tokens")


def ban(logits: torch.Tensor, banned: torch.Tensor, setting: str, advice: str = "ban fewer") -> torch.Tensor:
    """`logits` with -inf where `banned` (broadcast to them); an InputError naming `setting` when that leaves
    some row no token, counting what earlier bans took (those logits are -inf already)."""
    out = logits.masked_fill(banned, NEG_INF)
    if torch.isneginf(out).all(-1).any():
        raise InputError(f"{setting} bans every token of the vocabulary ({logits.shape[-1]}) still allowed: "
                         f"nothing is left to generate; {advice}")
    return out


def check_bans(cfg, vocab_size: int, eos_id: int | None = None):
    """`cfg` ready to decode with a model of `vocab_size` tokens: an id past the vocabulary in
    ``suppress_tokens`` or ``bad_words_ids`` is an InputError, and, as in Hugging Face's ``generate``, a
    one-id bad word that is `eos_id` is dropped (with a warning: ``suppress_tokens`` forbids EOS)."""
    for name, seqs in (("suppress_tokens", (cfg.suppress_tokens,)), ("bad_words_ids", cfg.bad_words_ids)):
        past = sorted({i for s in seqs for i in s if i >= vocab_size})
        if past:
            raise InputError(f"{name} holds token ids {past} past the model's vocabulary of {vocab_size} "
                             f"(ids 0..{vocab_size - 1})")
    if eos_id is None or (eos_id,) not in cfg.bad_words_ids:
        return cfg
    log.warning("bad_words_ids: the one-token sequence (%d,) is EOS and is ignored, as in Hugging Face; "
                "use suppress_tokens to forbid EOS", eos_id)
    return dataclasses.replace(cfg, bad_words_ids=tuple(s for s in cfg.bad_words_ids if s != (eos_id,)))


def apply_penalties(logits: torch.Tensor, ids: torch.Tensor, n_prompt: int, cfg) -> torch.Tensor:
    """The penalties and bans of a `GenerationConfig`, in Hugging Face's order (repetition, n-grams, bad words,
    suppressed tokens; the frequency and presence terms, which it lacks, last); `ids` (R, T) holds prompt and
    generated ids, the first `n_prompt` of them the prompt. Decoders pass `cfg` through `check_bans` first."""
    logits = repetition_penalty(logits, ids, cfg.repetition_penalty)
    logits = no_repeat_ngram(logits, ids, cfg.no_repeat_ngram_size)
    logits = bad_words(logits, ids, cfg.bad_words_ids)
    logits = suppress_tokens(logits, cfg.suppress_tokens)
    return frequency_presence_penalty(logits, ids[:, n_prompt:], cfg.frequency_penalty, cfg.presence_penalty)
