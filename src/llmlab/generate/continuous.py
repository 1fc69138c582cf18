"""Continuous (iteration-level) batching (topic 34; Orca, Yu et al. 2022; vLLM, TGI): a running batch that
sequences join and leave between decode steps, each step one forward for every row.

`generate_batch` decodes a fixed batch to its end; a server's requests come and go at any time.
`RunningBatch` holds the rows being decoded now and one KV cache for them, laid out as `generate_batch`
lays it out: each row's tokens are right-aligned, so every row's newest token sits in the same cache slot
and a step appends one column; the slots left of a shorter row are padding, hidden from its queries by
`left_padded_mask`, and each row reads its own positions (from 0 at its first token). So each row computes
what `generate` computes for it alone: greedy rows write the same tokens (tested at every position scheme).

- Join (`add`): the prompt is prefilled alone, exactly as `generate` prefills it (one forward with a
  cache of its own), and its first token sampled; at the next `step` its keys and values are copied into
  the batch's cache, right-aligned. A prompt longer than the rows there re-pads the batch on the left: the
  cache is rebuilt one column wider per token it lacks, the old rows shifted right.
- Chunked prefill (``prefill_chunk=N``, as in vLLM and SARATHI, Agrawal et al. 2023): `add` only queues
  the prompt, and each `step` after its decode forward runs at most N prompt tokens of the queue, first
  come first served, each row's chunk one forward against its own cache (the tokens before it at their
  positions, causal within the chunk: what the one forward computes, in other matrix shapes). A long
  prompt so takes several steps, and no step runs more than N prompt tokens beside the running rows'
  one token each: the running rows' inter-token gap stays bounded. The step that runs a prompt's last
  chunk samples its first token and returns the row; it joins the batch's cache at the next step. A row
  that decodes alone is chunked alike, then decoded by `stream` from its cache, except where a chunk
  would compute other keys: past dynamic NTK's trained length (the rotation of a forward depends on its
  length) and with ``use_cache=False``; those, and ``alone=True`` batches, prefill in one forward.
- Leave (`remove`, or EOS / ``max_new_tokens`` in a step): the row is dropped at the next step, and the
  columns no row needs any more (padding on the left of every remaining row) go with it, so the cache is
  as long as its longest row. One rebuild per step covers every join and leave of that step; the cache
  also grows by a margin when full, rather than a column per step.
- Sampling: each row keeps its own `GenerationConfig` (temperature, top-k, top-p, penalties and bans) and
  its own `torch.Generator`, seeded by its ``seed`` as `stream` seeds it, and samples from its row of the
  batch's logits with `generate`'s own calls: a seeded row draws the tokens it draws alone, as long as its
  logits are the same (they may differ in the last bits between batch shapes; greedy ties aside, the same).
- Alone: a row the batch cannot compute as `generate` does decodes alone, by `stream` itself, one token
  per `step`: one whose prompt and output would pass the context (the window slides) or dynamic NTK's
  trained length (`batched_length`), a model with a soft prompt (its virtual tokens would need a slot
  layout of their own), ``use_cache=False``, and every row of a batch made with ``alone=True`` (serial
  decoding, one request at a time, exactly `stream`'s computation). Beam search does not stream: refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from llmlab.core.errors import InputError
from llmlab.generate.autoregressive import fit_prompt, stream
from llmlab.generate.batch import batched_length, penalized
from llmlab.generate.config import GenerationConfig
from llmlab.generate.penalties import apply_penalties, check_bans
from llmlab.generate.sampling import sample_next
from llmlab.models.decoder import CausalLM, context_length, n_virtual
from llmlab.nn.attention import KVCache
from llmlab.nn.masks import left_padded_mask

GROW = 32  # cache columns added when a step finds it full (a rebuild copies the whole cache)


class Row:
    """One sequence in a `RunningBatch`. After `add` or a `step`: `token` is its newest token (None if it
    wrote EOS, which is not a token of its output, or its prompt is still being prefilled: `pending` > 0),
    `finished` says it wrote its last one (EOS, or its ``max_new_tokens``-th), `error` holds the
    InputError its sampling raised (it is finished then)."""

    def __init__(self, prompt: list[int], cfg: GenerationConfig, eos_id: int | None, device):
        self.ids = list(prompt)  # prompt, then every token written (the penalties read them)
        self.n_prompt = len(prompt)
        self.cfg, self.eos_id = cfg, eos_id
        self.g = torch.Generator(device=device).manual_seed(cfg.seed)  # as `stream` seeds its own
        self.token: int | None = None
        self.written = 0  # tokens sampled so far, EOS included
        self.finished = False
        self.error: InputError | None = None
        self.alone: Iterator[int] | None = None  # `stream`'s iterator, for a row decoded alone
        self.pending = 0  # prompt tokens still to prefill (chunked prefill), from n_prompt - pending on

    @property
    def cached(self) -> int:
        """Tokens of this row in the batch's cache: all but the newest, which the next step feeds."""
        return len(self.ids) - 1

    def take(self, token: int) -> None:
        """Record a sampled token, as `stream` does: EOS ends the row unwritten, the last token ends it."""
        self.written += 1
        if self.eos_id is not None and token == self.eos_id:
            self.token, self.finished = None, True
            return
        self.token = token
        self.ids.append(token)
        self.finished = self.written == self.cfg.max_new_tokens


def batchable(model, n_prompt: int, cfg: GenerationConfig) -> bool:
    """Whether a row of `n_prompt` prompt tokens decoding with `cfg` gets `generate`'s computation in a batch."""
    if not isinstance(model, CausalLM) or n_virtual(model) or not cfg.use_cache or cfg.num_beams > 1:
        return False
    # stream's last forward reads n_prompt + max_new_tokens - 1 tokens: past the limit, only it is exact
    return n_prompt + cfg.max_new_tokens - 1 <= batched_length(model, context_length(model))


def chunkable(model, n_prompt: int, cfg: GenerationConfig) -> bool:
    """Whether a prompt of `n_prompt` tokens prefilled a chunk at a time, each against the cache of those
    before, gets the keys and values of one forward: with a cache, and within dynamic NTK's trained length
    (past it, one forward rotates every key by the whole prompt's length, a chunk by its own end)."""
    return (isinstance(model, CausalLM) and cfg.use_cache and cfg.num_beams == 1
            and n_prompt <= batched_length(model, context_length(model)))


class RunningBatch:
    """The rows being decoded; call `step` for one token more of each. `alone=True` decodes every row by
    `stream` alone (one forward per row per step). `prefill_chunk` N > 0 prefills prompts N tokens per
    step at most (chunked prefill, see the module docstring); 0 prefills each prompt in `add`, whole. Run
    it inside `decoding(model)` (eval mode, fused matrices), under ``torch.inference_mode``, as the
    methods are."""

    def __init__(self, model, alone: bool = False, prefill_chunk: int = 0):
        if prefill_chunk < 0:
            raise InputError(f"prefill_chunk must be >= 0 (0 = each prompt in one forward), got {prefill_chunk}")
        self.model, self.alone, self.chunk = model, alone, 0 if alone else prefill_chunk
        self.device = next(model.parameters()).device
        self.ctx = context_length(model)
        self.rows: list[Row] = []  # batched rows, in the order of the cache's batch dimension
        self.joining: list[tuple[Row, object]] = []  # prefilled rows and their own caches, merged at the next step
        self.solo: list[Row] = []  # rows decoded alone
        self.prefilling: list[tuple[Row, KVCache, bool]] = []  # queued prompts, their caches, whether batched
        self.cache = None  # KVCache of `rows`: each row's `cached` tokens right-aligned, ending at cache.length

    @torch.inference_mode()
    def add(self, prompt: list[int], cfg: GenerationConfig, eos_id: int | None = None) -> Row:
        """A new row: its prompt prefilled (alone, as `generate` does) and its first token sampled; with
        `prefill_chunk`, queued instead, for the steps to prefill (its `token` is None until then)."""
        if cfg.num_beams > 1:
            raise InputError("beam search cannot join a running batch (its best beam is known only at the end): "
                             "use generate()")
        prompt = fit_prompt(prompt, self.ctx)
        cfg = check_bans(cfg, self.model.config.vocab_size, eos_id)
        batched = not self.alone and batchable(self.model, len(prompt), cfg)
        chunked = self.chunk > 0 and chunkable(self.model, len(prompt), cfg)
        row = Row(prompt, cfg, eos_id, self.device)
        if not batched and not chunked:
            row.alone = stream(self.model, prompt, cfg, eos_id)  # its own generator, seeded alike
            self.solo.append(row)
            self._next_alone(row)
            return row
        if cfg.max_new_tokens == 0:
            row.finished = True
            return row
        # a batched row's cache holds its prompt until the merge; one decoded alone goes on in `stream`'s
        cache = self.model.new_cache(1, len(prompt) if batched else None)
        if chunked:
            row.pending = len(prompt)
            self.prefilling.append((row, cache, batched))
            return row
        logits = self.model(torch.tensor([prompt], device=self.device), cache, logits_to_keep=1)[:, -1]  # (1, V)
        self._prefilled(row, cache, logits, batched)
        return row

    def remove(self, row: Row) -> None:
        """Take `row` out (a stop string, a client gone): it is dropped at the next step."""
        row.finished = True
        if row.alone is not None:
            row.alone.close()  # ends stream's decode (and its hold on the model's mode)
        self.joining = [(r, c) for r, c in self.joining if r is not row]
        self.prefilling = [p for p in self.prefilling if p[0] is not row]

    def clear(self) -> None:
        """Take every row out at once."""
        for row in self.solo:
            row.alone.close()
        self.rows, self.joining, self.solo, self.prefilling, self.cache = [], [], [], [], None

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """One token more for every running row: one forward for the batched rows, one per row alone;
        then, with `prefill_chunk`, the next chunk of the queued prompts. Rows finished before it are
        dropped first. Returns the rows it stepped, and those whose prefill ended (with their first token)."""
        for r in self.solo:
            if r.finished and r.alone is not None:
                r.alone.close()
        self.solo = [r for r in self.solo if not r.finished]
        for r in self.solo:
            self._next_alone(r)
        self._fit()
        if self.rows:
            self._decode()
        stepped = self.rows + self.solo  # before the chunk: a row decoded alone whose prefill ends joins `solo`
        return stepped + self._prefill_chunk()

    def _prefill_chunk(self) -> list[Row]:
        """Up to `chunk` prompt tokens of the queue, first come first served, one forward per row; the
        rows whose prompt ended sample their first token (and join at the next step). Returns those."""
        budget, done = self.chunk, []
        while self.prefilling and budget:
            row, cache, batched = self.prefilling[0]
            start = row.n_prompt - row.pending
            n = min(budget, row.pending)
            ids = torch.tensor([row.ids[start:start + n]], device=self.device)  # (1, n)
            # (1, V): at the tokens' own positions, after the cached ones
            logits = self.model(ids, cache, logits_to_keep=1)[:, -1]
            row.pending -= n
            budget -= n
            if row.pending:
                break
            self.prefilling.pop(0)
            self._prefilled(row, cache, logits, batched)
            done.append(row)
        return done

    def _prefilled(self, row: Row, cache: KVCache, logits: torch.Tensor, batched: bool) -> None:
        """The row's prompt is in `cache`, `logits` (1, V) its last position's: its first token."""
        if batched:
            self._sample(row, logits)
            if not row.finished:
                self.joining.append((row, cache))
            return
        row.alone = stream(self.model, row.ids, row.cfg, row.eos_id, prefilled=(cache, logits))
        self.solo.append(row)
        self._next_alone(row)

    def _decode(self) -> None:
        rows, L = self.rows, self.cache.length
        n = torch.tensor([r.cached for r in rows], device=self.device)  # (B,): each row's tokens in the cache
        real = torch.arange(L + 1, device=self.device) >= (L - n)[:, None]  # (B, L + 1): its tokens and the new one
        toks = torch.tensor([[r.token] for r in rows], device=self.device)  # (B, 1)
        logits = self.model(toks, self.cache, left_padded_mask(real, 1), positions=n[:, None])[:, -1]  # (B, V)
        greedy = [b for b, r in enumerate(rows) if r.cfg.temperature == 0 and not penalized(r.cfg)]
        if greedy and torch.isfinite(logits[greedy].amax(-1)).all():  # one argmax: sample_next at temperature 0
            for b, t in zip(greedy, logits[greedy].argmax(-1).tolist()):
                rows[b].take(t)
        else:
            greedy = []
        for b in sorted(set(range(len(rows))) - set(greedy)):
            self._sample(rows[b], logits[b:b + 1])

    def _sample(self, row: Row, logits: torch.Tensor) -> None:
        """The row's next token from its logits (1, V), with its own penalties, settings and generator."""
        cfg = row.cfg
        try:
            if penalized(cfg):
                logits = apply_penalties(logits, torch.tensor([row.ids], device=self.device), row.n_prompt, cfg)
            row.take(int(sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, row.g)))
        except InputError as e:  # bans that leave no token, diverged logits: this row's failure only
            row.error, row.finished = e, True

    def _next_alone(self, row: Row) -> None:
        try:
            token = next(row.alone)
        except StopIteration:  # EOS (or max_new_tokens = 0)
            row.token, row.finished = None, True
            return
        except InputError as e:  # bans that leave no token, diverged logits: this row's failure only
            row.error, row.finished = e, True
            return
        row.written += 1
        row.token = token
        row.ids.append(token)
        row.finished = row.written == row.cfg.max_new_tokens

    def _fit(self) -> None:
        """Merge joining rows into the cache and drop finished ones, right-aligned at the longest row's
        length (so no column is padding for every row), with room for one more column."""
        keep = [i for i, r in enumerate(self.rows) if not r.finished]
        L = self.cache.length if self.cache is not None else 0
        need = max([self.rows[i].cached for i in keep] + [r.cached for r, _ in self.joining], default=0)
        if len(keep) == len(self.rows) and not self.joining and (not keep or need == L < self.cache.max_len):
            return
        rows = [self.rows[i] for i in keep] + [r for r, _ in self.joining]
        cache = self.model.new_cache(len(rows), min(self.ctx, need + GROW)) if rows else None
        w = min(L, need)  # the old columns that hold some kept row's tokens: shifted to end at `need`
        sel = torch.tensor(keep, dtype=torch.long, device=self.device)
        for kv in ("k", "v") if rows else ():
            for layer, new in enumerate(getattr(cache, kv)):  # (B, nkv, S, hs)
                if keep and w:
                    new[:len(keep), :, need - w:need] = getattr(self.cache, kv)[layer][sel, :, L - w:L]
                for j, (r, c) in enumerate(self.joining):  # its prompt, right-aligned
                    new[len(keep) + j, :, need - r.cached:need] = getattr(c, kv)[layer][0, :, :r.cached]
        if cache is not None:
            cache.advance(need)
        self.rows, self.joining, self.cache = rows, [], cache
