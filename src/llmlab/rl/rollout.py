"""Rollouts (topic 78): the policy answers each prompt `group_size` times, and the trainer scores the
answers under the policy, the reference model and the critic.

`sample_group` decodes one prompt's group as a batch of identical prompts with the KV cache, drawing
every token from one `torch.Generator` so a seed fixes the rollouts. Each row stops at the chat template's
``<|end|>``, which is kept as the completion's last token (the policy must learn to stop); a row that
reaches `max_new_tokens` without it is *truncated*. At temperature 0 the rows are
`llmlab.generate.generate`'s greedy tokens, and a group of one draws exactly what `generate` draws
with the same seed.

`rollout` answers a step's prompts one group at a time by default (``batch=1``, what every run drew
before batching existed). With ``batch > 1`` it decodes the groups of up to `batch` prompts of similar
lengths as one batch (`sample_groups`), left-padded as `llmlab.generate.generate_batch` pads them: each
row has its own positions and a mask hides the padding, so every row computes what `sample_group`
computes for it (at temperature 0 the same tokens, tested at every position scheme), with one forward
per token for all the groups instead of one per group. The draws are other (equally distributed) ones
than ``batch=1``'s, still fixed by the seed. A prompt that cannot share a batch is decoded alone by
`sample_group`: one whose completion could reach the end of the context (`sample_group` truncates it
there), or pass dynamic NTK's trained length (cached keys keep the rotation of the step that made them);
with a soft prompt every prompt is decoded alone.

`completion_outputs` runs prompts + completions through a model in one right-padded forward and keeps
the outputs at the positions that predict each completion token: log-probabilities for a policy
(`sequence_logprobs`), values for a critic whose head has one output (`llmlab.rl.value`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmlab.core.errors import InputError
from llmlab.generate.autoregressive import decoding
from llmlab.generate.batch import batched_length, length_batches
from llmlab.generate.sampling import sample_next
from llmlab.models.decoder import CausalLM, n_virtual
from llmlab.nn.masks import left_padded_mask


@dataclass
class Rollouts:
    """Completions laid out as rows: tokens (B, T) padded after each row's end, mask (B, T) 1 on the
    completion's tokens (its ``<|end|>`` included), truncated (B,) for rows that never ended; prompts[b]
    is row b's prompt ids and source[b] the index of that prompt in the task."""

    prompts: list[list[int]]
    source: list[int]
    tokens: torch.Tensor  # (B, T) long
    mask: torch.Tensor  # (B, T) float
    truncated: torch.Tensor  # (B,) bool

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1).long()  # (B,)

    def __len__(self) -> int:
        return len(self.prompts)

    def answer_ids(self, b: int, end_id: int) -> list[int]:
        """Row b's completion without its closing ``<|end|>``."""
        ids = self.tokens[b, : int(self.lengths[b])].tolist()
        return ids[:-1] if ids and ids[-1] == end_id else ids

    def sampled_ids(self) -> list[list[int]]:
        """Each row's completion as sampled: its ``<|end|>`` included when it ended (what a reward model scores)."""
        return [self.tokens[b, : int(n)].tolist() for b, n in enumerate(self.lengths)]

    def select(self, rows: torch.Tensor | list[int]) -> Rollouts:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Rollouts([self.prompts[i] for i in rows.tolist()], [self.source[i] for i in rows.tolist()],
                        self.tokens[rows], self.mask[rows], self.truncated[rows])

    @staticmethod
    def cat(parts: list[Rollouts], pad_id: int) -> Rollouts:
        """The rows of `parts` in order, padded to the longest."""
        T = max((p.tokens.shape[1] for p in parts), default=0)
        tokens = [torch.nn.functional.pad(p.tokens, (0, T - p.tokens.shape[1]), value=pad_id) for p in parts]
        masks = [torch.nn.functional.pad(p.mask, (0, T - p.mask.shape[1])) for p in parts]
        return Rollouts([x for p in parts for x in p.prompts], [x for p in parts for x in p.source],
                        torch.cat(tokens) if parts else torch.zeros(0, 0, dtype=torch.long),
                        torch.cat(masks) if parts else torch.zeros(0, 0),
                        torch.cat([p.truncated for p in parts]) if parts else torch.zeros(0, dtype=torch.bool))


@torch.no_grad()
def sample_group(model, prompt: list[int], n: int, max_new_tokens: int, temperature: float, end_id: int,
                 pad_id: int, generator: torch.Generator, source: int = 0) -> Rollouts:
    """`n` completions of `prompt`, decoded together with the KV cache (see the module docstring).

    Completions stop at `end_id` (kept) or after `max_new_tokens`, or earlier where the model's context
    ends (such a row is truncated too).
    """
    ctx = model.config.max_seq_len
    steps = min(max_new_tokens, ctx - len(prompt))
    if not prompt or steps < 1:
        raise InputError(f"a prompt of {len(prompt)} tokens leaves no room for a completion in the model's "
                         f"context of {ctx}")
    with decoding(model) as device:
        cache = model.new_cache(n)
        logits = model(torch.tensor([prompt] * n, device=device), cache, logits_to_keep=1)[:, -1]  # (n, V)
        out = torch.full((n, steps), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        for i in range(steps):
            nxt = sample_next(logits, temperature, generator=generator)  # (n,)
            out[:, i] = torch.where(done, pad_id, nxt)
            done |= nxt == end_id
            if done.all() or i == steps - 1:
                break
            logits = model(out[:, i:i + 1], cache)[:, -1]  # (n, V): finished rows decode padding, ignored
    return ended_rows([list(prompt)] * n, [source] * n, out.cpu(), end_id)


def ended_rows(prompts: list[list[int]], source: list[int], out: torch.Tensor, end_id: int) -> Rollouts:
    """Rollouts of decoded rows `out` (B, steps) padded after their first `end_id`: the mask covers each
    row up to and including it, and a row without one is truncated.

    >>> ro = ended_rows([[1], [1]], [0, 0], torch.tensor([[4, 9, 0], [5, 6, 7]]), end_id=9)
    >>> ro.mask.tolist(), ro.truncated.tolist()
    ([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [False, True])
    """
    steps = out.shape[1]
    ended = out == end_id  # (B, steps)
    has_end = ended.any(1)
    length = torch.where(has_end, ended.float().argmax(1) + 1, steps)  # (B,) up to and including <|end|>
    mask = (torch.arange(steps)[None] < length[:, None]).float()  # (B, steps)
    return Rollouts(prompts, source, out, mask, ~has_end)


def rollout(model, prompts: list[list[int]], sources: list[int], group_size: int, max_new_tokens: int,
            temperature: float, end_id: int, pad_id: int, generator: torch.Generator, batch: int = 1) -> Rollouts:
    """`group_size` completions of each prompt, the groups consecutive (as group_advantages expects), in
    the order of `prompts`; the groups of up to `batch` prompts decoded together (see the module docstring).
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1 (prompts whose groups are decoded together), got {batch}")
    args = (group_size, max_new_tokens, temperature, end_id, pad_id, generator)
    if batch == 1:  # the draws of every run before batching: keep this path as it was
        return Rollouts.cat([sample_group(model, p, *args, s) for p, s in zip(prompts, sources)], pad_id)
    parts: list[Rollouts | None] = [None] * len(prompts)
    alone = [i for i, p in enumerate(prompts) if not batchable(model, p, max_new_tokens)]
    for i in alone:
        parts[i] = sample_group(model, prompts[i], *args, sources[i])
    rest = [i for i in range(len(prompts)) if parts[i] is None]
    for chunk in length_batches([len(prompts[i]) for i in rest], batch):
        rows = [rest[j] for j in chunk]
        groups = sample_groups(model, [prompts[i] for i in rows], [sources[i] for i in rows], *args)
        for i, part in zip(rows, groups):
            parts[i] = part
    return Rollouts.cat(parts, pad_id)


def batchable(model, prompt: list[int], max_new_tokens: int) -> bool:
    """Whether `prompt`'s group may share a left-padded batch: a causal decoder without a soft prompt, and
    room for all `max_new_tokens` within the context (and dynamic NTK's trained length), so that
    `sample_group` would neither truncate it early nor rotate its keys by the length so far."""
    if not isinstance(model, CausalLM) or n_virtual(model):
        return False
    return len(prompt) > 0 and len(prompt) + max_new_tokens <= batched_length(model, model.config.max_seq_len)


@torch.no_grad()
def sample_groups(model, prompts: list[list[int]], sources: list[int], n: int, max_new_tokens: int,
                  temperature: float, end_id: int, pad_id: int, generator: torch.Generator) -> list[Rollouts]:
    """`n` completions of each of `prompts` (each `batchable`), all decoded as one left-padded batch;
    one Rollouts per prompt. Each step the rows still running draw together from `generator`, in row order."""
    B, P, steps = len(prompts) * n, max(map(len, prompts)), max_new_tokens
    with decoding(model) as device:
        plen = torch.tensor([len(p) for p in prompts], device=device).repeat_interleave(n)  # (B,)
        ids = torch.tensor([[pad_id] * (P - len(p)) + p for p in prompts], device=device)  # (G, P)
        ids = ids.repeat_interleave(n, dim=0)  # (B, P): each prompt's n rows together
        cache = model.new_cache(B, P + steps - 1)
        real = torch.arange(P + steps - 1, device=device) >= (P - plen)[:, None]  # (B, S): not left padding
        pos = (torch.arange(P, device=device) - (P - plen)[:, None]).clamp(min=0)  # (B, P): padding at 0, unseen
        logits = model(ids, cache, left_padded_mask(real[:, :P], P), positions=pos, logits_to_keep=1)[:, -1]  # (B, V)
        out = torch.full((B, steps), pad_id, dtype=torch.long, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        for i in range(steps):
            # only running rows draw (a draw costs as much as a row's forward): finished rows write padding
            run = (~done).nonzero()[:, 0]  # (R,)
            out[run, i] = sample_next(logits[run], temperature, generator=generator)  # (R,)
            done |= out[:, i] == end_id
            if done.all() or i == steps - 1:
                break
            S = cache.length + 1
            # finished rows decode padding with the rest (cheaper than shrinking the cache), ignored
            logits = model(out[:, i:i + 1], cache, left_padded_mask(real[:, :S], 1), positions=(plen + i)[:, None])
            logits = logits[:, -1]  # (B, V)
    out = out.cpu().view(len(prompts), n, steps)
    return [ended_rows([list(p)] * n, [s] * n, o, end_id) for p, s, o in zip(prompts, sources, out)]


def completion_outputs(model, prompts: list[list[int]], tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The model's outputs (B, T, C) at the positions that predict each completion token: row b is
    prompts[b] + its completion, right-padded, in one forward; outputs past a row's end are those of
    its last token (masked out by the caller)."""
    device = next(model.parameters()).device
    B, T = tokens.shape
    plen = torch.tensor([len(p) for p in prompts])  # (B,)
    n = mask.sum(1).long().cpu()  # (B,)
    width = int((plen + n).max())  # the longest row; a row's own tokens fit the context
    x = torch.zeros(B, width, dtype=torch.long)
    for b, p in enumerate(prompts):
        x[b, : len(p)] = torch.tensor(p)
        x[b, len(p): len(p) + n[b]] = tokens[b, : n[b]].cpu()
    out = model(x[:, :-1].to(device))  # (B, width - 1, C)
    pos = (plen[:, None] - 1 + torch.arange(T)[None]).clamp(max=width - 2)  # (B, T) position predicting token t
    return out.gather(1, pos.to(device)[..., None].expand(-1, -1, out.shape[-1]))  # (B, T, C)


def token_logprobs_of(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities (B, T) of `tokens` (B, T) under logits (B, T, V) at `temperature`."""
    logp = (logits.float() / temperature).log_softmax(-1)  # (B, T, V)
    return logp.gather(-1, tokens.to(logits.device)[..., None])[..., 0]


def sequence_logprobs(model, prompt_ids: list[list[int]], completions: torch.Tensor, mask: torch.Tensor | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probabilities (B, T) of the completion tokens under `model` (0 where `mask` is 0;
    with no mask every column counts). Differentiable: the policy loss calls it with gradients on."""
    mask = torch.ones(completions.shape) if mask is None else mask
    logp = token_logprobs_of(completion_outputs(model, prompt_ids, completions, mask), completions, temperature)
    return logp * mask.to(logp.device)


def entropy(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean entropy (nats) of the next-token distributions at the masked positions."""
    logp = (logits.float() / temperature).log_softmax(-1)  # (B, T, V)
    h = -(logp.exp() * logp).sum(-1)  # (B, T)
    m = mask.to(h.device)
    return float((h * m).sum() / m.sum().clamp(min=1))
