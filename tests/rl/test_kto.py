"""KTO: the loss against its formula written out per example (the KL estimate's mismatch, clamp and
weights included), z held constant, the mismatched completions and fixed batches, training that lifts
desirable replies and lowers undesirable ones, exact resume, unpaired data, and `llmlab dpo --loss kto`."""

import dataclasses
import json
import math
import random

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.rl.dpo_config import DPO_TRAIN, DPOConfig
from llmlab.rl.kto import (
    KTOData,
    KTOTrainer,
    batch_losses,
    kl_batches,
    kto_loss,
    mismatched,
    reference_logps,
    unpaired_ids,
)
from llmlab.rl.preferences import Preference
from llmlab.rl.unpaired import is_unpaired_file, read_split_examples, unpair


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def plain_kto(logps, ref, kl, ref_kl, labels, beta, wd, wu):
    """The KTO loss of one batch, example by example (TRL's kto_loss written out)."""
    z = max(0.0, sum(a - b for a, b in zip(kl, ref_kl)) / len(kl))
    out = []
    for lp, rp, good in zip(logps, ref, labels):
        r = lp - rp
        out.append(wd * (1 - sig(beta * (r - z))) if good else wu * (1 - sig(beta * (z - r))))
    return out, z


@pytest.mark.parametrize("beta, wd, wu", [(0.1, 1.0, 1.0), (0.5, 1.0, 1.33), (2.0, 0.7, 1.0)])
@pytest.mark.parametrize("kl_shift", [3.0, -3.0])  # the KL estimate well above 0, and one clamped to 0
def test_the_loss_is_its_formula(beta, wd, wu, kl_shift):
    g = torch.Generator().manual_seed(1)
    lp, ref, ref_kl = (torch.randn(8, generator=g) * 3 for _ in range(3))
    kl = ref_kl + kl_shift + torch.randn(8, generator=g) * 0.5
    labels = torch.tensor([True, False, False, True, True, False, True, False])
    got, z = kto_loss(lp, ref, kl, ref_kl, labels, beta, wd, wu)
    want, want_z = plain_kto(lp.tolist(), ref.tolist(), kl.tolist(), ref_kl.tolist(), labels.tolist(), beta, wd, wu)
    assert float(z) == pytest.approx(want_z, abs=1e-6)
    assert (want_z > 0) == (kl_shift > 0)
    assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_z_carries_no_gradient():
    """The mismatched completions get no gradient, and a reply's gradient is the sigmoid's with z fixed."""
    beta = 0.3
    lp = torch.tensor([1.0, -2.0, 0.5, 0.0], requires_grad=True)
    kl = torch.tensor([2.0, 1.0, 3.0, 0.5], requires_grad=True)
    ref, ref_kl = torch.zeros(4), torch.zeros(4)
    labels = torch.tensor([True, False, True, False])
    losses, z = kto_loss(lp, ref, kl, ref_kl, labels, beta)
    losses.sum().backward()
    assert kl.grad is None and not z.requires_grad
    s = torch.sigmoid(beta * (lp.detach() - float(z)))  # (B,)
    # d/dr (1 - sig(b (r - z))) = -b s (1 - s); d/dr (1 - sig(b (z - r))) = +b s (1 - s)
    want = torch.where(labels, -beta * s * (1 - s), beta * s * (1 - s))
    torch.testing.assert_close(lp.grad, want)


def test_batches_cover_every_example_once_and_borrow_from_a_neighbour():
    for n, bs in [(9, 4), (10, 4), (8, 4), (2, 2), (33, 32), (5, 8)]:
        batches = kl_batches(n, bs, seed=3)
        assert sorted(sum(batches, [])) == list(range(n))
        assert all(len(b) >= 2 for b in batches) and all(len(b) <= bs + 1 for b in batches)
        other = mismatched(batches)
        for b in batches:
            for j, i in enumerate(b):
                assert other[i] == b[j - 1] != i  # shifted by one within the batch, never itself
    assert kl_batches(20, 4, seed=3) == kl_batches(20, 4, seed=3) != kl_batches(20, 4, seed=4)
    for n, bs in [(10, 1), (1, 4)]:
        with pytest.raises(InputError, match="at least 2 examples"):
            kl_batches(n, bs, seed=0)


def examples(prompt, chat_tok, end, n, seed):
    """2-digit sums: the right answer desirable, it after a leading 0 undesirable (its first token differs, so
    lowering it does not lower the right answer's tokens too; a tiny model learns that within a few steps,
    telling digits apart would take thousands), one each per sum."""
    rng = random.Random(seed)
    out, labels = [], []
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        for reply, good in ((str(a + b), True), ("0" + str(a + b), False)):
            out.append((prompt(f"{a}+{b}="), chat_tok.encode(reply) + [end]))
            labels.append(good)
    return out, labels


def logp_of(model, p, c):
    lp = model(torch.tensor([p + c]))[0].log_softmax(-1)  # (T, V)
    return sum(float(lp[len(p) - 1 + t, tok]) for t, tok in enumerate(c))


def test_batch_losses_equal_a_forward_per_sequence(policy, prompt, chat_tok, end):
    """The batch's loss from one forward per (prompt, completion), each prompt's mismatched completion
    taken by hand from the previous example of its batch, and the desirable replies' NLL."""
    model, ref_model = policy(1).eval(), policy(2).eval()
    ex, labels = examples(prompt, chat_tok, end, 6, 0)
    data = KTOData.of(ex, labels, batch_size=5, seed=0)
    ref = reference_logps(ref_model, data, chat_tok.pad_id)
    beta, wd, wu = 0.5, 1.0, 1.5
    with torch.no_grad():
        for b in data.batches:
            got, parts = batch_losses(model, [data.triples[i] for i in b], data.labels[b], ref[b], chat_tok.pad_id,
                                      beta, (wd, wu))
            own = [logp_of(model, *ex[i]) for i in b]
            other = [ex[b[j - 1]][1] for j in range(len(b))]
            kl = [logp_of(model, ex[i][0], o) for i, o in zip(b, other)]
            ref_own = [logp_of(ref_model, *ex[i]) for i in b]
            ref_kl = [logp_of(ref_model, ex[i][0], o) for i, o in zip(b, other)]
            want, z = plain_kto(own, ref_own, kl, ref_kl, [labels[i] for i in b], beta, wd, wu)
            assert got.tolist() == pytest.approx(want, abs=1e-4)
            assert float(parts["kl"]) == pytest.approx(z, abs=1e-4)
            good = [i for i in b if labels[i]]
            nll = -sum(logp_of(model, *ex[i]) for i in good) / sum(len(ex[i][1]) for i in good)
            assert float(parts["desirable_nll"]) == pytest.approx(nll, abs=1e-4)


def make_trainer(policy, prompt, chat_tok, end, run_dir, steps=12, nll_coef=0.0, lr=3e-3, weights=(1.0, 1.0)):
    model = policy(2)
    train = KTOData.of(*examples(prompt, chat_tok, end, 64, 0), batch_size=16, seed=0)
    dev_ex, dev_labels = examples(prompt, chat_tok, end, 24, 1)
    dev = KTOData.of(dev_ex, dev_labels, batch_size=16, seed=1, pairs=[(2 * k, 2 * k + 1) for k in range(24)])
    ref, dev_ref = (reference_logps(model, d, chat_tok.pad_id) for d in (train, dev))
    cfg = dataclasses.replace(DPO_TRAIN, steps=steps, batch_size=16, lr=lr, warmup_steps=0, eval_every=0,
                              checkpoint_every=4, log_every=1)
    return KTOTrainer(model, cfg, train, dev, ref, dev_ref, run_dir, chat_tok.pad_id, beta=0.5, nll_coef=nll_coef,
                      desirable_weight=weights[0], undesirable_weight=weights[1])


def test_training_lifts_desirable_replies_and_lowers_undesirable_ones(policy, prompt, chat_tok, end, tmp_path):
    t = make_trainer(policy, prompt, chat_tok, end, tmp_path)
    before = t.evaluate(None)
    # the policy is its reference: every reward and z are 0, every loss 1 - sigmoid(0)
    assert before["val_kl"] == 0 and before["val_margin"] == 0 and before["val_loss"] == pytest.approx(0.5)
    assert before["val_accuracy"] == 0 and before["val_examples"] == 48
    t.fit()
    after = t.evaluate(None)
    assert after["val_reward_desirable"] > 0 > after["val_reward_undesirable"]
    assert after["val_loss"] < before["val_loss"] and after["val_accuracy"] > 0.5
    assert after["val_policy_prefers_chosen"] >= before["val_policy_prefers_chosen"]
    # on the examples trained on, too: each desirable reply more likely than under the reference, on average,
    # each undesirable one less
    with torch.no_grad():
        _, parts = batch_losses(t.model.eval(), t.pairs, t.data.labels, t.ref, chat_tok.pad_id, beta=1.0)
    gain = parts["reward"]  # log pi - log pi_ref of each example's own completion
    assert gain[t.data.labels].mean() > 0 > gain[~t.data.labels].mean()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all({"kl", "reward_margin"} <= set(r) for r in records if "loss" in r)
    # the first step's loss is the batch's mean at the start, where every example's is 1 - sigmoid(0)
    assert records[0]["loss"] == 0.5 and records[-1]["loss"] < 0.45
    assert t.evaluate(2)["val_examples"] == 32 and "val_accuracy" not in t.evaluate(2)  # pairs: full runs only


def test_batches_are_visited_in_turn(policy, prompt, chat_tok, end, tmp_path):
    t = make_trainer(policy, prompt, chat_tok, end, tmp_path)
    seen = []
    for step in range(len(t.data.batches) + 1):
        t.step = step
        seen.append(t.batch(0)[0])
    assert seen == t.data.batches + t.data.batches[:1]


def test_a_resumed_run_equals_the_uninterrupted_one(policy, prompt, chat_tok, end, tmp_path):
    kw = dict(steps=6, nll_coef=0.5, weights=(1.0, 1.3))
    whole = make_trainer(policy, prompt, chat_tok, end, tmp_path / "whole", **kw)
    whole.fit()
    first = make_trainer(policy, prompt, chat_tok, end, tmp_path / "split", **kw)
    for _ in range(3):  # a session that stops after step 3's checkpoint
        first.metrics.write(first.train_step())
    first.save()
    second = make_trainer(policy, prompt, chat_tok, end, tmp_path / "split", **kw)
    with torch.no_grad():  # other weights: all must come from disk
        for p in second.model.parameters():
            p.add_(1.0)
    assert second.maybe_resume() and second.step == 3
    second.fit()
    logs = [[r for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
            for d in (tmp_path / "whole", tmp_path / "split")]
    for k in ("loss", "kl", "reward_margin", "desirable_nll", "tokens"):
        assert [r[k] for r in logs[0]] == [r[k] for r in logs[1]], k
    assert len(logs[0]) == 6
    for k, v in whole.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v), k


def test_comparisons_unpair_as_trl_does():
    prefs = [Preference.of("1+1=", "2", "3"), Preference.of([{"role": "user", "content": "2+2="}], "4", "5")]
    got = [e.to_dict() for e in unpair(prefs)]
    assert got == [{"prompt": "1+1=", "completion": "2", "label": True},
                   {"prompt": "1+1=", "completion": "3", "label": False},
                   {"prompt": "2+2=", "completion": "4", "label": True},
                   {"prompt": "2+2=", "completion": "5", "label": False}]
    ids = [([1], [2], [3]), ([4], [5], [6])]
    assert unpaired_ids(prefs, ids) == ([([1], [2]), ([1], [3]), ([4], [5]), ([4], [6])],
                                        [True, False, True, False], [(0, 1), (2, 3)])


def write(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_unpaired_files_are_read_or_refused_naming_the_line(tmp_path):
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1 + i % 2), "label": i % 2 == 0} for i in range(40)]
    f = write(tmp_path / "u.jsonl", rows)
    assert is_unpaired_file(f) and not is_unpaired_file(write(tmp_path / "p.jsonl", [
        {"prompt": "a", "chosen": "b", "rejected": "c"}]))
    train, dev = read_split_examples(f)
    assert [e.to_dict() for e in train + dev] == rows and len(dev) == 2  # the last 5% held out
    split = write(tmp_path / "s.jsonl", [{**r, "split": "dev" if i < 3 else "train"} for i, r in enumerate(rows)])
    assert [e.completion for e in read_split_examples(split)[1]] == ["1", "3", "3"]
    ok = {"prompt": "1+1=", "completion": "2", "label": True}
    for bad, msg in [(["{oops"], "line 2 is not valid JSON"),
                     ([{"prompt": "x", "completion": "y"}], "line 2: missing 'label'"),
                     ([{**ok, "label": 1}], "line 2: 'label' must be true"),
                     ([{**ok, "completion": ""}], "line 2: 'completion' must be a non-empty string"),
                     ([{**ok, "prompt": []}], "line 2: 'prompt' must be"),
                     ([{"prompt": "a", "chosen": "b", "rejected": "c"}], "line 2: missing 'completion'")]:
        with pytest.raises(InputError, match=msg):
            read_split_examples(write(tmp_path / "bad.jsonl", [ok, *bad]))
    with pytest.raises(InputError, match="line 3: missing 'label'"):  # blank lines count
        read_split_examples(write(tmp_path / "blank.jsonl", [ok, "", {"prompt": "x", "completion": "y"}]))
    with pytest.raises(InputError, match="every example is labelled True"):
        read_split_examples(write(tmp_path / "one.jsonl", [ok, {**ok, "completion": "3"}]))


def test_a_small_unpaired_file_holds_out_two_examples_or_is_refused_saying_why(tmp_path, capsys, chat_dir):
    """KTO needs 2 examples in each split: without 'split' fields, fewer than 40 lines hold out their last two
    (not the one 5% would give), which train in a batch; too few lines are refused naming the cause."""
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1 + i % 2), "label": i % 2 == 0} for i in range(10)]
    train, dev = read_split_examples(write(tmp_path / "u.jsonl", rows))
    assert [e.to_dict() for e in train] == rows[:8] and [e.to_dict() for e in dev] == rows[8:]
    assert [len(b) for b in KTOData.of([([1], [2])] * 2, [True, False], batch_size=4, seed=0).batches] == [2]
    assert len(read_split_examples(write(tmp_path / "four.jsonl", rows[:4]))[1]) == 2
    for lines, msg in [(rows[:3], "got 1 dev: give it at least 4 lines"),
                       (rows[:2], "got 1 train and 1 dev: give it at least 4 lines"),
                       ([{**r, "split": "dev" if i == 9 else "train"} for i, r in enumerate(rows)],
                        "got 1 dev: mark at least 2 lines of each with 'split'")]:
        with pytest.raises(InputError, match="KTO needs at least 2 examples in each split .*" + msg):
            read_split_examples(write(tmp_path / "few.jsonl", lines))
    # the command trains on the small file and refuses a tinier one before touching the run folder
    f = write(tmp_path / "u.jsonl", rows)
    assert kto(chat_dir, tmp_path, "small", "--pairs", str(f), "--eval-problems", "0", "--steps", "1") == 0
    s = json.loads((tmp_path / "small" / "summary.json").read_text())
    assert s["train_examples"] == 8 and s["dev_examples"] == 2
    assert kto(chat_dir, tmp_path, "tiny", "--pairs", str(write(tmp_path / "t.jsonl", rows[:3]))) == 2
    assert "give it at least 4 lines" in capsys.readouterr().err and not (tmp_path / "tiny").exists()


def test_config_refuses_what_kto_cannot_do():
    for kw, msg in [({"loss": "kto", "desirable_weight": 0.0}, "desirable_weight must be a finite number > 0"),
                    ({"loss": "kto", "undesirable_weight": -1.0}, "undesirable_weight must be"),
                    ({"undesirable_weight": 2.0}, "applies to KTO's examples .--loss kto., not sigmoid"),
                    ({"loss": "kto", "label_smoothing": 0.1}, "applies to the sigmoid loss"),
                    ({"loss": "kto", "train": dataclasses.replace(DPO_TRAIN, batch_size=1)}, "batch of at least 2")]:
        with pytest.raises(InputError, match=msg):
            DPOConfig(model="m", **kw)
    cfg = DPOConfig(model="m", loss="kto", desirable_weight=1.33)
    assert DPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def kto(chat_dir, out, name, *flags):
    return main(["dpo", "--loss", "kto", "--model", str(chat_dir), "-o", str(out), "--name", name, "--steps", "4",
                 "--batch-size", "4", "--eval-every", "2", "--eval-problems", "3", "--checkpoint-every", "2",
                 "--log-every", "1", "--max-new-tokens", "3", *flags])


def test_llmlab_dpo_loss_kto_on_comparisons_and_on_an_unpaired_file(chat_dir, tmp_path, capsys):
    assert kto(chat_dir, tmp_path, "k", "--arithmetic-train", "20", "--samples", "2", "--near-misses", "1",
               "--nll-coef", "1") == 0
    run = tmp_path / "k"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_examples"] == 2 * summary["train_pairs"]
    assert summary["dev_examples"] == 2 * summary["dev_pairs"]
    assert "val_policy_prefers_chosen" in summary["after"] and "val_kl" in summary["after"]
    # before any step the policy is its reference: rewards and z are 0, each example's loss 1 - sigmoid(0)
    b = summary["before"]
    assert b["val_kl"] == 0 and b["val_margin"] == 0 and b["val_loss"] == pytest.approx(0.5, abs=1e-6)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert all("desirable_nll" in r and "kl" in r for r in records if "loss" in r)
    report = (run / "report.md").read_text()
    assert report.startswith("# KTO run") and "KL estimate z" in report and "desirable weight 1.0" in report
    assert "held-out KTO examples" in capsys.readouterr().out
    # the same settings make DPO's comparisons: pairs.jsonl holds them paired
    assert main(["dpo", "--model", str(chat_dir), "-o", str(tmp_path), "--name", "d", "--steps", "1",
                 "--arithmetic-train", "20", "--samples", "2", "--near-misses", "1", "--max-new-tokens", "3",
                 "--eval-problems", "0"]) == 0
    assert (tmp_path / "d" / "pairs.jsonl").read_text() == (run / "pairs.jsonl").read_text()
    # a rerun of the finished run trains no step again
    assert kto(chat_dir, tmp_path, "k", "--arithmetic-train", "20", "--samples", "2", "--near-misses", "1",
               "--nll-coef", "1") == 0
    again = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in again if "loss" in r] == [r["loss"] for r in records if "loss" in r]
    # an unpaired file: its examples, split kept in the run's pairs.jsonl; no comparisons to report on
    rows = [{"prompt": f"{10 + i}+{20 + i}=", "completion": str(30 + 2 * i + (i % 2)), "label": i % 2 == 0,
             "split": "dev" if i >= 16 else "train"} for i in range(20)]
    f = write(tmp_path / "u.jsonl", rows)
    assert kto(chat_dir, tmp_path, "u", "--pairs", str(f), "--eval-problems", "0") == 0
    assert [json.loads(x) for x in (tmp_path / "u" / "pairs.jsonl").read_text().splitlines()] == rows
    s = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert s["train_examples"] == 16 and s["dev_examples"] == 4 and "val_policy_prefers_chosen" not in s["after"]


def test_llmlab_dpo_refuses_bad_kto_settings_before_any_work(chat_dir, tmp_path, capsys):
    f = write(tmp_path / "u.jsonl", [{"prompt": "1+1=", "completion": "2", "label": True},
                                     {"prompt": "1+1=", "completion": "3", "label": False}])
    for flags, msg in [(["--batch-size", "1"], "batch of at least 2"),
                       (["--desirable-weight", "0"], "desirable_weight must be"),
                       (["--pairs", str(write(tmp_path / "one.jsonl", [
                           {"prompt": "1+1=", "completion": "2", "label": True}] * 3))], "every example is labelled")]:
        assert kto(chat_dir, tmp_path, "bad", *flags) == 2
        assert msg in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["dpo", "--model", str(chat_dir), "-o", str(tmp_path), "--name", "bad", "--pairs", str(f)]) == 2
    assert "only --loss kto trains on" in capsys.readouterr().err and not (tmp_path / "bad").exists()
