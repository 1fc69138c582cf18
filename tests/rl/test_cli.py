"""llmlab rl on a tiny chat model: the run directory and its report, a rerun that resumes, and bad
input refused with exit status 2 before anything is written."""

import json
import shutil

import pytest

from llmlab.cli import main
from llmlab.models import load_model, save_model


@pytest.fixture(scope="module")
def plain_dir(policy, chat_tok, tmp_path_factory):
    """The same model without tokenizer_config.json: not a chat model."""
    d = tmp_path_factory.mktemp("plain") / "model"
    save_model(policy(0), d, chat_tok)
    return d


def rl(chat_dir, out, *flags):
    return main(["rl", "--model", str(chat_dir), "-o", str(out), "--name", "r", "--steps", "3", "--prompts-per-step",
                 "2", "--group-size", "4", "--max-new-tokens", "4", "--eval-problems", "5", "--arithmetic-train", "50",
                 "--checkpoint-every", "2", *flags])


@pytest.mark.parametrize("algo", ["grpo", "vapo", "ppo"])
def test_rl_writes_the_run_directory_and_report(chat_dir, tmp_path, capsys, algo):
    flags = ["--algo", algo] + (["--value-pretrain-steps", "2"] if algo == "vapo" else [])
    flags += ["--rollout-batch", "2"] if algo == "ppo" else []  # the step's 2 prompts sampled as one batch
    assert rl(chat_dir, tmp_path, *flags) == 0
    out = capsys.readouterr().out
    assert "test exact match" in out and "report:" in out
    run = tmp_path / "r"
    assert {p.name for p in run.iterdir()} >= {"config.json", "data.json", "metrics.jsonl", "checkpoints", "model",
                                               "report.md", "summary.json"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == algo and cfg["clip_high"] == (0.28 if algo == "vapo" else 0.2)
    assert cfg["kl_penalty"] == ("reward" if algo == "ppo" else "loss")
    assert cfg["rollout_batch"] == (2 if algo == "ppo" else 1)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["before"] and records[-1]["after"] and "test_accuracy" in records[-1]
    n = 3 + (2 if algo == "vapo" else 0)
    assert [r["step"] for r in records[1:-1]] == list(range(1, n + 1))
    assert ("kl_penalty" in records[-2]) == (algo == "ppo")  # the per-completion KL charge, logged per step
    report = (run / "report.md").read_text()
    assert f"({algo})" in report and "exact match, arithmetic test" in report and "| reward |" in report
    assert ("| kl_penalty |" in report) == (algo == "ppo")
    assert f'"rollout_batch": {cfg["rollout_batch"]}' in report
    model, tok = load_model(run / "model")
    assert tok.vocab_size == model.config.vocab_size and (run / "model" / "tokenizer_config.json").is_file()
    # a rerun of the finished run resumes at its end: same metrics, nothing retrained
    assert rl(chat_dir, tmp_path, *flags) == 0
    again = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("reward") for r in again] == [r.get("reward") for r in records]


def test_curves_of_a_run_logging_one_step_in_n_say_what_they_average(chat_dir, tmp_path, capsys):
    """With --log-every 2 the "first and last tenth of 3 steps" were the logged steps 2 and 3 alone, which the
    printed trend and the report called a tenth of all steps."""
    assert rl(chat_dir, tmp_path, "--log-every", "2") == 0
    out, report = capsys.readouterr().out, (tmp_path / "r" / "report.md").read_text()
    assert "(first and last tenth of the 2 logged policy steps (one in 2, and the last))" in out
    assert "Means over a tenth of the 2 logged policy steps (one in 2, and the last)" in report
    assert rl(chat_dir, tmp_path / "all") == 0
    assert "(first and last tenth of the policy steps)" in capsys.readouterr().out


def test_a_metrics_line_a_killed_session_cut_short_does_not_block_resuming(chat_dir, tmp_path):
    """rl stopped at 'line N is not valid JSON' where pretraining resumed past it."""
    assert rl(chat_dir, tmp_path, "--max-minutes", "1e-6", "--log-every", "1") == 0
    metrics = tmp_path / "r" / "metrics.jsonl"
    with open(metrics, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "reward": 0.')
    assert rl(chat_dir, tmp_path, "--log-every", "1") == 0
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["step"] for r in records if "reward" in r] == [1, 2, 3] and sum("before" in r for r in records) == 1


def test_a_run_measured_on_problems_drawn_with_replacement_measures_its_start_again(chat_dir, tmp_path):
    """A run folder from before evaluations answered distinct questions resumes with a fresh "before",
    so its report does not set a figure on the old problems beside one on the new."""
    assert rl(chat_dir, tmp_path) == 0
    run = tmp_path / "r"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    measured = records[0]["test_accuracy"]
    assert records[0]["distinct"] and records[0]["problems"] == 5
    assert rl(chat_dir, tmp_path) == 0  # a current run's start is kept: no second measurement
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert sum('"before": true' in x for x in lines) == 1
    old = {k: v for k, v in records[0].items() if k != "distinct"} | {"test_accuracy": 0.987}
    (run / "metrics.jsonl").write_text("\n".join([json.dumps(old)] + lines[1:]) + "\n")
    assert rl(chat_dir, tmp_path) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["before"]["test_accuracy"] == measured and summary["before"]["distinct"]


@pytest.mark.parametrize("flags,msg", [
    (["--algo", "reinforce"], "algo must be one of"),
    (["--group-size", "1"], "group_size must be >= 2"),
    (["--algo", "dapo", "--clip-low", "1.5"], "clip_low"),
    (["--value-pretrain-steps", "3"], "value model of vapo"),
    (["--kl-penalty", "reward"], "kl_penalty 'reward'"),
    (["--algo", "ppo", "--lam-policy", "1.5"], "lam_policy must be in"),
    (["--lr", "2"], "lr must be in"),
])
def test_bad_settings_exit_2_and_write_nothing(chat_dir, tmp_path, capsys, flags, msg):
    assert rl(chat_dir, tmp_path / "runs", *flags) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags,flag", [
    (["--gamma", "1.0"], "--gamma"), (["--whiten-advantages"], "--[no-]whiten-advantages"),
    (["--lam-alpha", "0.05"], "--lam-alpha"), (["--max-draws", "4"], "--max-draws"),
    (["--overlong-cache", "2"], "--overlong-cache"), (["--overlong-max-len", "0"], "--overlong-max-len"),
    (["--reward-ensemble", "mean"], "--reward-ensemble"),
    (["--algo", "ppo", "--scale-advantages"], "--[no-]scale-advantages"),
    (["--algo", "ppo", "--lam-alpha", "0.05"], "--lam-alpha"),
    (["--algo", "vapo", "--lam-policy", "0.9", "--lam-alpha", "0.05"], "--lam-alpha"),
    (["--algo", "dapo", "--no-dynamic-sampling", "--max-draws", "4"], "--max-draws"),
    (["--algo", "online-dpo", "--gamma", "0.9"], "--gamma"),
    (["--algo", "online-dpo", "--no-whiten-advantages"], "--[no-]whiten-advantages"),
    (["--algo", "online-dpo", "--max-draws", "2"], "--max-draws"),
])
def test_a_flag_that_does_not_reach_the_run_is_refused_even_at_its_default(chat_dir, tmp_path, capsys, flags, flag):
    """The config refuses such a setting changed; the command also one given at its default value."""
    assert rl(chat_dir, tmp_path / "runs", *flags) == 2
    assert f"{flag} applies " in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_model_folder_holding_a_file_not_its_own_is_refused_before_training(chat_dir, tmp_path, capsys):
    assert rl(chat_dir, tmp_path) == 0
    run = tmp_path / "r"
    (run / "model" / "extra.txt").write_text("mine")
    metrics = (run / "metrics.jsonl").stat().st_mtime_ns
    for more in ([], ["--fresh"]):  # the rerun measured the model again first
        assert rl(chat_dir, tmp_path, *more) == 2
        assert "extra.txt" in capsys.readouterr().err
        assert (run / "model" / "extra.txt").read_text() == "mine"
        assert (run / "metrics.jsonl").stat().st_mtime_ns == metrics


@pytest.mark.parametrize("command", [["rl"], ["dpo"], ["rm", "train", "--best-of", "0"]])
def test_a_rerun_reports_the_whole_runs_wall_time(chat_dir, tmp_path, monkeypatch, command):
    """summary.json's wall_seconds was the last session's alone, less than train_seconds (every session's)."""
    import itertools
    import time

    flags = ["--model", str(chat_dir), "-o", str(tmp_path), "--name", "w", "--steps", "2", "--max-new-tokens", "3",
             "--eval-problems", "2", "--arithmetic-train", "20", "--checkpoint-every", "1"]
    flags += (["--prompts-per-step", "2", "--group-size", "2"] if command == ["rl"] else
              ["--batch-size", "4", "--samples", "2", "--eval-every", "0"])
    ticks, real = itertools.count(), time.perf_counter
    # the first session on a clock that gains 100 s a reading: its time dwarfs any rerun's
    monkeypatch.setattr(time, "perf_counter", lambda: real() + 100.0 * next(ticks))
    assert main([*command, *flags]) == 0
    monkeypatch.undo()
    first = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert first["train_seconds"] >= 100 and first["wall_seconds"] >= first["train_seconds"]
    assert main([*command, *flags]) == 0  # finished: trains no step
    again = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert again["train_seconds"] == first["train_seconds"] and again["wall_seconds"] > again["train_seconds"]


def test_help_lists_each_algorithms_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["rl", "--algo", "ppo", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "grpo | dapo | vapo | ppo" in out and "--kl-penalty" in out and "--lam-policy" in out
    assert "grpo loss, dapo loss, vapo loss, ppo reward" in out and "vapo 1.0, ppo 0.95" in out


def test_a_model_without_chat_tokens_is_refused_with_the_way_out(plain_dir, tmp_path, capsys):
    assert rl(plain_dir, tmp_path / "runs") == 2
    err = capsys.readouterr().err
    assert "not a chat model" in err and "llmlab sft" in err
    assert not (tmp_path / "runs").exists()
    for command in (["dpo"], ["rm", "train"]):  # they read their model as rl does; the message said "RL starts"
        assert main([*command, "--model", str(plain_dir), "-o", str(tmp_path / "runs"), "--steps", "1"]) == 2
        assert "rl, rm train and dpo start from a chat model" in capsys.readouterr().err
    assert rl(tmp_path / "nowhere", tmp_path / "runs") == 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_a_run_saved_before_newer_settings_existed_still_resumes(chat_dir, tmp_path, capsys, algo):
    flags = ["--algo", algo]
    assert rl(chat_dir, tmp_path, *flags) == 0
    saved = tmp_path / "r" / "config.json"
    cfg = json.loads(saved.read_text())
    for newer in ("kl_penalty", "lam_policy", "reward_model", "rollout_batch", "beta", "loss", "label_smoothing",
                  "nll_coef"):  # settings later than the run
        cfg.pop(newer)
    if algo == "grpo":
        cfg["lam_critic"] = 1.0  # every algorithm saved this default before lam_critic became vapo's and ppo's
    cfg["train"].pop("kd_alpha")
    saved.write_text(json.dumps(cfg))
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    assert rl(chat_dir, tmp_path, *flags) == 0  # read with today's defaults: the same run, finished
    steps = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines() if '"phase"' in x]
    assert [r["step"] for r in steps] == [json.loads(x)["step"] for x in before.splitlines() if '"phase"' in x]
    capsys.readouterr()
    assert rl(chat_dir, tmp_path, *flags, "--rollout-batch", "2") == 2  # it sampled one prompt at a time
    assert "different config (rollout_batch)" in capsys.readouterr().err
    cfg["clip_low"] = 0.1  # a setting that changes what the run computes is still refused
    saved.write_text(json.dumps(cfg))
    capsys.readouterr()
    assert rl(chat_dir, tmp_path, *flags) == 2
    assert "different config (clip_low)" in capsys.readouterr().err


def test_eval_arithmetic_scores_the_greedy_answers_of_distinct_test_questions(chat_dir, plain_dir, capsys):
    from llmlab.adapt.chat import ChatTemplate
    from llmlab.data.corpora import arithmetic_distinct
    from llmlab.generate import GenerationConfig, generate

    flags = ["--max-digits", "2", "--ops", "+", "--max-new-tokens", "6"]
    assert main(["eval", "arithmetic", "--model", str(chat_dir), "--problems", "1000", "--json", *flags]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["problems"] == 404  # the split holds 404 two-digit additions: all of them, once each
    # the reference: each question asked alone in the chat template, decoded greedily to <|end|>
    model, tok = load_model(chat_dir)
    template = ChatTemplate()
    end = template.ids(tok)["<|end|>"]
    gen = GenerationConfig(max_new_tokens=6, temperature=0.0)
    problems = arithmetic_distinct(20, max_digits=2, ops="+")
    texts = [tok.decode([t for t in generate(model, template.prompt_ids(tok, [{"role": "user", "content": p.question}]),
                                             gen, end) if t != end]) for p in problems]
    assert main(["eval", "arithmetic", "--model", str(chat_dir), "--problems", "20", *flags]) == 0
    out = capsys.readouterr().out
    right = sum(t == p.answer for p, t in zip(problems, texts))
    assert out.startswith(f"exact match {right / 20:.3f} ({right} of 20 distinct test questions;")
    for p, t in zip(problems[:5], texts):
        assert f"  {p.question}{t!r}  (gold {p.answer})" in out
    assert main(["eval", "arithmetic", "--model", str(plain_dir), "--problems", "5"]) == 2
    assert "chat" in capsys.readouterr().err
    for bad, msg in ((["--problems", "0"], "--problems"), (["--max-digits", "1"], "--max-digits must be >= 2"),
                     (["--ops", "+/"], "ops must be")):
        assert main(["eval", "arithmetic", "--model", str(chat_dir), *bad]) == 2
        assert msg in capsys.readouterr().err


def strict_loads(text):
    """json.loads refusing NaN, Infinity and -Infinity, as JavaScript's JSON.parse, jq or serde do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_critic_whose_returns_never_vary_logs_null_and_the_run_reports_and_resumes(chat_dir, tmp_path):
    # the tiny policy never earns a reward: every step's returns are equal and the explained variance of
    # ppo's value model is undefined; it was written as a bare NaN, which strict JSON parsers refuse
    assert rl(chat_dir, tmp_path, "--algo", "ppo") == 0
    run = tmp_path / "r"
    text = (run / "metrics.jsonl").read_text()
    steps = [strict_loads(x) for x in text.splitlines() if '"phase"' in x]
    assert steps and all(r["reward"] == 0 and r["explained_variance"] is None for r in steps)
    summary = strict_loads((run / "summary.json").read_text())
    assert set(summary["curves"]["explained_variance"].values()) == {None}
    assert "| explained_variance | - | - |" in (run / "report.md").read_text()
    for p in (run / "config.json", run / "data.json", run / "model" / "config.json"):
        strict_loads(p.read_text())
    # a run an older version wrote (NaN in its metrics) resumes from its step-2 checkpoint and ends strict
    (run / "metrics.jsonl").write_text(text.replace("null", "NaN"))
    assert (run / "checkpoints" / "step-00000002").is_dir()
    for ckpt in (run / "checkpoints").iterdir():
        if ckpt.name != "step-00000002":
            shutil.rmtree(ckpt)
    assert rl(chat_dir, tmp_path, "--algo", "ppo") == 0
    again = [strict_loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again if "phase" in r] == [r["step"] for r in steps]
    assert all(r["explained_variance"] is None for r in again if "phase" in r)
    assert strict_loads((run / "summary.json").read_text())["curves"] == summary["curves"]
