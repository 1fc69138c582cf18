"""Online DPO: pairs of each prompt's best and worst fresh answer (ties dropped), a step's loss equal to the
offline DPO loss on the same comparisons, a toy reward raised, exact resume, refusals, and `llmlab rl`."""

import copy
import dataclasses
import json

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.rl.config import RL_TRAIN, RLConfig
from llmlab.rl.dpo import DPOTrainer, reference_table
from llmlab.rl.dpo_config import DPO_TRAIN
from llmlab.rl.online_dpo import OnlineDPOTrainer, best_worst_pairs
from llmlab.rl.rollout import Rollouts
from llmlab.rl.trainer import Task

QUESTIONS = ["1+2=", "33+4=", "50+50=", "9+9="]


def make(policy, chat_tok, end, task, tmp_path, steps=3, seed=0, group_size=2, **kw):
    train = dataclasses.replace(RL_TRAIN, steps=steps, lr=kw.pop("lr", 3e-3), checkpoint_every=kw.pop("every", 0))
    cfg = RLConfig(algo="online-dpo", train=train, prompts_per_step=kw.pop("prompts_per_step", 4),
                   group_size=group_size, max_new_tokens=4, **kw)
    return OnlineDPOTrainer(policy(seed), cfg, task, end, chat_tok.pad_id, tmp_path)


def records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_each_group_gives_its_best_against_its_worst_and_ties_none(k):
    g = torch.Generator().manual_seed(k)
    scores = torch.randint(0, 3, (40 * k,), generator=g).float()  # three levels: many ties and many pairs
    scores[:k] = 1.0  # one group all equal
    got = best_worst_pairs(scores, k).tolist()
    want = []
    for i in range(40):
        group = scores[i * k:(i + 1) * k].tolist()
        if max(group) > min(group):
            want.append([i * k + group.index(max(group)), i * k + group.index(min(group))])
    assert got == want and 0 < len(got) < 40
    for c, r in got:
        assert scores[c] > scores[r] and c // k == r // k
        assert scores[c] == scores[(c // k) * k:(c // k + 1) * k].max()  # the best, not just a better one


def rollouts(chat_tok, end, prompt, answers: list[list[str]]) -> Rollouts:
    """Hand-made rollouts: answers[i] are question i's group, each reply ended by <|end|> (one left without)."""
    rows = [chat_tok.encode(a) + ([] if a == "999" else [end]) for group in answers for a in group]
    T = max(map(len, rows))
    tokens = torch.tensor([r + [chat_tok.pad_id] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (T - len(r)) for r in rows])
    k = len(answers[0])
    return Rollouts([prompt(QUESTIONS[i // k]) for i in range(len(rows))], [i // k for i in range(len(rows))],
                    tokens, mask, torch.tensor([a == "999" for group in answers for a in group]))


@pytest.mark.parametrize("loss,nll", [("sigmoid", 0.0), ("sigmoid", 0.5), ("ipo", 0.5), ("hinge", 0.0)])
def test_a_steps_loss_and_gradient_are_offline_dpos_on_the_same_pairs(policy, chat_tok, prompt, end, tmp_path, loss,
                                                                      nll):
    answers = [["3", "30", "4"], ["37", "37", "37"], ["999", "100", "10"], ["81", "18", "1"]]
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -0.5, 1.0, 0.25, 0.0, 0.5, 0.5])
    tr = make(policy, chat_tok, end, Task([prompt(q) for q in QUESTIONS], lambda i, ids: 0.0), tmp_path,
              group_size=3, loss=loss, nll_coef=nll)
    start = copy.deepcopy(tr.policy)
    tr.policy.load_state_dict(policy(seed=5).state_dict())  # the policy has moved away from its reference
    ro = rollouts(chat_tok, end, prompt, answers)
    b, stats = tr.prepare(ro, scores, scores)
    reply = lambda a: chat_tok.encode(a) + ([] if a == "999" else [end])  # noqa: E731
    # the tie (question 1) is dropped; chosen is the best, rejected the worst (the first of equal ones)
    expected = [(prompt(QUESTIONS[0]), reply("3"), reply("30")), (prompt(QUESTIONS[2]), reply("100"), reply("999")),
                (prompt(QUESTIONS[3]), reply("18"), reply("81"))]
    assert b.pairs == expected and stats["pairs"] == 3 and stats["pair_share"] == 0.75
    assert b.scores.tolist() == [[1.0, 0.0], [1.0, -0.5], [0.5, 0.0]]
    ref = reference_table(start, expected, chat_tok.pad_id, average=loss == "ipo")
    torch.testing.assert_close(b.ref, ref)  # the frozen starting policy's, computed for the fresh pairs

    captured = []
    tr._apply = lambda objective: captured.append(objective) or 0.0  # the objective, not stepped
    online = tr.minibatch(b, torch.tensor([2, 0, 1]))
    params = [p for p in tr.policy.parameters()]
    online_grad = torch.autograd.grad(captured[0], params, allow_unused=True)

    offline = DPOTrainer(copy.deepcopy(tr.policy).train(), dataclasses.replace(DPO_TRAIN, batch_size=3), expected, [],
                         ref, torch.zeros(0, 2), tmp_path / "offline", chat_tok.pad_id, beta=0.1, loss=loss,
                         nll_coef=nll)
    offline_loss = offline.micro_step([0, 1, 2])
    assert online["dpo_loss"] == pytest.approx(float(offline_loss), rel=1e-5)
    for k, v in offline._stats.items():
        assert online[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    assert online["reward_margin"] != 0  # the policy is not its reference: a real comparison
    for g, p in zip(online_grad, offline.model.parameters()):
        if g is None:
            assert p.grad is None or not p.grad.any()
        else:
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)


def test_pairs_follow_the_reward_models_scores_not_the_exact_check(policy, chat_tok, prompt, end, tmp_path):
    def score(prompts, completions):  # prefers longer answers; the exact check would say otherwise
        return torch.tensor([float(len(c)) for c in completions])

    task = Task([prompt(q) for q in QUESTIONS], lambda i, ids: float(len(ids) == 1), score)
    tr = make(policy, chat_tok, end, task, tmp_path, group_size=4)
    ro, correct, scores, _ = tr.collect()
    b, _ = tr.prepare(ro, correct, scores)
    assert len(b) > 0
    for (_, c, r), (sc, sr) in zip(b.pairs, b.scores.tolist()):
        assert (sc, sr) == (len(c), len(r)) and len(c) > len(r)


def first_token_task(chat_tok, prompt, target="7"):
    want = chat_tok.encode(target)
    return Task([prompt(q) for q in QUESTIONS], lambda i, ids: float(ids[:1] == want))


def test_training_online_raises_a_reward_it_rarely_earns_at_first(policy, chat_tok, prompt, end, tmp_path):
    tr = make(policy, chat_tok, end, first_token_task(chat_tok, prompt), tmp_path, steps=30, group_size=8, lr=1e-2)
    tr.fit()
    steps = [r for r in records(tmp_path) if r["phase"] == "policy"]
    acc = [r["accuracy"] for r in steps]
    assert len(acc) == 30
    assert sum(acc[:5]) / 5 < 0.25 and sum(acc[-5:]) / 5 > 0.8, acc
    trained = [r for r in steps if r["pairs"]]
    assert trained and all(r["reward_accuracy"] == 0 for r in trained[:1])  # the first step's policy is its reference
    assert all({"dpo_loss", "reward_margin", "reward_chosen", "pair_share", "score_gap"} <= set(r) for r in trained)
    assert all(r["kept_groups"] == r["pairs"] == r["pair_share"] * 4 for r in steps)


@pytest.mark.parametrize("kw", [dict(nll_coef=0.5), dict(minibatches=2, group_size=3, rollout_batch=4)])
def test_a_resumed_run_equals_the_uninterrupted_one_exactly(policy, chat_tok, prompt, end, tmp_path, kw):
    task = first_token_task(chat_tok, prompt, "1")
    kw = {"group_size": 4, **kw}
    whole = make(policy, chat_tok, end, task, tmp_path / "whole", steps=4, every=2, **kw)
    whole.fit()
    first = make(policy, chat_tok, end, task, tmp_path / "split", steps=4, every=2, **kw)
    for _ in range(3):  # a session killed during step 4, after step 3's metrics but before its checkpoint
        first.metrics.write({"step": first.iteration + 1, **first.policy_step()})
        if first.iteration == 2:
            first.save()
    second = make(policy, chat_tok, end, task, tmp_path / "split", steps=4, every=2, **kw)
    second.policy.load_state_dict(policy(seed=1).state_dict())  # made before the reference was copied
    assert second.maybe_resume() and second.iteration == 2
    second.fit()
    a, b = records(tmp_path / "whole"), records(tmp_path / "split")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(a) == strip(b) and len(a) == 4 and sum(r["pairs"] for r in a) > 0
    for (k, x), y in zip(whole.policy.state_dict().items(), second.policy.state_dict().values()):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("kw,msg", [
    (dict(group_size=1), r"group_size must be >= 2 for online-dpo \(a comparison needs two answers"),
    (dict(clip_low=0.2), "clip_low applies to the policy-gradient algorithms, not online-dpo"),
    (dict(kl_coef=0.1), "kl_coef applies to the policy-gradient"),
    (dict(dynamic_sampling=True), "dynamic_sampling applies"),
    (dict(lm_coef=0.1, aggregation="token"), "aggregation, lm_coef apply"),
    (dict(value_pretrain_steps=2), "value_pretrain_steps applies"),
    (dict(scale_advantages=False), "scale_advantages applies"),
    (dict(minibatches=5), r"minibatches \(5\) exceeds the comparisons a step can make"),
    (dict(loss="kto"), "loss must be one of"),
    (dict(beta=0.0), "beta must be"),
    (dict(loss="ipo", label_smoothing=0.1), "applies to the sigmoid loss"),
    (dict(nll_coef=-1.0), "nll_coef must be"),
    (dict(temperature=0.0), "temperature"),
])
def test_settings_that_mean_nothing_online_are_refused(kw, msg):
    with pytest.raises(InputError, match=msg):
        RLConfig(algo="online-dpo", prompts_per_step=4, **kw)


@pytest.mark.parametrize("kw", [dict(beta=0.2), dict(loss="ipo"), dict(nll_coef=1.0), dict(label_smoothing=0.1)])
def test_dpo_settings_are_refused_for_the_policy_gradient_algorithms(kw):
    with pytest.raises(InputError, match=f"{next(iter(kw))} applies to online-dpo's DPO loss, not grpo"):
        RLConfig(algo="grpo", **kw)
    with pytest.raises(InputError, match=r"beta, nll_coef apply to online-dpo's DPO loss, not grpo"):  # one verb each
        RLConfig(algo="grpo", beta=0.2, nll_coef=1.0)


def test_online_dpo_defaults_and_a_saved_config_round_trips():
    c = RLConfig(algo="online-dpo")
    assert (c.group_size, c.minibatches, c.beta, c.loss, c.label_smoothing, c.nll_coef) == (2, 1, 0.1, "sigmoid", 0, 0)
    assert c.uses_reference and not c.uses_critic and c.clip_low is None and c.kl_coef is None
    assert (RLConfig(algo="grpo").group_size, RLConfig(algo="grpo").minibatches) == (8, 2)
    d = RLConfig(algo="online-dpo", group_size=4, beta=0.5, loss="hinge", nll_coef=1.0)
    assert RLConfig.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def rl(chat_dir, out, *flags):
    return main(["rl", "--algo", "online-dpo", "--model", str(chat_dir), "-o", str(out), "--name", "o", "--steps", "3",
                 "--prompts-per-step", "3", "--group-size", "3", "--max-new-tokens", "3", "--eval-problems", "4",
                 "--arithmetic-train", "30", "--checkpoint-every", "2", *flags])


def test_llmlab_rl_online_dpo_writes_the_run_and_refuses_policy_gradient_flags(chat_dir, tmp_path, capsys):
    assert rl(chat_dir, tmp_path, "--nll-coef", "1") == 0
    run = tmp_path / "o"
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["algo"], cfg["group_size"], cfg["nll_coef"], cfg["clip_low"]) == ("online-dpo", 3, 1.0, None)
    steps = [r for r in records(run) if r.get("phase") == "policy"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all({"reward", "accuracy", "pair_share", "pairs"} <= set(r) for r in steps)
    report = (run / "report.md").read_text()
    assert "(online-dpo)" in report and '"nll_coef": 1.0' in report and "clip_low" not in report
    assert "test exact match" in capsys.readouterr().out
    assert rl(chat_dir, tmp_path, "--nll-coef", "1") == 0  # a rerun of the finished run trains nothing again
    assert [r.get("reward") for r in records(run) if r.get("phase")] == [r["reward"] for r in steps]
    capsys.readouterr()
    assert rl(chat_dir, tmp_path / "x", "--clip-high", "0.3") == 2
    assert "clip_high applies to the policy-gradient algorithms" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
