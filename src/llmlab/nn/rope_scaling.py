"""RoPE scaling for length extrapolation: run a model trained at context L on sequences longer than L.

Every scheme changes only the inverse frequencies theta_i of `llmlab.nn.rope` (and, for YaRN, the size of
cos/sin), so the attention code is untouched:

- linear position interpolation (PI, Chen et al. 2023): theta_i / s, i.e. position m is read as m / s.
- NTK-aware (bloc97): raise the base to base * s^(d/(d-2)): high frequencies (local order) stay almost
  unchanged, the lowest frequency is interpolated by s.
- dynamic NTK: NTK-aware with s chosen from the current length T, s' = s*T/L - (s-1), and no change
  while T <= L.
- YaRN (Peng et al. 2023): per frequency, interpolate (theta/s) when its wavelength is long compared
  with L, extrapolate (theta) when short, ramp linearly in between; and scale cos/sin by
  sqrt(1/t) = 0.1 ln(s) + 1, which sharpens the softmax by that factor squared.

The formulas follow Hugging Face `transformers.modeling_rope_utils`, and the tests compare to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmlab.core.errors import InputError

KINDS = ("none", "linear", "ntk", "dynamic", "yarn")


@dataclass(frozen=True)
class RopeScaling:
    kind: str = "none"  # none | linear (PI) | ntk (NTK-aware) | dynamic (dynamic NTK) | yarn
    factor: float = 1.0  # context extension s >= 1: the model should work up to s * original_max_positions
    original_max_positions: int = 0  # context trained on (L); needed by dynamic and yarn
    beta_fast: float = 32.0  # yarn: frequencies turning more than this often within L are extrapolated
    beta_slow: float = 1.0  # yarn: frequencies turning fewer times than this within L are interpolated
    attention_factor: float = 0.0  # yarn: cos/sin multiplier; 0 = 0.1 ln(factor) + 1 (the paper's)
    truncate: bool = True  # yarn: round the ramp's ends to whole dimensions (floor/ceil), as HF does

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"rope scaling kind must be one of {KINDS}, got {self.kind!r}")
        if not 1.0 <= self.factor < math.inf:  # NaN too: it gave a NaN rotation table
            raise InputError(f"rope scaling factor must be a finite number >= 1, got {self.factor}")
        for name in ("beta_fast", "beta_slow", "attention_factor"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.kind == "none" and self.factor != 1.0:
            raise InputError(f"rope scaling 'none' takes factor 1, got {self.factor}; pick a scaling kind")
        if self.kind in ("dynamic", "yarn") and self.original_max_positions <= 0:
            raise InputError(f"rope scaling {self.kind!r} needs original_max_positions > 0, "
                             f"got {self.original_max_positions}")
        if self.beta_fast < self.beta_slow:
            raise InputError(f"beta_fast ({self.beta_fast}) must be >= beta_slow ({self.beta_slow})")
        if self.attention_factor < 0:
            raise InputError(f"attention_factor must be >= 0 (0 = automatic), got {self.attention_factor}")


def _base_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    if head_dim % 2 or head_dim <= 2:
        raise InputError(f"head_dim must be even and > 2 for RoPE scaling, got {head_dim}")
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (hs/2,)


def ntk_base(base: float, factor: float, head_dim: int) -> float:
    """Base that NTK-aware scaling uses: the lowest frequency ends up exactly `factor` times slower.

    >>> round(ntk_base(10000.0, 4.0, 4), 1)  # 10000 * 4^(4/2)
    160000.0
    """
    return base * factor ** (head_dim / (head_dim - 2))


def dynamic_factor(factor: float, seq_len: int, original_max_positions: int) -> float:
    """Dynamic NTK's effective factor for a sequence of `seq_len` tokens: 1 up to L, then grows linearly.

    >>> dynamic_factor(4.0, 100, 128), dynamic_factor(4.0, 256, 128)
    (1.0, 5.0)
    """
    seq_len = max(seq_len, original_max_positions)
    return factor * seq_len / original_max_positions - (factor - 1)


def yarn_attention_factor(factor: float) -> float:
    """sqrt(1/t) = 0.1 ln(s) + 1 (YaRN eq. 22); 1 when not extending.

    >>> round(yarn_attention_factor(math.e), 6)
    1.1
    """
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def yarn_ramp(head_dim: int, base: float, beta_fast: float, beta_slow: float, original_max_positions: int,
              truncate: bool = True) -> torch.Tensor:
    """Per frequency, the weight of extrapolation (keep theta): 1 for fast dims, 0 for slow, linear between.

    Dimension pair i turns L * theta_i / (2 pi) times within the trained context; pairs turning more than
    beta_fast times are extrapolated, fewer than beta_slow times interpolated.
    """
    def dim_for(rotations: float) -> float:  # inverse of: rotations = L / (2 pi base^(2i/d))
        return head_dim * math.log(original_max_positions / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_for(beta_fast), dim_for(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    return 1 - ramp  # (hs/2,)


def rope_inv_freq(head_dim: int, base: float, scaling: RopeScaling,
                  seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """(inv_freq (hs/2,), attention_factor): frequencies under `scaling` and the multiplier for cos/sin.

    `seq_len` (current length) matters only to dynamic NTK; None means the trained length.

    >>> inv, a = rope_inv_freq(4, 100.0, RopeScaling("linear", factor=2.0))
    >>> inv.tolist(), a
    ([0.5, 0.05000000074505806], 1.0)
    """
    s = scaling.factor
    if scaling.kind in ("none", "linear"):  # "none" has factor 1
        return _base_inv_freq(head_dim, base) / s, 1.0
    if scaling.kind == "ntk":
        return _base_inv_freq(head_dim, ntk_base(base, s, head_dim)), 1.0
    if scaling.kind == "dynamic":
        L = scaling.original_max_positions
        s_now = dynamic_factor(s, L if seq_len is None else seq_len, L)
        return _base_inv_freq(head_dim, ntk_base(base, s_now, head_dim)), 1.0
    extrapolate = _base_inv_freq(head_dim, base)  # yarn: theta, kept for fast dimensions
    interpolate = 1.0 / (s * base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # theta / s
    keep = yarn_ramp(head_dim, base, scaling.beta_fast, scaling.beta_slow, scaling.original_max_positions,
                     scaling.truncate)
    inv_freq = interpolate * (1 - keep) + extrapolate * keep
    return inv_freq, scaling.attention_factor or yarn_attention_factor(s)


def rope_cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor,
                 attention_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (T, hs) for `positions` (T,), in the half-split layout `llmlab.nn.rope.apply_rope` takes.

    >>> cos, sin = rope_cos_sin(torch.tensor([1.0, 0.5]), torch.tensor([0, 2]))
    >>> cos.shape, [round(x, 4) for x in sin[1].tolist()]
    (torch.Size([2, 4]), [0.9093, 0.8415, 0.9093, 0.8415])
    """
    angles = torch.outer(positions.to(torch.float32), inv_freq.to(positions.device))  # (T, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hs)
    return angles.cos() * attention_factor, angles.sin() * attention_factor


class ScaledRotaryEmbedding(torch.nn.Module):
    """`RotaryEmbedding` with a `RopeScaling`: `forward(positions, seq_len)` gives (T, hs) cos/sin tables.

    Static kinds keep one table of `max_positions` rows. Dynamic NTK recomputes the frequencies from
    `seq_len` (the total length so far) once it passes the trained length, so keys cached at a shorter
    length were rotated with other frequencies than a full recomputation would use (as in HF).
    """

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0,
                 scaling: RopeScaling = RopeScaling()):
        super().__init__()
        self.head_dim, self.base, self.scaling = head_dim, base, scaling
        inv_freq, self.attention_factor = rope_inv_freq(head_dim, base, scaling)
        cos, sin = rope_cos_sin(inv_freq, torch.arange(max_positions), self.attention_factor)
        # buffers, not parameters: derived from the config, so not saved in checkpoints
        self.register_buffer("cos", cos, persistent=False)  # (P, hs)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, positions: torch.Tensor, seq_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        trained = self.scaling.original_max_positions
        if self.scaling.kind == "dynamic" and seq_len is not None and seq_len > trained:
            inv_freq, factor = rope_inv_freq(self.head_dim, self.base, self.scaling, seq_len)
            return rope_cos_sin(inv_freq.to(self.cos.device), positions, factor)
        return self.cos[positions], self.sin[positions]

    def span(self, start: int, T: int, seq_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` for positions start..start+T-1: table views, no index tensor (per decoded token)."""
        trained = self.scaling.original_max_positions
        if self.scaling.kind == "dynamic" and seq_len is not None and seq_len > trained:
            return self.forward(torch.arange(start, start + T, device=self.cos.device), seq_len)
        return self.cos.narrow(0, start, T), self.sin.narrow(0, start, T)


def hf_rope_config(base: float, scaling: RopeScaling, max_positions: int) -> dict:
    """The keys a Hugging Face LLaMA `config.json` needs for this scaling (transformers >= 5 layout).

    HF's dynamic NTK reads the trained length from `max_position_embeddings`, so it is set to L there.
    HF has no static NTK-aware kind; exporting one raises.

    >>> hf_rope_config(10000.0, RopeScaling("linear", factor=2.0), 512)["rope_parameters"]
    {'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 2.0}
    """
    if scaling.kind == "ntk":
        raise InputError("Hugging Face transformers has no static NTK-aware RoPE; use 'dynamic' or 'yarn' to export")
    if scaling.kind == "none":
        params = {"rope_type": "default", "rope_theta": base}
        return {"rope_parameters": params, "max_position_embeddings": max_positions}
    params = {"rope_type": scaling.kind, "rope_theta": base, "factor": scaling.factor}
    if scaling.kind == "dynamic":
        return {"rope_parameters": params, "max_position_embeddings": scaling.original_max_positions}
    if scaling.kind == "yarn":
        params.update(original_max_position_embeddings=scaling.original_max_positions, beta_fast=scaling.beta_fast,
                      beta_slow=scaling.beta_slow, truncate=scaling.truncate)
        if scaling.attention_factor:
            params["attention_factor"] = scaling.attention_factor
    return {"rope_parameters": params, "max_position_embeddings": max_positions}


def extrapolation_scaling(kind: str, trained: int, target: int) -> RopeScaling:
    """The scaling that stretches a model trained at `trained` tokens to `target` (the topic-80 sweep).

    Static kinds take factor target / trained. Dynamic NTK takes factor 1, so at length T its NTK factor
    is T / trained exactly: no change within the trained context, just enough beyond it.

    >>> extrapolation_scaling("yarn", 128, 1024).factor, extrapolation_scaling("dynamic", 128, 1024).factor
    (8.0, 1.0)
    """
    if trained <= 0 or target < trained:
        raise InputError(f"need 0 < trained <= target, got trained={trained}, target={target}")
    if kind == "none":
        return RopeScaling()
    factor = 1.0 if kind == "dynamic" else target / trained
    return RopeScaling(kind, factor=factor, original_max_positions=trained)
