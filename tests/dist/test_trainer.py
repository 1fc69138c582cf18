"""Distributed pretraining equals single-process pretraining of the same config, and resumes."""

import dataclasses
import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from llmlab.cli.pretrain import layout_for, train_rank
from llmlab.core.errors import InputError
from llmlab.data import corpus_text
from llmlab.dist.launch import spawn
from llmlab.pipeline import preset, run_pretraining


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """The tiny preset, shortened, on 400 lines of pfr1998 (a user file: its last 20 lines are dev)."""
    corpus = tmp_path_factory.mktemp("corpus") / "pfr400.txt"
    corpus.write_text("\n".join(corpus_text("pfr1998", "dev")[:400]) + "\n", encoding="utf-8")
    return preset("tiny").replace(
        name="t", corpus=str(corpus), final_eval_tokens=2000, sample_tokens=4, prompts=("中国",),
        train=dataclasses.replace(preset("tiny").train, steps=4, batch_size=8, seq_len=32, eval_every=2,
                                  eval_batches=1, checkpoint_every=2, log_every=1),
    )


def _losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _assert_same_run(a, b, atol=1e-5):
    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)
    assert _losses(a) == pytest.approx(_losses(b), abs=1e-5)


@pytest.fixture(scope="module")
def single(tmp_path_factory, cfg):
    out = tmp_path_factory.mktemp("single")
    run_pretraining(cfg, out)
    return out / "t"


def test_data_parallel_run_equals_single_process_and_resumes(single, cfg, tmp_path):
    fig = spawn(train_rank, 2, cfg.to_dict(), str(tmp_path), False, 0, 1, 1, 0)
    assert fig[1] is None and fig[0]["layout"] == "dp2 x tp1 x pp1"
    run = tmp_path / "t"
    _assert_same_run(single, run)
    # lose the last checkpoint and the outputs: the rerun resumes at step 2 and ends where it did
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    shutil.rmtree(run / "model")
    spawn(train_rank, 2, cfg.to_dict(), str(tmp_path), False, 0, 1, 1, 0)
    _assert_same_run(single, run)
    # as if killed before its first checkpoint: the rerun starts over and logs each step once, not twice
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "model")
    spawn(train_rank, 2, cfg.to_dict(), str(tmp_path), False, 0, 1, 1, 0)
    _assert_same_run(single, run)
    # tensor parallelism would save beside these checkpoints and retrain from step 0: refused, nothing touched
    before = _files(run)
    with pytest.raises(InputError, match="written with --tp 1 --pp 1, this run has --tp 2 --pp 1"):
        spawn(train_rank, 2, cfg.to_dict(), str(tmp_path), False, 1, 2, 1, 0)
    assert _files(run) == before


def test_layouts_must_fill_the_processes():
    assert str(layout_for(8, 0, 2, 2)) == "dp2 x tp2 x pp2"
    with pytest.raises(InputError, match="cannot hold"):
        layout_for(6, 0, 4, 1)
    with pytest.raises(InputError, match="there are 4 processes"):
        layout_for(4, 2, 2, 2)


@pytest.mark.parametrize("dp,tp,pp,schedule", [(1, 2, 1, "1f1b"), (1, 1, 2, "gpipe"), (2, 1, 2, "1f1b"),
                                               (1, 2, 2, "1f1b")])
def test_tensor_pipeline_and_hybrid_runs_equal_single_process(single, cfg, tmp_path, dp, tp, pp, schedule):
    fig = spawn(train_rank, dp * tp * pp, cfg.to_dict(), str(tmp_path), False, dp, tp, pp, 2, schedule)
    assert fig[0]["layout"] == f"dp{dp} x tp{tp} x pp{pp}"
    run = tmp_path / "t"
    _assert_same_run(single, run)
    if (dp, tp, pp) == (1, 2, 1):
        # one process, or pipeline stages that would save over shard tp0-pp0: refused, nothing touched
        before = _files(run)
        with pytest.raises(InputError, match="written with --tp 2 --pp 1.*same --tp/--pp, or --fresh"):
            run_pretraining(cfg, tmp_path)
        with pytest.raises(InputError, match="written with --tp 2 --pp 1, this run has --tp 1 --pp 2"):
            spawn(train_rank, 2, cfg.to_dict(), str(tmp_path), False, 1, 1, 2, 2, schedule)
        assert _files(run) == before
    if (tp, pp) != (2, 2):
        return
    # per-shard checkpoints: one shard lost its last step, so every shard resumes from step 2
    assert sorted(d.name for d in (run / "checkpoints").iterdir()) == ["tp0-pp0", "tp0-pp1", "tp1-pp0", "tp1-pp1"]
    shutil.rmtree(run / "checkpoints" / "tp1-pp0" / "step-00000004")
    shutil.rmtree(run / "model")
    spawn(train_rank, 4, cfg.to_dict(), str(tmp_path), False, dp, tp, pp, 2, schedule)
    _assert_same_run(single, run)
    with pytest.raises(InputError, match="written with --tp 2 --pp 2, this run has --tp 2 --pp 1"):
        spawn(train_rank, 4, cfg.to_dict(), str(tmp_path), False, 2, 2, 1, 2, schedule)


def test_pretrain_cli_refuses_a_layout_before_starting_anything(tmp_path, capsys):
    from llmlab.cli import main

    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path), "--tp", "2"]) == 2
    assert "need several processes" in capsys.readouterr().err
    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path), "--nproc", "3", "--tp", "2"]) == 2
    assert "cannot hold tp 2" in capsys.readouterr().err
    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path), "--nproc", "0"]) == 2
    assert "--nproc must be >= 1" in capsys.readouterr().err
    for extra in ([], ["--nproc", "2", "--tp", "2"]):  # micro-batches without pipeline stages would be ignored
        assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path), "--micro-batches", "4", "--steps", "1",
                     *extra]) == 2
        assert "--micro-batches splits each step over pipeline stages" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flags, says", [
    (["--nproc", "4", "--tp", "4"], r"n_kv_head \(2\) must be divisible by the tensor-parallel size \(4\)"),
    (["--nproc", "2", "--tp", "2", "--precision", "bf16"], "tensor and pipeline parallel runs train in fp32"),
    (["--nproc", "3", "--pp", "3", "--batch-size", "3"], r"pipeline stages must be in \[1, n_layer=2\], got 3"),
    (["--nproc", "3"], "batch_size 32 .* must be divisible by dp 3"),
    (["--nproc", "2", "--pp", "2", "--micro-batches", "3"], "per-replica batch 32 .* the 3 pipeline micro-batches"),
    (["--nproc", "2", "--tp", "2", "--n-experts", "4"], "tensor parallelism does not shard mixture-of-experts"),
    (["--nproc", "2", "--pp", "2", "--n-experts", "4"], "pipeline stages do not carry MoE routing losses"),
    (["--nproc", "2", "--tp", "2", "--dropout", "0.1"], "tensor parallelism needs dropout=0"),
])
def test_settings_a_layout_cannot_take_are_refused_before_any_process_starts(tmp_path, capsys, monkeypatch, flags,
                                                                             says):
    # they were found by DistributedTrainer, in every rank, once each had read and tokenized the corpus
    from llmlab.cli import main

    def no_spawn(*args, **kw):
        raise AssertionError("spawned")

    monkeypatch.setattr("llmlab.dist.launch.spawn", no_spawn)
    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err) and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


MOE = dict(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8, n_experts=8, moe_top_k=1,
           moe_capacity_factor=0, moe_aux_loss_coef=0)  # capacity and balancing loss are per replica: off
MOE_TRAIN = dict(steps=3, batch_size=2, seq_len=4, lr=1e-2, warmup_steps=0, eval_every=0, checkpoint_every=0,
                 log_every=1, device="cpu")


def _moe_run(run_dir, mesh=None):
    """A few steps of a tiny MoE with 8 experts and 8 tokens a step: some expert gets no token each step."""
    from llmlab.dist.trainer import DistributedTrainer
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model, cfg = CausalLM(ModelConfig(**MOE)), TrainConfig(**MOE_TRAIN)
    tokens = torch.randint(0, 16, (200,), generator=torch.Generator().manual_seed(0))
    t = Trainer(model, cfg, tokens, None, run_dir) if mesh is None else \
        DistributedTrainer(model, cfg, tokens, None, run_dir, mesh)
    t.fit()
    return {k: v.detach().numpy().copy() for k, v in t.model.state_dict().items()}  # numpy: leaves a process whole


def _moe_worker(rank, world, run_dir):
    from llmlab.dist.mesh import build_mesh
    from llmlab.dist.planner import Layout

    return _moe_run(run_dir, build_mesh(Layout(dp=2)))


def test_data_parallel_moe_leaves_experts_without_tokens_alone_as_one_process_does(tmp_path):
    want = _moe_run(tmp_path / "single")
    for got in spawn(_moe_worker, 2, str(tmp_path / "dp")):
        for k in want:
            torch.testing.assert_close(torch.from_numpy(got[k]), torch.from_numpy(want[k]), atol=1e-6, rtol=0, msg=k)


def _dropout_losses(run_dir, batch_size, mesh=None):
    """Each micro-batch's loss (before any averaging over replicas) in 2 steps of a model with dropout on
    windows that are all the same: whatever differs between rows comes from the dropout masks."""
    from llmlab.dist.trainer import DistributedTrainer
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8,
                                 dropout=0.5))
    cfg = TrainConfig(steps=2, batch_size=batch_size, seq_len=4, lr=1e-2, warmup_steps=0, eval_every=0,
                      checkpoint_every=0, log_every=1, device="cpu")
    tokens = torch.full((200,), 3)
    t = Trainer(model, cfg, tokens, None, run_dir) if mesh is None else \
        DistributedTrainer(model, cfg, tokens, None, run_dir, mesh)
    losses, micro_step = [], t.micro_step
    t.micro_step = lambda x, y: losses.append(float(loss := micro_step(x, y))) or loss
    t.fit()
    return losses


def _dropout_worker(rank, world, run_dir):
    from llmlab.dist.mesh import build_mesh
    from llmlab.dist.planner import Layout

    return _dropout_losses(run_dir, 4, build_mesh(Layout(dp=2)))


def test_data_parallel_replicas_draw_their_own_dropout_masks(tmp_path):
    first, second = spawn(_dropout_worker, 2, str(tmp_path / "dp"))
    # replica 0's first step is one process's with its 2 rows (later steps follow the averaged gradients)
    assert first[0] == _dropout_losses(tmp_path / "single", 2)[0]
    assert all(a != b for a, b in zip(first, second))  # the same rows, other masks (they were equal)


def _stage_masks_worker(rank, world, run_dir):
    """The first dropout mask each pipeline stage's first layer draws in one training step."""
    from llmlab.dist.mesh import build_mesh
    from llmlab.dist.planner import Layout
    from llmlab.dist.trainer import DistributedTrainer
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.train import TrainConfig

    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=16, dim=16, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=8,
                                 dropout=0.5))
    cfg = TrainConfig(steps=1, batch_size=4, seq_len=4, warmup_steps=0, eval_every=0, checkpoint_every=0,
                      log_every=1, device="cpu")
    t = DistributedTrainer(model, cfg, torch.full((200,), 3), None, run_dir, build_mesh(Layout(pp=2)))
    masks = []
    t.model.layers[0].drop.register_forward_hook(lambda m, i, out: masks.append((out == 0).numpy().copy()))
    t.fit()
    return masks[0]


def test_pipeline_stages_draw_their_own_dropout_masks(tmp_path):
    """Each stage seeded torch's RNG alike, so layer 1 (stage 1) dropped the units layer 0 (stage 0) did."""
    first, second = spawn(_stage_masks_worker, 2, str(tmp_path / "pp"))
    assert first.shape == second.shape and 0.2 < first.mean() < 0.8
    assert (first != second).any()


def _keep_one_worker(rank, world, run_dir, crash_at):
    """4 steps of a tiny tp2 run keeping one checkpoint, saved every 2 steps; with `crash_at`, shard tp1
    fails when saving that step, once shard tp0 has saved it. Returns (resumed, last step)."""
    import pathlib
    import time

    from llmlab.dist.mesh import build_mesh
    from llmlab.dist.planner import Layout
    from llmlab.dist.trainer import DistributedTrainer
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.train import TrainConfig

    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8))
    cfg = TrainConfig(steps=4, batch_size=2, seq_len=4, lr=1e-2, warmup_steps=0, eval_every=0, checkpoint_every=2,
                      keep_checkpoints=1, log_every=1, device="cpu")
    t = DistributedTrainer(model, cfg, torch.arange(200) % 16, None, run_dir, build_mesh(Layout(tp=2)))
    save = t.save
    if crash_at and rank == 1:
        def save():
            if t.step == crash_at:
                other = pathlib.Path(run_dir) / "checkpoints" / "tp0-pp0" / f"step-{crash_at:08d}" / "manifest.json"
                for _ in range(600):
                    if other.exists():
                        break
                    time.sleep(0.1)
                raise RuntimeError("killed while saving")
            return DistributedTrainer.save(t)
    t.save = save
    resumed = t.maybe_resume()
    t.fit()
    return resumed, t.step


def test_a_crash_between_the_shards_saves_leaves_a_step_every_shard_holds(tmp_path):
    # keeping one checkpoint, each shard deleted step 2 as soon as it had written step 4: shard tp0 held {4},
    # shard tp1, which died before writing it, {2}, and the run could not resume (it blamed the layout)
    ckpts = tmp_path / "checkpoints"

    def steps():
        return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted(ckpts.iterdir())}

    with pytest.raises(RuntimeError, match="killed while saving"):
        spawn(_keep_one_worker, 2, str(tmp_path), 4)
    assert steps() == {"tp0-pp0": ["step-00000002", "step-00000004"], "tp1-pp0": ["step-00000002"]}
    assert spawn(_keep_one_worker, 2, str(tmp_path), 0) == [(True, 4)] * 2  # resumed from step 2
    assert steps() == {"tp0-pp0": ["step-00000004"], "tp1-pp0": ["step-00000004"]}
    # shards left apart (as older versions did): the error says so, not that the layout differs
    (ckpts / "tp1-pp0" / "step-00000004").rename(ckpts / "tp1-pp0" / "step-00000002")
    with pytest.raises(InputError, match=r"have no step in common \(tp0-pp0: 4; tp1-pp0: 2\).*--fresh"):
        spawn(_keep_one_worker, 2, str(tmp_path), 0)
