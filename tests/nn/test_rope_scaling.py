import math

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.nn.rope import RotaryEmbedding, apply_rope, rope_frequencies
from llmlab.nn.rope_scaling import (
    RopeScaling,
    ScaledRotaryEmbedding,
    extrapolation_scaling,
    hf_rope_config,
    rope_cos_sin,
    rope_inv_freq,
)

HEAD_DIM, BASE, TRAINED = 16, 10000.0, 32


def llama_config(rope_parameters: dict, max_positions: int = TRAINED):
    transformers = pytest.importorskip("transformers")
    params = {"rope_theta": BASE, **rope_parameters}
    return transformers.LlamaConfig(hidden_size=4 * HEAD_DIM, num_attention_heads=4,
                                    max_position_embeddings=max_positions, rope_parameters=params)


def hf_inv_freq(kind: str, config, seq_len=None):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    return ROPE_INIT_FUNCTIONS[kind](config, None, seq_len=seq_len)


def assert_same(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0].float(), atol=1e-6, rtol=1e-6)
    assert ours[1] == pytest.approx(theirs[1], abs=1e-6)


def test_none_is_plain_rope():
    inv, factor = rope_inv_freq(HEAD_DIM, BASE, RopeScaling())
    torch.testing.assert_close(inv, rope_frequencies(HEAD_DIM, BASE))
    cos, sin = rope_cos_sin(inv, torch.arange(20), factor)
    ref = RotaryEmbedding(HEAD_DIM, 20, BASE)
    torch.testing.assert_close((cos, sin), (ref.cos, ref.sin))


@pytest.mark.parametrize("factor", [1.0, 2.0, 8.0])
def test_linear_matches_hf(factor):
    ours = rope_inv_freq(HEAD_DIM, BASE, RopeScaling("linear", factor=factor))
    assert_same(ours, hf_inv_freq("linear", llama_config({"rope_type": "linear", "factor": factor})))


def test_linear_interpolation_reads_position_m_as_m_over_s():
    inv, _ = rope_inv_freq(HEAD_DIM, BASE, RopeScaling("linear", factor=4.0))
    plain = rope_frequencies(HEAD_DIM, BASE)
    torch.testing.assert_close(rope_cos_sin(inv, torch.tensor([40]))[0],
                               rope_cos_sin(plain, torch.tensor([10]))[0])


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_ntk_matches_hf_dynamic_at_the_matching_length(factor):
    # HF's dynamic NTK with factor 1 at length s * L uses exactly the static NTK-aware base for s
    ours = rope_inv_freq(HEAD_DIM, BASE, RopeScaling("ntk", factor=factor))
    config = llama_config({"rope_type": "dynamic", "factor": 1.0})
    assert_same(ours, hf_inv_freq("dynamic", config, seq_len=int(factor * TRAINED)))


def test_ntk_keeps_the_highest_and_stretches_the_lowest_frequency_by_the_factor():
    inv, _ = rope_inv_freq(HEAD_DIM, BASE, RopeScaling("ntk", factor=4.0))
    plain = rope_frequencies(HEAD_DIM, BASE)
    assert inv[0] == plain[0]
    assert float(plain[-1] / inv[-1]) == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("seq_len", [None, 10, TRAINED, 33, 100, 1000])
def test_dynamic_matches_hf(seq_len):
    scaling = RopeScaling("dynamic", factor=2.0, original_max_positions=TRAINED)
    ours = rope_inv_freq(HEAD_DIM, BASE, scaling, seq_len)
    config = llama_config({"rope_type": "dynamic", "factor": 2.0})
    assert_same(ours, hf_inv_freq("dynamic", config, seq_len=seq_len))


@pytest.mark.parametrize("factor,beta_fast,beta_slow,truncate", [
    (4.0, 32.0, 1.0, True), (8.0, 16.0, 2.0, True), (4.0, 32.0, 1.0, False), (1.5, 32.0, 1.0, True)])
def test_yarn_matches_hf(factor, beta_fast, beta_slow, truncate):
    scaling = RopeScaling("yarn", factor=factor, original_max_positions=TRAINED, beta_fast=beta_fast,
                          beta_slow=beta_slow, truncate=truncate)
    config = llama_config({"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": TRAINED,
                        "beta_fast": beta_fast, "beta_slow": beta_slow, "truncate": truncate},
                       max_positions=int(factor * TRAINED))
    assert_same(rope_inv_freq(HEAD_DIM, BASE, scaling), hf_inv_freq("yarn", config))


def test_yarn_explicit_attention_factor_matches_hf():
    scaling = RopeScaling("yarn", factor=4.0, original_max_positions=TRAINED, attention_factor=1.3)
    config = llama_config({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": TRAINED,
                        "attention_factor": 1.3})
    assert_same(rope_inv_freq(HEAD_DIM, BASE, scaling), hf_inv_freq("yarn", config))


def test_yarn_extrapolates_fast_and_interpolates_slow_frequencies():
    inv, factor = rope_inv_freq(HEAD_DIM, BASE, RopeScaling("yarn", factor=4.0, original_max_positions=TRAINED))
    plain = rope_frequencies(HEAD_DIM, BASE)
    assert inv[0] == plain[0]
    assert float(inv[-1]) == pytest.approx(float(plain[-1]) / 4.0)
    assert factor == pytest.approx(0.1 * math.log(4.0) + 1.0)


@pytest.mark.parametrize("scaling", [
    RopeScaling(),
    RopeScaling("linear", factor=2.0),
    RopeScaling("dynamic", factor=2.0, original_max_positions=TRAINED),
    RopeScaling("yarn", factor=4.0, original_max_positions=TRAINED),
    RopeScaling("yarn", factor=3.0, original_max_positions=TRAINED, beta_fast=8.0, beta_slow=2.0,
                attention_factor=1.2, truncate=False),
])
def test_exported_config_gives_hf_llama_the_same_cos_sin(scaling):
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = transformers.LlamaConfig(hidden_size=4 * HEAD_DIM, num_attention_heads=4,
                                      **hf_rope_config(BASE, scaling, 4 * TRAINED))
    positions = torch.arange(3 * TRAINED)  # beyond the trained length: dynamic NTK rescales
    cos_hf, sin_hf = LlamaRotaryEmbedding(config)(torch.zeros(1), positions[None])
    rope = ScaledRotaryEmbedding(HEAD_DIM, 4 * TRAINED, BASE, scaling)
    cos, sin = rope(positions, seq_len=len(positions))
    torch.testing.assert_close((cos, sin), (cos_hf[0], sin_hf[0]), atol=1e-6, rtol=1e-6)


def test_ntk_table_matches_hf_dynamic_rotary_embedding_at_the_matching_length():
    pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = llama_config({"rope_type": "dynamic", "factor": 1.0})
    positions = torch.arange(2 * TRAINED)
    cos_hf, sin_hf = LlamaRotaryEmbedding(config)(torch.zeros(1), positions[None])
    rope = ScaledRotaryEmbedding(HEAD_DIM, 2 * TRAINED, BASE, RopeScaling("ntk", factor=2.0))
    torch.testing.assert_close(rope(positions), (cos_hf[0], sin_hf[0]), atol=1e-6, rtol=1e-6)


def test_dynamic_is_plain_rope_within_the_trained_length():
    rope = ScaledRotaryEmbedding(HEAD_DIM, 4 * TRAINED, BASE, RopeScaling("dynamic", 2.0, TRAINED))
    plain = RotaryEmbedding(HEAD_DIM, TRAINED, BASE)
    torch.testing.assert_close(rope(torch.arange(TRAINED), seq_len=TRAINED), (plain.cos, plain.sin))
    longer = rope(torch.arange(TRAINED), seq_len=2 * TRAINED)
    assert not torch.allclose(longer[0], plain.cos)


def test_static_ntk_cannot_be_exported_to_hf():
    with pytest.raises(InputError):
        hf_rope_config(BASE, RopeScaling("ntk", factor=2.0), 64)


@pytest.mark.parametrize("scaling", [
    RopeScaling("linear", factor=4.0), RopeScaling("ntk", factor=4.0),
    RopeScaling("yarn", factor=4.0, original_max_positions=TRAINED)])
def test_scaled_scores_still_depend_only_on_distance(scaling):
    torch.manual_seed(0)
    rope = ScaledRotaryEmbedding(HEAD_DIM, 200, BASE, scaling)
    q, k = torch.randn(1, 1, 1, HEAD_DIM), torch.randn(1, 1, 1, HEAD_DIM)

    def score(m, n):
        return float((apply_rope(q, *rope(torch.tensor([m]))) * apply_rope(k, *rope(torch.tensor([n])))).sum())

    assert score(7, 2) == pytest.approx(score(150, 145), abs=1e-4)


@pytest.mark.parametrize("kwargs", [
    {"kind": "cubic"},
    {"kind": "linear", "factor": 0.5},
    {"kind": "none", "factor": 2.0},
    {"kind": "yarn", "factor": 2.0},
    {"kind": "dynamic", "factor": 2.0},
    {"kind": "yarn", "factor": 2.0, "original_max_positions": 8, "beta_fast": 1.0, "beta_slow": 2.0},
    {"kind": "yarn", "factor": 2.0, "original_max_positions": 8, "attention_factor": -1.0},
    {"kind": "yarn", "factor": float("nan"), "original_max_positions": 8},  # a NaN rotation table
    {"kind": "linear", "factor": float("inf")},
    {"kind": "yarn", "factor": 2.0, "original_max_positions": 8, "beta_fast": float("inf")},
    {"kind": "yarn", "factor": 2.0, "original_max_positions": 8, "attention_factor": float("nan")},
])
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(InputError):
        RopeScaling(**kwargs)


@pytest.mark.parametrize("kind", ["linear", "ntk", "yarn", "dynamic"])
def test_extrapolation_scaling_keeps_the_lowest_frequency_within_the_trained_turn(kind):
    # stretched to 4x, the slowest pair must turn no further over the target length than plain RoPE
    # turns over the trained one (the point of interpolating low frequencies)
    scaling = extrapolation_scaling(kind, TRAINED, 4 * TRAINED)
    inv, _ = rope_inv_freq(HEAD_DIM, BASE, scaling, seq_len=4 * TRAINED)
    plain = rope_frequencies(HEAD_DIM, BASE)
    assert float(inv[-1]) * 4 * TRAINED == pytest.approx(float(plain[-1]) * TRAINED, rel=1e-4)
    assert extrapolation_scaling("none", TRAINED, 4 * TRAINED) == RopeScaling()
    with pytest.raises(InputError):
        extrapolation_scaling(kind, TRAINED, TRAINED // 2)
