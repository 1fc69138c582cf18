"""Encoder family (BERT style, topics 26, 74): the same blocks, norms and positions as the decoder
(MoE feed-forward layers included, via the config), attending in both directions, with segment embeddings, a masked-LM
head over every position and a next-sentence head on the first ([CLS]) position.

`forward` returns logits, as every llmlab model does: (mlm_logits (B, T, V), nsp_logits (B, 2)).
"""

from __future__ import annotations

import torch
from torch import nn

from llmlab.models.config import ModelConfig
from llmlab.models.decoder import Block, add_positions, embed, make_norm, moe_loss, position_inputs
from llmlab.nn.masks import padding_mask


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, n_segments: int = 2, heads: bool = True):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.embed_segments = nn.Embedding(n_segments, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, cfg.is_moe_layer(i)) for i in range(cfg.n_layer))
        # post-norm blocks end normalised already (as in the decoder)
        self.norm = make_norm(cfg) if cfg.norm_position == "pre" else nn.Identity()
        add_positions(self, cfg)
        if heads:  # the encoder-decoder uses the stack alone
            self.mlm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.mlm_head.weight = self.embed_tokens.weight
            self.nsp_head = nn.Linear(cfg.dim, 2)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=cfg.init_std)

    def hidden_states(self, idx: torch.Tensor, segments: torch.Tensor | None = None,
                      lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d) contextual vectors; `lengths` (B,) marks right padding, which no position attends to."""
        T = idx.shape[1]
        if idx.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {T} tokens is beyond the context length {self.config.max_seq_len}")
        x = embed(self, idx)  # (B, T, d)
        if segments is not None:
            x = x + self.embed_segments(segments)
        # every query sees every (real) key: no causal pattern (ALiBi's bias is by |distance|)
        mask = padding_mask(lengths, T) if lengths is not None else torch.ones(T, T, dtype=torch.bool,
                                                                             device=idx.device)
        cos, sin, mask = position_inputs(self, x, 0, mask)
        real = None if lengths is None else torch.arange(T, device=idx.device) < lengths[:, None]  # (B, T)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, None, i, mask, token_mask=real)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, segments: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden_states(idx, segments, lengths)
        return self.mlm_head(h), self.nsp_head(h[:, 0])  # (B, T, V), (B, 2)

    def moe_loss(self) -> torch.Tensor | None:
        """Weighted routing losses of the last forward's MoE layers (config n_experts > 0), else None."""
        return moe_loss(self.layers)
