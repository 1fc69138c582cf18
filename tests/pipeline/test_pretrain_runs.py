"""Reruns of a small pretraining run: what resumes, what is refused, and what the report says."""

import json
import time

import pytest

from llmlab.core.errors import InputError
from llmlab.models import ModelConfig
from llmlab.pipeline import RunConfig, run_pretraining
from llmlab.train import TrainConfig


def tiny(corpus, **train) -> RunConfig:
    """A one-layer model on a small user corpus, a few steps: seconds on a CPU."""
    model = ModelConfig(dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16)
    steps = dict(steps=4, batch_size=2, seq_len=8, warmup_steps=1, eval_every=2, eval_batches=1, checkpoint_every=2,
                 log_every=1, device="cpu")
    return RunConfig(name="t", corpus=str(corpus), model=model, train=TrainConfig(**{**steps, **train}),
                     prompts=("a",), sample_tokens=2)


def write_corpus(path, alphabet: str):
    path.write_text("".join(alphabet[i % 5:] + alphabet[: i % 5] + "\n" for i in range(60)), encoding="utf-8")
    return path


def files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_changed_corpus_is_refused_not_resumed_with_other_ids(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    cfg = tiny(corpus)
    run_pretraining(cfg, tmp_path / "runs")
    run = tmp_path / "runs" / "t"
    before = files(run)
    write_corpus(corpus, "vwxyz")  # the same vocabulary size, other characters: every id means another one
    with pytest.raises(InputError, match="trained on other data"):
        run_pretraining(cfg, tmp_path / "runs")
    assert files(run) == before
    run_pretraining(cfg, tmp_path / "runs", fresh=True)  # --fresh starts over on the new text
    assert "v" in json.loads((run / "model" / "tokenizer.json").read_text())["model"]["vocab"]


def test_the_optimizer_experiment_leaves_a_run_of_the_same_name_alone_and_resumes_its_own(tmp_path):
    from llmlab.pipeline.optimizers import compare_optimizers

    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    run_pretraining(cfg.replace(name="adam"), tmp_path / "runs")  # a user's run that happens to be named adam
    before = files(tmp_path / "runs")
    with pytest.raises(InputError, match="adam' holds a run with a different config.*another --out"):
        compare_optimizers(cfg, tmp_path / "runs", ("sgd", "adam"), steps=2)
    assert files(tmp_path / "runs") == before  # nothing trained, not even sgd
    first = compare_optimizers(cfg, tmp_path / "exp", ("sgd", "adam"), steps=2)
    curves = {n: (tmp_path / "exp" / n / "metrics.jsonl").read_text() for n in ("sgd", "adam")}
    again = compare_optimizers(cfg, tmp_path / "exp", ("sgd", "adam"), steps=2)  # resumes: nothing retrains
    assert {n: (tmp_path / "exp" / n / "metrics.jsonl").read_text() for n in ("sgd", "adam")} == curves
    assert [r["val_loss"] for r in again] == pytest.approx([r["val_loss"] for r in first])


def test_a_run_stopped_by_its_time_limit_goes_on_when_rerun_with_another_limit(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    first = run_pretraining(tiny(corpus, max_minutes=1e-6), tmp_path / "runs")
    assert first["stopped_early"] and first["steps"] == 1
    again = run_pretraining(tiny(corpus, max_minutes=1e-6), tmp_path / "runs")  # a limit per invocation
    assert again["stopped_early"] and again["steps"] == 2
    done = run_pretraining(tiny(corpus, max_minutes=60), tmp_path / "runs")  # not a different run: resumed
    assert not done["stopped_early"] and done["steps"] == 4
    steps = [r["step"] for r in map(json.loads, (tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines())
             if "loss" in r]
    assert steps == [1, 2, 3, 4]


def test_rerunning_a_finished_run_reports_its_recorded_loss_and_whole_time(tmp_path):
    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    first = run_pretraining(cfg, tmp_path / "runs")
    t0 = time.perf_counter()
    again = run_pretraining(cfg, tmp_path / "runs")  # trains no step
    rerun = time.perf_counter() - t0
    assert again["steps"] == 4 and again["final_train_loss"] == first["final_train_loss"]
    assert again["train_seconds"] == first["train_seconds"]
    assert again["wall_seconds"] > first["train_seconds"] + rerun  # the first session counts, not the rerun alone
    assert f"{first['final_train_loss']:.4f}" in (tmp_path / "runs" / "t" / "report.md").read_text()
