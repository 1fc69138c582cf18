"""Batched generation of prompts of different lengths (`generate_batch`): left-padded rows with their own
positions and a padding mask give, for every prompt, the tokens `generate` gives it alone, at every
position scheme, with grouped-query heads, a mixture of experts, per-row EOS and per-row penalties; what
cannot be batched is decoded alone or refused by name."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate, generate_batch
from llmlab.generate.batch import length_batches
from llmlab.models import ModelConfig
from llmlab.models.config import POSITIONS

from ..helpers import random_prompts, wide_lm

BASE = dict(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=48)
CONFIGS = {p: ModelConfig(**BASE, position=p) for p in POSITIONS} | {  # every position kind, and:
    "moe": ModelConfig(**BASE, n_experts=4, moe_top_k=2),
    "post-layernorm-mqa": ModelConfig(**{**BASE, "n_kv_head": 1}, norm="layernorm", norm_position="post",
                                      tie_embeddings=False),
    "yarn": ModelConfig(**BASE, rope_scaling="yarn", rope_factor=2.0, rope_original_max_seq_len=24),
    # dynamic NTK within its trained length (40 of 48) is plain RoPE: every prompt below stays within it
    "dynamic": ModelConfig(**BASE, rope_scaling="dynamic", rope_factor=2.0, rope_original_max_seq_len=40),
}
GREEDY = GenerationConfig(max_new_tokens=12, temperature=0.0)


LENGTHS = [1, 17, 4, 9, 2, 25, 6, 3, 12, 1]  # very different lengths, not sorted


def common_token(outputs: list[list[int]]) -> int:
    """The token that most outputs hold: as EOS it stops rows at different steps."""
    return max(range(BASE["vocab_size"]), key=lambda t: sum(t in o for o in outputs))


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_batch_gives_each_prompt_the_tokens_of_generate_alone(name):
    model = wide_lm(CONFIGS[name])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    alone = [generate(model, p, GREEDY) for p in prompts]
    assert generate_batch(model, prompts, GREEDY, batch_size=4) == alone
    assert len({tuple(o) for o in alone}) > 3  # the prompts lead to different outputs
    eos = common_token(alone)
    alone = [generate(model, p, GREEDY, eos_id=eos) for p in prompts]
    assert generate_batch(model, prompts, GREEDY, eos_id=eos, batch_size=4) == alone
    stops = {len(o) for o in alone if len(o) < GREEDY.max_new_tokens}
    assert len(stops) > 1  # rows of one batch stopped at different steps


@pytest.mark.parametrize("penalties", [
    dict(repetition_penalty=1.8),
    dict(frequency_penalty=1.5, presence_penalty=0.7),
    dict(no_repeat_ngram_size=2),
    dict(suppress_tokens=(3, 5), bad_words_ids=((7,), (1, 2), (4, 4, 9))),
    dict(repetition_penalty=1.3, frequency_penalty=0.5, no_repeat_ngram_size=3, suppress_tokens=(0,)),
])
def test_penalties_and_bans_act_on_each_row_as_in_generate(penalties):
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    plain = [generate(model, p, GREEDY) for p in prompts]
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0, **penalties)
    alone = [generate(model, p, cfg, eos_id=common_token(plain)) for p in prompts]
    assert alone != plain  # the penalties change what is written
    assert generate_batch(model, prompts, cfg, eos_id=common_token(plain), batch_size=5) == alone


@pytest.mark.parametrize("penalty", [dict(repetition_penalty=1.8), dict(no_repeat_ngram_size=1)])
def test_penalties_never_count_the_padding(penalty):
    """A model that often writes token 0, the id the padding is written with: penalties that counted the
    padding as seen would steer padded rows off it."""
    model = wide_lm(ModelConfig(**BASE, tie_embeddings=False))
    with torch.no_grad():
        model.lm_head.weight[0] = 1.1 * model.lm_head.weight[5]  # 0 wins wherever 5 has a positive logit
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    assert sum(o.count(0) for o in generate_batch(model, prompts, GREEDY)) > 5
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0, **penalty)
    assert generate_batch(model, prompts, cfg, batch_size=5) == [generate(model, p, cfg) for p in prompts]


def test_batch_size_does_not_change_the_tokens_and_results_keep_the_input_order():
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    by_size = {n: generate_batch(model, prompts, GREEDY, batch_size=n) for n in (1, 3, 16)}
    assert by_size[1] == by_size[3] == by_size[16]
    assert by_size[1] == [generate_batch(model, [p], GREEDY)[0] for p in prompts]
    reordered = generate_batch(model, prompts[::-1], GREEDY)
    assert reordered == by_size[16][::-1]


def test_length_batches_groups_similar_lengths_in_input_order_ties():
    assert length_batches([5, 1, 3, 1], 2) == [[1, 3], [2, 0]]
    assert length_batches([2, 2, 2], 5) == [[0, 1, 2]]
    assert length_batches([], 3) == []


def test_rows_past_the_context_are_decoded_as_generate_does():
    """Context 48: a prompt of 45 tokens and 12 new ones would slide generate's window (and a prompt of 60
    is cut on the left first): such rows are decoded alone, the others still batched."""
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts([3, 45, 60, 7, 37], model.config.vocab_size)
    alone = [generate(model, p, GREEDY) for p in prompts]
    assert generate_batch(model, prompts, GREEDY, batch_size=8) == alone


def test_dynamic_ntk_past_its_trained_length_is_decoded_alone():
    """Dynamic NTK rotates by each sequence's own length once past the trained 24: a row that goes there is
    decoded alone with generate (its cached keys keep older rotations there, which a batch cannot copy)."""
    cfg = ModelConfig(**BASE, rope_scaling="dynamic", rope_factor=2.0, rope_original_max_seq_len=24)
    model = wide_lm(cfg)
    prompts = random_prompts([4, 20, 30, 2], model.config.vocab_size)
    alone = [generate(model, p, GREEDY) for p in prompts]
    assert generate_batch(model, prompts, GREEDY) == alone


def test_beam_search_falls_back_to_one_prompt_at_a_time():
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts([5, 2, 9], model.config.vocab_size)
    beams = GenerationConfig(max_new_tokens=6, num_beams=3)
    assert generate_batch(model, prompts, beams) == [generate(model, p, beams) for p in prompts]


def test_sampling_is_seeded_and_a_single_prompt_samples_as_generate():
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, top_k=10, seed=5)
    first = generate_batch(model, prompts, cfg)
    assert first == generate_batch(model, prompts, cfg)
    assert first != generate_batch(model, prompts, GenerationConfig(max_new_tokens=12, temperature=1.0, top_k=10))
    # one row draws from the generator exactly as generate does
    assert generate_batch(model, [prompts[1]], cfg) == [generate(model, prompts[1], cfg)]


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_a_soft_prompt_comes_before_every_row(position):
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

    model = wide_lm(ModelConfig(**BASE, position=position))
    apply_prompt_tuning(model, PromptConfig(n_virtual=4, init="vocab", seed=2))
    prompts = random_prompts([2, 11, 5, 35], model.config.vocab_size)  # 35 + 12 passes 48 - 4: decoded alone
    assert generate_batch(model, prompts, GREEDY) == [generate(model, p, GREEDY) for p in prompts]


def test_what_cannot_be_batched_is_refused():
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning
    from llmlab.models.encoder import Encoder

    model = wide_lm(CONFIGS["rope"])
    with pytest.raises(InputError, match="use_cache=False"):
        generate_batch(model, [[1, 2]], GenerationConfig(use_cache=False))
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        generate_batch(model, [[1, 2]], batch_size=0)
    with pytest.raises(InputError, match="prompt 1 must hold at least one token"):
        generate_batch(model, [[1, 2], []])
    with pytest.raises(InputError, match=r"prompt 0 holds token id 40 past the model's vocabulary of 40"):
        generate_batch(model, [[1, 40]])
    with pytest.raises(InputError, match="causal decoder"):
        generate_batch(Encoder(CONFIGS["rope"]), [[1, 2]])
    alibi = wide_lm(CONFIGS["alibi"])
    apply_prompt_tuning(alibi, PromptConfig(n_virtual=2, init="vocab"))
    with pytest.raises(InputError, match="ALiBi"):
        generate_batch(alibi, [[1, 2], [3]])
    assert generate_batch(model, [], GREEDY) == []
    assert generate_batch(model, [[1], [2, 3]], GenerationConfig(max_new_tokens=0)) == [[], []]


# --- the CLI ---------------------------------------------------------------------------------------------

LINES = ["中国经济发展很快", "北京", "", "新年人民中国", "经济"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from llmlab.models import save_model
    from llmlab.tokenizers import CharTokenizer

    tok = CharTokenizer.train(LINES)
    model = wide_lm(ModelConfig(**{**BASE, "vocab_size": tok.vocab_size}))
    return save_model(model, tmp_path_factory.mktemp("batch") / "model", tok)


def generate_cli(model_dir, monkeypatch, capsys, *flags: str) -> list[str]:
    """The lines `llmlab generate` writes for LINES on stdin, greedy."""
    import io

    from llmlab.cli import main

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(LINES).encode() + b"\n")))
    capsys.readouterr()
    assert main(["generate", "--model", str(model_dir), "--max-new-tokens", "8", "--temperature", "0", *flags]) == 0
    return capsys.readouterr().out.splitlines()


def test_cli_batch_size_prints_what_one_by_one_prints(model_dir, monkeypatch, capsys):
    one = generate_cli(model_dir, monkeypatch, capsys)
    assert len(one) == len(LINES) and all(line.startswith(p) for line, p in zip(one, LINES))
    assert generate_cli(model_dir, monkeypatch, capsys, "--batch-size", "2") == one
    assert generate_cli(model_dir, monkeypatch, capsys, "--batch-size", "16", "--repetition-penalty", "1.5") == \
        generate_cli(model_dir, monkeypatch, capsys, "--repetition-penalty", "1.5")


@pytest.mark.parametrize("flags,msg", [
    (["--tools"], "not with --tools"),
    (["--compare"], "not with --compare"),
    (["--num-beams", "2"], "not with --num-beams"),
    (["--no-use-cache"], "not with --no-use-cache"),
])
def test_cli_batch_size_refuses_what_batches_cannot_do(model_dir, capsys, flags, msg):
    from llmlab.cli import main

    assert main(["generate", "--model", str(model_dir), "--prompt", "中国", "--batch-size", "4", *flags]) == 2
    assert msg in capsys.readouterr().err
    assert main(["generate", "--model", str(model_dir), "--prompt", "中国", "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("flags,msg", [
    (["--temperature", "0", "--seed", "5"], "--seed applies to sampling"),
    (["--temperature", "0", "--top-k", "3"], "--top-k applies to sampling"),
    (["--num-beams", "2", "--top-p", "0.9"], "--top-p applies to sampling"),
    (["--num-beams", "2", "--temperature", "0.5"], "--temperature applies to sampling, not to beam search"),
    (["--length-penalty", "2"], "--length-penalty applies to beam search"),
    (["--max-calls", "9"], "--max-calls bounds the calculator calls of --tools"),
    (["--batch-size", "4"], "--prompt is one prompt"),
])
def test_cli_refuses_decoding_flags_the_decoding_would_not_use(model_dir, capsys, flags, msg):
    """Each gave the same text as without the flag, exit 0."""
    from llmlab.cli import main

    assert main(["generate", "--model", str(model_dir), "--prompt", "中国", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and msg in err, err
