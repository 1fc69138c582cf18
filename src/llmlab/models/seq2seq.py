"""Encoder-decoder family (T5 style, topic 27): a bidirectional encoder over the source and a causal
decoder that also attends to the encoder's output through cross-attention, trained by teacher forcing
(on `llmlab.train.corruption.denoising_pair` pairs: T5 span corruption or BART denoising). Token
embeddings are shared. With `n_experts` in the config, encoder and decoder both get MoE feed-forward layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.models.config import ModelConfig
from llmlab.models.decoder import add_positions, apply_ffn, embed, make_norm, moe_config, moe_loss, position_inputs
from llmlab.models.encoder import Encoder
from llmlab.nn.attention import Attention
from llmlab.nn.ffn_variants import FeedForward
from llmlab.nn.masks import cross_mask
from llmlab.nn.moe import MoEAux, MoEFeedForward


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder output; no positions (the source
    order is already inside the encoder's vectors)."""

    def __init__(self, dim: int, n_head: int):
        super().__init__()
        self.n_head, self.head_dim = n_head, dim // n_head
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        S, nh, hs = memory.shape[1], self.n_head, self.head_dim
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(memory).view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        v = self.v_proj(memory).view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, nh * hs))


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention, feed-forward; norms, FFN kind, dropout and pre/post-norm as the
    config says (as in the decoder's `Block`)."""

    def __init__(self, cfg: ModelConfig, moe: bool = False):
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.self_norm = make_norm(cfg)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head, dropout=cfg.dropout)
        self.cross_norm = make_norm(cfg)
        self.cross_attn = CrossAttention(cfg.dim, cfg.n_head)
        self.mlp_norm = make_norm(cfg)
        dense = FeedForward(cfg.dim, cfg.hidden, cfg.ffn_kind)
        self.mlp = MoEFeedForward(cfg.dim, cfg.hidden, moe_config(cfg)) if moe else dense
        self.drop = nn.Dropout(cfg.dropout)
        self.moe_aux: MoEAux | None = None  # routing losses and stats of the last forward (MoE blocks)

    def forward(self, x, cos, sin, memory, memory_mask=None, mask=None):
        """`mask`: None for the causal pattern over the target, or ALiBi's causal bias."""
        parts = (lambda h: self.self_attn(h, cos, sin, None, 0, mask),  # causal over the target
                 lambda h: self.cross_attn(h, memory, memory_mask),
                 lambda h: apply_ffn(self, h))
        for f, norm in zip(parts, (self.self_norm, self.cross_norm, self.mlp_norm)):
            x = norm(x + self.drop(f(x))) if self.post_norm else x + self.drop(f(norm(x)))
        return x


class EncoderDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg, heads=False)
        self.layers = nn.ModuleList(DecoderBlock(cfg, cfg.is_moe_layer(i)) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg) if cfg.norm_position == "pre" else nn.Identity()
        add_positions(self, cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.encoder.embed_tokens.weight  # one vocabulary, one embedding
        for name, p in self.named_parameters():
            if p.dim() >= 2 and not name.startswith("encoder."):
                nn.init.normal_(p, std=cfg.init_std)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) for the target inputs `tgt` (teacher forcing) given the source `src`."""
        n = tgt.shape[1]
        if n > self.config.max_seq_len:
            raise ValueError(f"target of {n} tokens is beyond the context length {self.config.max_seq_len}")
        memory = self.encoder.hidden_states(src, lengths=src_lengths)  # (B, S, d)
        memory_mask = None if src_lengths is None else cross_mask(n, src.shape[1], src_lengths)
        x = embed(self, tgt, tokens=self.encoder.embed_tokens)  # (B, T, d)
        cos, sin, mask = position_inputs(self, x, 0, None)
        for block in self.layers:
            x = block(x, cos, sin, memory, memory_mask, mask)
        return self.lm_head(self.norm(x))

    def moe_loss(self) -> torch.Tensor | None:
        """Weighted routing losses of the last forward's MoE layers, encoder and decoder (None if dense)."""
        losses = [x for x in (self.encoder.moe_loss(), moe_loss(self.layers)) if x is not None]
        return torch.stack(losses).sum() if losses else None

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, start_id: int, max_new_tokens: int, eos_id: int | None = None) -> list[int]:
        """Greedy decoding of one source (1, S), re-running the decoder each step (no cache). Stops at
        `eos_id`, after `max_new_tokens`, or when the target fills the context."""
        out = [start_id]
        for _ in range(min(max_new_tokens, self.config.max_seq_len - 1)):
            nxt = int(self(src, torch.tensor([out], device=src.device))[0, -1].argmax())
            if nxt == eos_id:
                break
            out.append(nxt)
        return out[1:]
