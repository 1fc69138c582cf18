"""Integer quantization (topic 33): INT8 or INT4 weights with float activations, or W8A8 (int8 weights
and int8 activations, an int32 matmul).

Each target `nn.Linear` weight W (out, in) is cut into groups of input columns (one group per output
row by default: per-channel) and every group gets its own scale s (and, asymmetric, a zero point z):

- symmetric: s = absmax / qmax, q = clamp(round(W / s), -qmax, qmax), W' = q * s, qmax = 2^(bits-1) - 1.
  The range is -127..127 (int8) and -7..7 (int4), not down to -128 / -8: a symmetric grid keeps +W and
  -W equally exact (torch's qint8 allows -128, which a symmetric scale never reaches).
- asymmetric: the range [min(W, 0), max(W, 0)] (zero always inside, so 0.0 is exact) is spread over
  0..2^bits - 1: s = (hi - lo) / qmax, z = round(-lo / s), q = clamp(round(W / s) + z, 0, qmax),
  W' = (q - z) * s, torch's quint8 convention.

Rounding is torch.round: half to even. Smaller groups follow the local range, so one outlier column
costs precision only in its own group. INT4 codes are stored two per byte (`pack_int4`).

Only the projections (attention q/k/v/o and the feed-forward's gate/up/down) are quantized by default.
The embedding is a table lookup, so quantizing it saves storage but no compute, and with tied
embeddings the output head *is* that table; the head itself is the most sensitive layer (its error
goes straight into every logit). Add "lm_head" to `targets` to quantize it anyway.

With `activations="float"` (the default) `QuantLinear` computes with the dequantized weight W' (a float
matmul: correct first, not fast). With `activations="int8"` (8-bit symmetric per-channel weights only) it
quantizes each input row (token) at run time, symmetric: s_a = absmax / 127, a = clamp(round(x / s_a),
-127, 127), multiplies the int8 codes exactly into int32 (`torch._int_mm`, `int8_matmul`) and rescales:
y = acc * s_a * s_w (+ bias). Against the float path each output errs by at most the activations'
rounding, 0.5 * s_a * sum_k |W'_nk|. torch.ao's `quantize_dynamic` is the same idea, coarser: one
asymmetric scale for the whole activation tensor on 0..127 (quint8, reduce_range on x86) and, with its
default qconfig, one scale for the whole weight.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError

log = logging.getLogger(__name__)

ACTIVATIONS = ("float", "int8")  # QuantConfig.activations: float matmul on W', or W8A8
INT8_MAX_IN = (2 ** 31 - 1) // 127 ** 2  # 133144: the longest int8 dot product an int32 always holds exactly
FLOAT_EXACT_K = 2 ** 24 // 128 ** 2  # 1024: int8 products float32 sums exactly in any order (see int8_matmul)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHOD = "weight-only-int"  # the config.json "quantization" entry's method name


@dataclass(frozen=True)
class QuantConfig:
    bits: int = 8  # bits per weight: 8 or 4 (4-bit codes are packed two per byte)
    group_size: int | None = None  # None: one scale per output channel; else per group of this many input columns
    symmetric: bool = True  # True: absmax scale, zero point 0; False: min/max scale with an integer zero point
    targets: tuple[str, ...] = DEFAULT_TARGETS  # nn.Linear name suffixes to quantize; add "lm_head" for the head
    activations: str = "float"  # "float": dequantize, float matmul; "int8": per-token int8 activations, int32 matmul

    def __post_init__(self):
        if isinstance(self.bits, bool) or self.bits not in (4, 8):
            raise InputError(f"bits must be 8 or 4, got {self.bits!r}")
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size <= 0):
            raise InputError(f"group_size must be None (per channel) or an integer > 0, got {self.group_size!r}")
        if not isinstance(self.symmetric, bool):
            raise InputError(f"symmetric must be True or False, got {self.symmetric!r}")
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise InputError(f"targets must be non-empty module-name suffixes, got {self.targets!r}")
        if self.activations not in ACTIVATIONS:
            raise InputError(f"activations must be one of {ACTIVATIONS}, got {self.activations!r}")
        if self.activations == "int8":
            # the int32 product has one scale per output channel to undo; a scale per group of input columns
            # would need one int matmul per group, asymmetric codes a zero-point correction, int4 unpacking
            wrong = [f"{k}={v!r}" for k, v, ok in (("bits", self.bits, 8), ("symmetric", self.symmetric, True),
                                                   ("group_size", self.group_size, None)) if v != ok]
            if wrong:
                raise InputError(f"activations='int8' needs bits=8, symmetric=True, group_size=None (per channel), "
                                 f"got {', '.join(wrong)}")


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of the integer codes.

    >>> code_range(8, True), code_range(8, False), code_range(4, True), code_range(4, False)
    ((-127, 127), (0, 255), (-7, 7), (0, 15))
    """
    return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)


def _grouped(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    if w.dim() != 2:
        raise InputError(f"a weight to quantize must be 2-D (out, in), got shape {tuple(w.shape)}")
    out, n_in = w.shape
    g = group_size or n_in
    if n_in % g:
        raise InputError(f"group_size {g} must divide the layer's in_features {n_in}")
    if not torch.isfinite(w).all():
        raise InputError("the weight holds inf or NaN: it cannot be quantized")
    return w.detach().float().reshape(out, n_in // g, g)  # (out, G, g)


def quantize_weight(w: torch.Tensor, bits: int = 8, group_size: int | None = None, symmetric: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Codes q (out, in), scales (out, G) float32 and zero points (out, G) uint8 (None when symmetric).

    q is int8 when symmetric, uint8 (0..2^bits - 1) when not; 4-bit codes are not packed here.

    >>> q, s, z = quantize_weight(torch.tensor([[1.0, -0.5, 0.25, 0.0]]))
    >>> q.tolist(), round(s.item(), 6), z
    ([[127, -64, 32, 0]], 0.007874, None)
    """
    QuantConfig(bits, group_size, symmetric)  # validates
    wg = _grouped(w, group_size)  # (out, G, g)
    qmin, qmax = code_range(bits, symmetric)
    if symmetric:
        amax = wg.abs().amax(-1)  # (out, G)
        scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))  # an all-zero group: any scale is exact
        q = torch.clamp(torch.round(wg / scale[..., None]), qmin, qmax).to(torch.int8)
        return q.reshape(w.shape), scale, None
    lo, hi = wg.amin(-1).clamp(max=0), wg.amax(-1).clamp(min=0)  # (out, G), zero inside the range
    scale = torch.where(hi > lo, (hi - lo) / qmax, torch.ones_like(hi))
    zero = torch.clamp(torch.round(-lo / scale), qmin, qmax)  # (out, G)
    q = torch.clamp(torch.round(wg / scale[..., None]) + zero[..., None], qmin, qmax).to(torch.uint8)
    return q.reshape(w.shape), scale, zero.to(torch.uint8)


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None = None) -> torch.Tensor:
    """W' (out, in) float32 = (q - zero) * scale, group by group (the group size is in / scale's columns).

    >>> dequantize_weight(torch.tensor([[127, -64]], dtype=torch.int8), torch.tensor([[0.5]])).tolist()
    [[63.5, -32.0]]
    """
    out, n_in = q.shape
    qg = q.float().reshape(out, scale.shape[1], -1)  # (out, G, g)
    if zero is not None:
        qg = qg - zero.float()[..., None]
    return (qg * scale.float()[..., None]).reshape(out, n_in)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """4-bit codes (signed -8..7 or unsigned 0..15; last dim even) -> uint8, two per byte: element 2i in
    the low nibble, 2i+1 in the high one.

    >>> pack_int4(torch.tensor([1, -2, 15, 0])).tolist()
    [225, 15]
    """
    if q.shape[-1] % 2:
        raise InputError(f"int4 packing needs an even number of columns, got {q.shape[-1]}")
    n = q.to(torch.int16) & 0xF  # two's complement nibble for negative codes
    return (n[..., 0::2] | (n[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, signed: bool) -> torch.Tensor:
    """The inverse of `pack_int4`: (..., n) bytes -> (..., 2n) codes, int8 (-8..7) or uint8 (0..15).

    >>> unpack_int4(torch.tensor([225, 15], dtype=torch.uint8), signed=True).tolist()
    [1, -2, -1, 0]
    """
    p = packed.to(torch.int16)
    n = torch.stack([p & 0xF, p >> 4], dim=-1).flatten(-2)  # (..., 2n)
    return (n - 16 * (n >= 8)).to(torch.int8) if signed else n.to(torch.uint8)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes (M, K) and float32 scales (M,) of each row of x (M, K): s = absmax / 127,
    q = clamp(round(x / s), -127, 127). An all-zero row gets s = 1 (its codes are 0, exact, and nothing
    divides by zero); a row holding inf or NaN keeps a non-finite scale, so its outputs stay non-finite.

    >>> q, s = quantize_rows(torch.tensor([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]]))
    >>> q.tolist(), [round(v, 6) for v in s.tolist()]
    ([[127, -64, 32], [0, 0, 0]], [0.007874, 1.0])
    """
    x = x.float()  # bf16 / fp16 rows: divide in float32, not in the input's coarser grid
    amax = x.abs().amax(-1)  # (M,)
    scale = torch.where(amax == 0, torch.ones_like(amax), amax / 127)
    return torch.clamp(torch.round(x / scale[:, None]), -127, 127).to(torch.int8), scale


def int8_matmul(a: torch.Tensor, w: torch.Tensor, pad: bool | None = None, via_float: bool | None = None
                ) -> torch.Tensor:
    """a (M, K) int8 times w (N, K) int8 transposed: (M, N) int32, exact while K <= INT8_MAX_IN.

    `torch._int_mm` on CPU (torch 2.13) runs oneDNN's int8 kernels where the CPU has VNNI (AVX512-VNNI or
    AVX-VNNI) and is then about as fast as a float matmul; elsewhere (an AVX2-only CPU, or oneDNN switched
    off) it falls back to plain loops, 30-70x slower than float. `via_float` (default: on a CPU without
    VNNI) computes the same integers with float32 matmuls instead, 1024 columns of K at a time, summed in
    int32: a product of two int8 codes is at most 128^2 = 2^14 in size, so any partial sum of 1024 of them
    is an integer of at most 2^24, which float32 holds exactly, whatever order the matmul adds them in.
    On CUDA (cuBLASLt) `_int_mm` refuses M <= 16 and wants K and N multiples of 8. `pad` (default: on
    CUDA) pads rows to 17 and K, N to multiples of 8 with zero codes, which add nothing, and cuts the
    result back.

    >>> int8_matmul(torch.tensor([[1, 2]], dtype=torch.int8), torch.tensor([[3, 4], [-1, 0]], dtype=torch.int8))
    tensor([[11, -1]], dtype=torch.int32)
    """
    if via_float is None:
        via_float = not a.is_cuda and not (_cpu_has_vnni() and torch.backends.mkldnn.enabled)
    if via_float:
        acc = None
        for k in range(0, a.shape[1], FLOAT_EXACT_K):
            part = (a[:, k:k + FLOAT_EXACT_K].float() @ w[:, k:k + FLOAT_EXACT_K].float().t()).to(torch.int32)
            acc = part if acc is None else acc.add_(part)
        return acc if acc is not None else torch.zeros(a.shape[0], w.shape[0], dtype=torch.int32, device=a.device)
    if a.is_cuda if pad is None else pad:
        (m, k), n = a.shape, w.shape[0]
        k8 = -(-k // 8) * 8
        a = F.pad(a, (0, k8 - k, 0, max(17 - m, 0)))  # (>= 17, k8)
        w = F.pad(w, (0, k8 - k, 0, -(-n // 8) * 8 - n))  # (n8, k8)
        return torch._int_mm(a, w.t())[:m, :n]
    return torch._int_mm(a, w.t())  # w.t(): a column-major (K, N) view, the layout cuBLASLt wants; no copy


@functools.cache
def _cpu_has_vnni() -> bool:
    """Whether torch's CPU int8 matmul takes oneDNN's fast kernels here (torch.cpu reports VNNI; an older
    torch without that report is taken to have them, as before this check)."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return (probe is None or bool(probe())) and torch.backends.mkldnn.is_available()


class _W8A8(torch.autograd.Function):
    """y = (int8 x) @ (int8 W)^T, rescaled, in x's dtype. `_int_mm` has no backward and rounding x has a
    zero derivative almost everywhere, so the backward passes the rounding straight through: dy/dx is
    the float layer's, grad @ W' (as bitsandbytes' int8 matmul does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(codes, scale)
        qa, sa = quantize_rows(x.reshape(-1, x.shape[-1]))  # (M, K) int8, (M,)
        acc = int8_matmul(qa, codes)  # (M, N) int32, the exact integer product
        y = acc.float().mul_(sa[:, None]).mul_(scale.float().view(1, -1))  # (M, N): acc * s_a * s_w
        return y.to(x.dtype).view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        codes, scale = ctx.saved_tensors
        return grad @ dequantize_weight(codes, scale).to(grad.dtype), None, None


class QuantLinear(nn.Module):
    """A bias-optional Linear whose weight is stored as integer codes and scales (buffers, so they save
    and move with the model). With float activations it dequantizes the weight for each forward (`cache =
    True` keeps the float weight); with int8 activations it multiplies codes (see `_W8A8`)."""

    def __init__(self, in_features: int, out_features: int, cfg: QuantConfig, bias: bool = False):
        super().__init__()
        g = cfg.group_size or in_features
        if in_features % g:
            raise InputError(f"group_size {g} must divide the layer's in_features {in_features}")
        if cfg.bits == 4 and in_features % 2:
            raise InputError(f"int4 packing needs an even in_features, got {in_features}")
        if cfg.activations == "int8" and in_features > INT8_MAX_IN:
            raise InputError(f"activations='int8' needs in_features <= {INT8_MAX_IN} (an exact int32 sum of "
                             f"127 * 127 products), got {in_features}")
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size, self.symmetric = cfg.bits, cfg.group_size, cfg.symmetric
        self.activations = cfg.activations
        code_dtype = torch.int8 if cfg.symmetric and cfg.bits == 8 else torch.uint8
        cols = in_features // 2 if cfg.bits == 4 else in_features
        self.register_buffer("qweight", torch.zeros(out_features, cols, dtype=code_dtype))
        self.register_buffer("scale", torch.ones(out_features, in_features // g))
        self.register_buffer("zero", None if cfg.symmetric else torch.zeros(out_features, in_features // g,
                                                                           dtype=torch.uint8))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.cache = False
        self._cached: torch.Tensor | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, cfg: QuantConfig) -> QuantLinear:
        m = cls(linear.in_features, linear.out_features, cfg, bias=linear.bias is not None)
        q, scale, zero = quantize_weight(linear.weight, cfg.bits, cfg.group_size, cfg.symmetric)
        m.qweight = pack_int4(q) if cfg.bits == 4 else q
        m.scale = scale
        if zero is not None:
            m.zero = zero
        if linear.bias is not None:
            m.bias = nn.Parameter(linear.bias.detach().clone())
        return m.to(linear.weight.device)

    def codes(self) -> torch.Tensor:
        """The integer codes (out, in), unpacked."""
        return unpack_int4(self.qweight, self.symmetric) if self.bits == 4 else self.qweight

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (out, in), float32."""
        return dequantize_weight(self.codes(), self.scale, self.zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activations == "int8":
            y = _W8A8.apply(x, self.qweight, self.scale)  # (..., out)
            return y if self.bias is None else y + self.bias
        w = self._cached
        if w is None or w.device != x.device or w.dtype != x.dtype:
            w = self.weight.to(x.dtype)  # (out, in)
            self._cached = w if self.cache else None
        return F.linear(x, w, self.bias)

    def _load_from_state_dict(self, *args, **kwargs):
        self._cached = None  # new codes: the cached weight is stale
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        kind = "symmetric" if self.symmetric else "asymmetric"
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"group_size={self.group_size or self.in_features}, {kind}, activations={self.activations}")


@dataclass(frozen=True)
class LayerError:
    name: str  # module name, e.g. "layers.0.self_attn.q_proj"
    shape: tuple[int, int]  # (out, in)
    max_abs: float  # max |W - W'|
    rel_fro: float  # ||W - W'||_F / ||W||_F
    bytes_before: int  # the float weight's bytes
    bytes_after: int  # codes + scales (+ zero points)


@dataclass(frozen=True)
class QuantReport:
    config: QuantConfig  # what was applied
    layers: tuple[LayerError, ...]  # one entry per replaced Linear, in module order

    @property
    def bytes_before(self) -> int:
        return sum(e.bytes_before for e in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(e.bytes_after for e in self.layers)

    def summary(self) -> str:
        """One line per layer and a total: shape, max abs error, relative Frobenius error, bytes."""
        rows = [f"{'layer':36s} {'shape':>11s} {'max abs err':>11s} {'rel fro err':>11s} {'bytes':>17s}"]
        for e in self.layers:
            shape = f"{e.shape[0]}x{e.shape[1]}"
            rows.append(f"{e.name:36s} {shape:>11s} {e.max_abs:11.3g} {e.rel_fro:11.3%} "
                        f"{e.bytes_before:>8d}->{e.bytes_after:<8d}")
        worst = max(self.layers, key=lambda e: e.rel_fro)
        rows.append(f"{len(self.layers)} layers, worst relative error {worst.rel_fro:.3%} ({worst.name}); "
                    f"these weights {self.bytes_before} -> {self.bytes_after} bytes "
                    f"({self.bytes_before / max(self.bytes_after, 1):.2f}x smaller)")
        return "\n".join(rows)


def _tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def target_names(model: nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Names of the nn.Linear modules whose name is, or ends with ".", one of `targets`."""
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(model: nn.Module, config: QuantConfig = QuantConfig()) -> QuantReport:
    """Replace the target Linears by QuantLinears in place; the per-layer error report.

    All layers are checked (group size, finiteness) before any is replaced, so a refusal leaves the
    model as it was. A model that already holds QuantLinears is refused: quantizing codes again would
    stack a second rounding error on the first.
    """
    if any(isinstance(m, QuantLinear) for m in model.modules()):
        raise InputError("the model is already quantized: quantize the float model instead")
    names = target_names(model, config.targets)
    if not names:
        raise InputError(f"no nn.Linear module name ends with one of {config.targets}")
    for n in names:
        _grouped(model.get_submodule(n).weight, config.group_size)  # raises before anything changes
    errors = []
    for n in names:
        linear = model.get_submodule(n)
        q = QuantLinear.from_linear(linear, config)
        with torch.no_grad():
            w = linear.weight.detach().float()
            diff = w - q.weight
            rel = float(diff.norm() / w.norm()) if w.norm() > 0 else 0.0
        errors.append(LayerError(n, tuple(w.shape), float(diff.abs().max()), rel,
                                 _tensor_bytes(linear.weight), _tensor_bytes(q.qweight, q.scale, q.zero)))
        _replace(model, n, q)
    log.debug("quantized %d layers to %d bits", len(names), config.bits)
    return QuantReport(config, tuple(errors))


def quantized_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]


def quantization_entry(model: nn.Module) -> dict:
    """What config.json records: the method, bits, group size, symmetry, activations ("int8" only: a float
    model's entry stays as it was before the setting existed) and the quantized layers' names."""
    names = quantized_layers(model)
    if not names:
        raise InputError("the model has no quantized layers: run quantize_model first")
    first = model.get_submodule(names[0])
    entry = {"method": METHOD, "bits": first.bits, "group_size": first.group_size, "symmetric": first.symmetric}
    if first.activations != "float":
        entry["activations"] = first.activations
    return entry | {"layers": names}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the tensors a model save writes (a tied head counted once)."""
    from llmlab.models.io import model_state

    return _tensor_bytes(*model_state(model).values())


def save_quantized(model, directory: str | os.PathLike, tokenizer=None, card=None,
                   tokenizer_config: dict | None = None) -> Path:
    """A model directory like `save_model`'s, whose config.json carries a "quantization" entry and whose
    model.safetensors holds the int8/uint8 codes, scales and zero points (`tokenizer_config`: a chat
    model's, kept so the quantized model still chats)."""
    from llmlab.models.io import save_model

    return save_model(model, directory, tokenizer, card, extra={"quantization": quantization_entry(model)},
                      tokenizer_config=tokenizer_config)


def _check_codes(model: nn.Module, what: str) -> None:
    """Refuse codes a quantizer never writes (e.g. -128 on the symmetric grid) and scales that are not
    finite positive numbers: the file was altered or not written by llmlab."""
    for n, m in model.named_modules():
        if not isinstance(m, QuantLinear):
            continue
        qmin, qmax = code_range(m.bits, m.symmetric)
        c = m.codes().to(torch.int16)
        if c.numel() and (c.min() < qmin or c.max() > qmax):
            raise InputError(f"{what}: {n} has codes outside {qmin}..{qmax}, which {m.bits}-bit "
                             f"{'symmetric' if m.symmetric else 'asymmetric'} quantization never writes")
        if m.zero is not None and m.zero.numel() and m.zero.max() > qmax:
            raise InputError(f"{what}: {n} has zero points above {qmax}")
        if not (torch.isfinite(m.scale).all() and (m.scale > 0).all()):
            raise InputError(f"{what}: {n} has scales that are not finite positive numbers")


def load_quantized(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer or None) from a `save_quantized` directory; InputError when the
    entry, the tensors' names, shapes or dtypes, or the codes do not fit together."""
    from llmlab.models.decoder import CausalLM
    from llmlab.models.io import load_model_tokenizer, load_state, read_model_doc, read_weights, resolve_device

    device = resolve_device(device)
    d = Path(directory)
    cfg, doc = read_model_doc(d)
    entry = doc.get("quantization")
    what = str(d / "config.json")
    if not isinstance(entry, dict) or entry.get("method") != METHOD or not isinstance(entry.get("layers"), list):
        raise InputError(f"{what!r} has no {METHOD} quantization entry: load it with llmlab.models.load_model")
    # an entry written before the activations setting existed has none: those models computed in float
    qcfg = QuantConfig(entry.get("bits"), entry.get("group_size"), entry.get("symmetric"),
                       activations=entry.get("activations", "float"))
    model = CausalLM(cfg)
    for n in entry["layers"]:
        try:
            linear = model.get_submodule(n) if isinstance(n, str) else None
        except AttributeError:
            linear = None
        if not isinstance(linear, nn.Linear):
            raise InputError(f"{what!r}: quantized layer {n!r} is not a Linear of this model")
        _replace(model, n, QuantLinear(linear.in_features, linear.out_features, qcfg, bias=linear.bias is not None))
    weights = d / "model.safetensors"
    load_state(model, read_weights(weights), str(weights))
    _check_codes(model, str(weights))
    return model.to(device).eval(), load_model_tokenizer(d, cfg)
