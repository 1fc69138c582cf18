"""The length-extrapolation experiment (topic 80) on a tiny config: table structure and exact invariants."""

import dataclasses
import math

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.pipeline.extrapolation import (
    ExtrapolationConfig,
    default_run,
    eval_config,
    load_results,
    perplexity_at,
    run_extrapolation,
)
from llmlab.train import evaluate_loss

LENGTHS = (16, 32, 64)


def tiny_config() -> ExtrapolationConfig:
    base = default_run()
    run = base.replace(
        vocab_size=200,
        model=dataclasses.replace(base.model, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16),
        train=dataclasses.replace(base.train, steps=3, batch_size=4, seq_len=16, warmup_steps=1, device="cpu"),
    )
    return ExtrapolationConfig(run=run, lengths=LENGTHS, eval_tokens=256)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("extrapolation")
    results = run_extrapolation(tiny_config(), out)
    return out, results


def test_table_has_every_variant_and_length(experiment):
    out, results = experiment
    names = [r["variant"] for r in results]
    assert names == ["learned", "sinusoidal", "rope", "rope+pi", "rope+ntk", "rope+dynamic-ntk", "rope+yarn", "alibi"]
    for r in results:
        assert list(r["ppl"]) == list(LENGTHS)
    assert load_results(out)["results"] == results
    table = (out / "extrapolation.md").read_text()
    assert "| variant | ppl @ 16 | ppl @ 32 | ppl @ 64 |" in table
    assert sum(line.startswith("| rope") for line in table.splitlines()) == 5
    assert (out / "extrapolation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rope" / "model" / "model.safetensors").is_file()


def test_learned_positions_are_na_beyond_the_table_and_others_finite(experiment):
    _, results = experiment
    by = {r["variant"]: r["ppl"] for r in results}
    assert math.isfinite(by["learned"][16]) and by["learned"][32] is None and by["learned"][64] is None
    assert "| learned | " in (experiment[0] / "extrapolation.md").read_text()
    for name, ppl in by.items():
        if name != "learned":
            assert all(math.isfinite(p) and p > 1 for p in ppl.values()), name


def test_every_rope_scaling_is_the_identity_at_the_trained_length(experiment):
    # stretching 16 -> 16 gives factor 1: PI, NTK, dynamic NTK and YaRN all leave the frequencies unchanged
    _, results = experiment
    by = {r["variant"]: r["ppl"] for r in results}
    for name in ("rope+pi", "rope+ntk", "rope+dynamic-ntk", "rope+yarn"):
        assert by[name][16] == pytest.approx(by["rope"][16], rel=1e-5), name
        assert by[name][64] != pytest.approx(by["rope"][64], rel=1e-7), name  # but they do act beyond it


def test_perplexity_at_trained_length_is_the_models_own_loss():
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=50, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16))
    tokens = torch.randint(0, 50, (100,))
    loss, _ = evaluate_loss(model, tokens, 16, batch_size=1)
    assert perplexity_at(model, tokens, 16) == pytest.approx(math.exp(loss), rel=1e-6)
    # with ALiBi nothing depends on max_seq_len, so a longer config scores 16-token windows the same
    alibi = CausalLM(dataclasses.replace(model.config, position="alibi"))
    assert perplexity_at(alibi, tokens, 16) == pytest.approx(math.exp(evaluate_loss(alibi, tokens, 16, 1)[0]))


def test_eval_config_stretches_rope_from_trained_to_target():
    trained = ModelConfig(max_seq_len=128)
    pi = eval_config(trained, 1024, "linear")
    assert (pi.rope_scaling, pi.rope_factor, pi.rope_original_max_seq_len) == ("linear", 8.0, 128)
    dyn = eval_config(trained, 1024, "dynamic")
    assert dyn.rope.factor == 1.0 and dyn.max_seq_len == 1024
    assert eval_config(trained, 128, "none") == trained


def test_bad_configs_are_refused():
    cfg = tiny_config()
    with pytest.raises(InputError, match="lengths"):
        dataclasses.replace(cfg, lengths=(8, 16))
    with pytest.raises(InputError, match="position"):
        dataclasses.replace(cfg, positions=("nope",))
    with pytest.raises(InputError, match="rope"):
        dataclasses.replace(cfg, positions=("alibi",))
    with pytest.raises(InputError, match="repeats"):
        dataclasses.replace(cfg, lengths=(16, 16))
    with pytest.raises(InputError, match="positions is empty"):
        dataclasses.replace(cfg, positions=(), rope_scalings=())
