"""The experiments' --out folders: a user's files are never replaced, an experiment's own earlier output is."""

import dataclasses
import json

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.models import ModelConfig
from llmlab.pipeline import RunConfig
from llmlab.pipeline.extractors import compare_extractors
from llmlab.pipeline.extrapolation import ExtrapolationConfig, run_extrapolation
from llmlab.pipeline.gradflow import run_gradflow
from llmlab.train import TrainConfig

EXPERIMENTS = {"gradflow": ["gradflow", "--depth", "2", "--width", "4"],
               "extractors": ["extractors", "--steps", "2"],
               "optimizers": ["optimizers", "--steps", "2", "--only", "sgd"],
               "extrapolation": ["extrapolation", "--steps", "2"]}


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny(corpus) -> RunConfig:
    """A one-layer model on a small user corpus, two steps: seconds on a CPU."""
    corpus.write_text("".join("abcde"[i % 5:] + "abcde"[: i % 5] + "\n" for i in range(200)), encoding="utf-8")
    model = ModelConfig(dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16)
    train = TrainConfig(steps=2, batch_size=2, seq_len=8, warmup_steps=1, eval_every=0, checkpoint_every=0,
                        log_every=1, device="cpu")
    return RunConfig(name="t", corpus=str(corpus), model=model, train=train)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_an_out_folder_holding_the_users_files_is_refused_before_anything_runs(experiment, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "lstm").mkdir(parents=True)  # a pretrain run named like one of the extractors
    (out / "lstm" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5}\n')
    (out / "results.json").write_text('{"mine": 1}\n')
    (out / "report.md").write_text("# my notes\n")
    before = files(out)
    assert main([*EXPERIMENTS[experiment], "--out", str(out)]) == 2
    assert "holds files that are not its own (lstm, report.md, results.json)" in capsys.readouterr().err
    assert files(out) == before and sorted(p.name for p in out.iterdir()) == ["lstm", "report.md", "results.json"]


def test_gradflow_replaces_its_own_output_and_no_other_experiments(tmp_path, capsys):
    run_gradflow(tmp_path, ("tanh",), depth=2, width=4)
    run_gradflow(tmp_path, ("relu",), depth=3, width=4)  # its own earlier output: replaced
    assert json.loads((tmp_path / "results.json").read_text())["depth"] == 3
    assert json.loads((tmp_path / "experiment.json").read_text())["activations"] == ["relu"]
    before = files(tmp_path)
    for argv in (EXPERIMENTS["extractors"], EXPERIMENTS["optimizers"]):
        assert main([*argv, "--out", str(tmp_path)]) == 2
        assert "holds files that are not its own (experiment.json, gradflow.md" in capsys.readouterr().err
    assert files(tmp_path) == before


def test_extractors_rerun_into_their_own_output_but_not_over_a_file_in_a_models_folder(tmp_path):
    cfg = tiny(tmp_path / "c.txt")
    out = tmp_path / "ext"
    compare_extractors(cfg, out)
    again = compare_extractors(cfg, out)  # trained from scratch again: the same curves, each record once
    assert [len(r["curve"]) for r in again] == [2, 2, 2]
    assert len((out / "lstm" / "metrics.jsonl").read_text().splitlines()) == 2
    (out / "lstm" / "notes.txt").write_text("mine")
    before = files(out)
    with pytest.raises(InputError, match=r"run folder '.*lstm' holds files that are not its own \(notes.txt\)"):
        compare_extractors(cfg, out)
    assert files(out) == before


def test_extrapolation_reruns_into_its_own_output_but_not_over_a_file_in_a_schemes_folder(tmp_path):
    run = tiny(tmp_path / "c.txt")
    run = run.replace(tokenizer="char", train=dataclasses.replace(run.train, seq_len=16))
    cfg = ExtrapolationConfig(run=run, lengths=(16,), eval_tokens=0, positions=("rope",), rope_scalings=())
    out = tmp_path / "x"
    run_extrapolation(cfg, out)
    run_extrapolation(cfg, out)
    assert len((out / "rope" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "rope" / "model" / "model.safetensors").is_file()
    (out / "rope" / "mine.txt").write_text("mine")
    before = files(out)
    with pytest.raises(InputError, match=r"run folder '.*rope' holds files that are not its own \(mine.txt\)"):
        run_extrapolation(cfg, out)
    assert files(out) == before
