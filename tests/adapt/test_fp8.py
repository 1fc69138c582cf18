"""FP8 formats written from their bit layouts, checked bit for bit against torch's float8 dtypes."""

import pytest
import torch

from llmlab.adapt.fp8 import TORCH_DTYPES, format_info, fp8_error, fp8_quantize, fp8_round, fp8_values
from llmlab.core.errors import InputError

FMTS = ("e4m3", "e5m2")


def torch_dtype(fmt):
    return getattr(torch, TORCH_DTYPES[fmt])


def torch_round(x, fmt):
    return x.float().to(torch_dtype(fmt)).float()


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as float32 bit patterns, except that any NaN equals any NaN (and -0.0 differs from 0.0)."""
    nan = torch.isnan(a) & torch.isnan(b)
    return bool(((a.view(torch.int32) == b.view(torch.int32)) | nan).all())


@pytest.mark.parametrize("fmt", FMTS)
def test_value_table_matches_torch_bit_for_bit(fmt):
    ref = torch.arange(256, dtype=torch.uint8).view(torch_dtype(fmt)).float()
    ours = fp8_values(fmt)
    assert same_bits(ours, ref)
    assert torch.equal(torch.isnan(ours), torch.isnan(ref))


def test_nan_and_inf_codes():
    e4, e5 = fp8_values("e4m3"), fp8_values("e5m2")
    assert torch.isnan(e4).nonzero().flatten().tolist() == [0x7F, 0xFF]  # one NaN pattern per sign
    assert not torch.isinf(e4).any()
    assert torch.isinf(e5).nonzero().flatten().tolist() == [0x7C, 0xFC]
    assert torch.isnan(e5).sum() == 6


def finite_grid(fmt):
    v = fp8_values(fmt)
    return v[torch.isfinite(v)].unique()  # sorted; -0.0 and 0.0 merge


@pytest.mark.parametrize("fmt", FMTS)
def test_round_matches_torch_on_values_midpoints_and_neighbours(fmt):
    grid = finite_grid(fmt)
    mids = (grid[1:].double() + grid[:-1].double()) / 2  # exact ties (representable in float32)
    mids = mids.float()
    near = torch.cat([torch.nextafter(mids, torch.tensor(torch.inf)), torch.nextafter(mids, torch.tensor(-torch.inf))])
    x = torch.cat([grid, mids, near, torch.tensor([0.0, -0.0])])
    assert same_bits(fp8_round(x, fmt), torch_round(x, fmt))


@pytest.mark.parametrize("fmt", FMTS)
def test_round_matches_torch_on_random_floats_of_every_magnitude(fmt):
    g = torch.Generator().manual_seed(0)
    mant = torch.rand(20000, generator=g) + 1
    exp = torch.randint(-30, 20, (20000,), generator=g).float()
    sign = torch.where(torch.rand(20000, generator=g) < 0.5, -1.0, 1.0)
    x = sign * mant * torch.pow(2.0, exp)
    # subnormals and the range edges, densely
    info = format_info(fmt)
    sub = torch.linspace(-4 * info["min_normal"], 4 * info["min_normal"], 4001)
    edge = torch.linspace(info["max"] * 0.9, info["max"] * 1.2, 4001)
    x = torch.cat([x, sub, edge, -edge, torch.randn(5000, generator=g)])
    assert same_bits(fp8_round(x, fmt), torch_round(x, fmt))


def test_overflow_follows_torch():
    """torch saturates E4M3 (no infinity; inf -> 448) and overflows E5M2 to inf from 61440, the tie
    between 57344 and 65536 that rounds to the even mantissa (the infinity code)."""
    x = torch.tensor([448.0, 464.0, 465.0, 480.0, 1e30, torch.inf, -torch.inf, torch.nan, 57344.0, 61439.0, 61440.0])
    for fmt in FMTS:
        assert same_bits(fp8_round(x, fmt), torch_round(x, fmt))
    assert fp8_round(torch.tensor([1e6, torch.inf]), "e4m3").tolist() == [448.0, 448.0]
    assert fp8_round(torch.tensor([61439.0, 61440.0]), "e5m2").tolist() == [57344.0, torch.inf]
    # the other conventions: non-saturating E4M3 has only NaN to give, saturating E5M2 clamps
    assert torch.isnan(fp8_round(torch.tensor([500.0]), "e4m3", saturate=False)).all()
    assert fp8_round(torch.tensor([1e6, -torch.inf]), "e5m2", saturate=True).tolist() == [57344.0, -57344.0]
    # saturating rounding equals torch's cast of the clamped value
    x = torch.randn(1000) * 1e5
    m = format_info("e5m2")["max"]
    assert same_bits(fp8_round(x, "e5m2", saturate=True), torch_round(x.clamp(-m, m), "e5m2"))


@pytest.mark.parametrize("fmt", FMTS)
def test_format_info_agrees_with_the_value_table(fmt):
    info, v = format_info(fmt), fp8_values(fmt)
    finite = v[torch.isfinite(v)]
    pos = finite[finite > 0]
    assert info["max"] == finite.max().item() == torch.finfo(torch_dtype(fmt)).max
    assert info["min_subnormal"] == pos.min().item()
    assert info["min_normal"] == torch.finfo(torch_dtype(fmt)).tiny
    assert info["epsilon"] == torch.finfo(torch_dtype(fmt)).eps
    assert pos[pos > 1].min().item() - 1 == info["epsilon"]  # the gap above 1
    assert info["finite_values"] == finite.numel() == {"e4m3": 254, "e5m2": 248}[fmt]
    assert info["bias"] == {"e4m3": 7, "e5m2": 15}[fmt]


def test_unknown_format_is_a_clear_error():
    with pytest.raises(InputError, match="unknown FP8 format 'e3m4'"):
        fp8_values("e3m4")


@pytest.mark.parametrize("fmt", FMTS)
def test_scaled_quantization(fmt):
    torch.manual_seed(0)
    x = torch.randn(64, 64) * 1e-3  # far below E4M3's normal range unscaled
    v, scale = fp8_quantize(x, fmt)
    assert v.abs().max().item() == format_info(fmt)["max"]  # amax lands on max
    assert same_bits(v, torch_round(x / scale, fmt))  # x / scale never exceeds max: plain cast agrees
    err = fp8_error(x, fmt)
    # relative error per element is at most half an epsilon for normal values
    assert err["rel_fro"] < format_info(fmt)["epsilon"] / 2
    assert fp8_error(x, "e4m3")["rel_fro"] < fp8_error(x, "e5m2")["rel_fro"]  # one more mantissa bit
    unscaled = (x - torch_round(x, fmt)).norm() / x.norm()
    assert err["rel_fro"] < unscaled  # scaling is what makes small tensors representable
    zero, s = fp8_quantize(torch.zeros(3), fmt)
    assert s.item() == 1.0 and zero.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(InputError, match="inf or NaN"):
        fp8_quantize(torch.tensor([1.0, torch.inf]), fmt)
