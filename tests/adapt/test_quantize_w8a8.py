"""W8A8 (QuantConfig(activations="int8")): the int32 product against exact integer arithmetic, the per-row
activation codes against the formula written out, the output against the activation-rounding bound, the
straight-through gradients, save/load and the CLI."""

import json

import pytest
import torch
import torch.nn.functional as F

from llmlab.adapt.quantize import (
    INT8_MAX_IN,
    QuantConfig,
    QuantLinear,
    int8_matmul,
    load_quantized,
    quantize_model,
    quantize_rows,
    save_quantized,
)
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers.char import CharTokenizer
from llmlab.train.objectives import causal_lm_loss

W8A8 = QuantConfig(activations="int8")


def layer(n_in=48, n_out=20, bias=True, seed=0):
    """A W8A8 layer and its float-activation twin holding the same codes and scales."""
    torch.manual_seed(seed)
    lin = torch.nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight[:, 3] *= 8  # an outlier input column, as trained projections have
    return QuantLinear.from_linear(lin, W8A8), QuantLinear.from_linear(lin, QuantConfig())


# --- the integer product -----------------------------------------------------------------------------

@pytest.mark.parametrize("m", [1, 5, 16, 17, 64])
@pytest.mark.parametrize("k,n", [(7, 3), (64, 24), (130, 9)])
def test_int32_accumulation_is_the_exact_integer_product(m, k, n):
    g = torch.Generator().manual_seed(m * 1000 + k)
    a = torch.randint(-127, 128, (m, k), dtype=torch.int8, generator=g)
    w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=g)
    a[0, :] = 127  # the extremes, where a lossy (float) accumulation would show first
    w[0, :] = -127
    exact = a.long() @ w.long().t()  # (m, n) int64
    # torch._int_mm, plain and by the CUDA route (rows to 17, K and N to multiples of 8), run on CPU; and
    # float32 matmuls of 1024 columns at a time (the route of CPUs without VNNI)
    for pad, via_float in ((False, False), (True, False), (None, True)):
        acc = int8_matmul(a, w, pad=pad, via_float=via_float)
        assert acc.dtype == torch.int32 and acc.shape == (m, n)
        assert torch.equal(acc.long(), exact)


@pytest.mark.parametrize("k", [1024, 1025, 3000])
def test_the_float_route_is_exact_where_float32_sums_of_products_would_round(k):
    """At the extremes every product is 127 x 127: a float32 sum of more than 1040 of them passes 2^24,
    where float32 stops holding every integer. The float route sums 1024 columns at a time in float32 and
    the blocks in int32, so it stays exact past that."""
    a = torch.full((3, k), 127, dtype=torch.int8)
    a[1] = -127
    a[2, ::3] = -128  # the one int8 code beyond -127: products of 2^14
    w = torch.full((2, k), 127, dtype=torch.int8)
    w[1] = -128
    exact = a.long() @ w.long().t()
    assert torch.equal(int8_matmul(a, w, via_float=True).long(), exact)
    # odd codes of 101..127: sums past 2^24 of terms whose low bits differ (one float32 matmul over all of
    # K=3000 rounded 9 of these 12 sums with torch 2.13's MKL)
    g = torch.Generator().manual_seed(0)
    a, w = ((torch.randint(50, 64, (n, k), generator=g) * 2 + 1).to(torch.int8) for n in (4, 3))
    assert torch.equal(int8_matmul(a, w, via_float=True).long(), a.long() @ w.long().t())


def test_int32_holds_the_longest_allowed_dot_product_exactly():
    a = torch.full((1, INT8_MAX_IN), -127, dtype=torch.int8)
    w = torch.full((2, INT8_MAX_IN), 127, dtype=torch.int8)
    for via_float in (False, True):
        assert int8_matmul(a, w, via_float=via_float).tolist() == [[-127 * 127 * INT8_MAX_IN] * 2]
    assert -127 * 127 * (INT8_MAX_IN + 1) < -(2 ** 31)  # one more column could overflow: refused
    with pytest.raises(InputError, match=f"in_features <= {INT8_MAX_IN}"):
        QuantLinear(INT8_MAX_IN + 1, 1, W8A8)


def test_the_layer_rescales_the_exact_product_of_its_codes():
    q, _ = layer()
    x = torch.randn(2, 7, 48)
    codes, scale = quantize_rows(x.reshape(-1, 48))
    # float64 products of int8 codes at K = 48 are exact: this is the integer product, rescaled
    ref = (codes.double() @ q.qweight.double().t()) * scale.double()[:, None] * q.scale.double().t() + q.bias.double()
    with torch.no_grad():
        torch.testing.assert_close(q(x).double(), ref.view(2, 7, 20), rtol=1e-6, atol=1e-6)


# --- activation codes --------------------------------------------------------------------------------

def test_activation_codes_and_scales_follow_the_formula():
    torch.manual_seed(5)
    rows = [torch.randn(16).tolist(),
            [0.0] * 16,  # a zero row: scale 1, codes 0, no division by zero
            [0.01 * (i - 8) for i in range(16)],
            [0.01] * 15 + [-1000.0]]  # one outlier takes the whole row's range
    rows[2][5] = -0.2  # a row whose absmax is negative
    codes, scale = quantize_rows(torch.tensor(rows))
    assert codes.dtype == torch.int8 and scale.dtype == torch.float32
    for r, row in enumerate(rows):
        amax = max(abs(v) for v in row)
        s = amax / 127 if amax else 1.0
        # Python's round is half to even like torch.round; clamp to -127..127
        expected = [max(-127, min(127, round(v / s))) for v in row]
        assert codes[r].tolist() == expected, r
        assert scale[r].item() == pytest.approx(s, rel=1e-6)
    assert codes[1].abs().sum() == 0 and scale[1] == 1
    assert codes[2, 5] == -127 and codes[3, 15] == -127 and codes[3, :15].abs().sum() == 0  # 0.01 / 7.87 -> 0
    assert codes.abs().max() == 127 and codes.min() >= -127  # the symmetric grid never writes -128


def test_zero_and_non_finite_rows():
    q, _ = layer()
    x = torch.randn(3, 48)
    x[1] = 0
    x[2, 4] = torch.nan
    with torch.no_grad():
        y = q(x)
    assert torch.equal(y[1], q.bias.detach())  # a zero token gives exactly the bias, not NaN
    assert torch.isfinite(y[0]).all() and torch.isnan(y[2]).all()  # a NaN input is not silently lost


# --- the output against the float path --------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 48), (16, 48), (17, 48), (64, 48), (2, 3, 48), (4, 9, 48)])
def test_output_is_within_the_activation_rounding_bound(shape):
    """|y_int8 - y_float| <= 0.5 * s_a * sum_k |W'_nk| per element: the weight codes are the same in both
    paths, so all that differs is each activation's rounding error, at most half a step s_a."""
    q, f = layer()
    x = torch.randn(*shape) * torch.rand(*shape[:-1], 1) * 3  # tokens of different ranges
    with torch.no_grad():
        y = q(x)
    assert y.shape == (*shape[:-1], 20) and y.dtype == x.dtype
    w = f.weight.double()  # W', (out, in)
    rows = x.reshape(-1, 48).double()
    y_float = F.linear(rows, w, f.bias.double())  # the float path, in float64
    s_a = rows.abs().amax(-1) / 127  # (M,)
    bound = 0.5 * s_a[:, None] * w.abs().sum(1)[None, :]  # (M, out)
    slack = 1e-6 * (rows.abs() @ w.abs().t() + f.bias.double().abs())  # float32 rounding of the result
    diff = (y.reshape(-1, 20).double() - y_float).abs()
    assert (diff <= bound + slack).all(), float((diff / bound).max())
    assert (diff > slack).any()  # the activations really were rounded: not the float path in disguise


def test_output_keeps_the_input_dtype():
    q, _ = layer(bias=False)
    x = torch.randn(5, 48)
    with torch.no_grad():
        y32, y16 = q(x), q(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=0.02, atol=0.02)


# --- gradients ---------------------------------------------------------------------------------------

def test_gradient_passes_activation_rounding_straight_through():
    """_int_mm has no backward: dy/dx is the float layer's, grad @ W', and the forward is the int8 one
    whether or not a gradient is wanted (training computes what inference computes)."""
    q, f = layer()
    x = torch.randn(2, 5, 48, requires_grad=True)
    g = torch.randn(2, 5, 20)
    y = q(x)
    (y * g).sum().backward()
    with torch.no_grad():
        assert torch.equal(y, q(x))
    torch.testing.assert_close(x.grad, g @ f.weight)
    torch.testing.assert_close(q.bias.grad, g.sum((0, 1)))
    assert q.qweight.grad is None and not q.qweight.dtype.is_floating_point  # codes are buffers, never trained


def test_a_w8a8_model_trains_its_float_parts_like_the_float_path():
    """A quantized model's float parameters (embedding, norms) still learn: their gradients through W8A8
    layers are the float-path gradients but for the activations' rounding."""
    cfg = ModelConfig(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=16)
    torch.manual_seed(0)
    base = CausalLM(cfg)
    grads = []
    for qcfg in (QuantConfig(), W8A8):
        m = CausalLM(cfg)
        m.load_state_dict(base.state_dict())
        quantize_model(m, qcfg)
        x = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
        causal_lm_loss(m(x[:, :-1]), x[:, 1:]).backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    assert grads[0].keys() == grads[1].keys() and "embed_tokens.weight" in " ".join(grads[1])
    for n, g in grads[1].items():
        assert torch.isfinite(g).all() and g.norm() > 0, n
        assert (g - grads[0][n]).norm() <= 0.05 * grads[0][n].norm(), n  # measured <= 0.6%


# --- save / load and the CLI ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    lines = ["中国人民站起来了", "人民日报一九九八年一月", "新年贺词"]
    tok = CharTokenizer.train(lines)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
    torch.manual_seed(0)
    return CausalLM(cfg).eval(), tok


def quantized(model, cfg):
    q = CausalLM(model.config)
    q.load_state_dict(model.state_dict())
    quantize_model(q, cfg)
    return q.eval()


def test_save_load_keeps_int8_activations_and_old_entries_load_as_float(tiny, tmp_path):
    model, tok = tiny
    x = torch.tensor([tok.encode("人民日报一九九八年")])
    q8, qf = quantized(model, W8A8), quantized(model, QuantConfig())
    d = save_quantized(q8, tmp_path / "w8a8", tok)
    config = d / "config.json"
    doc = json.loads(config.read_text())
    assert doc["quantization"]["activations"] == "int8"
    loaded, _ = load_quantized(d)
    assert all(m.activations == "int8" for m in loaded.modules() if isinstance(m, QuantLinear))
    with torch.no_grad():
        assert torch.equal(loaded(x), q8(x))
        int8_logits, float_logits = q8(x), qf(x)
    assert not torch.equal(int8_logits, float_logits)
    # a float model's entry has no field, as entries written before it existed; such an entry loads as float
    assert "activations" not in json.loads((save_quantized(qf, tmp_path / "f", tok) / "config.json").read_text())[
        "quantization"]
    del doc["quantization"]["activations"]
    config.write_text(json.dumps(doc))
    old, _ = load_quantized(d)
    with torch.no_grad():
        assert torch.equal(old(x), float_logits)
    doc["quantization"]["activations"] = "int4"
    config.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="activations must be one of"):
        load_quantized(d)


@pytest.mark.parametrize("kwargs,message", [
    ({"bits": 4}, "got bits=4"),
    ({"group_size": 16}, "got group_size=16"),
    ({"symmetric": False}, "got symmetric=False"),
    ({"bits": 4, "group_size": 16, "symmetric": False}, "got bits=4, symmetric=False, group_size=16"),
])
def test_int8_activations_refuse_other_weight_formats(kwargs, message):
    with pytest.raises(InputError, match=r"activations='int8' needs bits=8, symmetric=True, group_size=None.*"
                                         + message):
        QuantConfig(activations="int8", **kwargs)
    with pytest.raises(InputError, match=r"activations must be one of \('float', 'int8'\), got 'fp8'"):
        QuantConfig(activations="fp8")


def test_cli_writes_a_w8a8_model_that_generates(tiny, tmp_path, capsys):
    model, tok = tiny
    save_model(model, tmp_path / "m", tok)
    assert main(["quantize", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "q"), "--activations",
                 "int8"]) == 0
    assert "x smaller" in capsys.readouterr().out
    assert json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]["activations"] == "int8"
    assert "int8 per token" in (tmp_path / "q" / "README.md").read_text(encoding="utf-8")
    assert main(["generate", "--model", str(tmp_path / "q"), "--prompt", "人民", "--max-new-tokens", "3",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("人民")
    assert main(["quantize", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "q4"), "--bits", "4",
                 "--activations", "int8"]) == 2
    assert "activations='int8' needs bits=8" in capsys.readouterr().err
