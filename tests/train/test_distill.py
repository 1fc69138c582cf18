"""Knowledge distillation (llmlab.train.distill): the loss against its formula, torch's kl_div and the
closed-form gradient, and the trainer with a teacher: alpha 0 is plain training, alpha 1 pulls the student's
distributions to the teacher's, bf16 and accumulation work, and a run resumes exactly with its teacher."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from llmlab.models import CausalLM, ModelConfig
from llmlab.models.io import model_state
from llmlab.train import TrainConfig, Trainer, causal_lm_loss
from llmlab.train.checkpoint import latest_checkpoint
from llmlab.train.distill import distillation_loss, soft_kl
from llmlab.train.trainer import get_batch

V = 11
MODEL = ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=16)


def logits_and_targets(seed=0, B=3, T=5):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, T, V, generator=g) * 2
    t = torch.randn(B, T, V, generator=g) * 3
    y = torch.randint(0, V, (B, T), generator=g)
    y[0, 1] = y[2, 4] = -100  # ignored targets (padding, prompts)
    return s, t, y


def written_out(s, t, y, alpha, temperature):
    """The loss from its definition, token by token, with explicit softmax and log."""
    total, n = 0.0, 0
    for b in range(y.shape[0]):
        for i in range(y.shape[1]):
            if y[b, i] == -100:
                continue
            ce = -torch.log(torch.exp(s[b, i, y[b, i]]) / torch.exp(s[b, i]).sum())
            p = torch.exp(t[b, i] / temperature) / torch.exp(t[b, i] / temperature).sum()
            q = torch.exp(s[b, i] / temperature) / torch.exp(s[b, i] / temperature).sum()
            kl = (p * (torch.log(p) - torch.log(q))).sum()
            total += (1 - alpha) * ce + alpha * temperature ** 2 * kl
            n += 1
    return total / n


@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.0), (0.3, 2.0), (1.0, 4.0), (0.9, 0.5)])
def test_loss_is_the_written_out_formula(alpha, temperature):
    s, t, y = logits_and_targets()
    loss, ce, kd = distillation_loss(s, t, y, alpha, temperature)  # computed in fp32, as training does
    torch.testing.assert_close(loss, written_out(s.double(), t.double(), y, alpha, temperature).float())
    torch.testing.assert_close(loss, (1 - alpha) * ce + alpha * temperature ** 2 * kd)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_kd_term_equals_torch_kl_div_over_the_counted_tokens(temperature):
    s, t, y = logits_and_targets(1)
    keep = (y != -100).flatten()
    log_q = F.log_softmax(s / temperature, -1).flatten(0, 1)[keep]
    log_p = F.log_softmax(t / temperature, -1).flatten(0, 1)[keep]
    # kl_div(input=log q, target=log p) = sum p (log p - log q); batchmean divides by the rows, the tokens
    torch.testing.assert_close(soft_kl(s, t, y, temperature), F.kl_div(log_q, log_p, log_target=True,
                                                                        reduction="batchmean"))
    torch.testing.assert_close(soft_kl(s, t, y, temperature) * keep.sum(),
                               F.kl_div(log_q, log_p.exp(), reduction="sum"))


def test_alpha_zero_is_the_plain_loss_exactly_and_ignored_targets_count_in_neither_term():
    s, t, y = logits_and_targets(2)
    loss, ce, _ = distillation_loss(s, t, y, 0.0, 2.0)
    assert torch.equal(loss, causal_lm_loss(s, y)) and torch.equal(ce, causal_lm_loss(s, y))
    t2 = t.clone()
    t2[0, 1] += 50 * torch.randn(V)  # the teacher disagrees wildly where the target is ignored
    s2 = s.clone()
    s2[2, 4] -= 30
    torch.testing.assert_close(distillation_loss(s2, t2, y, 0.6, 2.0)[0], distillation_loss(s, t, y, 0.6, 2.0)[0])
    t2[1, 1, 0] += 5  # ...but a counted position changes it
    assert not torch.allclose(distillation_loss(s, t2, y, 0.6, 2.0)[0], distillation_loss(s, t, y, 0.6, 2.0)[0])


@pytest.mark.parametrize("alpha,temperature", [(1.0, 1.0), (0.4, 3.0), (0.7, 0.5)])
def test_gradient_of_the_soft_term_is_the_closed_form(alpha, temperature):
    s, t, y = logits_and_targets(3)
    s = s.requires_grad_()
    kd = distillation_loss(s, t, y, alpha, temperature)[2]
    (alpha * temperature ** 2 * kd).backward()
    n = (y != -100).sum()
    expected = alpha * temperature * (F.softmax(s.detach() / temperature, -1) - F.softmax(t / temperature, -1))
    expected = expected / n * (y != -100)[..., None]  # (B, T, V); ignored positions get no gradient
    torch.testing.assert_close(s.grad, expected)


def test_bad_settings_are_refused():
    s, t, y = logits_and_targets()
    with pytest.raises(ValueError, match="alpha must be in"):
        distillation_loss(s, t, y, 1.5, 1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distillation_loss(s, t, y, 0.5, 0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        distillation_loss(s, t[..., :-1], y, 0.5, 1.0)


# --- the trainer with a teacher -------------------------------------------------------------------

def stream(n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.arange(n) % 20
    noise = torch.randint(0, 20, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.2, noise, base)


def make_teacher(seed=7):
    torch.manual_seed(seed)
    teacher = CausalLM(ModelConfig(vocab_size=20, dim=48, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=16,
                                   init_std=0.2))  # large weights: peaked distributions, far from a fresh student's
    return teacher.eval()


def make_trainer(run_dir, teacher=None, steps=8, **kw):
    torch.manual_seed(0)
    settings = dict(steps=steps, batch_size=4, seq_len=16, lr=1e-2, warmup_steps=2, eval_every=4, eval_batches=2,
                    checkpoint_every=3, log_every=1, device="cpu", grad_accum=2)
    cfg = TrainConfig(**{**settings, **kw})
    return Trainer(CausalLM(ModelConfig(**{**MODEL.__dict__, "dropout": 0.1})), cfg, stream(), stream(500, 1),
                   run_dir, teacher=teacher)


def records(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def parts(run_dir):
    return [(r["step"], r["loss"], r["ce"], r["kd"]) for r in records(run_dir) if "loss" in r]


def kl_to(teacher, student, seed=99):
    x, y = get_batch(stream(500, 2), 8, 16, seed)
    with torch.no_grad():
        return float(soft_kl(student.eval()(x), teacher(x), y, 1.0))


def test_alpha_zero_with_a_teacher_trains_the_same_weights_as_without_one(tmp_path):
    plain = make_trainer(tmp_path / "plain", steps=6)
    plain.fit()
    watched = make_trainer(tmp_path / "watched", make_teacher(), steps=6, kd_alpha=0.0)
    watched.fit()
    for a, b in zip(plain.model.parameters(), watched.model.parameters()):
        assert torch.equal(a, b)
    logged = [r for r in records(tmp_path / "watched") if "loss" in r]
    assert [r["loss"] for r in logged] == [r["loss"] for r in records(tmp_path / "plain") if "loss" in r]
    assert all(r["ce"] == pytest.approx(r["loss"]) and r["kd"] > 0 for r in logged)  # the KL is measured, not used


def test_alpha_one_moves_the_students_distributions_to_the_teachers(tmp_path):
    teacher = make_teacher()
    t = make_trainer(tmp_path, teacher, steps=40, kd_alpha=1.0, kd_temperature=2.0, eval_every=0)
    before = kl_to(teacher, t.model)
    t.fit()
    after = kl_to(teacher, t.model)
    data_only = make_trainer(tmp_path / "data", teacher, steps=40, kd_alpha=0.0, eval_every=0)
    data_only.fit()
    assert after < 0.8 * before, (before, after)
    assert after < 0.5 * kl_to(teacher, data_only.model)  # the data alone leads elsewhere
    logged = [r for r in records(tmp_path) if "loss" in r]
    assert logged[-1]["kd"] < 0.8 * logged[0]["kd"]  # the logged KL at T = 2 falls too
    assert all(r["loss"] == pytest.approx(4 * r["kd"], rel=1e-5) for r in logged)  # alpha 1: T^2 x KL, no data
    assert all(not p.requires_grad for p in t.teacher.parameters()) and not t.teacher.training


def test_the_teacher_is_not_in_checkpoints_and_a_run_resumes_exactly_with_it(tmp_path, crash_at):
    full = make_trainer(tmp_path / "full", make_teacher(), kd_alpha=0.5, kd_temperature=2.0)
    full.fit()
    crashing = make_trainer(tmp_path / "resumed", make_teacher(), kd_alpha=0.5, kd_temperature=2.0)
    crash_at(crashing, 5)  # dies in step 6; the last checkpoint is step 3
    ckpt = latest_checkpoint(tmp_path / "resumed" / "checkpoints")
    assert set(load_file(ckpt / "model.safetensors")) == set(model_state(crashing.model))  # the student only
    resumed = make_trainer(tmp_path / "resumed", make_teacher(), kd_alpha=0.5, kd_temperature=2.0)
    assert resumed.maybe_resume() and resumed.step == 3
    resumed.fit()
    assert parts(tmp_path / "resumed") == parts(tmp_path / "full")
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_bf16_autocast_distils_close_to_fp32(tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        t = make_trainer(tmp_path / precision, make_teacher(), steps=3, kd_alpha=0.5, precision=precision)
        runs[precision] = t.train_step()
    assert runs["bf16"]["kd"] == pytest.approx(runs["fp32"]["kd"], rel=0.05)
    assert runs["bf16"]["ce"] == pytest.approx(runs["fp32"]["ce"], rel=0.02)


def test_kd_alpha_without_a_teacher_is_refused(tmp_path):
    from llmlab.core.errors import InputError

    with pytest.raises(InputError, match="needs a teacher"):
        make_trainer(tmp_path, kd_alpha=0.5)
    with pytest.raises(InputError, match="kd_alpha must be in"):
        TrainConfig(kd_alpha=-0.1)
    with pytest.raises(InputError, match="kd_temperature must be > 0"):
        TrainConfig(kd_temperature=0)
