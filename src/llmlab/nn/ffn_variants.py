"""Position-wise feed-forward blocks: two-matrix FFNs and gated linear units.

- Two matrices (Vaswani, GPT-2, BERT): down(act(up(x))), act in ReLU, GELU (exact or GPT-2's tanh
  approximation) or SiLU/Swish.
- Gated (Shazeer 2020, "GLU Variants Improve Transformer"): down(act(gate(x)) * up(x)); SwiGLU uses SiLU
  (LLaMA, PaLM), GeGLU uses GELU (T5 v1.1 "gated-gelu", with the tanh approximation; Gemma).
  A third matrix costs parameters, so gated FFNs use a hidden size of about 8/3 * dim instead of 4 * dim
  for the same count.

Module names follow Hugging Face LLaMA (gate_proj, up_proj, down_proj): a `FeedForward("swiglu")` has the
same parameters as `llmlab.nn.ffn.SwiGLU` and exports as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact, erf-based (BERT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "silu": F.silu,  # Swish with beta = 1
}
GATED = {"swiglu": "silu", "geglu": "gelu_tanh", "geglu_exact": "gelu"}  # gated kind -> gate activation
KINDS = tuple(ACTIVATIONS) + tuple(GATED)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"ffn kind must be one of {KINDS}, got {kind!r}")


def ffn_parameters(dim: int, hidden: int, kind: str, bias: bool = False) -> int:
    """Parameters of one feed-forward block: 2*d*h (+ h + d biases), gated 3*d*h (+ 2h + d).

    >>> ffn_parameters(768, 3072, "gelu_tanh", bias=True)  # one GPT-2 small MLP
    4722432
    >>> ffn_parameters(4096, 11008, "swiglu")  # one LLaMA-7B MLP
    135266304
    """
    _check_kind(kind)
    in_matrices = 2 if kind in GATED else 1
    weights = (in_matrices + 1) * dim * hidden
    return weights + (in_matrices * hidden + dim if bias else 0)


def matched_hidden(dim: int, kind: str, multiple_of: int = 1) -> int:
    """Hidden size that gives `kind` (about) the parameters of a 4*dim two-matrix FFN, rounded up.

    >>> matched_hidden(768, "relu"), matched_hidden(768, "swiglu"), matched_hidden(4096, "swiglu", 256)
    (3072, 2048, 11008)
    """
    _check_kind(kind)
    hidden = 4 * dim if kind not in GATED else int(8 * dim / 3)
    return -(-hidden // multiple_of) * multiple_of


class FeedForward(nn.Module):
    """down(act(up(x))) for relu|gelu|gelu_tanh|silu; down(act(gate(x)) * up(x)) for swiglu|geglu|geglu_exact."""

    def __init__(self, dim: int, hidden: int, kind: str = "swiglu", bias: bool = False):
        super().__init__()
        _check_kind(kind)
        if dim <= 0 or hidden <= 0:
            raise InputError(f"ffn dim and hidden must be > 0, got dim={dim}, hidden={hidden}")
        self.kind = kind
        self.act = ACTIVATIONS[GATED.get(kind, kind)]
        self.gate_proj = nn.Linear(dim, hidden, bias=bias) if kind in GATED else None
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)
        self.gate_up_weight: torch.Tensor | None = None  # gate and up weights as one matrix while fused

    def fuse(self) -> bool:
        """Concatenate gate and up weights (gated kinds, plain bias-free layers) for one projection at inference."""
        projs = (self.gate_proj, self.up_proj)
        if not all(type(p) is nn.Linear and p.bias is None for p in projs):
            return False
        self.gate_up_weight = torch.cat([p.weight.detach() for p in projs])  # (2h, d)
        return True

    def unfuse(self) -> None:
        self.gate_up_weight = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up_weight is not None and not torch.is_grad_enabled():
            gate, up = F.linear(x, self.gate_up_weight).chunk(2, dim=-1)  # (B, T, h) each
            return self.down_proj(self.act(gate) * up)
        if self.gate_proj is None:
            return self.down_proj(self.act(self.up_proj(x)))  # (B, T, d)
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))  # (B, T, d)
