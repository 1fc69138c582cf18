"""What the scaling, extractors, optimizers and gradflow experiments report about their runs: the steps
they trained (a time limit can stop them short), the problems they scored on, what scoring starts from,
and the settings they refuse before anything trains."""

import dataclasses
import json
import types

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic, arithmetic_distinct
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.scoring import text_start
from llmlab.pipeline import RunConfig, preset
from llmlab.pipeline import extractors as extractors_module
from llmlab.pipeline.extractors import compare_extractors
from llmlab.pipeline.optimizers import compare_optimizers
from llmlab.pipeline.scaling import run_scaling, score_problems
from llmlab.tokenizers import CharTokenizer
from llmlab.train import TrainConfig

CUT = 1e-9  # max_minutes: the time limit stops every run after its first step


def tiny_run(corpus, max_minutes: float = 0.0) -> RunConfig:
    """A one-layer model on a small corpus, logging every 5 steps: seconds on a CPU."""
    corpus.write_text("".join("abcde"[i % 5:] + "abcde"[: i % 5] + "\n" for i in range(200)), encoding="utf-8")
    model = ModelConfig(dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16)
    train = TrainConfig(steps=10, batch_size=2, seq_len=8, warmup_steps=1, eval_every=0, checkpoint_every=0,
                        log_every=5, device="cpu", max_minutes=max_minutes)
    return RunConfig(name="t", corpus=str(corpus), model=model, train=train)


def scaling_base(max_minutes: float = 0.0) -> RunConfig:
    base = preset("tiny")
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, batch_size=4, seq_len=32,
                                                               max_minutes=max_minutes))
    return dataclasses.replace(base, model=dataclasses.replace(base.model, max_seq_len=32))


def test_extractors_report_the_steps_a_time_limit_left_and_their_speed_over_those(tmp_path, monkeypatch):
    clock = iter(range(0, 100, 2))  # each model's training takes 2 "seconds"
    monkeypatch.setattr(extractors_module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    cfg = tiny_run(tmp_path / "c.txt", max_minutes=CUT)
    results = compare_extractors(cfg, tmp_path / "e", steps=10)  # stopped before the first logged step
    tokens_per_step = cfg.train.batch_size * cfg.train.seq_len
    assert [r["steps"] for r in results] == [1, 1, 1] and [r["curve"] for r in results] == [[], [], []]
    assert [r["tokens_per_s"] for r in results] == [tokens_per_step / 2] * 3  # 1 step, not the 10 planned
    report = (tmp_path / "e" / "report.md").read_text()
    assert "Same data, tokenizer, batches and 10 steps, but the time limit stopped transformer at step 1, " \
           "lstm at step 1, cnn at step 1" in report


def test_extractors_that_finish_say_so_in_one_count(tmp_path):
    results = compare_extractors(tiny_run(tmp_path / "c.txt"), tmp_path / "e", steps=10)
    assert [r["steps"] for r in results] == [10, 10, 10]
    assert "Same data, tokenizer, batches and 10 steps.\n" in (tmp_path / "e" / "report.md").read_text()


@pytest.mark.filterwarnings("error:No artists with labels")  # a plot of no line names none
def test_optimizers_report_each_runs_steps_and_survive_a_stop_before_the_first_log(tmp_path):
    cfg = tiny_run(tmp_path / "c.txt", max_minutes=CUT)
    results = compare_optimizers(cfg, tmp_path / "o", ("sgd", "adam"), steps=20)
    assert [(r["steps"], r["curve"]) for r in results] == [(1, []), (1, [])]
    report = (tmp_path / "o" / "report.md").read_text()
    assert "| sgd | 0.5 | 1 of 20 steps (stopped by the time limit; run it again to go on) | - |" in report
    done = compare_optimizers(tiny_run(tmp_path / "c.txt"), tmp_path / "o", ("sgd",), steps=20)  # resumes
    assert done[0]["steps"] == 20 and done[0]["curve"]
    assert "| sgd | 0.5 | 20 steps |" in (tmp_path / "o" / "report.md").read_text()


def test_scaling_reports_the_problems_it_scored_and_the_steps_each_model_trained(tmp_path):
    out = tmp_path / "s"
    results = run_scaling(scaling_base(max_minutes=CUT), out, sizes=[(8, 1)], steps=5, n_eval=500, max_digits=2,
                          n_train=50)
    n = len(arithmetic_distinct(500, "test", seed=scaling_base().train.seed, max_digits=2, ops="+"))
    assert n < 500  # the whole split
    assert results[0]["steps"] == 1 and json.loads((out / "results.json").read_text()) == results
    report = (out / "report.md").read_text()
    assert f"scored on {n} test problems" in report
    assert "Each model trained 5 steps, but the time limit stopped d8-l1 at step 1" in report


def test_scaling_scores_each_problem_from_text_start(monkeypatch):
    problems = arithmetic(3, "test", seed=3)
    tok = CharTokenizer.train([p.text for p in arithmetic(200, "train")])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                 max_seq_len=32))
    firsts = []
    model.register_forward_pre_hook(lambda m, args: firsts.append(args[0][0].tolist()))
    score_problems(model, tok, problems)
    prompts = [ids for ids in firsts if len(ids) > 1]  # the teacher-forced pass and generation's prompt
    assert len(prompts) == 2 * len(problems)
    assert all(ids[0] == text_start(tok)[0] != tok.bos_id for ids in prompts)
    assert prompts[0][1:len(problems[0].question) + 1] == tok.encode(problems[0].question)


def test_scaling_picks_even_head_sizes_and_checks_every_size_before_training(tmp_path):
    results = run_scaling(scaling_base(), tmp_path / "s", sizes=[(16, 1), (20, 1)], steps=1, n_eval=2, n_train=50)
    assert [r["model"] for r in results] == ["d16-l1", "d20-l1"]  # 20 wide: 2 heads of 10, not 4 of 5
    with pytest.raises(InputError, match="a model 9 wide has no even head size"):
        run_scaling(scaling_base(), tmp_path / "t", sizes=[(8, 1), (9, 1)], steps=1, n_eval=2, n_train=50)
    assert not (tmp_path / "t" / "d8-l1").exists()


def test_scaling_refuses_problems_longer_than_the_context_before_training(tmp_path, capsys):
    with pytest.raises(InputError, match=r"the longest test problem is \d+ tokens .* context of 32: lower "
                                         r"--max-digits"):
        run_scaling(scaling_base(), tmp_path / "s", sizes=[(8, 1)], steps=1, n_eval=5, max_digits=12, n_train=50)
    assert not (tmp_path / "s" / "d8-l1").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_gradflow_refuses_a_seed_outside_its_range_in_one_line(tmp_path, capsys, seed):
    assert main(["gradflow", "--depth", "2", "--width", "4", "--seed", seed, "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert "seed must be in [0, 2**32)" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()
