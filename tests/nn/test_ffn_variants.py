import math

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.nn.ffn import SwiGLU
from llmlab.nn.ffn_variants import KINDS, FeedForward, ffn_parameters, matched_hidden


def gelu_exact(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


FORMULAS = {
    "relu": lambda x: torch.clamp(x, min=0),
    "gelu": gelu_exact,
    "gelu_tanh": gelu_tanh,
    "silu": lambda x: x / (1 + torch.exp(-x)),
}
GATE_FORMULA = {"swiglu": FORMULAS["silu"], "geglu": gelu_tanh, "geglu_exact": gelu_exact}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [False, True])
def test_feed_forward_matches_the_formula(kind, bias):
    torch.manual_seed(0)
    f = FeedForward(8, 20, kind, bias=bias)
    x = torch.randn(2, 5, 8)

    def lin(layer, h):
        return h @ layer.weight.T + (layer.bias if bias else 0)

    if kind in GATE_FORMULA:
        hidden = GATE_FORMULA[kind](lin(f.gate_proj, x)) * lin(f.up_proj, x)
    else:
        hidden = FORMULAS[kind](lin(f.up_proj, x))
    torch.testing.assert_close(f(x), lin(f.down_proj, hidden), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count_formula(kind, bias):
    f = FeedForward(12, 40, kind, bias=bias)
    assert sum(p.numel() for p in f.parameters()) == ffn_parameters(12, 40, kind, bias)


def test_gated_variants_have_a_third_matrix():
    assert ffn_parameters(64, 100, "swiglu") == ffn_parameters(64, 100, "geglu") == 3 * 64 * 100
    assert ffn_parameters(64, 100, "relu") == 2 * 64 * 100
    # 8/3 * d hidden for gated keeps the 4 * d two-matrix count (exactly when 3 divides d)
    d = 96
    assert ffn_parameters(d, matched_hidden(d, "swiglu"), "swiglu") == ffn_parameters(d, matched_hidden(d, "gelu"),
                                                                                       "gelu")


def test_swiglu_kind_equals_the_existing_swiglu_module():
    torch.manual_seed(0)
    ours, ref = FeedForward(16, 24, "swiglu"), SwiGLU(16, 24)
    ref.load_state_dict(ours.state_dict())  # same names, same shapes
    x = torch.randn(3, 16)
    torch.testing.assert_close(ours(x), ref(x))


def test_matches_hf_llama_gpt2_and_t5_mlps():
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP
    from transformers.models.llama.modeling_llama import LlamaMLP
    from transformers.models.t5.modeling_t5 import T5DenseActDense, T5DenseGatedActDense

    torch.manual_seed(0)
    x = torch.randn(2, 4, 16)
    llama = LlamaMLP(transformers.LlamaConfig(hidden_size=16, num_attention_heads=2, intermediate_size=24))
    f = FeedForward(16, 24, "swiglu")
    f.load_state_dict(llama.state_dict())
    torch.testing.assert_close(f(x), llama(x))

    gpt2 = GPT2MLP(64, transformers.GPT2Config(n_embd=16, n_head=2, activation_function="gelu_new")).eval()
    f = FeedForward(16, 64, "gelu_tanh", bias=True)
    with torch.no_grad():  # GPT-2's Conv1D stores weights transposed
        f.up_proj.weight.copy_(gpt2.c_fc.weight.T), f.up_proj.bias.copy_(gpt2.c_fc.bias)
        f.down_proj.weight.copy_(gpt2.c_proj.weight.T), f.down_proj.bias.copy_(gpt2.c_proj.bias)
    torch.testing.assert_close(f(x), gpt2(x))

    for kind, proj, cls in (("relu", "relu", T5DenseActDense), ("geglu", "gated-gelu", T5DenseGatedActDense)):
        t5 = cls(transformers.T5Config(d_model=16, d_ff=24, feed_forward_proj=proj)).eval()
        f = FeedForward(16, 24, kind)
        names = {"wi": "up_proj", "wi_0": "gate_proj", "wi_1": "up_proj", "wo": "down_proj"}
        f.load_state_dict({f"{names[k.split('.')[0]]}.weight": v for k, v in t5.state_dict().items()})
        torch.testing.assert_close(f(x), t5(x))


@pytest.mark.parametrize("args", [(8, 16, "tanh"), (0, 16, "relu"), (8, 0, "swiglu")])
def test_bad_arguments_are_rejected(args):
    with pytest.raises(InputError):
        FeedForward(*args)
