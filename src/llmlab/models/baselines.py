"""Baseline feature extractors for topic 73: a recurrent (LSTM/GRU) and a causal convolutional
language model. Same interface as the transformer (`forward(idx) -> logits`, a `config` with
`max_seq_len` and `tie_embeddings`), so the same trainer, loss and evaluation apply to all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError


@dataclass(frozen=True)
class RNNConfig:
    vocab_size: int = 256  # tokens in the vocabulary
    dim: int = 256  # embedding and hidden size
    n_layer: int = 2  # stacked recurrent layers
    cell: str = "lstm"  # lstm | gru
    max_seq_len: int = 256  # longest training window (recurrence itself has no limit)
    tie_embeddings: bool = True  # output head shares the embedding matrix

    def __post_init__(self):
        if self.cell not in ("lstm", "gru"):
            raise InputError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        for name in ("vocab_size", "dim", "n_layer", "max_seq_len"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class CNNConfig:
    vocab_size: int = 256  # tokens in the vocabulary
    dim: int = 256  # channels
    n_layer: int = 4  # residual blocks; block i dilates by 2**i, so the receptive field doubles per block
    kernel_size: int = 3  # taps per causal convolution
    max_seq_len: int = 256  # longest training window
    tie_embeddings: bool = True  # output head shares the embedding matrix

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_layer", "kernel_size", "max_seq_len"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def receptive_field(self) -> int:
        """Tokens a position can see, itself included.

        >>> CNNConfig(n_layer=3, kernel_size=3).receptive_field
        15
        """
        return 1 + (self.kernel_size - 1) * (2**self.n_layer - 1)


def tie_and_init(model: nn.Module, tie: bool) -> None:
    """Tie the head to the embedding (or not) and draw both with std 1/sqrt(dim): unit-norm token
    vectors, and first logits of about unit scale. torch's default N(0, 1) embedding makes a tied
    head's first logits huge (a loss of ~58 against ln V = 6.2 at dim 256), so the baselines started
    far behind the transformer they are compared with."""
    if tie:
        model.lm_head.weight = model.embed_tokens.weight
    std = model.embed_tokens.weight.shape[1] ** -0.5
    nn.init.normal_(model.embed_tokens.weight, std=std)
    if not tie:
        nn.init.normal_(model.lm_head.weight, std=std)


class RecurrentLM(nn.Module):
    def __init__(self, cfg: RNNConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn(cfg.dim, cfg.dim, num_layers=cfg.n_layer, batch_first=True)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        tie_and_init(self, cfg.tie_embeddings)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed_tokens(idx))  # (B, T, d)
        return self.lm_head(h)  # (B, T, V)


class CausalConvBlock(nn.Module):
    """x + W2 gelu(conv_dilated(norm(x))), the convolution padded on the left only (no look-ahead)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(dim, 2 * dim, kernel_size, dilation=dilation)
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (B, d, T)
        h = self.conv(F.pad(h, (self.left_pad, 0)))  # (B, 2d, T): position t sees t - pad .. t
        return x + self.proj(F.gelu(h.transpose(1, 2)))  # (B, T, d)


class ConvLM(nn.Module):
    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(CausalConvBlock(cfg.dim, cfg.kernel_size, 2**i) for i in range(cfg.n_layer))
        self.norm = nn.LayerNorm(cfg.dim)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        tie_and_init(self, cfg.tie_embeddings)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(idx)  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))  # (B, T, V)
