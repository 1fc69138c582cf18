from llmlab.models.config import FFN_KINDS, ROPE_SCALINGS, ModelConfig


def test_config_choice_tables_match_the_nn_modules():
    from llmlab.nn import ffn_variants, rope_scaling

    assert set(FFN_KINDS) == set(ffn_variants.KINDS)
    assert set(ROPE_SCALINGS) == set(rope_scaling.KINDS)


def test_default_hidden_is_the_llama_rule():
    assert ModelConfig(dim=4096, n_head=32).hidden == 10944  # 8/3 d rounded up to a multiple of 32
    assert ModelConfig(dim=256, ffn_kind="gelu").hidden == 1024  # two-matrix FFNs: 4 d


def test_parameter_count_gated_table_matches_the_ffn_module():
    from llmlab.models.params import GATED_FFN
    from llmlab.nn.ffn_variants import ffn_parameters

    for kind in FFN_KINDS:
        assert ffn_parameters(8, 16, kind) == (3 if kind in GATED_FFN else 2) * 8 * 16, kind


def test_values_that_would_break_the_model_silently_are_refused():
    import math

    import pytest

    from llmlab.core.config import config_from_dict
    from llmlab.core.errors import InputError
    from llmlab.models import ModelConfig

    for bad in ({"rope_base": 0.0}, {"rope_base": -5.0}, {"norm_eps": -1.0}, {"norm_eps": math.nan},
                {"init_std": -1.0}, {"moe_capacity_factor": -1.0}, {"rope_original_max_seq_len": -4}):
        with pytest.raises(InputError, match=next(iter(bad))):
            ModelConfig(**bad)
    # a hand-edited config.json with wrong JSON types: a one-line error, not a TypeError later
    for bad in ({"dim": "64"}, {"rope_base": None}, {"tie_embeddings": 1}, {"n_layer": True}, {"norm": 3}):
        with pytest.raises(InputError, match=f"ModelConfig.{next(iter(bad))} must be"):
            config_from_dict(ModelConfig, bad)
    assert config_from_dict(ModelConfig, {"dropout": 0, "rope_base": 500000}).rope_base == 500000  # ints are floats


def test_moe_settings_that_would_be_ignored_are_refused():
    import pytest

    from llmlab.core.errors import InputError
    from llmlab.models import ModelConfig

    with pytest.raises(InputError, match="rope_factor=4.0 does nothing without rope_scaling"):
        ModelConfig(rope_factor=4.0)
    with pytest.raises(InputError, match="makes no layer a mixture of experts"):
        ModelConfig(n_layer=2, n_experts=4, moe_every=8)
    assert ModelConfig(n_layer=2, n_experts=4, moe_every=2, ffn_kind="gelu").is_moe_layer(1)  # dense gelu + MoE
    assert ModelConfig(n_experts=4, ffn_kind="relu").n_experts == 4  # every layer of ReLU experts (Switch)
