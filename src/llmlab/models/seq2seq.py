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
from llmlab.models.decoder import apply_ffn, moe_config, moe_loss
from llmlab.models.encoder import Encoder
from llmlab.nn import RMSNorm, RotaryEmbedding, SwiGLU
from llmlab.nn.attention import Attention
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
    def __init__(self, cfg: ModelConfig, moe: bool = False):
        super().__init__()
        self.self_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head)
        self.cross_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.cross_attn = CrossAttention(cfg.dim, cfg.n_head)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MoEFeedForward(cfg.dim, cfg.hidden, moe_config(cfg)) if moe else SwiGLU(cfg.dim, cfg.hidden)
        self.moe_aux: MoEAux | None = None  # routing losses and stats of the last forward (MoE blocks)

    def forward(self, x, cos, sin, memory, memory_mask=None):
        x = x + self.self_attn(self.self_norm(x), cos, sin)  # causal over the target
        x = x + self.cross_attn(self.cross_norm(x), memory, memory_mask)
        return x + apply_ffn(self, self.mlp_norm(x))


class EncoderDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg, heads=False)
        self.layers = nn.ModuleList(DecoderBlock(cfg, cfg.is_moe_layer(i)) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.encoder.embed_tokens.weight  # one vocabulary, one embedding
        for name, p in self.named_parameters():
            if p.dim() >= 2 and not name.startswith("encoder."):
                nn.init.normal_(p, std=cfg.init_std)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) for the target inputs `tgt` (teacher forcing) given the source `src`."""
        memory = self.encoder.hidden_states(src, lengths=src_lengths)  # (B, S, d)
        T = tgt.shape[1]
        mask = None if src_lengths is None else cross_mask(T, src.shape[1], src_lengths)
        cos, sin = self.rope(torch.arange(T, device=tgt.device))
        x = self.encoder.embed_tokens(tgt)  # (B, T, d)
        for block in self.layers:
            x = block(x, cos, sin, memory, mask)
        return self.lm_head(self.norm(x))

    def moe_loss(self) -> torch.Tensor | None:
        """Weighted routing losses of the last forward's MoE layers, encoder and decoder (None if dense)."""
        losses = [x for x in (self.encoder.moe_loss(), moe_loss(self.layers)) if x is not None]
        return torch.stack(losses).sum() if losses else None

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, start_id: int, max_new_tokens: int, eos_id: int | None = None) -> list[int]:
        """Greedy decoding of one source (1, S), re-running the decoder each step (no cache)."""
        out = [start_id]
        for _ in range(max_new_tokens):
            nxt = int(self(src, torch.tensor([out], device=src.device))[0, -1].argmax())
            if nxt == eos_id:
                break
            out.append(nxt)
        return out[1:]
