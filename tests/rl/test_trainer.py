"""The RL loop: each algorithm raises a reward it starts far from, dynamic sampling keeps only groups
whose rewards differ, overlong shaping and filtering, VAPO's value pretraining, and exact resume."""

import dataclasses
import json

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.rl.advantages import gae, length_adaptive_lambda, terminal_rewards, whiten
from llmlab.rl.config import RL_TRAIN, RLConfig, algo_defaults
from llmlab.rl.losses import aggregate
from llmlab.rl.trainer import RLTrainer, Task
from llmlab.rl.value import completion_values

QUESTIONS = ["1+2=", "33+4=", "50+50=", "9+9="]


def first_token_task(chat_tok, prompt, target="7"):
    """Reward 1 when the completion starts with `target`: a random tiny policy does so about 1 time in 20."""
    want = chat_tok.encode(target)
    return Task([prompt(q) for q in QUESTIONS], lambda i, ids: float(ids[:1] == want))


def make(policy, chat_tok, end, task, tmp_path, algo="grpo", steps=3, seed=0, **kw):
    train = dataclasses.replace(RL_TRAIN, steps=steps, lr=kw.pop("lr", 3e-3), checkpoint_every=kw.pop("every", 0))
    cfg = RLConfig(algo=algo, train=train, prompts_per_step=4, group_size=8, max_new_tokens=4, **kw)
    return RLTrainer(policy(seed), cfg, task, end, chat_tok.pad_id, tmp_path)


def records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo,steps", [("grpo", 30), ("dapo", 60), ("vapo", 30)])
def test_each_algorithm_raises_a_reward_it_rarely_earns_at_first(policy, chat_tok, prompt, end, tmp_path, algo, steps):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, algo, steps)
    tr.fit()
    acc = [r["accuracy"] for r in records(tmp_path) if r["phase"] == "policy"]
    assert len(acc) == steps
    assert sum(acc[:5]) / 5 < 0.25 and sum(acc[-5:]) / 5 > 0.8, acc


def test_dynamic_sampling_keeps_only_groups_whose_rewards_differ(policy, chat_tok, prompt, end, tmp_path):
    # prompt 0's completions are always right, prompt 1's never: only prompts 2 and 3 can teach anything
    want = chat_tok.encode("7")
    task = Task([prompt(q) for q in QUESTIONS], lambda i, ids: 1.0 if i == 0 else 0.0 if i == 1 else
                float(ids[:1] == want or ids[:1] == chat_tok.encode("1")))
    tr = make(policy, chat_tok, end, task, tmp_path, "dapo", overlong_shaping=False, max_draws=6)
    ro, correct, scores, info = tr.collect()
    assert 1 <= info["kept_groups"] <= 4 and 1 <= info["draws"] <= 6
    assert len(ro) == 8 * info["kept_groups"] and set(ro.source) <= {2, 3}
    for g in scores.view(-1, 8):
        assert g.min() < g.max()
    grpo = make(policy, chat_tok, end, task, tmp_path / "grpo")
    assert len(grpo.collect()[0]) == 32  # without dynamic sampling every group stays


def test_a_step_with_no_informative_group_draws_max_draws_batches_and_changes_nothing(policy, chat_tok, prompt, end,
                                                                                      tmp_path):
    task = Task([prompt(q) for q in QUESTIONS], lambda i, ids: 1.0)
    tr = make(policy, chat_tok, end, task, tmp_path, "dapo", steps=1, overlong_shaping=False, max_draws=3)
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    tr.fit()
    (r,) = records(tmp_path)
    assert r["draws"] == 3 and r["kept_groups"] == 0 and r["trained_samples"] == 0 and "policy_loss" not in r
    assert r["accuracy"] == 1.0 and r["samples"] == 32  # the first batch drawn, all of it
    assert all(torch.equal(v, before[k]) for k, v in tr.policy.state_dict().items())


def test_overlong_shaping_and_filtering(policy, chat_tok, prompt, end, tmp_path):
    task = Task([prompt(q) for q in QUESTIONS], lambda i, ids: 1.0)
    tr = make(policy, chat_tok, end, task, tmp_path, "dapo", dynamic_sampling=False, overlong_cache=2)
    ro, correct, scores, _ = tr.collect()
    assert ro.truncated.any() and (~ro.truncated).any()
    # max_new_tokens 4, cache 2: free up to 2 tokens, -0.5 at 3, -1 at 4 (truncated rows are 4 long)
    want = 1.0 - (ro.lengths.float() - 2).clamp(0, 2) / 2
    torch.testing.assert_close(scores, want)
    assert correct.eq(1).all()
    b, _ = tr.prepare(ro, correct, scores)
    assert b.loss_mask[ro.truncated].eq(0).all() and torch.equal(b.loss_mask[~ro.truncated], b.mask[~ro.truncated])
    grpo = make(policy, chat_tok, end, task, tmp_path / "grpo")
    assert torch.equal(grpo.prepare(ro, correct, correct)[0].loss_mask, b.mask)  # no filtering


def test_grpo_advantages_are_group_relative_on_every_token(policy, chat_tok, prompt, end, tmp_path):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path)
    ro, correct, scores, _ = tr.collect()
    scores = torch.arange(32.0) % 3  # rewards that vary in every group
    b, stats = tr.prepare(ro, correct, scores)
    g = scores.view(4, 8)
    adv = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-4)).reshape(-1)
    torch.testing.assert_close(b.advantages, adv[:, None] * b.mask)
    assert b.ref_logp is not None and stats["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # the policy is the reference


def test_vapo_pretrains_its_critic_before_the_policy_moves(policy, chat_tok, prompt, end, tmp_path):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, "vapo", steps=1,
              value_pretrain_steps=3, lr=1e-3)
    start = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    for _ in range(3):
        r = tr.value_pretrain_step()
        assert r["phase"] == "value" and r["value_loss"] > 0
    assert all(torch.equal(v, start[k]) for k, v in tr.policy.state_dict().items())  # the policy waits
    assert tr.critic.lm_head.weight.abs().sum() > 0  # the critic learned
    assert tr.optimizer.param_groups[-1]["lr"] == pytest.approx(2e-3)  # VAPO's value lr: twice the policy's
    r = tr.policy_step()
    assert {"explained_variance", "value_loss", "policy_loss"} <= r.keys()
    assert not all(torch.equal(v, start[k]) for k, v in tr.policy.state_dict().items())


def test_vapo_advantages_are_decoupled_gae_whitened_and_its_targets_monte_carlo(policy, chat_tok, prompt, end,
                                                                               tmp_path):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, "vapo", lam_alpha=0.5, gamma=0.9)
    torch.nn.init.normal_(tr.critic.lm_head.weight, std=0.3)  # values that differ token by token
    ro, correct, scores, _ = tr.collect()
    scores = torch.arange(32.0) % 2
    b, stats = tr.prepare(ro, correct, scores)
    values = completion_values(tr.critic, ro.prompts, ro.tokens, ro.mask)
    rewards = terminal_rewards(scores, ro.mask)
    lam = length_adaptive_lambda(ro.lengths, 0.5)
    assert len(set(lam.tolist()) - {0.0, 1.0}) >= 2  # rows of several lengths get several lambdas
    torch.testing.assert_close(b.returns, gae(rewards, values, ro.mask, 0.9, 1.0)[1])
    torch.testing.assert_close(b.advantages, whiten(gae(rewards, values, ro.mask, 0.9, lam)[0], ro.mask))
    assert stats["lam_actor"] == pytest.approx(float(lam.mean()))


@pytest.mark.parametrize("algo", ["grpo", "dapo", "vapo"])
def test_a_resumed_run_equals_the_uninterrupted_one_exactly(policy, chat_tok, prompt, end, tmp_path, algo):
    task = first_token_task(chat_tok, prompt)
    kw = dict(value_pretrain_steps=2) if algo == "vapo" else {}
    whole = make(policy, chat_tok, end, task, tmp_path / "whole", algo, steps=4, every=2, **kw)
    whole.fit()
    first = make(policy, chat_tok, end, task, tmp_path / "split", algo, steps=4, every=2, **kw)
    for _ in range(3):  # a session killed during step 4, after step 3's metrics but before its checkpoint
        first.metrics.write({"step": first.iteration + 1, **(first.value_pretrain_step()
                                                              if first.value_step < first.cfg.value_pretrain_steps
                                                              else first.policy_step())})
        if first.iteration == 2:
            first.save()
    # the reference model is the starting policy; the policy, critic and optimizer come from the checkpoint
    second = make(policy, chat_tok, end, task, tmp_path / "split", algo, steps=4, every=2, **kw)
    second.policy.load_state_dict(policy(seed=1).state_dict())  # made before the reference was copied
    assert second.maybe_resume() and second.iteration == 2
    assert [r["step"] for r in records(tmp_path / "split")] == [1, 2]
    second.fit()
    a, b = records(tmp_path / "whole"), records(tmp_path / "split")
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]
    assert len(a) == 4 + kw.get("value_pretrain_steps", 0)
    for m in ("policy", "critic"):
        if getattr(whole, m) is not None:
            for (k, x), y in zip(getattr(whole, m).state_dict().items(), getattr(second, m).state_dict().values()):
                assert torch.equal(x, y), (m, k)


def test_aggregate_token_and_sequence():
    x = torch.tensor([[1.0, 3.0, 0.0], [5.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(aggregate(x, m, "token")) == pytest.approx(3.0)  # (1 + 3 + 5) / 3
    assert float(aggregate(x, m, "sequence")) == pytest.approx(3.5)  # (2 + 5) / 2


def test_config_defaults_per_algorithm_and_explicit_flags_win():
    assert RLConfig(algo="grpo").kl_coef == 0.04 and RLConfig(algo="grpo").aggregation == "sequence"
    d = RLConfig(algo="dapo")
    assert (d.clip_low, d.clip_high, d.kl_coef, d.dynamic_sampling, d.overlong_shaping, d.overlong_filter) == \
           (0.2, 0.28, 0.0, True, True, True)
    v = RLConfig(algo="vapo")
    assert v.uses_critic and v.lm_coef == 0.1 and v.value_pretrain_steps > 0 and v.value_lr == 2 * v.train.lr
    assert RLConfig(algo="dapo", clip_high=0.4, dynamic_sampling=False).clip_high == 0.4
    assert RLConfig.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    for algo in ("grpo", "dapo", "vapo"):
        assert set(algo_defaults(algo)) <= {f.name for f in dataclasses.fields(RLConfig)}


@pytest.mark.parametrize("kw,msg", [
    (dict(algo="reinforce"), "algo must be one of"),
    (dict(algo="grpo", group_size=1), "group_size must be >= 2"),
    (dict(algo="dapo", clip_low=1.0), "clip_low"),
    (dict(algo="grpo", aggregation="mean"), "aggregation"),
    (dict(algo="grpo", temperature=0.0), "temperature"),
    (dict(algo="grpo", value_pretrain_steps=5), "apply to the value model"),
    (dict(algo="vapo", dynamic_sampling=True), "dynamic sampling"),
    (dict(algo="grpo", minibatches=100), "minibatches"),
    (dict(algo="dapo", overlong_cache=9), "overlong_cache"),
    (dict(algo="grpo", train=dataclasses.replace(RL_TRAIN, precision="bf16")), "precision"),
    (dict(algo="grpo", name="a/b"), "plain folder name"),
])
def test_bad_settings_are_refused_by_name(kw, msg):
    with pytest.raises(InputError, match=msg):
        RLConfig(**kw)
