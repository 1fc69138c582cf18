import json
import math
import shutil

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.train import TrainConfig, Trainer, causal_lm_loss, cosine_with_warmup, evaluate_loss
from llmlab.train.checkpoint import check_layout, latest_checkpoint, load_checkpoint, save_checkpoint
from llmlab.train.trainer import get_batch

MODEL = ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=16, dropout=0.1)


def stream(n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a learnable stream: mostly counting mod 20, some noise
    base = torch.arange(n) % 20
    noise = torch.randint(0, 20, (n,), generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.2, noise, base)


def make_trainer(run_dir, steps=8, **kw):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=steps, batch_size=4, seq_len=16, lr=1e-2, warmup_steps=2, eval_every=4, eval_batches=2,
                      checkpoint_every=3, log_every=1, device="cpu", grad_accum=2, **kw)
    return Trainer(CausalLM(MODEL), cfg, stream(), stream(500, 1), run_dir)


def losses(run_dir):
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def test_causal_lm_loss_is_mean_next_token_nll():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, -100], [0, 4, 3]])
    logp = logits.log_softmax(-1)
    picked = [-logp[b, t, targets[b, t]] for b in range(2) for t in range(3) if targets[b, t] >= 0]
    torch.testing.assert_close(causal_lm_loss(logits, targets), torch.stack(picked).mean())


def test_schedule_warms_up_then_decays_to_min():
    lrs = [cosine_with_warmup(s, 1.0, 10, 100, 0.1) for s in range(101)]
    assert lrs[:10] == sorted(lrs[:10]) and lrs[9] == 1.0
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[100] == 0.1


def test_inverse_sqrt_without_warmup_decays_from_the_peak():
    from llmlab.train.schedule import inverse_sqrt

    for step in range(50):
        assert inverse_sqrt(step, 1e-3, 0, 50, 1e-5) == pytest.approx(max(1e-5, 1e-3 / math.sqrt(step + 1)))
        if step >= 4:  # with warmup, the same rule after it: max_lr * sqrt(warmup / (step + 1))
            assert inverse_sqrt(step, 1e-3, 4, 50) == pytest.approx(1e-3 * math.sqrt(4 / (step + 1)))


def _hf_lr(make, max_lr, **kw):
    """The learning rate at step s of a transformers scheduler (a LambdaLR multiplier times max_lr)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    mult = make(opt, **kw).lr_lambdas[0]
    return lambda s: max_lr * mult(s)


@pytest.mark.parametrize("warmup,total", [(0, 6), (1, 5), (3, 4), (4, 20), (10, 100)])
def test_schedules_match_transformers(warmup, total):
    """Each schedule against transformers' at the same max_lr (not 1, so max_lr * x is not x / max_lr)
    and min_lr. Our warmup counts step s as the (s+1)-th, so it reaches max_lr at its last warmup step:
    it matches transformers' step s + 1 there, and step s from the end of warmup to `total` (totals a
    single step past warmup included). Past `total` the decaying schedules stay at min_lr (transformers'
    cosine would rise again, its linear one fall to 0)."""
    opt = pytest.importorskip("transformers.optimization")
    from llmlab.train.schedule import SCHEDULES

    max_lr, min_lr = 3e-3, 3e-4
    decay = int(total * 0.2)
    refs = {
        "cosine": _hf_lr(opt.get_cosine_with_min_lr_schedule_with_warmup, max_lr, num_warmup_steps=warmup,
                         num_training_steps=total, min_lr_rate=min_lr / max_lr),
        "linear": _hf_lr(opt.get_wsd_schedule, max_lr, num_warmup_steps=warmup, num_stable_steps=0,
                         num_decay_steps=total - warmup, decay_type="linear", min_lr_ratio=min_lr / max_lr),
        "constant": _hf_lr(opt.get_constant_schedule_with_warmup, max_lr, num_warmup_steps=warmup),
        "wsd": _hf_lr(opt.get_wsd_schedule, max_lr, num_warmup_steps=warmup, num_stable_steps=total - decay - warmup,
                      num_decay_steps=decay, decay_type="linear", min_lr_ratio=min_lr / max_lr),
    }
    warm = refs["constant"]  # (transformers' WSD warms up from min_lr, ours from 0 as its other schedules)
    for name, ref in refs.items():
        for s in range(total + 4):
            want = warm(s + 1) if s < warmup else ref(s if name == "constant" else min(s, total))
            got = SCHEDULES[name](s, max_lr, warmup, total, min_lr)
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (name, s)


def test_batches_are_windows_of_the_stream_and_depend_only_on_seed():
    tokens = torch.arange(100)
    x, y = get_batch(tokens, 3, 8, seed=5)
    assert torch.equal(y, x + 1)  # targets are inputs shifted by one
    assert torch.equal(x, get_batch(tokens, 3, 8, seed=5)[0])


def test_training_reduces_loss(tmp_path):
    t = make_trainer(tmp_path, steps=40)
    before, _ = evaluate_loss(t.model, t.val_tokens, 16)
    t.fit()
    after, _ = evaluate_loss(t.model, t.val_tokens, 16)
    assert after < before - 0.5


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, crash_at):
    full = make_trainer(tmp_path / "full")
    full.fit()

    crashing = make_trainer(tmp_path / "resumed")
    crash_at(crashing, 5)  # dies in step 6; the last checkpoint is step 3
    assert latest_checkpoint(tmp_path / "resumed" / "checkpoints").name == "step-00000003"

    resumed = make_trainer(tmp_path / "resumed")
    assert resumed.maybe_resume() and resumed.step == 3
    resumed.fit()
    assert losses(tmp_path / "resumed") == losses(tmp_path / "full")  # dropout and batches included
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_corrupt_or_truncated_checkpoint_is_refused_whole(tmp_path):
    t = make_trainer(tmp_path, steps=3)
    t.fit()
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    fresh = make_trainer(tmp_path / "other")
    before = [p.detach().clone() for p in fresh.model.parameters()]
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint(ckpt, fresh.model, fresh.optimizer)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint(ckpt, fresh.model, fresh.optimizer)
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    load_checkpoint(ckpt, make_trainer(tmp_path / "x").model)  # restored bytes load again
    (ckpt / "state.json").unlink()
    with pytest.raises(InputError, match="missing state.json"):
        load_checkpoint(ckpt, fresh.model, fresh.optimizer)
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.model.parameters()))


@pytest.mark.parametrize("text", ["[]", "null", '"model.safetensors"'])
def test_a_manifest_that_is_json_but_not_an_object_is_refused(tmp_path, text):
    """A manifest.json holding valid JSON of another shape ended resume in an AttributeError traceback."""
    make_trainer(tmp_path, steps=2).fit()
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    (ckpt / "manifest.json").write_text(text)
    with pytest.raises(InputError, match="no readable manifest.json"):
        load_checkpoint(ckpt, make_trainer(tmp_path / "x").model)


def test_a_corrupt_newest_checkpoint_names_itself_and_the_one_deleting_it_resumes_from(tmp_path):
    make_trainer(tmp_path, steps=8).fit()  # keeps step 6 and step 8
    newest = latest_checkpoint(tmp_path / "checkpoints")
    (newest / "optimizer.safetensors").write_bytes(b"torn")
    with pytest.raises(InputError, match=r"step-00000008.*corrupt.*Delete that folder to resume from the previous "
                                         r"one, step-00000006"):
        make_trainer(tmp_path, steps=8).maybe_resume()
    shutil.rmtree(newest)
    resumed = make_trainer(tmp_path, steps=8)
    assert resumed.maybe_resume() and resumed.step == 6


def test_an_empty_or_partial_step_folder_is_skipped_with_a_warning_and_kept(tmp_path, caplog):
    make_trainer(tmp_path, steps=8).fit()  # keeps step 6 and step 8
    ckpts = tmp_path / "checkpoints"
    (ckpts / "step-00000010").mkdir()  # saves are atomic: only something else leaves these
    (ckpts / "step-00000009").mkdir()
    shutil.copy(ckpts / "step-00000008" / "model.safetensors", ckpts / "step-00000009")
    resumed = make_trainer(tmp_path, steps=8)
    with caplog.at_level("WARNING", logger="llmlab.train.checkpoint"):
        assert resumed.maybe_resume() and resumed.step == 8
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "step-00000009" in warned[0] and "step-00000010" in warned[1]
    assert all("not a complete checkpoint" in w for w in warned)
    assert (ckpts / "step-00000010").is_dir() and (ckpts / "step-00000009" / "model.safetensors").is_file()


def test_the_remains_of_a_killed_save_are_named_when_resuming_and_kept(tmp_path, caplog):
    make_trainer(tmp_path, steps=8).fit()
    ckpts = tmp_path / "checkpoints"
    leftover = ckpts / ".step-00000010.k3x9q2.tmp"  # what atomic_folder builds in, as kill -9 leaves it
    shutil.copytree(ckpts / "step-00000008", leftover)
    (leftover / "manifest.json").unlink()
    resumed = make_trainer(tmp_path, steps=8)
    with caplog.at_level("WARNING", logger="llmlab.train.checkpoint"):
        assert resumed.maybe_resume() and resumed.step == 8
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and leftover.name in warned[0] and "stopped" in warned[0]
    assert (leftover / "model.safetensors").is_file()


def test_checkpoints_of_a_sharded_run_are_refused_not_retrained_over(tmp_path):
    t = make_trainer(tmp_path, steps=2)
    for shard in ("tp0-pp0", "tp1-pp0"):  # where a --tp 2 run saves
        save_checkpoint(tmp_path / "checkpoints" / shard, 2, t.model, t.optimizer)
    with pytest.raises(InputError, match="written with --tp 2 --pp 1, this run has --tp 1 --pp 1"):
        make_trainer(tmp_path, steps=2).maybe_resume()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_sharded_run_is_known_by_its_shard_folders_and_what_its_checkpoints_record(tmp_path):
    # a --tp 2 run whose shard tp1 was killed during its first save (its folder holds no step) looked like a
    # --tp 1 run: --tp 2 was refused, and one process trained from step 0 beside the shards
    t, ckpts = make_trainer(tmp_path, steps=2), tmp_path / "checkpoints"
    save_checkpoint(ckpts / "tp0-pp0", 2, t.model, t.optimizer, extra={"layout": "dp1 x tp2 x pp1"})
    (ckpts / "tp1-pp0").mkdir()
    check_layout(ckpts, tp=2, pp=1)
    with pytest.raises(InputError, match="written with --tp 2 --pp 1, this run has --tp 1 --pp 1"):
        make_trainer(tmp_path, steps=2).maybe_resume()
    (ckpts / "tp1-pp0").rmdir()  # killed before its first save: tp0's checkpoint says tp 2
    check_layout(ckpts, tp=2, pp=1)
    with pytest.raises(InputError, match="written with --tp 2 --pp 1, this run has --tp 1 --pp 2"):
        check_layout(ckpts, tp=1, pp=2)
    shutil.rmtree(ckpts / "tp0-pp0")
    (ckpts / "tp0-pp0").mkdir()  # a shard folder and nothing else: some sharded run, not one process's
    check_layout(ckpts, tp=2, pp=1)
    with pytest.raises(InputError, match="written with a tensor/pipeline layout of unknown size, this run has --tp 1"):
        make_trainer(tmp_path, steps=2).maybe_resume()
    assert not list(ckpts.glob("step-*"))


def test_checkpoints_are_pruned_and_leave_no_temp_dirs(tmp_path):
    make_trainer(tmp_path, steps=10).fit()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000009", "step-00000010"]
    # re-saving a step replaces it whole (a rerun of a finished run does), leaving no temporary folder
    t = make_trainer(tmp_path / "other", steps=1)
    with torch.no_grad():
        t.model.embed_tokens.weight.add_(1.0)
    save_checkpoint(tmp_path / "checkpoints", 10, t.model, t.optimizer)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == names
    fresh = make_trainer(tmp_path / "third", steps=1)
    load_checkpoint(tmp_path / "checkpoints" / "step-00000010", fresh.model, fresh.optimizer)
    assert torch.equal(fresh.model.embed_tokens.weight, t.model.embed_tokens.weight)


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    t = make_trainer(tmp_path, steps=1000, max_minutes=1e-6)
    out = t.fit()
    assert out["stopped_early"] and t.step == 1
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step-00000001"


def test_a_run_whose_last_step_crosses_the_time_limit_is_finished_not_stopped_early(tmp_path):
    """Its report said "stopped early: time limit" and told the user to run again (make run's 600th step
    ending past 11 minutes would have)."""
    t = make_trainer(tmp_path, steps=1, max_minutes=1e-6)
    assert not t.fit()["stopped_early"] and t.step == 1


def test_bad_train_config_is_a_clear_error():
    with pytest.raises(InputError, match="lr must be in"):
        TrainConfig(lr=0)
    with pytest.raises(InputError, match="eval_batches must be > 0, got 0"):  # not a crash at the first eval
        TrainConfig(eval_batches=0)
    for name in ("weight_decay", "grad_clip", "max_minutes"):  # not silently no clipping, one step, or growth
        with pytest.raises(InputError, match=f"{name} must be >= 0, got -1"):
            TrainConfig(**{name: -1})
    with pytest.raises(InputError, match="seq_len 32 exceeds"):
        Trainer(CausalLM(MODEL), TrainConfig(seq_len=32, device="cpu"), stream(), None, "/tmp/unused")


def test_evaluate_loss_scores_every_token_once():
    model = CausalLM(MODEL).eval()
    tokens = stream(50)
    loss, n = evaluate_loss(model, tokens, 16, batch_size=2)
    assert n == 49
    with torch.no_grad():
        logits = torch.cat([model(tokens[s:s + 16][None])[0] for s in range(0, 49, 16)])[:49]
    expected = torch.nn.functional.cross_entropy(logits, tokens[1:])
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert math.isfinite(loss)
    grad_on = []  # evaluation builds no graph (a misplaced decorator once left it on)
    model.register_forward_hook(lambda *_: grad_on.append(torch.is_grad_enabled()))
    evaluate_loss(model, tokens, 16, batch_size=2)
    assert grad_on and not any(grad_on)


def test_gradient_checkpointing_gives_the_same_gradients_and_saves_less():
    from llmlab.train.memory import measure_saved_bytes

    cfg = ModelConfig(vocab_size=20, dim=32, n_layer=3, n_head=4, max_seq_len=16)
    torch.manual_seed(0)
    model = CausalLM(cfg).train()
    x = stream(200)[:64].view(4, 16)
    grads = []
    for flag in (False, True):
        model.gradient_checkpointing = flag
        model.zero_grad()
        causal_lm_loss(model(x), x.roll(-1, 1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    full = measure_saved_bytes(model.train(), x, x)
    model.gradient_checkpointing = False
    assert full < measure_saved_bytes(model, x, x)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_training_learns_and_resumes(tmp_path, precision):
    t = make_trainer(tmp_path, steps=30, precision=precision, grad_checkpoint=True)
    before, _ = evaluate_loss(t.model, t.val_tokens, 16)
    t.fit()
    after, _ = evaluate_loss(t.model, t.val_tokens, 16)
    assert after < before - 0.3
    again = make_trainer(tmp_path, steps=30, precision=precision, grad_checkpoint=True)
    assert again.maybe_resume() and again.step == 30
    if precision == "fp16":
        assert again.scaler.state_dict() == t.scaler.state_dict()


@pytest.mark.parametrize("keep, steps", [(0, [3, 6, 8]), (1, [8]), (2, [6, 8])])
def test_keep_checkpoints_keeps_the_newest_and_0_keeps_all(tmp_path, keep, steps):
    """--keep-checkpoints's help says 0 keeps every one; the others keep the newest `keep`."""
    from llmlab.train.checkpoint import checkpoint_step, list_checkpoints

    make_trainer(tmp_path, steps=8, keep_checkpoints=keep).fit()
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path / "checkpoints")] == steps
