"""A LLaMA-style causal decoder: embeddings, pre-norm blocks of RoPE attention and SwiGLU, RMSNorm,
and an output head (tied or not). Module names follow Hugging Face LLaMA so weights export as is.

`forward` returns logits, always; losses live in `llmlab.train.objectives`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmlab.models.config import ModelConfig
from llmlab.nn import Attention, KVCache, RMSNorm
from llmlab.nn.ffn_variants import FeedForward
from llmlab.nn.moe import MoEAux, MoEConfig, MoEFeedForward
from llmlab.nn.positions import LearnedPositions, SinusoidalPositions, alibi_bias
from llmlab.nn.rope_scaling import ScaledRotaryEmbedding


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.dim, cfg.norm_eps) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.dim, cfg.norm_eps)


def moe_config(cfg: ModelConfig) -> MoEConfig:
    return MoEConfig(n_experts=cfg.n_experts, top_k=cfg.moe_top_k, router=cfg.moe_router,
                     capacity_factor=cfg.moe_capacity_factor, aux_loss_coef=cfg.moe_aux_loss_coef,
                     z_loss_coef=cfg.moe_z_loss_coef)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, moe: bool = False):
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head, dropout=cfg.dropout)
        self.post_attention_layernorm = make_norm(cfg)
        dense = FeedForward(cfg.dim, cfg.hidden, cfg.ffn_kind)
        self.mlp = MoEFeedForward(cfg.dim, cfg.hidden, moe_config(cfg)) if moe else dense
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()  # skip a no-op call per token
        self.moe_aux: MoEAux | None = None  # routing losses and stats of the last forward (MoE blocks)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0, mask=None):
        if self.post_norm:  # original Transformer: normalise the residual stream after each addition
            x = self.input_layernorm(x + self.drop(self.self_attn(x, cos, sin, cache, layer, mask)))
            return self.post_attention_layernorm(x + self.drop(self.feed_forward(x)))
        x = x + self.drop(self.self_attn(self.input_layernorm(x), cos, sin, cache, layer, mask))
        return x + self.drop(self.feed_forward(self.post_attention_layernorm(x)))

    def feed_forward(self, h):
        if isinstance(self.mlp, MoEFeedForward):
            h, self.moe_aux = self.mlp(h)
            return h
        return self.mlp(h)


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
        if cfg.position == "rope":
            self.rope = ScaledRotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base, cfg.rope)
        elif cfg.position == "learned":
            self.embed_positions = LearnedPositions(cfg.dim, cfg.max_seq_len)
        elif cfg.position == "sinusoidal":
            self.embed_positions = SinusoidalPositions(cfg.dim, cfg.max_seq_len)
        # training-time switch: keep only block inputs and recompute each block during backward
        self.gradient_checkpointing = False
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

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with a cache, idx continues the cached prefix.

        `mask` replaces the causal pattern (see `llmlab.nn.masks`): `prefix_lm_mask` makes this a prefix
        decoder (GLM / U-PaLM), bidirectional over the prompt and causal after it.
        """
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_seq_len:
            raise ValueError(f"position {start + T - 1} is beyond the context length {self.config.max_seq_len}")
        positions = torch.arange(start, start + T, device=idx.device)
        x = self.embed_tokens(idx)  # (B, T, d)
        cos = sin = None
        if self.config.position == "rope":
            # dynamic NTK scales by the planned total length (the cache's), so cached and full passes agree
            cos, sin = self.rope(positions, seq_len=cache.max_len if cache is not None else start + T)  # (T, hs)
        elif self.config.position == "alibi":
            bias = alibi_bias(self.config.n_head, T, start, causal=mask is None, device=idx.device)  # (nh, T, S)
            if mask is not None:  # keep the caller's pattern: hidden keys get -inf
                bias = torch.where(mask, bias, float("-inf"))  # (nh, T, S) or (B, nh, T, S)
            mask = bias.to(x.dtype)
        elif self.config.position in ("learned", "sinusoidal"):
            x = x + self.embed_positions(positions)  # (B, T, d)
        recompute = self.gradient_checkpointing and self.training and cache is None and torch.is_grad_enabled()
        for i, block in enumerate(self.layers):
            if recompute:
                x = checkpoint(block, x, cos, sin, None, i, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, cache, i, mask)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.norm(x))  # (B, T, vocab)

    def moe_loss(self) -> torch.Tensor | None:
        """Sum of the weighted routing losses of the last forward's MoE layers (None if dense)."""
        losses = [b.moe_aux.loss for b in self.layers if b.moe_aux is not None]
        return torch.stack(losses).sum() if losses else None

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> KVCache:
        cfg = self.config
        p = self.embed_tokens.weight
        return KVCache(cfg.n_layer, batch, cfg.n_kv_head, max_len or cfg.max_seq_len, cfg.head_dim,
                       device=p.device, dtype=p.dtype)
