"""SimPO and ORPO (`llmlab dpo --loss simpo|orpo`): the losses against their formulas written out per
comparison, a training step's gradient against a forward per reply, training that raises the held-out
preference, the settings refused, and the run without a reference."""

import dataclasses
import json
import math
import random

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.rl.dpo import DPOTrainer, dpo_loss
from llmlab.rl.dpo_config import DPO_TRAIN, DPOConfig


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def plain(loss, c, r, beta, ls=0.0, gamma=0.5):
    """One comparison's loss from its replies' mean token log-probabilities c and r (TRL's formulas)."""
    if loss == "simpo":
        x = beta * (c - r) - gamma
        return -(1 - ls) * logsig(x) - ls * logsig(-x)
    log_odds = (c - math.log(1 - math.exp(c))) - (r - math.log(1 - math.exp(r)))
    return -beta * logsig(log_odds)


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_each_loss_is_its_formula_and_reads_no_reference(beta):
    g = torch.Generator().manual_seed(0)
    c, r = (-torch.rand(6, generator=g) * 3 - 0.01 for _ in range(2))  # mean log-probabilities < 0
    ref_c, ref_r = (torch.randn(6, generator=g) for _ in range(2))
    for loss, kw in [("simpo", {}), ("simpo", {"label_smoothing": 0.2, "simpo_gamma": 1.3}), ("orpo", {})]:
        want = [plain(loss, a, b, beta, kw.get("label_smoothing", 0.0), kw.get("simpo_gamma", 0.5))
                for a, b in zip(c.tolist(), r.tolist())]
        got = dpo_loss(c, r, ref_c, ref_r, beta, loss, **kw)
        assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-6), (loss, kw)
        assert torch.equal(got, dpo_loss(c, r, torch.zeros(6), torch.zeros(6), beta, loss, **kw))


def pairs(prompt, chat_tok, end, n, seed):
    """2-digit sums: the right answer against it after a leading 0 (a tiny model learns that within steps)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        out.append((prompt(f"{a}+{b}="), chat_tok.encode(str(a + b)) + [end], chat_tok.encode(f"0{a + b}") + [end]))
    return out


def make_trainer(policy, prompt, chat_tok, end, run_dir, loss, steps=12, nll_coef=0.0, beta=0.5):
    train, dev = pairs(prompt, chat_tok, end, 64, 0), pairs(prompt, chat_tok, end, 32, 1)
    cfg = dataclasses.replace(DPO_TRAIN, steps=steps, batch_size=16, lr=3e-3, warmup_steps=0, eval_every=0,
                              checkpoint_every=0, log_every=1)
    return DPOTrainer(policy(2), cfg, train, dev, torch.zeros(len(train), 2), torch.zeros(len(dev), 2), run_dir,
                      chat_tok.pad_id, beta=beta, loss=loss, nll_coef=nll_coef, simpo_gamma=0.3)


def mean_logp(model, p, reply):
    lp = model(torch.tensor([p + reply]))[0].log_softmax(-1)  # (T, V)
    return torch.stack([lp[len(p) - 1 + t, tok] for t, tok in enumerate(reply)])  # (len(reply),)


@pytest.mark.parametrize("loss, nll_coef", [("simpo", 0.0), ("simpo", 0.7), ("orpo", 0.0)])
def test_a_step_is_the_plain_loss_gradient(policy, prompt, chat_tok, end, tmp_path, loss, nll_coef):
    """One micro-step's gradient equals that of the loss built reply by reply (ORPO with its NLL at weight 1)."""
    t = make_trainer(policy, prompt, chat_tok, end, tmp_path, loss, nll_coef=nll_coef)
    idx = [3, 0, 7, 12]
    t.model.zero_grad()
    t.micro_step(idx)
    got = [p.grad.clone() for p in t.model.parameters()]
    t.model.zero_grad()
    total, nll_sum, n_tok = 0.0, 0.0, 0
    for i in idx:
        p, c, r = t.pairs[i]
        lc, lr = mean_logp(t.model, p, c), mean_logp(t.model, p, r)
        if loss == "simpo":
            total = total - torch.nn.functional.logsigmoid(0.5 * (lc.mean() - lr.mean()) - 0.3)
        else:
            odds = (lc.mean() - torch.log(1 - lc.mean().exp())) - (lr.mean() - torch.log(1 - lr.mean().exp()))
            total = total - 0.5 * torch.nn.functional.logsigmoid(odds)
        nll_sum, n_tok = nll_sum - lc.sum(), n_tok + len(c)
    weight = 1.0 if loss == "orpo" else nll_coef
    (total / len(idx) + weight * nll_sum / n_tok).backward()
    for a, (name, p) in zip(got, t.model.named_parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("loss", ["simpo", "orpo"])
def test_training_raises_the_held_out_preference(policy, prompt, chat_tok, end, tmp_path, loss):
    t = make_trainer(policy, prompt, chat_tok, end, tmp_path, loss, steps=16)
    before = t.evaluate(None)
    t.fit()
    after = t.evaluate(None)
    assert after["val_loss"] < before["val_loss"] and after["val_margin"] > before["val_margin"]
    assert after["val_accuracy"] == after["val_policy_prefers_chosen"] > 0.9  # no reference: the same thing


def test_config_refuses_what_simpo_and_orpo_cannot_do():
    for kw, msg in [({"loss": "simpo", "simpo_gamma": -0.1}, "simpo_gamma must be a finite number >= 0"),
                    ({"loss": "sigmoid", "simpo_gamma": 1.0}, "target margin .--loss simpo., not sigmoid"),
                    ({"loss": "orpo", "nll_coef": 1.0}, "ORPO's loss holds the chosen replies' NLL"),
                    ({"loss": "orpo", "label_smoothing": 0.1}, "applies to the sigmoid loss")]:
        with pytest.raises(InputError, match=msg):
            DPOConfig(model="m", **kw)
    cfg = DPOConfig(model="m", loss="simpo", simpo_gamma=1.0, label_smoothing=0.1)
    assert DPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("loss", ["simpo", "orpo"])
def test_llmlab_dpo_without_a_reference(chat_dir, tmp_path, capsys, loss):
    assert main(["dpo", "--loss", loss, "--model", str(chat_dir), "-o", str(tmp_path), "--name", "d", "--steps", "3",
                 "--batch-size", "4", "--arithmetic-train", "20", "--samples", "2", "--max-new-tokens", "3",
                 "--near-misses", "1", "--eval-problems", "3", "--log-every", "1"]) == 0
    report = (tmp_path / "d" / "report.md").read_text()
    assert report.startswith(f"# {'SimPO' if loss == 'simpo' else 'ORPO'} run")
    assert f"Loss: {loss}" in report and "no reference" in report
    assert ("NLL weight 1.0" in report) == (loss == "orpo") and ("gamma 0.5" in report) == (loss == "simpo")
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    b = summary["before"]  # rewards are beta x the policy's own: its preference before any step
    assert b["val_accuracy"] == b["val_policy_prefers_chosen"] > 0
