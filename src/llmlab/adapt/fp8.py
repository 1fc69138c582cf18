"""FP8 number formats (topic 33), written out from their bit layouts.

An 8-bit float is sign | exponent | mantissa. Two layouts are in use (OCP 8-bit floating point spec):

- E4M3 ("fn", torch.float8_e4m3fn): 4 exponent bits, bias 7, 3 mantissa bits. No infinities: only
  S.1111.111 is NaN, so the top exponent still holds 7 finite values and the largest is
  1.75 * 2^8 = 448. More precision, less range: the usual choice for weights and activations.
- E5M2 (torch.float8_e5m2): 5 exponent bits, bias 15, 2 mantissa bits, IEEE-like: exponent 11111 is
  infinity (mantissa 0) or NaN; the largest finite value is 1.75 * 2^15 = 57344. More range, less
  precision: the usual choice for gradients.

Exponent field 0 is subnormal in both: 0.m * 2^(1 - bias), so values step evenly down to zero.

`fp8_round` rounds with exponent/mantissa arithmetic (not torch's cast) and matches torch's cast bit
for bit, including what torch does past the largest value: E4M3 saturates to +-448 (infinities too),
E5M2 overflows to +-inf from 61440 (the tie between 57344 and the next step, 65536, goes to the even
mantissa, which is the infinity code) upward.

Per-tensor scaled FP8 (as FP8 training recipes do): scale = amax / max so the tensor's largest
magnitude lands on the format's largest value, store x / scale in FP8, multiply back by the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmlab.core.errors import InputError


@dataclass(frozen=True)
class Fp8Format:
    name: str  # "e4m3" or "e5m2"
    exp_bits: int  # exponent field width
    man_bits: int  # mantissa field width
    has_inf: bool  # IEEE-like top exponent (inf and NaNs) vs OCP "fn" (only all-ones is NaN)

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def max(self) -> float:
        """Largest finite value: e4m3 1.75 * 2^8 = 448 (all-ones mantissa is NaN), e5m2 1.75 * 2^15 = 57344."""
        top = 2 ** self.exp_bits - 1 - (1 if self.has_inf else 0)  # highest exponent field holding finite values
        frac = 2 - 2.0 ** -self.man_bits - (0 if self.has_inf else 2.0 ** -self.man_bits)
        return frac * 2.0 ** (top - self.bias)


FORMATS = {"e4m3": Fp8Format("e4m3", 4, 3, has_inf=False), "e5m2": Fp8Format("e5m2", 5, 2, has_inf=True)}
TORCH_DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2"}  # the torch dtype of each (names: no torch probing)


def get_format(fmt: str | Fp8Format) -> Fp8Format:
    if isinstance(fmt, Fp8Format):
        return fmt
    if fmt not in FORMATS:
        raise InputError(f"unknown FP8 format {fmt!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def decode_fp8(codes: torch.Tensor, fmt: str | Fp8Format) -> torch.Tensor:
    """The float64 values of uint8 codes, from the fields: sign, exponent e, mantissa m.

    >>> decode_fp8(torch.tensor([0x38, 0x7E, 0x01], dtype=torch.uint8), "e4m3").tolist()
    [1.0, 448.0, 0.001953125]
    """
    f = get_format(fmt)
    c = codes.to(torch.int64)
    sign = torch.where(c >> 7 == 1, -1.0, 1.0).double()
    e = (c >> f.man_bits) & (2 ** f.exp_bits - 1)
    m = (c & (2 ** f.man_bits - 1)).double()
    frac = torch.where(e == 0, m / 2 ** f.man_bits, 1 + m / 2 ** f.man_bits)  # subnormal 0.m, normal 1.m
    exp = torch.clamp(e, min=1) - f.bias  # subnormals share the smallest normal exponent
    v = sign * frac * torch.pow(2.0, exp.double())
    e_top, m_top = 2 ** f.exp_bits - 1, 2 ** f.man_bits - 1
    if f.has_inf:
        v = torch.where((e == e_top) & (m == 0), sign * torch.inf, v)
        v = torch.where((e == e_top) & (m != 0), torch.nan, v)
    else:
        v = torch.where((e == e_top) & (m == m_top), torch.nan, v)
    return v


def fp8_values(fmt: str | Fp8Format) -> torch.Tensor:
    """All 256 codes' values as float32, index = code (NaN where the code is NaN).

    >>> v = fp8_values("e5m2"); v[0x7B].item(), v[0x7C].item(), v[0x80].item()
    (57344.0, inf, -0.0)
    """
    return decode_fp8(torch.arange(256, dtype=torch.uint8), fmt).float()


def fp8_round(x: torch.Tensor, fmt: str | Fp8Format, saturate: bool | None = None) -> torch.Tensor:
    """x rounded to the nearest FP8 value (ties to even mantissa), as float32.

    The rounding step is 2^(E - man_bits) where E is x's binary exponent, floored at the smallest normal
    exponent (so subnormals share one step); dividing by a power of two is exact, and torch.round rounds
    half to even. The sign survives rounding to zero (-1e-9 -> -0.0). x is taken as float32 first, as
    torch's cast reads it.

    Past the largest value: `saturate=True` gives +-max (infinities too), `False` gives +-inf (E5M2) or
    NaN (E4M3, which has no infinity); None does what torch's cast does: saturate for E4M3, inf for E5M2.

    >>> fp8_round(torch.tensor([1.0625, 1.1875, 500.0, -1e-9]), "e4m3").tolist()
    [1.0, 1.25, 448.0, -0.0]
    """
    f = get_format(fmt)
    if saturate is None:
        saturate = not f.has_inf
    a = x.float().double().abs()  # float32 then exact float64 arithmetic
    _, e = torch.frexp(a)  # a = m * 2^e with m in [0.5, 1): binary exponent E = e - 1
    exp = torch.clamp(e - 1, min=1 - f.bias)
    step = torch.pow(2.0, (exp - f.man_bits).double())
    q = torch.round(a / step) * step  # round half to even on the mantissa grid
    over = q > f.max  # inf input too
    if saturate:
        q = torch.where(over, f.max, q)
    else:
        q = torch.where(over, torch.inf if f.has_inf else torch.nan, q)
    q = torch.where(torch.isnan(a), torch.nan, q)
    return torch.copysign(q, x.float().double()).float()


def format_info(fmt: str | Fp8Format) -> dict:
    """The numbers that describe a format.

    >>> format_info("e4m3")["max"], format_info("e4m3")["finite_values"]
    (448.0, 254)
    """
    f = get_format(fmt)
    return {
        "format": f.name, "torch_dtype": TORCH_DTYPES[f.name], "exponent_bits": f.exp_bits,
        "mantissa_bits": f.man_bits, "bias": f.bias, "max": f.max,
        "min_normal": 2.0 ** (1 - f.bias), "min_subnormal": 2.0 ** (1 - f.bias - f.man_bits),
        "epsilon": 2.0 ** -f.man_bits,  # gap between 1 and the next value
        "finite_values": int(torch.isfinite(fp8_values(f)).sum()), "infinities": f.has_inf,
    }


def fp8_quantize(x: torch.Tensor, fmt: str | Fp8Format = "e4m3") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled FP8: (x / scale rounded to FP8, saturating, as float32; scale), with
    scale = amax / max so the largest magnitude maps to the format's largest value. An all-zero tensor
    gets scale 1. x is approximated by `values * scale`.

    >>> v, s = fp8_quantize(torch.tensor([0.5, -2.0]), "e4m3"); s.item(), (v * s).tolist()
    (0.004464285913854837, [0.5, -2.0])
    """
    f = get_format(fmt)
    x = x.float()
    amax = x.abs().max() if x.numel() else torch.tensor(0.0)
    if not torch.isfinite(amax):
        raise InputError("fp8_quantize: the tensor holds inf or NaN; its scale would be meaningless")
    scale = torch.where(amax > 0, amax / f.max, torch.ones_like(amax))  # ()
    return fp8_round(x / scale, f, saturate=True), scale


def fp8_error(x: torch.Tensor, fmt: str | Fp8Format = "e4m3") -> dict:
    """Error of per-tensor scaled FP8 on x: max absolute and relative Frobenius (||x - x'|| / ||x||)."""
    v, scale = fp8_quantize(x, fmt)
    x = x.float()
    err = x - v * scale
    norm = float(x.norm())
    return {"max_abs": float(err.abs().max()) if err.numel() else 0.0,
            "rel_fro": float(err.norm()) / norm if norm > 0 else 0.0, "scale": float(scale)}
