"""`llmlab pretrain --teacher DIR --kd-alpha A --kd-temperature T`: the flags reach the run, the teacher must
share the student's tokenizer and cover its context, and a resume must see the same teacher weights."""

import json
import shutil

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.pipeline import RunConfig, run_pretraining
from llmlab.train import TrainConfig

TINY = ["--dim", "16", "--n-layer", "1", "--n-head", "2", "--n-kv-head", "2", "--max-seq-len", "16", "--steps", "4",
        "--batch-size", "2", "--seq-len", "8", "--warmup-steps", "1", "--eval-every", "2", "--eval-batches", "1",
        "--checkpoint-every", "2", "--log-every", "1", "--device", "cpu"]


def write_corpus(path, alphabet: str):
    path.write_text("".join(alphabet[i % 5:] + alphabet[: i % 5] + "\n" for i in range(60)), encoding="utf-8")
    return path


def pretrain(tmp_path, corpus, name, *flags) -> int:
    return main(["pretrain", "--corpus", str(corpus), "--name", name, "--out", str(tmp_path / "runs"), *TINY, *flags])


@pytest.fixture
def teacher(tmp_path):
    """A teacher trained on abcde text: 2 layers, 24 wide, context 16."""
    corpus = write_corpus(tmp_path / "abcde.txt", "abcde")
    assert pretrain(tmp_path, corpus, "teacher", "--dim", "24", "--n-layer", "2") == 0
    return tmp_path / "runs" / "teacher" / "model"


def records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_flags_reach_the_run_its_metrics_and_its_report(tmp_path, teacher):
    corpus = tmp_path / "abcde.txt"
    assert pretrain(tmp_path, corpus, "student", "--teacher", str(teacher), "--kd-alpha", "0.7",
                    "--kd-temperature", "2") == 0
    run = tmp_path / "runs" / "student"
    cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert (cfg.teacher, cfg.train.kd_alpha, cfg.train.kd_temperature) == (str(teacher), 0.7, 2.0)
    assert len(json.loads((run / "data.json").read_text())["teacher_sha256"]) == 64
    steps = [r for r in records(run) if "loss" in r]
    assert len(steps) == 4
    assert all(r["loss"] == pytest.approx(0.3 * r["ce"] + 0.7 * 4 * r["kd"], rel=1e-5) for r in steps)
    report = (run / "report.md").read_text()
    assert "Distilled from the teacher" in report
    # the train loss set beside the val loss is the data cross-entropy, not the objective with the KL term
    final = json.loads((run / "summary.json").read_text())["final_train_loss"]
    assert final == steps[-1]["ce"] != steps[-1]["loss"]
    assert f"| final train loss (nats/token) | {final:.4f} |" in report


def test_a_teacher_with_another_tokenizer_is_refused_before_anything_is_written(tmp_path, teacher, capsys):
    other = write_corpus(tmp_path / "vwxyz.txt", "vwxyz")  # the same vocabulary size, other characters
    capsys.readouterr()
    assert pretrain(tmp_path, other, "student", "--teacher", str(teacher), "--kd-alpha", "0.5") == 2
    err = capsys.readouterr().err
    assert "another tokenizer" in err and str(teacher) in err and "student's" in err
    assert not (tmp_path / "runs" / "student").exists()


def test_a_teacher_with_a_shorter_context_is_refused(tmp_path, teacher):
    cfg = RunConfig(name="s", corpus=str(tmp_path / "abcde.txt"), teacher=str(teacher),
                    train=TrainConfig(seq_len=32, kd_alpha=0.5, device="cpu"))
    with pytest.raises(InputError, match="max_seq_len 16, shorter than the student's seq_len 32"):
        run_pretraining(cfg, tmp_path / "runs")
    assert not (tmp_path / "runs" / "s").exists()


def test_kd_alpha_without_a_teacher_and_a_teacher_in_a_distributed_run_are_refused(tmp_path, teacher, monkeypatch,
                                                                                       capsys):
    def no_spawn(*args, **kw):
        raise AssertionError("spawned")

    monkeypatch.setattr("llmlab.dist.launch.spawn", no_spawn)
    corpus = tmp_path / "abcde.txt"
    capsys.readouterr()
    assert pretrain(tmp_path, corpus, "student", "--kd-alpha", "0.5") == 2
    assert "name the teacher model (--teacher DIR)" in capsys.readouterr().err
    assert pretrain(tmp_path, corpus, "student", "--teacher", str(teacher), "--kd-alpha", "0.5", "--nproc", "2") == 2
    assert "--teacher distils in one process" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "student").exists()


def test_a_resume_needs_the_same_teacher_weights_not_the_same_folder(tmp_path, teacher):
    corpus = tmp_path / "abcde.txt"
    flags = ("--kd-alpha", "0.5", "--kd-temperature", "2")
    assert pretrain(tmp_path, corpus, "student", "--teacher", str(teacher), *flags, "--steps", "2") == 0
    moved = shutil.copytree(teacher, tmp_path / "moved")
    assert pretrain(tmp_path, corpus, "student", "--teacher", str(moved), *flags, "--steps", "2") == 0  # resumes
    other = tmp_path / "runs" / "other"
    assert pretrain(tmp_path, corpus, "other", "--dim", "24", "--n-layer", "2", "--seed", "5") == 0
    run = tmp_path / "runs" / "student"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    cfg = RunConfig.from_dict(json.loads((run / "config.json").read_text()))
    with pytest.raises(InputError, match=r"was trained with the teacher with weights SHA-256 \w{12}\.\.\., this run "
                                         r"has the teacher with weights SHA-256"):
        run_pretraining(cfg.replace(teacher=str(other / "model")), tmp_path / "runs")
    with pytest.raises(InputError, match="name the teacher model"):
        cfg.replace(teacher="")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_run_saved_before_the_distillation_settings_existed_still_resumes(tmp_path):
    corpus = write_corpus(tmp_path / "abcde.txt", "abcde")
    assert pretrain(tmp_path, corpus, "old", "--steps", "2") == 0
    path = tmp_path / "runs" / "old" / "config.json"
    doc = json.loads(path.read_text())
    for key in ("kd_alpha", "kd_temperature"):
        del doc["train"][key]
    del doc["teacher"]
    path.write_text(json.dumps(doc))
    assert pretrain(tmp_path, corpus, "old", "--steps", "2") == 0  # the same run: re-evaluated, not refused


def test_only_pretraining_shows_the_distillation_flags(capsys):
    for command in ("sft", "rl"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--kd-alpha" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert "--teacher" in out and "--kd-alpha" in out and "--kd-temperature" in out
