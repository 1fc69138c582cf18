"""llmlab rm train and score on a tiny chat model: the run directory and report, a rerun that resumes,
comparisons from a file, scores that rank as the reward model does, and bad input refused with exit 2."""

import io
import json

import pytest

from llmlab.cli import main
from llmlab.rl.reward_model import load_reward_model


def rm_train(chat_dir, out, *flags):
    built_in = [] if "--pairs" in flags else ["--arithmetic-train", "20", "--samples", "2"]  # a file replaces them
    return main(["rm", "train", "--model", str(chat_dir), "-o", str(out), "--name", "r", "--steps", "4",
                 "--batch-size", "4", *built_in, "--max-new-tokens", "3", "--eval-every", "2", "--best-of", "2",
                 "--eval-problems", "3", "--checkpoint-every", "2", "--log-every", "1", *flags])


@pytest.fixture(scope="module")
def trained(chat_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert rm_train(chat_dir, out) == 0
    return out / "r"


def test_rm_train_writes_the_run_directory_and_resumes_when_run_again(chat_dir, trained, capsys):
    assert {p.name for p in trained.iterdir()} >= {"config.json", "data.json", "pairs.jsonl", "metrics.jsonl",
                                                   "checkpoints", "model", "report.md", "summary.json"}
    pairs = [json.loads(x) for x in (trained / "pairs.jsonl").read_text().splitlines()]
    assert {p["split"] for p in pairs} == {"train", "dev"} and all(p["chosen"] != p["rejected"] for p in pairs)
    records = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["before"] and records[0]["val_accuracy"] == 0.5 and records[-1]["final"]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["best_of_n"]["n"] == 2 and 0 <= summary["best_of_n"]["reward_model_pick"] <= 1
    assert summary["best_of_n"]["oracle_pick"] >= summary["best_of_n"]["reward_model_pick"]
    report = (trained / "report.md").read_text()
    assert "pair accuracy" in report and "Best of 2" in report
    rm, tok, norm = load_reward_model(trained / "model")
    assert norm["std"] == pytest.approx(summary["score_std"]) and norm["mean"] == pytest.approx(summary["score_mean"])
    # a rerun of the finished run resumes at its end: no step is trained again
    capsys.readouterr()
    assert rm_train(chat_dir, trained.parent) == 0
    again = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("loss") for r in again if "loss" in r] == [r.get("loss") for r in records if "loss" in r]
    assert "held-out pair accuracy" in capsys.readouterr().out


def test_rm_score_ranks_replies_as_the_reward_model_scores_them(trained, monkeypatch, capsys):
    lines = [{"prompt": "12+3=", "reply": "15"}, {"prompt": "12+3=", "chosen": "15", "rejected": "51"}]
    text = "".join(json.dumps(x) + "\n" for x in lines) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert main(["rm", "score", "--model", str(trained / "model")]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out[0]["prompt"] == "12+3=" and out[0]["score"] == pytest.approx(out[1]["chosen_score"], abs=1e-5)
    assert out[1]["chosen_score"] != out[1]["rejected_score"]


@pytest.mark.parametrize("text,msg", [("{not json\n", "line 1 is not valid JSON"),
                                      ('{"prompt": "1+1="}\n', "line 1: expected {prompt, reply}")])
def test_rm_score_refuses_bad_lines(trained, tmp_path, capsys, text, msg):
    f = tmp_path / "in.jsonl"
    f.write_text(text)
    assert main(["rm", "score", "--model", str(trained / "model"), str(f)]) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.parametrize("name,make", [("nowhere.jsonl", None), ("folder", "dir"), ("bin.jsonl", b"\xff\xfe{}\n")])
def test_rm_score_refuses_a_file_it_cannot_read_naming_it(trained, tmp_path, capsys, name, make):
    """A missing file, a folder or bytes that are not UTF-8 were tracebacks (FileNotFoundError,
    IsADirectoryError, UnicodeDecodeError)."""
    f = tmp_path / name
    if make == "dir":
        f.mkdir()
    elif make is not None:
        f.write_bytes(make)
    assert main(["rm", "score", "--model", str(trained / "model"), str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and name in err and "Traceback" not in err


def test_rm_train_reads_comparisons_from_a_file_and_holds_out_its_end(chat_dir, tmp_path):
    rows = [{"prompt": f"{a}+1=", "chosen": str(a + 1), "rejected": str(a)} for a in range(10, 50)]
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rm_train(chat_dir, tmp_path / "runs", "--pairs", str(f), "--best-of", "0") == 0
    pairs = [json.loads(x) for x in (tmp_path / "runs" / "r" / "pairs.jsonl").read_text().splitlines()]
    assert [p["split"] for p in pairs] == ["train"] * 38 + ["dev"] * 2
    assert [p["prompt"] for p in pairs] == [r["prompt"] for r in rows]
    assert json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["best_of_n"] == {}


def test_near_misses_join_the_training_comparisons_and_are_scored_held_out(chat_dir, trained, tmp_path):
    assert rm_train(chat_dir, tmp_path / "runs", "--near-misses", "2", "--steps", "2", "--best-of", "0") == 0
    run = tmp_path / "runs" / "r"
    pairs = [json.loads(x) for x in (run / "pairs.jsonl").read_text().splitlines()]
    plain = [json.loads(x) for x in (trained / "pairs.jsonl").read_text().splitlines()]
    train, dev = ([p for p in rows if p["split"] == "train"] for rows in (pairs, plain))
    assert train[:len(dev)] == dev and len(train) == len(dev) + 2 * 20  # 20 train problems, 2 slips each
    assert all(p["chosen"] != p["rejected"] and len(p["chosen"]) == len(p["rejected"]) for p in train[len(dev):])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["near_miss_pairs"] == 3 * 2  # 3 slips of each of the 2 dev problems
    assert 0 <= summary["before"]["near_miss_accuracy"] <= 1 and 0 <= summary["after"]["near_miss_accuracy"] <= 1
    assert "near misses" in (run / "report.md").read_text()
    assert "near_miss_accuracy" in json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("flags,msg", [
    (["--samples", "0"], "samples must be >= 1"),
    (["--near-misses", "1", "--pairs", "p.jsonl"], "--near-misses applies to the built-in pairs"),
    (["--samples", "4", "--pairs", "p.jsonl"], "--samples applies to the built-in pairs"),
    (["--temperature", "0.5", "--pairs", "p.jsonl"], "--temperature applies to the built-in pairs"),
    (["--arithmetic-train", "9", "--pairs", "p.jsonl"], "--arithmetic-train applies to the built-in pairs"),
    (["--near-misses", "-1"], "near_misses must be >= 0"),
    (["--temperature", "0"], "temperature must be > 0"),
    (["--pairs", "nowhere.jsonl"], "nowhere.jsonl")])
def test_bad_settings_exit_2_and_write_nothing(chat_dir, tmp_path, capsys, flags, msg):
    assert rm_train(chat_dir, tmp_path / "runs", *flags) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_language_model_is_not_a_reward_model_to_score_with(chat_dir, capsys):
    assert main(["rm", "score", "--model", str(chat_dir)]) == 2
    assert "not a reward model" in capsys.readouterr().err


def rl_with(chat_dir, out, reward_model, *flags):
    return main(["rl", "--model", str(chat_dir), "-o", str(out), "--name", "p", "--algo", "ppo", "--reward-model",
                 str(reward_model), "--steps", "2", "--prompts-per-step", "2", "--group-size", "2",
                 "--max-new-tokens", "3", "--eval-problems", "3", "--arithmetic-train", "20", *flags])


def test_rl_trains_on_the_reward_models_scores(chat_dir, trained, tmp_path, capsys):
    assert rl_with(chat_dir, tmp_path, trained / "model") == 0
    run = tmp_path / "p"
    assert json.loads((run / "config.json").read_text())["reward_model"] == str(trained / "model")
    assert json.loads((run / "data.json").read_text())["reward_model_sha256"]
    assert "normalised score of the reward model" in (run / "report.md").read_text()
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"phase"' in x]
    # rewards are the model's normalised scores (the tiny chat model is never right, so exact answers would give 0)
    assert all(r["accuracy"] == 0 for r in steps) and any(r["reward"] != 0 for r in steps)


def test_an_ensemble_scores_the_mean_the_minimum_or_the_uwo_of_its_members(chat_dir, trained, tmp_path, capsys):
    import shutil

    import torch

    from llmlab.rl.reward_model import EnsembleScorer, RewardScorer, save_reward_model

    rm, tok, norm = load_reward_model(trained / "model")
    doc = json.loads((trained / "model" / "tokenizer_config.json").read_text())
    # a second member: the same weights, normalised otherwise, so its scores are another line of the first's
    save_reward_model(rm, tmp_path / "shifted", tok, doc, norm["mean"] + 0.5, norm["std"] * 2)
    a = RewardScorer(rm, tok.pad_id, norm["mean"], norm["std"])
    b = RewardScorer(*load_reward_model(tmp_path / "shifted")[:1], tok.pad_id, norm["mean"] + 0.5, norm["std"] * 2)
    prompts, replies = [[5, 6, 7], [5, 8], [9]], [[6, 1], [7], [8, 8, 2]]
    sa, sb = a(prompts, replies), b(prompts, replies)
    assert not torch.equal(sa, sb)
    torch.testing.assert_close(EnsembleScorer([a, b], "mean")(prompts, replies), (sa + sb) / 2)
    torch.testing.assert_close(EnsembleScorer([a, b], "min")(prompts, replies), torch.minimum(sa, sb))
    # uwo: the mean less lam x the members' variance, which for two members is ((sa - sb) / 2) ** 2
    torch.testing.assert_close(EnsembleScorer([a, b], "uwo", 0.3)(prompts, replies),
                               (sa + sb) / 2 - 0.3 * ((sa - sb) / 2) ** 2)
    torch.testing.assert_close(EnsembleScorer([a, b], "uwo", 0.0)(prompts, replies), (sa + sb) / 2)
    assert torch.all(EnsembleScorer([a, b], "uwo", 1.0)(prompts, replies) < (sa + sb) / 2)
    # through llmlab rl: two copies of one reward model train exactly as that model alone
    shutil.copytree(trained / "model", tmp_path / "copy")
    runs = {}
    for name, folders, how in (("one", str(trained / "model"), []),
                               ("two", f"{trained / 'model'},{tmp_path / 'copy'}", ["--reward-ensemble", "min"])):
        assert rl_with(chat_dir, tmp_path / name, folders, *how) == 0
        runs[name] = [json.loads(x) for x in (tmp_path / name / "p" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("reward") for r in runs["one"]] == [r.get("reward") for r in runs["two"]]
    assert any(r.get("reward") for r in runs["two"])
    # two copies never disagree, so uwo charges nothing: the run is the one-model run again
    assert rl_with(chat_dir, tmp_path / "uwo", f"{trained / 'model'},{tmp_path / 'copy'}", "--reward-ensemble", "uwo",
                   "--uwo-lambda", "2") == 0
    uwo = [json.loads(x) for x in (tmp_path / "uwo" / "p" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("reward") for r in runs["one"]] == [r.get("reward") for r in uwo]
    report = (tmp_path / "uwo" / "p" / "report.md").read_text()
    assert "the mean less 2 x the variance of the normalised scores" in report
    run = tmp_path / "two" / "p"
    assert len(json.loads((run / "data.json").read_text())["reward_model_sha256"]) == 2
    assert "the min of the normalised scores of the reward models" in (run / "report.md").read_text()
    shutil.copytree(trained / "model", run / "inside")  # the run writes over its folder: not a safe input
    for folders, msg in ((f"{trained / 'model'},{trained / 'model'}", "each once"),
                         (f"{trained / 'model'},", "separated by single commas"),
                         (f"{trained / 'model'},{run / 'inside'}", "lies in the run directory")):
        assert rl_with(chat_dir, tmp_path / "two", folders, "--reward-ensemble", "min") == 2
        assert msg in capsys.readouterr().err
    assert rl_with(chat_dir, tmp_path / "bad", trained / "model", "--reward-ensemble", "max") == 2
    assert "reward_ensemble must be one of" in capsys.readouterr().err


def test_rl_refuses_a_reward_model_of_another_tokenizer_or_none(chat_dir, trained, tmp_path, capsys, chat_tok):
    from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.pipeline.sft import tokenizer_config
    from llmlab.rl.reward_model import make_reward_model, save_reward_model
    from llmlab.tokenizers import CharTokenizer

    other = add_chat_tokens(None, CharTokenizer.train(["0123456789+=-*x"]))
    rm = make_reward_model(CausalLM(ModelConfig(vocab_size=other.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                                max_seq_len=32)))
    save_reward_model(rm, tmp_path / "other", other, tokenizer_config(other, ChatTemplate()), 0.0, 1.0)
    assert rl_with(chat_dir, tmp_path / "runs", tmp_path / "other") == 2
    assert "another tokenizer" in capsys.readouterr().err
    assert rl_with(chat_dir, tmp_path / "runs", chat_dir) == 2
    assert "not a reward model" in capsys.readouterr().err
    # VAPO's positive-example loss would train on what the exact-answer check says
    assert rl_with(chat_dir, tmp_path / "runs", trained / "model", "--algo", "vapo") == 2
    assert "--lm-coef 0 with --reward-model" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _even_is_right(monkeypatch):
    """Marks an answer right when its text has an even length: the tiny chat model is never right, and best-of
    bookkeeping needs some right answers and some wrong ones among the samples."""
    monkeypatch.setattr("llmlab.rl.rewards.answer_reward", lambda text, answer: float(len(text) % 2 == 0))


def test_best_of_n_picks_count_the_first_sample_each_pick_and_the_oracle(chat_dir, chat_tok, monkeypatch):
    import torch

    from llmlab.adapt.chat import load_chat_template
    from llmlab.data.corpora import arithmetic_distinct
    from llmlab.models import load_model
    from llmlab.pipeline.reward import best_of_n_picks
    from llmlab.rl.reward_model import EnsembleScorer

    _even_is_right(monkeypatch)
    policy, template = load_model(chat_dir)[0], load_chat_template(chat_dir)

    def first(prompts, completions):  # prefers the first sample: its pick is one sample's exact match
        return -torch.arange(len(completions), dtype=torch.float)

    def judge(prompts, completions):  # prefers a right answer: its pick is the oracle's
        return torch.tensor([float(len(chat_tok.decode(c).replace("<|end|>", "")) % 2 == 0) for c in completions])

    problems = arithmetic_distinct(12, max_digits=2, ops="+")
    scorers = {"first": first, "judge": judge, "min": EnsembleScorer([judge, first], "min")}
    r = best_of_n_picks(policy, scorers, chat_tok, template, problems, 4, 3, seed=5)
    assert r["problems"] == 12 and 0 < r["one_sample"] < r["oracle_pick"] <= 1
    assert r["picks"]["first"] == r["one_sample"] and r["picks"]["judge"] == r["oracle_pick"]
    assert r == best_of_n_picks(policy, scorers, chat_tok, template, problems, 4, 3, seed=5)  # seeded


def test_rm_best_of_picks_as_rm_trains_report_and_refuses_bad_settings(chat_dir, trained, tmp_path, monkeypatch,
                                                                       capsys):
    import shutil

    from llmlab.adapt.chat import load_chat_template
    from llmlab.pipeline.reward import best_of_n
    from llmlab.pipeline.rl import chat_model
    from llmlab.rl.reward_config import RewardConfig
    from llmlab.rl.reward_model import RewardScorer

    _even_is_right(monkeypatch)
    shutil.copytree(trained / "model", tmp_path / "copy")
    one, copy = str(trained / "model"), str(tmp_path / "copy")
    flags = ["--model", str(chat_dir), "-n", "2", "--problems", "3", "--max-new-tokens", "3", "--json"]
    assert main(["rm", "best-of", "--reward-model", f"{one},{copy}", "--reward-ensemble", "uwo", *flags]) == 0
    r = json.loads(capsys.readouterr().out)
    assert list(r["picks"]) == [one, copy, "uwo of 2 (lambda 0.5)"]
    assert r["picks"][one] == r["picks"][copy] == r["picks"]["uwo of 2 (lambda 0.5)"]  # copies agree: no charge
    # the run's report measures best-of-n the same way, from the same draws (seed 1337, rm train's default)
    cfg = RewardConfig.from_dict(json.loads((trained / "config.json").read_text()))
    policy, tok, template = chat_model(str(chat_dir))
    rm, rm_tok, norm = load_reward_model(trained / "model")
    report = best_of_n(policy, RewardScorer(rm, rm_tok.pad_id, norm["mean"], norm["std"]), tok,
                       load_chat_template(chat_dir), cfg)
    assert (report["one_sample"], report["reward_model_pick"], report["oracle_pick"]) == (
        r["one_sample"], r["picks"][one], r["oracle_pick"])
    assert r["oracle_pick"] > 0  # the fake check marks some samples right, so the comparison means something
    for extra, msg in ((["--reward-ensemble", "max"], "reward_ensemble must be one of"),
                       (["--uwo-lambda", "1"], "uwo_lambda weighs the members' variance"),
                       (["--reward-ensemble", "min"], "--reward-ensemble combines several --reward-model folders"),
                       (["--problems", "0"], "must be >= 1")):
        assert main(["rm", "best-of", "--reward-model", one, *flags, *extra]) == 2
        assert msg in capsys.readouterr().err
    assert main(["rm", "best-of", "--reward-model", str(chat_dir), *flags]) == 2
    assert "not a reward model" in capsys.readouterr().err
