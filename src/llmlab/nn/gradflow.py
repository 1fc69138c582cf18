"""Gradient flow at initialisation (topic 69): per-layer gradient norms of a deep MLP stack.

A plain stack x <- act(W x) multiplies the backward signal by W^T diag(act'(.)) at every layer; with
sigmoid (act' <= 1/4) that product shrinks geometrically, so the first layers barely learn (vanishing
gradients). A residual block x <- x + act(W norm(x)) adds an identity path, so the gradient reaching
layer 1 is at least the one reaching the top, whatever the depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu, "gelu": F.gelu}


@dataclass(frozen=True)
class GradFlowConfig:
    depth: int = 16  # hidden layers in the stack
    width: int = 64  # features per layer
    activation: str = "sigmoid"  # sigmoid | tanh | relu | gelu
    residual: bool = False  # x + f(x) blocks instead of x = f(x)
    norm: bool = False  # LayerNorm before each layer's matrix (pre-norm)
    batch: int = 64  # random inputs averaged over
    seed: int = 0  # seeds the weights, inputs and targets

    def __post_init__(self):
        for name in ("depth", "width", "batch"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")


class Stack(nn.Module):
    """`depth` layers of act(W norm(x)), each optionally added to its input, then a linear read-out."""

    def __init__(self, cfg: GradFlowConfig):
        super().__init__()
        self.cfg = cfg
        self.linears = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(cfg.depth))
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.width) if cfg.norm else nn.Identity() for _ in range(cfg.depth))
        self.head = nn.Linear(cfg.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.cfg.activation]
        for norm, linear in zip(self.norms, self.linears):
            h = act(linear(norm(x)))  # (B, width)
            x = x + h if self.cfg.residual else h
        return self.head(x)  # (B, 1)


def gradient_norms_at_init(cfg: GradFlowConfig) -> list[float]:
    """Frobenius norm of each layer's weight gradient (input layer first) for a random regression loss.

    >>> norms = gradient_norms_at_init(GradFlowConfig(depth=3, width=8, batch=4))
    >>> len(norms), norms[0] < norms[-1]  # plain sigmoid: smaller towards the input
    (3, True)
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Stack(cfg)
    x = torch.randn(cfg.batch, cfg.width, generator=gen)  # (B, width)
    y = torch.randn(cfg.batch, 1, generator=gen)  # (B, 1)
    F.mse_loss(model(x), y).backward()
    return [float(linear.weight.grad.norm()) for linear in model.linears]


def gradient_flow_table(activations=tuple(ACTIVATIONS), depth: int = 16, width: int = 64,
                        seed: int = 0) -> list[dict]:
    """One row per (activation, residual, norm): every layer's gradient norm (input layer first), the first
    and last, and their ratio (< 1: vanishing towards the input, > 1: exploding)."""
    rows = []
    for activation in activations:
        for residual, norm in ((False, False), (False, True), (True, False), (True, True)):
            cfg = GradFlowConfig(depth, width, activation, residual, norm, seed=seed)
            norms = gradient_norms_at_init(cfg)
            ratio = norms[0] / norms[-1] if norms[-1] else float("nan")
            rows.append({"activation": activation, "residual": residual, "norm": norm, "first": norms[0],
                         "last": norms[-1], "first_over_last": ratio, "norms": norms})
    return rows
