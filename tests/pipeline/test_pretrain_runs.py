"""Reruns of a small pretraining run: what resumes, what is refused, and what the report says."""

import itertools
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


@pytest.mark.parametrize("entry", ["notes.txt", "mine/notes.txt"])
def test_fresh_refuses_a_checkpoints_folder_holding_what_no_save_wrote(tmp_path, entry):
    """--fresh deletes checkpoints/ whole, and with it a file of the user's there; now it refuses and keeps
    everything. A resume (no --fresh) prunes only step folders, so it goes on."""
    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    run_pretraining(cfg, tmp_path / "runs")
    run = tmp_path / "runs" / "t"
    (run / "checkpoints" / entry).parent.mkdir(exist_ok=True)
    (run / "checkpoints" / entry).write_text("mine")
    before = files(run)
    top = entry.split("/")[0]
    with pytest.raises(InputError, match=f"checkpoints.*holds files no save wrote \\({top}\\).*move them out"):
        run_pretraining(cfg, tmp_path / "runs", fresh=True)
    assert files(run) == before
    run_pretraining(cfg, tmp_path / "runs")
    assert (run / "checkpoints" / entry).read_text() == "mine"
    import shutil

    shutil.rmtree(run / "checkpoints" / top) if "/" in entry else (run / "checkpoints" / entry).unlink()
    (run / "checkpoints" / "step-00000099").mkdir()  # a stale step folder goes with --fresh
    run_pretraining(cfg, tmp_path / "runs", fresh=True)
    assert "step-00000099" not in {p.name for p in (run / "checkpoints").iterdir()}


@pytest.mark.parametrize("folder", ["model", "prompt"])
def test_a_saved_folder_holding_a_file_not_its_own_is_refused_before_training_and_kept_by_fresh(tmp_path, folder):
    """model/ (and sft's prompt/) is replaced whole at the run's end and --fresh deleted model/: another's file
    there was refused only after training, and --fresh deleted it where a top-level one is kept."""
    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    run_pretraining(cfg, tmp_path / "runs")
    run = tmp_path / "runs" / "t"
    (run / folder).mkdir(exist_ok=True)
    (run / folder / "extra.txt").write_text("mine")
    before = files(run)
    for fresh in (False, True):
        with pytest.raises(InputError, match=f"{folder}.*extra.txt"):
            run_pretraining(cfg, tmp_path / "runs", fresh=fresh)
        assert files(run) == before
    # holding only its own files, it is the earlier run's: --fresh clears it (a soft prompt of an earlier
    # sft run stayed beside a model it was not trained for)
    (run / folder / "extra.txt").unlink()
    from llmlab.adapt.prompt_tuning import PROMPT_FILES

    for name in PROMPT_FILES if folder == "prompt" else ():
        (run / folder / name).write_text("{}")
    run_pretraining(cfg, tmp_path / "runs", fresh=True)
    assert (run / "model").is_dir() and not (run / "prompt").exists()


def test_the_optimizer_experiment_leaves_a_run_of_the_same_name_alone_and_resumes_its_own(tmp_path):
    from llmlab.pipeline.optimizers import compare_optimizers

    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    run_pretraining(cfg.replace(name="adam"), tmp_path / "runs")  # a user's run that happens to be named adam
    before = files(tmp_path / "runs")
    with pytest.raises(InputError, match="runs' holds files that are not its own \\(adam\\)"):
        compare_optimizers(cfg, tmp_path / "runs", ("sgd", "adam"), steps=2)
    assert files(tmp_path / "runs") == before  # nothing trained, not even sgd
    first = compare_optimizers(cfg, tmp_path / "exp", ("sgd", "adam"), steps=2)
    curves = {n: (tmp_path / "exp" / n / "metrics.jsonl").read_text() for n in ("sgd", "adam")}
    again = compare_optimizers(cfg, tmp_path / "exp", ("sgd", "adam"), steps=2)  # resumes: nothing retrains
    assert {n: (tmp_path / "exp" / n / "metrics.jsonl").read_text() for n in ("sgd", "adam")} == curves
    assert [r["val_loss"] for r in again] == pytest.approx([r["val_loss"] for r in first])
    before = files(tmp_path / "exp")
    with pytest.raises(InputError, match="adam' holds a run with a different config.*another --out"):
        compare_optimizers(cfg, tmp_path / "exp", ("adam",), steps=3)  # another run in exp/adam
    assert files(tmp_path / "exp") == before


@pytest.mark.parametrize("steps, logged", [(1, [1]), (3, [1, 2, 3]), (25, [*range(2, 25, 2), 25])])
def test_every_optimizer_curve_has_points_at_any_step_count(tmp_path, steps, logged):
    """The preset logs every 10 steps: a 10-step comparison recorded one point per curve, plotted as nothing."""
    from llmlab.pipeline.optimizers import compare_optimizers

    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"), log_every=10, warmup_steps=0)
    results = compare_optimizers(cfg, tmp_path / "exp", ("sgd", "adam"), steps=steps)
    saved = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert [[s for s, _ in r["curve"]] for r in saved] == [logged, logged]
    assert [[s for s, _ in r["curve"]] for r in results] == [logged, logged]


def test_a_curve_of_one_point_is_drawn_with_a_marker(tmp_path, monkeypatch):
    from llmlab.pipeline import report

    drawn = {}
    monkeypatch.setattr(report, "save_png", lambda fig, path: drawn.update(lines=fig.axes[0].lines))
    report.plot_curves([("sgd", [(1, 2.0)]), ("adam", [(1, 2.0), (2, 1.5)])], tmp_path / "p.png")
    assert [line.get_marker() for line in drawn["lines"]] == ["o", "None"]  # a bare line through one point is empty


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


def test_rerunning_a_finished_run_reports_its_recorded_loss_and_whole_time(tmp_path, monkeypatch):
    cfg = tiny(write_corpus(tmp_path / "c.txt", "abcde"))
    ticks = itertools.count()
    real = time.perf_counter
    # the first session on a clock that gains 100 s a reading: its time dwarfs any rerun, however loaded the machine
    monkeypatch.setattr(time, "perf_counter", lambda: real() + 100.0 * next(ticks))
    first = run_pretraining(cfg, tmp_path / "runs")
    monkeypatch.undo()
    assert first["train_seconds"] >= 100 * cfg.train.steps
    t0 = time.perf_counter()
    again = run_pretraining(cfg, tmp_path / "runs")  # trains no step
    rerun = time.perf_counter() - t0
    assert again["steps"] == 4 and again["final_train_loss"] == first["final_train_loss"]
    assert again["train_seconds"] == first["train_seconds"]
    assert again["wall_seconds"] > first["train_seconds"] + rerun  # the first session counts, not the rerun alone
    assert f"{first['final_train_loss']:.4f}" in (tmp_path / "runs" / "t" / "report.md").read_text()


def test_too_little_text_is_refused_before_the_run_folder_is_touched(tmp_path):
    """A corpus too short to train on, or a held-out split too short to evaluate, was found by the first
    batch or the last evaluation: after --fresh had deleted the run it meant to redo, or after training."""
    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    run_pretraining(tiny(corpus), tmp_path / "runs")
    run = tmp_path / "runs" / "t"
    before = files(run)
    short = tmp_path / "short.txt"
    short.write_text("ab\ncd\n", encoding="utf-8")
    with pytest.raises(InputError, match="training token stream .* is shorter than seq_len"):
        run_pretraining(tiny(short), tmp_path / "runs", fresh=True)
    blank_dev = tmp_path / "blank.txt"  # the held-out last 5% is one empty line
    blank_dev.write_text("abcdeabcde\n" * 19 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="validation token stream .* too short"):
        run_pretraining(tiny(blank_dev), tmp_path / "runs", fresh=True)
    assert files(run) == before


def test_a_diverged_run_stops_with_a_clear_error(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    with pytest.raises(InputError, match=r"training diverged: the loss is nan at step \d"):
        run_pretraining(tiny(corpus).replace(model=ModelConfig(dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                                               max_seq_len=16, init_std=1e30)), tmp_path / "runs")


def test_metrics_of_a_killed_session_are_redone_not_kept_twice(tmp_path):
    """A half-written last line (a kill while appending) ended resume in a JSONDecodeError; records of a
    session killed before its first checkpoint stayed and were logged again after them."""
    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    run_pretraining(tiny(corpus), tmp_path / "whole")
    want = (tmp_path / "whole" / "t" / "metrics.jsonl").read_text()
    run_pretraining(tiny(corpus), tmp_path / "runs")
    run = tmp_path / "runs" / "t"
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "lo')
    run_pretraining(tiny(corpus), tmp_path / "runs")
    assert _without_times((run / "metrics.jsonl").read_text()) == _without_times(want)
    for ckpt in (run / "checkpoints").iterdir():  # as if killed before the first checkpoint
        import shutil

        shutil.rmtree(ckpt)
    (run / "model").rename(tmp_path / "old-model")
    run_pretraining(tiny(corpus), tmp_path / "runs")
    assert _without_times((run / "metrics.jsonl").read_text()) == _without_times(want)


def _without_times(metrics: str) -> list[dict]:
    timed = ("elapsed_s", "tok_per_s")
    return [{k: v for k, v in json.loads(ln).items() if k not in timed} for ln in metrics.splitlines()]


def test_a_copied_run_resumes_under_its_new_name(tmp_path):
    import shutil

    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    assert run_pretraining(tiny(corpus, max_minutes=1e-6), tmp_path / "runs")["steps"] == 1
    shutil.copytree(tmp_path / "runs" / "t", tmp_path / "runs" / "u")
    figures = run_pretraining(tiny(corpus).replace(name="u"), tmp_path / "runs")  # resumed at step 1
    steps = [r["step"] for r in map(json.loads, (tmp_path / "runs" / "u" / "metrics.jsonl").read_text().splitlines())
             if "loss" in r]
    assert figures["steps"] == 4 and steps == [1, 2, 3, 4]
    assert json.loads((tmp_path / "runs" / "u" / "config.json").read_text())["name"] == "u"


@pytest.mark.parametrize("flags, words", [
    (["--seed", "-1"], "seed must be in [0, 2**32)"),  # was found after training (with --fresh: no model left)
    (["--seed", str(10**15)], "seed must be in [0, 2**32)"),  # overflowed a batch seed: a traceback
    (["--grad-accum", "65"], "grad_accum must be <= 64"),  # its 65th micro-batch was the next step's first
    (["--moe-top-k", "1"], "--moe-top-k applies to a mixture of experts"),
    (["--moe-router", "switch"], "--moe-router applies to a mixture of experts"),
    (["--position", "alibi", "--rope-base", "500"], "--rope-base applies to RoPE (--position rope), not alibi"),
    (["--rope-original-max-seq-len", "32"], "--rope-original-max-seq-len applies to --rope-scaling dynamic"),
    (["--optimizer", "sgd", "--beta1", "0.5"], "--beta1 applies to adam, adamw"),
    (["--optimizer", "adagrad", "--beta2", "0.5"], "--beta2 applies to adam, adamw"),
    (["--schedule", "constant", "--min-lr", "1e-6"], "--min-lr applies to the schedules that decay"),
    (["--kd-temperature", "2"], "--kd-temperature applies to the distillation term"),
    (["--eval-every", "0", "--eval-batches", "2"], "--eval-batches applies to the evaluations every --eval-every"),
    (["--pipeline-schedule", "gpipe"], "--pipeline-schedule orders the micro-batches of pipeline stages"),
])
def test_pretrain_refuses_what_the_run_would_not_use_before_touching_the_folder(flags, words, tmp_path, capsys):
    """Each of these trained as if the flag had not been given (or failed after training); now a one-line
    refusal before the run folder is made."""
    from llmlab.cli import main

    corpus = write_corpus(tmp_path / "c.txt", "abcde")
    assert main(["pretrain", "--preset", "tiny", "--corpus", str(corpus), "--steps", "2", "-o",
                 str(tmp_path / "runs"), "--name", "t", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and words in err, err
    assert not (tmp_path / "runs").exists()
