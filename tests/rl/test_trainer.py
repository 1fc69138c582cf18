"""The RL loop: each algorithm raises a reward it starts far from, dynamic sampling keeps only groups
whose rewards differ, overlong shaping and filtering, VAPO's value pretraining, PPO's KL in the reward,
and exact resume."""

import dataclasses
import json
import re

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.rl import trainer as trainer_module
from llmlab.rl.advantages import gae, kl_shaped_rewards, length_adaptive_lambda, terminal_rewards, whiten
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
    train = dataclasses.replace(RL_TRAIN, steps=steps, lr=kw.pop("lr", 3e-3), checkpoint_every=kw.pop("every", 0),
                                max_minutes=kw.pop("minutes", 0.0))
    cfg = RLConfig(algo=algo, train=train, prompts_per_step=4, group_size=8, max_new_tokens=4, **kw)
    return RLTrainer(policy(seed), cfg, task, end, chat_tok.pad_id, tmp_path)


def records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo,steps", [("grpo", 30), ("dapo", 60), ("vapo", 30), ("ppo", 30)])
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


@pytest.mark.parametrize("algo,kw", [("vapo", {}), ("ppo", dict(lam_adaptive=True, kl_coef=0.0))])
def test_vapo_advantages_are_decoupled_gae_whitened_and_its_targets_monte_carlo(policy, chat_tok, prompt, end,
                                                                               tmp_path, algo, kw):
    """VAPO's length-adaptive policy lambda, and PPO's with lam_adaptive (its critic's lambda stays 0.95)."""
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, algo, lam_alpha=0.5, gamma=0.9,
              **kw)
    torch.nn.init.normal_(tr.critic.lm_head.weight, std=0.3)  # values that differ token by token
    ro, correct, scores, _ = tr.collect()
    scores = torch.arange(32.0) % 2
    b, stats = tr.prepare(ro, correct, scores)
    values = completion_values(tr.critic, ro.prompts, ro.tokens, ro.mask)
    rewards = terminal_rewards(scores, ro.mask)
    lam = length_adaptive_lambda(ro.lengths, 0.5)
    assert len(set(lam.tolist()) - {0.0, 1.0}) >= 2  # rows of several lengths get several lambdas
    torch.testing.assert_close(b.returns, gae(rewards, values, ro.mask, 0.9, {"vapo": 1.0, "ppo": 0.95}[algo])[1])
    torch.testing.assert_close(b.advantages, whiten(gae(rewards, values, ro.mask, 0.9, lam)[0], ro.mask))
    assert stats["lam_actor"] == pytest.approx(float(lam.mean()))


@pytest.mark.parametrize("algo,lam,kw", [("ppo", 0.95, {}), ("vapo", 0.7, dict(lam_policy=0.7))])
def test_ppo_charges_the_kl_in_the_reward_and_a_fixed_lam_policy_reaches_gae(policy, chat_tok, prompt, end, tmp_path,
                                                                            algo, lam, kw):
    kw = dict(kl_coef=0.05, kl_penalty="reward", whiten_advantages=False, gamma=0.9, **kw)
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, algo, **kw)
    torch.nn.init.normal_(tr.critic.lm_head.weight, std=0.3)  # values that differ token by token
    with torch.no_grad():
        tr.policy.lm_head.weight.add_(0.5 * torch.randn_like(tr.policy.lm_head.weight))  # policy != reference
    ro, correct, scores, _ = tr.collect()
    scores = torch.arange(32.0) % 2
    b, stats = tr.prepare(ro, correct, scores)
    values = completion_values(tr.critic, ro.prompts, ro.tokens, ro.mask)
    rewards = kl_shaped_rewards(scores, b.old_logp, b.ref_logp, ro.mask, 0.05)
    assert not torch.allclose(rewards, terminal_rewards(scores, ro.mask))  # the KL charge is not 0
    torch.testing.assert_close(b.returns, gae(rewards, values, ro.mask, 0.9, tr.cfg.lam_critic)[1])
    torch.testing.assert_close(b.advantages, gae(rewards, values, ro.mask, 0.9, lam)[0])
    assert not torch.allclose(b.advantages, gae(rewards, values, ro.mask, 0.9, 1.0)[0])
    assert stats["lam_actor"] == pytest.approx(lam)
    charge = [0.05 * sum(b.old_logp[r, t] - b.ref_logp[r, t] for t in range(int(ro.lengths[r]))) for r in range(32)]
    assert stats["kl_penalty"] == pytest.approx(float(sum(charge) / 32), abs=1e-6) and stats["kl_penalty"] != 0


@pytest.mark.parametrize("penalty", ["reward", "loss"])
def test_the_kl_enters_the_loss_only_when_kl_penalty_is_loss(policy, chat_tok, prompt, end, tmp_path, monkeypatch,
                                                              penalty):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, "ppo", kl_penalty=penalty)
    b, _ = tr.prepare(*tr.collect()[:3])
    calls = []
    monkeypatch.setattr(trainer_module, "kl_k3", lambda *a: calls.append(1) or torch.zeros_like(a[0]))
    tr.minibatch(b, torch.arange(16))
    assert len(calls) == (penalty == "loss")
    with_reward = tr.prepare(*tr.collect()[:3])[1]
    assert ("kl_penalty" in with_reward) == (penalty == "reward")


@pytest.mark.parametrize("algo,batch", [("grpo", 1), ("dapo", 1), ("vapo", 1), ("ppo", 1), ("dapo", 4)])
def test_a_resumed_run_equals_the_uninterrupted_one_exactly(policy, chat_tok, prompt, end, tmp_path, algo, batch):
    task = first_token_task(chat_tok, prompt)
    kw = dict(value_pretrain_steps={"vapo": 2, "ppo": 1}[algo]) if algo in ("vapo", "ppo") else {}
    kw["rollout_batch"] = batch  # 4: each draw's prompts sampled as one batch
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



def test_the_time_limit_stops_a_run_after_the_step_that_reaches_it_and_a_rerun_goes_on(policy, chat_tok, prompt,
                                                                                        end, tmp_path):
    task = first_token_task(chat_tok, prompt)
    first = make(policy, chat_tok, end, task, tmp_path, steps=5, minutes=1e-9)  # a limit per invocation
    first.fit()
    assert first.iteration == 1 and [r["step"] for r in records(tmp_path)] == [1]
    again = make(policy, chat_tok, end, task, tmp_path, steps=5, minutes=1e-9)
    assert again.maybe_resume() and again.iteration == 1  # the stop saved a checkpoint
    again.fit()
    assert again.iteration == 2


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
    for algo in ("grpo", "dapo", "vapo", "ppo"):
        assert set(algo_defaults(algo)) <= {f.name for f in dataclasses.fields(RLConfig)}


def test_ppo_defaults_are_instructgpts_and_explicit_flags_win():
    p = RLConfig(algo="ppo")
    assert (p.clip_low, p.clip_high, p.kl_coef, p.kl_penalty, p.aggregation, p.lm_coef) == \
           (0.2, 0.2, 0.05, "reward", "token", 0.0)
    assert (p.dynamic_sampling, p.overlong_shaping, p.overlong_filter) == (False, False, False)
    assert p.uses_critic and p.value_pretrain_steps == 0 and p.value_lr == 2 * p.train.lr
    assert (p.gamma, p.lam_critic, p.lam_policy, p.whiten_advantages) == (1.0, 0.95, 0.95, True)
    assert RLConfig(algo="ppo", group_size=1).group_size == 1  # the critic is the baseline: no group needed
    q = RLConfig(algo="ppo", kl_penalty="loss", kl_coef=0.1, lam_policy=0.9, lam_critic=1.0, value_pretrain_steps=5,
                 clip_high=0.28, value_lr=1e-3)
    assert (q.kl_penalty, q.kl_coef, q.lam_policy, q.lam_critic, q.value_pretrain_steps, q.clip_high, q.value_lr) == \
           ("loss", 0.1, 0.9, 1.0, 5, 0.28, 1e-3)
    assert RLConfig.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    for algo in ("grpo", "dapo", "vapo"):  # the others keep the KL in the loss, vapo its length-adaptive lambda
        c = RLConfig(algo=algo)
        assert c.kl_penalty == "loss" and c.lam_policy is None
    assert RLConfig(algo="vapo").lam_critic == 1.0 and RLConfig(algo="vapo", lam_policy=0.9).lam_policy == 0.9
    assert RLConfig(algo="ppo", lam_adaptive=True).lam_policy is None  # left unset: the length-adaptive lambda


@pytest.mark.parametrize("algo", ["grpo", "dapo", "vapo"])
def test_a_config_saved_before_ppo_loads_and_resolves_as_it_did(algo):
    new = RLConfig(algo=algo)
    old = {k: v for k, v in new.to_dict().items() if k not in ("kl_penalty", "lam_policy")}
    old["lam_critic"] = 1.0  # a plain default then, saved by every algorithm
    cfg = RLConfig.from_dict(json.loads(json.dumps(old)))
    assert (cfg.kl_penalty, cfg.lam_policy) == ("loss", None)
    assert cfg == new  # without a critic the old 1.0 computed nothing and reads as unset; vapo's own is 1.0
    assert cfg.lam_critic == (1.0 if algo == "vapo" else None)


@pytest.mark.parametrize("kw,msg", [
    (dict(algo="reinforce"), "algo must be one of"),
    (dict(algo="grpo", group_size=1), "group_size must be >= 2"),
    (dict(algo="dapo", clip_low=1.0), "clip_low"),
    (dict(algo="grpo", aggregation="mean"), "aggregation"),
    (dict(algo="grpo", temperature=0.0), "temperature"),
    (dict(algo="grpo", value_pretrain_steps=5), "apply to the value model"),
    (dict(algo="dapo", lam_policy=0.9), "apply to the value model"),
    (dict(algo="grpo", lam_critic=0.9), "apply to the value model"),
    (dict(algo="dapo", lam_adaptive=True), "apply to the value model"),
    (dict(algo="ppo", lam_adaptive=True, lam_policy=0.9), "takes no lam_policy"),
    (dict(algo="ppo", kl_penalty="both"), "kl_penalty must be one of"),
    (dict(algo="grpo", kl_penalty="reward"), "kl_penalty 'reward'"),
    (dict(algo="ppo", lam_policy=1.5), "lam_policy must be in"),
    (dict(algo="ppo", lam_critic=-0.1), "lam_critic must be in"),
    (dict(algo="ppo", group_size=0), "group_size must be >= 1"),
    (dict(algo="ppo", dynamic_sampling=True), "dynamic sampling"),
    (dict(algo="vapo", dynamic_sampling=True), "dynamic sampling"),
    (dict(algo="grpo", minibatches=100), "minibatches"),
    (dict(algo="dapo", overlong_cache=9), "overlong_cache"),
    (dict(algo="grpo", train=dataclasses.replace(RL_TRAIN, precision="bf16")), "precision"),
    (dict(algo="grpo", name="a/b"), "plain folder name"),
    (dict(algo="ppo", missing_eos_penalty=-1.0), "missing_eos_penalty must be >= 0"),
    (dict(algo="online-dpo", missing_eos_penalty=-1.0), "missing_eos_penalty must be >= 0"),
    (dict(algo="online-dpo", reward_ensemble="max"), "reward_ensemble must be one of"),
    (dict(algo="ppo", reward_ensemble="min", uwo_lambda=0.5), "uwo_lambda weighs the members' variance"),
    (dict(algo="ppo", reward_ensemble="uwo", uwo_lambda=-0.5), "uwo_lambda must be >= 0"),
])
def test_bad_settings_are_refused_by_name(kw, msg):
    with pytest.raises(InputError, match=msg):
        RLConfig(**kw)


@pytest.mark.parametrize("algo,kw,flag", [
    ("grpo", dict(gamma=0.9), "--gamma"), ("dapo", dict(whiten_advantages=False), "--[no-]whiten-advantages"),
    ("grpo", dict(lam_alpha=0.1), "--lam-alpha"), ("ppo", dict(lam_alpha=0.1), "--lam-alpha"),
    ("vapo", dict(lam_policy=0.9, lam_alpha=0.1), "--lam-alpha"),
    ("ppo", dict(scale_advantages=False), "--[no-]scale-advantages"),
    ("vapo", dict(scale_advantages=False), "--[no-]scale-advantages"),
    ("grpo", dict(max_draws=2), "--max-draws"), ("dapo", dict(dynamic_sampling=False, max_draws=2), "--max-draws"),
    ("grpo", dict(overlong_cache=1), "--overlong-cache"), ("grpo", dict(overlong_max_len=6), "--overlong-max-len"),
    ("grpo", dict(reward_ensemble="min"), "--reward-ensemble"),
    ("ppo", dict(reward_model="rm", reward_ensemble="uwo"), "--reward-ensemble"),
    *(("online-dpo", {k: v}, f) for k, v, f in (
        ("gamma", 0.9, "--gamma"), ("whiten_advantages", False, "--[no-]whiten-advantages"),
        ("lam_alpha", 0.1, "--lam-alpha"), ("max_draws", 2, "--max-draws"), ("overlong_cache", 1, "--overlong-cache"),
        ("overlong_max_len", 6, "--overlong-max-len"), ("reward_ensemble", "min", "--reward-ensemble"))),
])
def test_a_setting_that_does_not_reach_the_run_is_refused_by_its_flag(algo, kw, flag):
    with pytest.raises(InputError, match=re.escape(f"{flag} applies ")):
        RLConfig(algo=algo, **kw)


def test_those_settings_are_taken_where_they_reach_the_run():
    assert RLConfig(algo="ppo", lam_adaptive=True, lam_alpha=0.1).lam_alpha == 0.1  # ppo's adaptive lambda
    assert RLConfig(algo="vapo", lam_alpha=0.1, gamma=0.9, whiten_advantages=False).gamma == 0.9
    assert RLConfig(algo="grpo", scale_advantages=False, dynamic_sampling=True, max_draws=2).max_draws == 2
    assert RLConfig(algo="grpo", overlong_shaping=True, overlong_cache=1, overlong_max_len=6).overlong_len == 6
    assert RLConfig(algo="ppo", reward_model="a,b", reward_ensemble="min").reward_ensemble == "min"


def test_uwo_takes_its_default_lambda_and_saves_it():
    cfg = RLConfig(algo="ppo", reward_model="a,b", reward_ensemble="uwo")
    assert cfg.uwo_lambda == 0.5
    assert RLConfig.from_dict(cfg.to_dict()) == cfg
    assert RLConfig(algo="ppo").uwo_lambda is None


def test_a_reward_models_scores_train_the_policy_while_accuracy_counts_right_answers(policy, chat_tok, prompt, end,
                                                                                      tmp_path):
    seen = []

    def score(prompts, completions):  # stands in for a reward model: it sees each completion as sampled
        seen.extend(completions)
        return torch.tensor([float(len(c)) for c in completions])

    want = chat_tok.encode("7")
    task = Task([prompt(q) for q in QUESTIONS], lambda i, ids: float(ids[:1] == want), score)
    tr = make(policy, chat_tok, end, task, tmp_path)
    ro, correct, scores, _ = tr.collect()
    assert scores.tolist() == ro.lengths.float().tolist()
    assert seen == [ro.tokens[b, : int(ro.lengths[b])].tolist() for b in range(len(ro))]
    assert all(c[-1] == end for c, t in zip(seen, ro.truncated.tolist()) if not t)
    assert correct.tolist() == [float(ro.answer_ids(b, end)[:1] == want) for b in range(len(ro))]
    # an answer that never wrote <|end|> loses missing_eos_penalty from its score, one that ended keeps it
    tr = make(policy, chat_tok, end, task, tmp_path / "eos", missing_eos_penalty=2.5)
    ro2, _, scores2, _ = tr.collect()
    assert torch.equal(ro2.tokens, ro.tokens) and ro.truncated.any() and (~ro.truncated).any()
    assert scores2.tolist() == (ro.lengths.float() - 2.5 * ro.truncated.float()).tolist()


@pytest.mark.parametrize("algo", ["dapo", "vapo"])
def test_a_minibatch_with_no_policy_token_leaves_the_policy_and_the_statistics_alone(policy, chat_tok, prompt, end,
                                                                                      tmp_path, algo):
    """The overlong filter can leave a minibatch no token of the policy loss. A zero gradient would still
    move the weights (AdamW's decay and step count) and its zeros would pull the step's ratio_mean and
    approx_kl down: the step must equal one on the other minibatch alone (the critic still learns)."""
    task = first_token_task(chat_tok, prompt)
    tr, alone, none = (make(policy, chat_tok, end, task, tmp_path / str(i), algo, minibatches=2) for i in range(3))
    ro, correct, _, _ = tr.collect()
    # rewards that vary in every group; no right answer, so VAPO's positive-example loss has no token either
    b, _ = tr.prepare(ro, torch.zeros_like(correct), torch.arange(32.0) % 3)
    empty, full = torch.randperm(len(b), generator=tr._generators(3)).chunk(2)  # update's minibatches
    b.loss_mask = b.loss_mask.clone()  # without the overlong filter it is the mask itself
    b.loss_mask[empty] = 0  # every completion of the first one cut off
    stats, want = tr.update(b), alone.minibatch(b, full)
    assert {"ratio_mean", "approx_kl", "clip_fraction", "policy_loss", "grad_norm"} <= want.keys()
    assert {k: v for k, v in stats.items() if k != "value_loss"} == {k: v for k, v in want.items() if k != "value_loss"}
    for (k, x), y in zip(tr.policy.state_dict().items(), alone.policy.state_dict().values()):
        assert torch.equal(x, y), k
    if algo == "vapo":
        assert "value_loss" in stats and tr.critic.lm_head.weight.abs().sum() > 0
    start = {k: v.clone() for k, v in none.policy.state_dict().items()}
    b.loss_mask[full] = 0  # no token left in the policy loss at all: no policy step, no policy statistics
    assert none.update(b).keys() == ({"value_loss"} if algo == "vapo" else set())
    assert all(torch.equal(v, start[k]) for k, v in none.policy.state_dict().items())
    assert not any(p in none.optimizer.state for p in none.policy.parameters())
