"""Rollouts batched across prompts (`rollout(..., batch=k)`): at temperature 0 every row is the row of
one-group-at-a-time rollouts (tokens, mask, truncation) at every position scheme, with prompts of mixed
lengths; sampled batches are fixed by the seed; batch 1 draws what `sample_group` draws; rows end at
``<|end|>`` (kept) or are truncated; what cannot share a batch is decoded alone."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import ModelConfig
from llmlab.models.config import POSITIONS
from llmlab.rl import rollout as rollout_module
from llmlab.rl.config import RLConfig
from llmlab.rl.rollout import Rollouts, rollout, sample_group
from llmlab.rl.trainer import RLTrainer, Task

from ..helpers import random_prompts, wide_lm

BASE = dict(dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=40)
CONFIGS = {p: dict(position=p) for p in POSITIONS} | {  # every position kind, and:
    "moe": dict(n_experts=4, moe_top_k=2),
    "yarn": dict(rope_scaling="yarn", rope_factor=2.0, rope_original_max_seq_len=20),
    # dynamic NTK: prompts of up to 20 tokens stay within its trained 30 with their 10 new tokens; 25 does not
    "dynamic": dict(rope_scaling="dynamic", rope_factor=2.0, rope_original_max_seq_len=30),
}
# mixed, unsorted; with 10 new tokens 30 just fits the context of 40, 31 and 33 pass it (sample_group stops them early)
LENGTHS = [4, 17, 1, 9, 31, 25, 2, 12, 33, 6, 30]
NEW = 10


def config(vocab: int, **kw) -> ModelConfig:
    """The decoder these tests roll out: BASE over `vocab` ids, with `kw` (a position scheme, experts...)."""
    return ModelConfig(vocab_size=vocab, **BASE, **kw)


def run(model, prompts, batch, end, pad, temperature=0.0, seed=0, group=2, new=NEW) -> Rollouts:
    return rollout(model, prompts, list(range(len(prompts))), group, new, temperature, end, pad,
                   torch.Generator().manual_seed(seed), batch)


def assert_same(a: Rollouts, b: Rollouts) -> None:
    assert a.prompts == b.prompts and a.source == b.source
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask) and torch.equal(a.truncated, b.truncated)


def common_token(ro: Rollouts) -> int:
    """The token most rows hold: as the end token it stops rows at different steps."""
    rows = [set(r) for r in ro.tokens.tolist()]
    return max(range(int(ro.tokens.max()) + 1), key=lambda t: sum(t in r for r in rows))


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_batched_rows_are_the_one_group_at_a_time_rows(chat_tok, name):
    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    model = wide_lm(config(V, **CONFIGS[name]))
    prompts = random_prompts(LENGTHS, V)
    end = common_token(run(model, prompts, 1, V, pad))  # no row ends at id V: pick an end the rows write
    alone = run(model, prompts, 1, end, pad)
    for batch in (3, len(prompts)):
        assert_same(run(model, prompts, batch, end, pad), alone)
    lengths = alone.lengths[~alone.truncated].tolist()
    assert len(set(lengths)) > 1 and alone.truncated.any()  # rows ended at several steps, some never
    assert len({tuple(r) for r in alone.tokens.tolist()}) > 4  # the prompts lead to different rows


def test_sampled_batches_are_fixed_by_the_seed(chat_tok, end):
    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    model = wide_lm(config(V))
    prompts = random_prompts(LENGTHS[:7], V)
    a = run(model, prompts, 3, end, pad, 1.0, seed=7, group=4)
    assert_same(a, run(model, prompts, 3, end, pad, 1.0, seed=7, group=4))
    assert not torch.equal(a.tokens, run(model, prompts, 3, end, pad, 1.0, seed=8, group=4).tokens)
    # one batch of all prompts, however large the setting
    assert_same(run(model, prompts, 7, end, pad, 1.0, seed=7), run(model, prompts, 100, end, pad, 1.0, seed=7))


def test_batch_one_draws_what_sample_group_draws_one_prompt_after_another(chat_tok, end):
    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    model = wide_lm(config(V))
    prompts = random_prompts(LENGTHS, V)
    g = torch.Generator().manual_seed(3)
    want = Rollouts.cat([sample_group(model, p, 4, NEW, 1.0, end, pad, g, i) for i, p in enumerate(prompts)], pad)
    assert_same(run(model, prompts, 1, end, pad, 1.0, seed=3, group=4), want)


def test_batched_rows_end_at_the_end_token_or_are_truncated(chat_tok, policy, prompt, end):
    model = policy(1)
    with torch.no_grad():  # make <|end|> likely so some rows end early
        model.lm_head.weight[end] *= 0
        model.embed_tokens.weight[end] *= 0
    prompts = [prompt(q) for q in ("1+2=", "33+4=", "50+50=", "12+345=")]
    assert len({len(p) for p in prompts}) == 4
    ro = rollout(model, prompts, [5, 6, 7, 8], 4, 6, 1.0, end, chat_tok.pad_id, torch.Generator().manual_seed(0), 3)
    assert ro.source == [5] * 4 + [6] * 4 + [7] * 4 + [8] * 4 and ro.prompts == [p for p in prompts for _ in range(4)]
    assert ro.tokens.shape == (16, 6) and ro.truncated.any() and not ro.truncated.all()
    for b in range(len(ro)):
        n = int(ro.lengths[b])
        row = ro.tokens[b].tolist()
        assert ro.mask[b, :n].eq(1).all() and ro.mask[b, n:].eq(0).all()
        assert all(t == chat_tok.pad_id for t in row[n:])
        assert (row[n - 1] == end) != bool(ro.truncated[b]) and end not in row[: n - 1]
        assert ro.truncated[b] == (n == 6 and row[-1] != end)


def batched_prompts(monkeypatch) -> list[list[int]]:
    """The prompts that reach the batched sampler, recorded."""
    seen = []
    real = rollout_module.sample_groups

    def spy(model, prompts, *args):
        seen.extend(prompts)
        return real(model, prompts, *args)
    monkeypatch.setattr(rollout_module, "sample_groups", spy)
    return seen


def test_prompts_past_the_context_or_dynamic_ntks_trained_length_are_decoded_alone(chat_tok, monkeypatch):
    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    seen = batched_prompts(monkeypatch)
    prompts = random_prompts(LENGTHS, V)
    run(wide_lm(config(V)), prompts, 4, 0, pad)
    assert seen == sorted((p for p in prompts if len(p) + NEW <= 40), key=len)  # 31 and 33 are decoded alone
    seen.clear()
    run(wide_lm(config(V, **CONFIGS["dynamic"])), prompts, 4, 0, pad)
    assert sorted(map(len, seen)) == [n for n in sorted(LENGTHS) if n + NEW <= 30]


def test_a_soft_prompt_decodes_every_group_alone_with_batch_ones_draws(chat_tok, end, monkeypatch):
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    model = wide_lm(config(V))
    apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="vocab", seed=2))
    seen = batched_prompts(monkeypatch)
    prompts = random_prompts([3, 8, 5], V)
    assert_same(run(model, prompts, 3, end, pad, 1.0, seed=4), run(model, prompts, 1, end, pad, 1.0, seed=4))
    assert seen == []


def test_bad_batches_and_prompts_are_refused_as_alone(chat_tok, end):
    V, pad = chat_tok.vocab_size, chat_tok.pad_id
    model = wide_lm(config(V))
    with pytest.raises(InputError, match="batch must be >= 1"):
        run(model, [[1, 2]], 0, end, pad)
    for bad in ([], [1] * 40):  # empty, or no room left in the context: sample_group's error
        with pytest.raises(InputError, match="leaves no room"):
            run(model, [[1, 2], bad], 2, end, pad)


def test_the_trainer_samples_with_the_configs_rollout_batch(chat_tok, policy, prompt, end, tmp_path, monkeypatch):
    from llmlab.rl import trainer as trainer_module

    batches = []
    real = trainer_module.rollout
    monkeypatch.setattr(trainer_module, "rollout", lambda *a: batches.append(a[-1]) or real(*a))
    task = Task([prompt(q) for q in ("1+2=", "33+4=", "50+50=")], lambda i, ids: float(len(ids) == 2))
    for k in (1, 2):
        cfg = RLConfig(prompts_per_step=3, group_size=2, max_new_tokens=3, rollout_batch=k)
        assert len(RLTrainer(policy(0), cfg, task, end, chat_tok.pad_id, tmp_path).collect()[0]) == 6
    assert batches == [1, 2]


def test_rollout_batch_defaults_to_one_and_round_trips():
    import json

    assert RLConfig().rollout_batch == 1
    old = {k: v for k, v in RLConfig().to_dict().items() if k != "rollout_batch"}  # saved before the setting
    assert RLConfig.from_dict(json.loads(json.dumps(old))).rollout_batch == 1
    cfg = RLConfig(rollout_batch=4)
    assert RLConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError, match="rollout_batch must be >= 1"):
        RLConfig(rollout_batch=0)
