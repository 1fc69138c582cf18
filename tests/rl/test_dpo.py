"""DPO: the losses against their formulas and the sigmoid loss's closed-form gradient, reply log-probabilities
against a forward per reply, training that widens the held-out margin, exact resume, and `llmlab dpo`."""

import json
import math

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.rl.dpo import DPOTrainer, answer_logprobs, dpo_loss, reference_table, reply_logps
from llmlab.rl.dpo_config import DPO_TRAIN, DPOConfig


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_each_loss_is_its_formula(beta):
    g = torch.Generator().manual_seed(0)
    c, r, rc, rr = (torch.randn(6, generator=g) * 3 for _ in range(4))
    h = [(a - b) - (x - y) for a, b, x, y in zip(c.tolist(), rc.tolist(), r.tolist(), rr.tolist())]
    want = {"sigmoid": [-logsig(beta * v) for v in h], "hinge": [max(0.0, 1 - beta * v) for v in h],
            "ipo": [(v - 1 / (2 * beta)) ** 2 for v in h],
            "smoothed": [-0.8 * logsig(beta * v) - 0.2 * logsig(-beta * v) for v in h]}
    for loss, expected in want.items():
        got = dpo_loss(c, r, rc, rr, beta, "sigmoid" if loss == "smoothed" else loss, 0.2 if loss == "smoothed" else 0)
        assert got.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6), loss
    with pytest.raises(InputError, match="unknown DPO loss 'kto'"):
        dpo_loss(c, r, rc, rr, beta, "kto")


def test_the_sigmoid_gradient_is_beta_sigma_of_minus_beta_h():
    """d loss / d log pi(chosen) = -beta sigma(-beta h), and the rejected reply's the opposite."""
    beta = 0.3
    c = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    r = torch.tensor([0.0, 1.0, 2.5], requires_grad=True)
    rc, rr = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.0, 0.0, 1.0])
    dpo_loss(c, r, rc, rr, beta).sum().backward()
    h = (c - rc) - (r - rr)
    expected = -beta * torch.sigmoid(-beta * h.detach())
    torch.testing.assert_close(c.grad, expected)
    torch.testing.assert_close(r.grad, -expected)


def test_reply_logprobs_are_each_replys_own_forward(policy, prompt, chat_tok, end):
    model = policy(1).eval()
    pairs = [(prompt("12+3="), chat_tok.encode("15") + [end], chat_tok.encode("105") + [end]),
             (prompt("4+40="), chat_tok.encode("44") + [end], chat_tok.encode("4") + [end])]
    with torch.no_grad():
        logp, mask = answer_logprobs(model, pairs, chat_tok.pad_id)
        chosen, rejected = reply_logps(logp, mask, average=False)
        mean_c, _ = reply_logps(logp, mask, average=True)
        for b, (p, c, r) in enumerate(pairs):
            for reply, got in ((c, chosen[b]), (r, rejected[b])):
                lp = model(torch.tensor([p + reply]))[0].log_softmax(-1)  # (T, V)
                want = sum(float(lp[len(p) - 1 + t, tok]) for t, tok in enumerate(reply))
                assert float(got) == pytest.approx(want, abs=1e-4)
            assert float(mean_c[b]) == pytest.approx(float(chosen[b]) / len(c), abs=1e-5)


def arithmetic_pairs(prompt, chat_tok, end, n, seed):
    """Comparisons of 2-digit sums: the right answer against it with a digit too many (a tiny model learns
    to prefer the shorter reply within a few steps; telling digits apart would take thousands)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        s = str(a + b)
        wrong = s + str(rng.randint(0, 9))
        out.append((prompt(f"{a}+{b}="), chat_tok.encode(s) + [end], chat_tok.encode(wrong) + [end]))
    return out


def make_trainer(policy, prompt, chat_tok, end, run_dir, steps=12, loss="sigmoid", nll_coef=0.0):
    import dataclasses

    model = policy(2)
    train, dev = arithmetic_pairs(prompt, chat_tok, end, 64, 0), arithmetic_pairs(prompt, chat_tok, end, 32, 1)
    avg = loss == "ipo"
    ref, dev_ref = (reference_table(model, x, chat_tok.pad_id, avg) for x in (train, dev))
    cfg = dataclasses.replace(DPO_TRAIN, steps=steps, batch_size=16, lr=3e-3, warmup_steps=0, eval_every=0,
                              checkpoint_every=4, log_every=1)
    return DPOTrainer(model, cfg, train, dev, ref, dev_ref, run_dir, chat_tok.pad_id, beta=0.5, loss=loss,
                      nll_coef=nll_coef)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo"])
def test_training_widens_the_held_out_margin_from_a_start_at_log_2(policy, prompt, chat_tok, end, tmp_path, loss):
    t = make_trainer(policy, prompt, chat_tok, end, tmp_path, loss=loss)
    before = t.evaluate(None)
    # the policy is its reference: every implicit reward is 0
    assert before["val_margin"] == 0 and before["val_accuracy"] == 0
    if loss == "sigmoid":
        assert before["val_loss"] == pytest.approx(math.log(2))
    t.fit()
    after = t.evaluate(None)
    assert after["val_margin"] > 0 and after["val_accuracy"] > 0.5 and after["val_loss"] < before["val_loss"]


def test_a_resumed_run_equals_the_uninterrupted_one(policy, prompt, chat_tok, end, tmp_path):
    whole = make_trainer(policy, prompt, chat_tok, end, tmp_path / "whole", steps=6, nll_coef=0.5)
    whole.fit()
    first = make_trainer(policy, prompt, chat_tok, end, tmp_path / "split", steps=6, nll_coef=0.5)
    for _ in range(3):  # a session that stops after step 3's checkpoint
        first.metrics.write(first.train_step())
    first.save()
    second = make_trainer(policy, prompt, chat_tok, end, tmp_path / "split", steps=6, nll_coef=0.5)
    with torch.no_grad():  # other weights: all must come from disk
        for p in second.model.parameters():
            p.add_(1.0)
    assert second.maybe_resume() and second.step == 3
    second.fit()
    losses = [[r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for d in (tmp_path / "whole", tmp_path / "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    for k, v in whole.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v), k
    # tokens: each step's comparisons, prompt and reply twice over, counted across the resume
    tokens = [[r["tokens"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for d in (tmp_path / "whole", tmp_path / "split")]
    fresh = make_trainer(policy, prompt, chat_tok, end, tmp_path / "count", steps=6)
    expected, total = [], 0
    for step in range(6):
        fresh.step = step
        total += sum(2 * len(p) + len(c) + len(r) for p, c, r in (fresh.pairs[i] for i in fresh.batch(0)[0]))
        expected.append(total)
    assert tokens[0] == tokens[1] == expected


def test_config_refuses_what_dpo_cannot_do():
    for kw, msg in [({"loss": "bogus"}, "loss must be one of"), ({"beta": 0.0}, "beta must be"),
                    ({"label_smoothing": 0.5}, r"label_smoothing must be in \[0, 0.5\)"),
                    ({"loss": "ipo", "label_smoothing": 0.1}, "applies to the sigmoid loss"),
                    ({"pairs": "x.jsonl", "near_misses": 2}, "--near-misses applies to the built-in pairs"),
                    ({"pairs": "x.jsonl", "samples": 2}, "--samples applies to the built-in pairs"),
                    ({"pairs": "x.jsonl", "temperature": 0.7}, "--temperature applies to the built-in pairs"),
                    ({"pairs": "x.jsonl", "arithmetic_train": 50}, "--arithmetic-train applies to the built-in"),
                    ({"desirable_weight": 2.0}, "--desirable-weight applies to KTO's examples .--loss kto."),
                    ({"loss": "orpo", "simpo_gamma": 1.0}, "--simpo-gamma applies to SimPO's target margin")]:
        with pytest.raises(InputError, match=msg):
            DPOConfig(model="m", **kw)
    cfg = DPOConfig(model="m", beta=0.2, loss="hinge")
    assert DPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def dpo(chat_dir, out, *flags):
    return main(["dpo", "--model", str(chat_dir), "-o", str(out), "--name", "d", "--steps", "4", "--batch-size", "4",
                 "--arithmetic-train", "20", "--samples", "2", "--max-new-tokens", "3", "--eval-every", "2",
                 "--eval-problems", "3", "--checkpoint-every", "2", "--log-every", "1", *flags])


def test_llmlab_dpo_writes_the_run_directory_and_resumes(chat_dir, tmp_path, capsys):
    assert dpo(chat_dir, tmp_path, "--near-misses", "1") == 0
    run = tmp_path / "d"
    assert {p.name for p in run.iterdir()} >= {"config.json", "data.json", "pairs.jsonl", "metrics.jsonl",
                                               "checkpoints", "model", "report.md", "summary.json"}
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["before"] and records[0]["val_accuracy"] == 0 and records[-1]["final"]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert all("reward_margin" in r for r in records if "loss" in r)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["after"]["problems"] == 3 and 0 <= summary["after"]["test_accuracy"] <= 1
    assert "policy prefers the chosen reply" in capsys.readouterr().out
    assert "implicit-reward accuracy" in (run / "report.md").read_text()
    # the same settings make the reward model's comparisons
    assert main(["rm", "train", "--model", str(chat_dir), "-o", str(tmp_path), "--name", "r", "--steps", "1",
                 "--arithmetic-train", "20", "--samples", "2", "--max-new-tokens", "3", "--near-misses", "1",
                 "--best-of", "0"]) == 0
    assert (tmp_path / "r" / "pairs.jsonl").read_text() == (run / "pairs.jsonl").read_text()
    # and a run's pairs.jsonl given back as --pairs keeps its split: no sampling, the same comparisons
    assert main(["dpo", "--model", str(chat_dir), "-o", str(tmp_path), "--name", "d2", "--steps", "1",
                 "--eval-problems", "0", "--pairs", str(run / "pairs.jsonl")]) == 0
    assert (tmp_path / "d2" / "pairs.jsonl").read_text() == (run / "pairs.jsonl").read_text()
    # the chat model it saved chats, and a rerun of the finished run trains no step again
    from llmlab.models import load_model

    assert load_model(run / "model")[1] is not None
    assert dpo(chat_dir, tmp_path, "--near-misses", "1") == 0
    again = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in again if "loss" in r] == [r["loss"] for r in records if "loss" in r]


def test_llmlab_dpo_refuses_bad_settings_before_any_work(chat_dir, tmp_path, capsys):
    assert dpo(chat_dir, tmp_path, "--loss", "bogus") == 2
    assert "loss must be one of" in capsys.readouterr().err and not (tmp_path / "d").exists()
