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
from llmlab.nn import Attention, KVCache, RMSNorm, RotaryEmbedding, SwiGLU
from llmlab.nn.moe import MoEAux, MoEConfig, MoEFeedForward


def moe_config(cfg: ModelConfig) -> MoEConfig:
    return MoEConfig(n_experts=cfg.n_experts, top_k=cfg.moe_top_k, router=cfg.moe_router,
                     capacity_factor=cfg.moe_capacity_factor, aux_loss_coef=cfg.moe_aux_loss_coef,
                     z_loss_coef=cfg.moe_z_loss_coef)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, moe: bool = False):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head, dropout=cfg.dropout)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MoEFeedForward(cfg.dim, cfg.hidden, moe_config(cfg)) if moe else SwiGLU(cfg.dim, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.moe_aux: MoEAux | None = None  # routing losses and stats of the last forward (MoE blocks)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0, mask=None):
        x = x + self.drop(self.self_attn(self.input_layernorm(x), cos, sin, cache, layer, mask))
        h = self.post_attention_layernorm(x)
        if isinstance(self.mlp, MoEFeedForward):
            h, self.moe_aux = self.mlp(h)
        else:
            h = self.mlp(h)
        return x + self.drop(h)


class CausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, cfg.is_moe_layer(i)) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base)
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
        cos, sin = self.rope(positions)  # (T, hs) each
        x = self.embed_tokens(idx)  # (B, T, d)
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
