"""A LLaMA-style causal decoder: embeddings, pre-norm blocks of RoPE attention and SwiGLU, RMSNorm,
and an output head (tied or not). Module names follow Hugging Face LLaMA so weights export as is.

`forward` returns logits, always; losses live in `llmlab.train.objectives`.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig
from llmlab.nn import Attention, KVCache, RMSNorm
from llmlab.nn.ffn_variants import FeedForward
from llmlab.nn.masks import segment_mask
from llmlab.nn.moe import MoEAux, MoEConfig, MoEFeedForward
from llmlab.nn.positions import LearnedPositions, SinusoidalPositions, alibi_bias, segment_positions
from llmlab.nn.rope_scaling import ScaledRotaryEmbedding


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.dim, cfg.norm_eps) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.dim, cfg.norm_eps)


def moe_config(cfg: ModelConfig) -> MoEConfig:
    return MoEConfig(n_experts=cfg.n_experts, top_k=cfg.moe_top_k, router=cfg.moe_router,
                     capacity_factor=cfg.moe_capacity_factor, aux_loss_coef=cfg.moe_aux_loss_coef,
                     z_loss_coef=cfg.moe_z_loss_coef, expert_kind=cfg.ffn_kind)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, moe: bool = False):
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head, dropout=cfg.dropout)
        self.post_attention_layernorm = make_norm(cfg)
        dense = FeedForward(cfg.dim, cfg.hidden, cfg.ffn_kind)
        self.mlp = MoEFeedForward(cfg.dim, cfg.hidden, moe_config(cfg)) if moe else dense
        self.drop = nn.Dropout(cfg.dropout)
        self.has_dropout = cfg.dropout > 0  # else skip two no-op module calls per layer per decoded token
        self.moe_aux: MoEAux | None = None  # routing losses and stats of the last forward (MoE blocks)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0, mask=None,
                need_weights: bool = False, token_mask: torch.Tensor | None = None):
        """The new residual stream; with `need_weights`, (stream, attention weights (B, nh, T, S)).
        `token_mask` (B, T) marks real tokens: an MoE layer routes only those (padding takes no capacity)."""
        h = x if self.post_norm else self.input_layernorm(x)
        a = self.self_attn(h, cos, sin, cache, layer, mask, need_weights)
        a, w = a if need_weights else (a, None)
        drop = self.drop if self.has_dropout else _identity
        if self.post_norm:  # original Transformer: normalise the residual stream after each addition
            x = self.input_layernorm(x + drop(a))
            x = self.post_attention_layernorm(x + drop(self.feed_forward(x, token_mask)))
        else:
            x = x + drop(a)
            x = x + drop(self.feed_forward(self.post_attention_layernorm(x), token_mask))
        return (x, w) if need_weights else x

    def feed_forward(self, h, token_mask: torch.Tensor | None = None):
        return apply_ffn(self, h, token_mask)


def _identity(x):
    return x


def apply_ffn(block: nn.Module, h: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """block.mlp(h); an MoE layer's routing losses and stats are kept in block.moe_aux (any family), and
    only the tokens `token_mask` (B, T) marks real are routed."""
    if isinstance(block.mlp, MoEFeedForward):
        h, block.moe_aux = block.mlp(h, token_mask)
        return h
    return block.mlp(h)


def moe_loss(blocks) -> torch.Tensor | None:
    """Sum of the weighted routing losses of the last forward's MoE blocks (None if all are dense)."""
    losses = [b.moe_aux.loss for b in blocks if getattr(b, "moe_aux", None) is not None]
    return torch.stack(losses).sum() if losses else None


def add_positions(model: nn.Module, cfg: ModelConfig) -> None:
    """Give `model` the position modules its config asks for (every family): `rope` (with its scaling),
    or `embed_positions` (learned, sinusoidal); ALiBi and NoPE need none (see `position_inputs`)."""
    if cfg.position == "rope":
        model.rope = ScaledRotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base, cfg.rope)
    elif cfg.position == "learned":
        model.embed_positions = LearnedPositions(cfg.dim, cfg.max_seq_len)
    elif cfg.position == "sinusoidal":
        # at the token embeddings' scale (see SinusoidalPositions)
        model.embed_positions = SinusoidalPositions(cfg.dim, cfg.max_seq_len, scale=cfg.init_std)


def embed(model: nn.Module, idx: torch.Tensor, start: int = 0, tokens: nn.Embedding | None = None,
          positions: torch.Tensor | None = None) -> torch.Tensor:
    """Token embeddings (B, T, d) of ids (B, T) at positions start.. (or at `positions` (B, T), packed rows),
    plus absolute positions if the config has them. `model` is any family's model, or a pipeline stage
    holding its embedding modules; `tokens` is the embedding table when it lives elsewhere (the
    encoder-decoder shares the encoder's)."""
    x = (tokens or model.embed_tokens)(idx)  # (B, T, d)
    if model.config.position in ("learned", "sinusoidal"):
        if positions is None:
            positions = torch.arange(start, start + idx.shape[1], device=idx.device)  # (T,)
        x = x + model.embed_positions(positions)  # (B, T, d)
    return x


def position_inputs(model: nn.Module, x: torch.Tensor, start: int, mask: torch.Tensor | None,
                    positions: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """What every block needs for the block input x (B, T, d) at positions start..start+T: RoPE's
    (cos, sin) (T, hs), and the attention mask with ALiBi's bias folded in (hidden keys -inf).

    `positions` (B, T) (packed or left-padded rows, see `CausalLM.forward`) gives RoPE's tables per row,
    (B, 1, T, hs); ALiBi needs none (its bias depends on distances, the same within a document or a row
    after its padding, which the mask hides)."""
    T = x.shape[1]
    cos = sin = None
    if model.config.position == "rope" and positions is not None:
        cos, sin = model.rope(positions)  # (B, T, hs): the static table (see `check_packable` for dynamic NTK)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hs), broadcast over heads
    elif model.config.position == "rope":
        # dynamic NTK scales by the length so far, as HF does: plain RoPE within the trained length,
        # so cached and full passes agree there; past it, cached keys keep their older rotation
        cos, sin = model.rope.span(start, T, seq_len=start + T)  # (T, hs)
    elif model.config.position == "alibi":
        # 4-D: SDPA's fused CPU kernel takes only 2-D or 4-D masks; a 3-D (nh, T, S) bias sent every layer
        # to the unfused math path, which saves its (B, nh, T, S) fp32 weights for backward
        bias = alibi_bias(model.config.n_head, T, start, causal=mask is None, device=x.device)[None]  # (1, nh, T, S)
        if mask is not None:  # keep the caller's pattern: hidden keys get -inf
            bias = torch.where(mask, bias, float("-inf"))  # (1, nh, T, S) or (B, nh, T, S)
        # under autocast SDPA would cast an fp32 bias to 16 bits in every layer and save each copy: cast it once
        amp = torch.is_autocast_enabled(x.device.type)
        mask = bias.to(torch.get_autocast_dtype(x.device.type) if amp else x.dtype)
    return cos, sin, mask


def check_packable(model: nn.Module, segments: torch.Tensor, idx: torch.Tensor, start: int) -> None:
    """Refuse what packed rows cannot compute as each document alone (clear errors, not wrong logits)."""
    cfg = model.config
    if segments.shape != idx.shape:
        raise InputError(f"segments must have the shape of the token ids {tuple(idx.shape)}, "
                         f"got {tuple(segments.shape)}")
    end = start + idx.shape[1]
    trained = cfg.rope.original_max_positions if cfg.position == "rope" and cfg.rope_scaling == "dynamic" else end
    if end > trained:
        raise InputError(f"dynamic NTK RoPE scales its frequencies by each sequence's length, which a packed row of "
                         f"{end} positions beyond the trained {trained} cannot do per document: pack rows within "
                         "the trained length")
    if cfg.position == "alibi" and start:
        raise InputError("ALiBi measures distances to the soft prompt's virtual tokens from the row's start, not each "
                         "document's: segments (packing) with a soft prompt need RoPE or absolute positions")


def check_positions(model: nn.Module, positions: torch.Tensor, idx: torch.Tensor) -> None:
    """Refuse per-row positions (`CausalLM.forward`'s `positions`) the model cannot honour: clear errors,
    not other logits. One device sync, for the range."""
    cfg = model.config
    if positions.shape != idx.shape or positions.dtype.is_floating_point or positions.dtype == torch.bool:
        raise InputError(f"positions must have the shape of the token ids {tuple(idx.shape)} and hold integers, "
                         f"got {positions.dtype} of shape {tuple(positions.shape)}")
    ctx = context_length(model)
    lo, hi = (int(v) for v in torch.aminmax(positions))
    if lo < 0 or hi >= ctx:
        raise InputError(f"positions must be integers in [0, {ctx}) (the model's context less any soft prompt), "
                         f"got {lo}..{hi}")
    end = n_virtual(model) + hi + 1  # the longest row's length, as dynamic NTK measures it
    if cfg.position == "rope" and cfg.rope_scaling == "dynamic" and end > cfg.rope.original_max_positions:
        raise InputError(f"dynamic NTK RoPE scales its frequencies by each sequence's length, which rows with "
                         f"their own positions cannot do past the trained {cfg.rope.original_max_positions} "
                         f"(a row reaches {end}): decode such a row alone")
    if cfg.position == "alibi" and n_virtual(model):
        raise InputError("ALiBi's bias counts distances in cache slots, and a row's padding would sit between its "
                         "tokens and the soft prompt's virtual ones: per-row positions with a soft prompt need RoPE "
                         "or absolute positions")


def n_virtual(model: nn.Module) -> int:
    """How many virtual tokens a soft prompt puts before every sequence (0 without one)."""
    prompt = getattr(model, "soft_prompt", None)
    return prompt.n_virtual if prompt is not None else 0


def context_length(model: nn.Module) -> int:
    """The tokens a model reads at once: its context, less the virtual tokens of a soft prompt (they sit at
    the first positions of every cache, so a cache's `max_len` is still the context)."""
    return model.config.max_seq_len - n_virtual(model)


class CausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, cfg.is_moe_layer(i)) for i in range(cfg.n_layer))
        # post-norm blocks end normalised already; the original Transformer has no final norm
        self.norm = make_norm(cfg) if cfg.norm_position == "pre" else nn.Identity()
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        add_positions(self, cfg)
        # training-time switch: keep only block inputs and recompute each block during backward
        self.gradient_checkpointing = False
        self.fused = False  # inside `fused_inference` (the fused copies exist)
        # virtual tokens before every sequence (`llmlab.adapt.prompt_tuning`): a module with `n_virtual` and
        # `key_values(model)`, one (k, v) pair (1, nkv, n_virtual, hs) per layer; None = plain model
        self.soft_prompt: nn.Module | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue  # norm weights stay at 1
            # residual-branch outputs are scaled down so the residual stream's variance
            # does not grow with depth (GPT-2)
            residual_out = name.endswith(("o_proj.weight", "down_proj.weight"))
            scale = 1 / math.sqrt(2 * self.config.n_layer) if residual_out else 1
            nn.init.normal_(p, mean=0.0, std=std * scale)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, mask: torch.Tensor | None = None,
                return_attention: bool = False, segments: torch.Tensor | None = None,
                positions: torch.Tensor | None = None,
                logits_to_keep: int = 0) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, vocab) for token ids (B, T); with a cache, idx continues the cached prefix.

        `mask` replaces the causal pattern (see `llmlab.nn.masks`): `prefix_lm_mask` makes this a prefix
        decoder (GLM / U-PaLM), bidirectional over the prompt and causal after it.
        `return_attention` (for plotting): (logits, one (B, nh, T, S) weight tensor per layer).
        `segments` (B, T) integer ids pack several documents in a row (padding-free batching): a document
        starts wherever the id changes, sees only itself (`segment_mask`) and has positions from 0
        (`segment_positions`; after a soft prompt's virtual tokens, which every document sees), so each
        document's logits are those it gets alone. A full pass: not with a cache, a mask or positions.
        `positions` (B, T) gives each token its own position, counted from 0 at its row's first real token
        (after a soft prompt's virtual tokens), with or without a cache: left-padded rows of batched
        generation (`llmlab.generate.batch`), whose `mask` hides the padding (`left_padded_mask`). Without
        it, tokens sit at positions cache.length.. in every row, as before.
        `logits_to_keep` k > 0 returns the last k positions' logits only, (B, k, vocab), as transformers'
        argument of that name: a prompt's prefill needs its last position's, and the vocabulary
        projection of all the others is a large share of its compute (T x dim x vocab).
        """
        B, T = idx.shape
        if segments is not None:
            if cache is not None or mask is not None or positions is not None:
                raise InputError("segments make their own mask and positions for a full pass: pass no cache or mask "
                                 "(nor positions)")
            mask, positions = segment_mask(segments), segment_positions(segments)  # (B, 1, T, T), (B, T)
        elif positions is not None:
            check_positions(self, positions, idx)
        if cache is None and self.soft_prompt is not None:  # the virtual tokens are a cache's first positions
            cache = self.new_cache(B, T)
            if mask is not None:  # the caller's pattern covers the real keys; every query sees the virtual ones
                mask = torch.nn.functional.pad(mask, (cache.length, 0), value=True if mask.dtype == torch.bool else 0.0)
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_seq_len:
            raise ValueError(f"position {start + T - 1} is beyond the context length {self.config.max_seq_len}")
        if segments is not None:
            check_packable(self, segments, idx, start)
        if positions is not None:  # after the soft prompt's virtual tokens, if any
            positions = positions + n_virtual(self)  # (B, T)
        x = embed(self, idx, start, positions=positions)  # (B, T, d)
        cos, sin, mask = position_inputs(self, x, start, mask, positions)
        recompute = (self.gradient_checkpointing and self.training and cache is None and torch.is_grad_enabled()
                     and not return_attention)
        weights = []
        for i, block in enumerate(self.layers):
            if recompute:
                x = checkpoint(block, x, cos, sin, None, i, mask, use_reentrant=False)
            elif return_attention:
                x, w = block(x, cos, sin, cache, i, mask, need_weights=True)
                weights.append(w)
            else:
                x = block(x, cos, sin, cache, i, mask)
        if cache is not None:
            cache.advance(T)
        if logits_to_keep < 0:
            raise InputError(f"logits_to_keep must be >= 0 (0 = every position), got {logits_to_keep}")
        if logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        logits = self.lm_head(self.norm(x))  # (B, T, vocab), or (B, logits_to_keep, vocab)
        return (logits, weights) if return_attention else logits

    @contextlib.contextmanager
    def fused_inference(self):
        """Within the block, inference (no grad) runs q/k/v and gate/up (of every dense feed-forward and
        every expert) as one matrix each: fewer kernel calls per decoded token. The concatenated copies are
        made on entry and dropped on exit, so module names and checkpoints are untouched; do not change the
        weights inside. Nested (the server's scheduler runs `stream` inside its own decode), the inner block
        uses the outer one's copies and leaves them: dropping them there would slow the outer block down."""
        if self.fused:
            yield self
            return
        fused = [m for m in self.modules() if isinstance(m, (Attention, FeedForward)) and m.fuse()]
        self.fused = True
        try:
            yield self
        finally:
            self.fused = False
            for m in fused:
                m.unfuse()

    def moe_loss(self) -> torch.Tensor | None:
        """Sum of the weighted routing losses of the last forward's MoE layers (None if dense)."""
        return moe_loss(self.layers)

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> KVCache:
        """An empty cache for `max_len` tokens (default: the context); with a soft prompt, one that holds its
        virtual tokens' keys and values at positions 0..n_virtual-1 and room for `max_len` tokens after them."""
        cfg = self.config
        p = self.embed_tokens.weight
        n_kv_head = self.layers[0].self_attn.n_kv_head  # this rank's share when tensor parallelism splits heads
        n = self.soft_prompt.n_virtual if self.soft_prompt is not None else 0
        cache = KVCache(cfg.n_layer, batch, n_kv_head, n + max_len if max_len else cfg.max_seq_len, cfg.head_dim,
                        device=p.device, dtype=p.dtype)
        if n:
            for layer, (k, v) in enumerate(self.soft_prompt.key_values(self)):  # (1, nkv, n, hs) each
                cache.k[layer].narrow(2, 0, n).copy_(k)  # the same prefix for every row
                cache.v[layer].narrow(2, 0, n).copy_(v)
            cache.advance(n)
        return cache
