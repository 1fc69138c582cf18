"""The tiny speedrun end to end, through the CLI, as a user runs it."""

import io
import json
import shutil
import sys

import pytest

from llmlab.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["speedrun", "--preset", "tiny", "--out", str(out)]) == 0
    return out / "tiny"


def test_tiny_run_writes_every_artifact(tiny_run):
    for name in ("config.json", "metrics.jsonl", "loss.png", "report.md", "summary.json",
                 "model/config.json", "model/model.safetensors", "model/tokenizer.json", "model/README.md"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tiny_run / "checkpoints").glob("step-*"))
    report = (tiny_run / "report.md").read_text()
    for needle in ("val perplexity", "pfr1998", "parameters", "Samples", "tokens/s"):
        assert needle in report


def test_tiny_run_learns_well_beyond_the_unigram_model(tiny_run):
    f = json.loads((tiny_run / "summary.json").read_text())
    assert f["val_loss"] < f["unigram_entropy"] - 1.0
    records = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in records if "loss" in r]
    assert train[-1] < train[0] - 2.0


def test_rerun_resumes_instead_of_retraining(tiny_run, capsys):
    before = json.loads((tiny_run / "summary.json").read_text())
    assert main(["speedrun", "--preset", "tiny", "--out", str(tiny_run.parent)]) == 0
    after = json.loads((tiny_run / "summary.json").read_text())
    assert after["steps"] == before["steps"] and after["val_loss"] == pytest.approx(before["val_loss"], abs=1e-9)
    records = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    finals = [r for r in records if r.get("final")]
    assert len(finals) == 1 and finals[0]["val_loss"] == pytest.approx(after["val_loss"])


def test_generate_cli_continues_a_prompt(tiny_run, capsys):
    assert main(["generate", "--model", str(tiny_run / "model"), "--prompt", "中国", "--max-new-tokens", "5",
                 "--temperature", "0"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("中国") and 2 < len(line) <= 7


def test_generate_reads_stdin_lines_like_every_command(tiny_run, capsys, monkeypatch):
    def generate(*extra, stdin=None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        code = main(["generate", "--model", str(tiny_run / "model"), "--max-new-tokens", "4", "--temperature", "0",
                     *extra])
        return code, capsys.readouterr()

    one = [generate("--prompt", p)[1].out for p in ("中国", "新年\u2028好")]
    # a byte-order mark and CRLF endings are not prompt text; U+2028 is not a line break
    code, got = generate(stdin="\ufeff中国\r\n新年\u2028好\n".encode())
    assert code == 0 and got.out == "".join(one)
    code, got = generate(stdin=b"ok\n\xff\n")
    assert code == 2 and "line 2 is not UTF-8" in got.err


def test_generate_refuses_bad_settings_and_a_foreign_tokenizer(tiny_run, tmp_path, capsys):
    from llmlab.core.errors import InputError
    from llmlab.generate import GenerationConfig

    model = str(tiny_run / "model")
    for extra, message in ((["--device", "cuda:99"], "no such CUDA"), (["--device", "gpu"], "not a device")):
        assert main(["generate", "--model", model, "--prompt", "中", *extra]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(InputError, match="temperature"):  # the CLI refuses it earlier, as every float flag
        GenerationConfig(temperature=float("nan"))
    bad = tmp_path / "model"
    shutil.copytree(tiny_run / "model", bad)
    doc = json.loads((bad / "tokenizer.json").read_text())
    vocab = doc["model"]["vocab"]
    vocab.update({c: len(vocab) + i for i, c in enumerate("αβγ")})  # ids past the model's embedding table
    (bad / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False))
    assert main(["generate", "--model", str(bad), "--prompt", "中"]) == 2
    assert "belongs to another model" in capsys.readouterr().err


def test_changed_config_in_existing_run_is_refused(tiny_run, capsys):
    code = main(["pretrain", "--preset", "tiny", "--name", "tiny", "--out", str(tiny_run.parent), "--steps", "3",
                 "--lr", "0.01"])
    assert code == 2
    assert "different config (train.lr, train.steps)" in capsys.readouterr().err


def test_bookkeeping_flags_may_change_on_resume(tiny_run, capsys):
    """Checkpoint keeping, logging, the device and the time limit do not change what a run computes."""
    args = ["pretrain", "--preset", "tiny", "--name", "tiny", "--out", str(tiny_run.parent)]
    before = json.loads((tiny_run / "summary.json").read_text())
    assert main([*args, "--keep-checkpoints", "5", "--checkpoint-every", "50", "--log-every", "7", "--device", "cpu",
                 "--max-minutes", "30"]) == 0  # the finished run is re-read, not retrained
    assert json.loads((tiny_run / "summary.json").read_text())["val_loss"] == before["val_loss"]


def test_fresh_with_a_refused_setting_keeps_the_run(tiny_run, capsys):
    before = sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*"))
    out = str(tiny_run.parent)
    assert main(["pretrain", "--preset", "tiny", "--name", "tiny", "--out", out, "--fresh", "--seq-len", "1000"]) == 2
    assert "exceeds the model's max_seq_len" in capsys.readouterr().err
    assert sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before
    for name in ("", ".", "..", "../tiny", "a/b"):  # would name the output folder itself, or a path
        assert main(["pretrain", "--preset", "tiny", "--name", name, "--out", out, "--fresh"]) == 2
        assert "plain folder name" in capsys.readouterr().err
    assert sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before


def test_a_run_directory_that_is_a_file_or_holds_broken_json_is_an_error(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{")
    for name, message in (("f", "is a file"), ("b", "not an llmlab run (config.json)")):
        assert main(["pretrain", "--preset", "tiny", "--name", name, "--out", str(tmp_path), "--steps", "1"]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "x" and (tmp_path / "b" / "config.json").read_text() == "{"


def test_a_folder_that_is_not_a_run_is_never_taken_over_and_fresh_clears_only_the_run(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"model_type": "bert"}')  # say a Hugging Face model folder
    (mine / "notes.txt").write_text("precious")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.md").write_text("# my report")
    for name in ("mine", "docs"):
        for fresh in ([], ["--fresh"]):
            args = ["pretrain", "--preset", "tiny", "--name", name, "--out", str(tmp_path), "--steps", "1", *fresh]
            assert main(args) == 2
            assert "holds files that are not an llmlab run" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "precious" and (docs / "report.md").read_text() == "# my report"
    args = ["pretrain", "--preset", "tiny", "--name", "run", "--out", str(tmp_path), "--steps", "2", "--eval-every",
            "0", "--checkpoint-every", "0"]
    assert main(args) == 0
    (tmp_path / "run" / "notes.txt").write_text("mine")  # a file of the user's inside a run folder
    def losses():
        lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in map(json.loads, lines)]

    before = losses()
    assert main([*args, "--fresh"]) == 0
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert losses() == before  # started over: the same records, once


def test_pretrain_with_a_subword_tokenizer_saves_a_model_hf_can_tokenize(tmp_path):
    hf = pytest.importorskip("tokenizers")
    from llmlab.models import load_model

    code = main(["pretrain", "--preset", "tiny", "--name", "bpe", "--out", str(tmp_path), "--corpus", "arithmetic",
                 "--tokenizer", "bpe", "--vocab-size", "300", "--steps", "20", "--eval-every", "0"])
    assert code == 0
    model, tok = load_model(tmp_path / "bpe" / "model")
    assert tok.vocab_size == 300 and model.config.vocab_size == 300
    ref = hf.Tokenizer.from_file(str(tmp_path / "bpe" / "model" / "tokenizer.json"))
    assert ref.encode("12345+678=").ids == tok.encode("12345+678=")


def test_optimizer_experiment_orders_state_memory(tmp_path, capsys):
    out = tmp_path / "opt"
    assert main(["optimizers", "--steps", "15", "--only", "sgd", "momentum", "adamw", "--out", str(out)]) == 0
    results = {r["optimizer"]: r for r in json.loads((out / "results.json").read_text())}
    # the same model: adamw keeps two copies of the weights, momentum one, sgd none
    assert results["sgd"]["state_bytes"] == 0
    assert results["adamw"]["state_bytes"] == 2 * results["momentum"]["state_bytes"] > 0
    assert all(r["curve"][-1][1] < r["curve"][0][1] for r in results.values())
    assert (out / "optimizers.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_ppl_scores_a_file_with_the_saved_model(tiny_run, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("中国经济发展\n\n新年讲话\n", encoding="utf-8")
    assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text)]) == 0
    out = capsys.readouterr().out
    fields = dict(zip(out.split()[::2], out.split()[1::2]))
    assert fields["lines"] == "2" and fields["tokens"] == str(6 + 1 + 4 + 1)
    assert 1 < float(fields["perplexity"]) < 1500 and float(fields["bits/char"]) > 0
    assert fields["unknown"] == "0" and "warning" not in capsys.readouterr().err
    text.write_text("Москва Москва\n中国\n", encoding="utf-8")  # letters the model never saw: <unk> each
    assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text)]) == 0
    out, err = capsys.readouterr()
    fields = dict(zip(out.split()[::2], out.split()[1::2]))
    assert fields["unknown"] == "13"  # 12 letters and the space: pfr1998 has neither
    assert f"13 of {fields['tokens']} tokens" in err and "are <unk>" in err
    assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text), "--split", "dev"]) == 2
    assert "--split picks a split of a built-in corpus" in capsys.readouterr().err
    # a line beyond the context: sliding windows score as many tokens, and a stride beyond the context is refused
    ctx = json.loads((tiny_run / "model" / "config.json").read_text())["config"]["max_seq_len"]
    text.write_text("中国经济发展" * (ctx // 3) + "\n", encoding="utf-8")
    got = {}
    for stride in (None, ctx // 4):
        flags = ["--stride", str(stride)] if stride else []
        assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text), *flags]) == 0
        got[stride] = dict(zip(*[iter(capsys.readouterr().out.split())] * 2))
    assert got[None]["tokens"] == got[ctx // 4]["tokens"] and got[None]["perplexity"] != got[ctx // 4]["perplexity"]
    assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text), "--stride", str(ctx + 1)]) == 2
    assert f"stride must be in [1, {ctx}]" in capsys.readouterr().err


def test_extractor_experiment_trains_all_three(tmp_path):
    out = tmp_path / "ext"
    assert main(["extractors", "--steps", "12", "--out", str(out)]) == 0
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(results) == {"transformer", "lstm", "cnn"}
    assert all(r["curve"][-1][1] < r["curve"][0][1] and r["tokens_per_s"] > 0 for r in results.values())
    assert (out / "extractors.png").exists() and "| lstm |" in (out / "report.md").read_text()


def test_eval_ppl_warning_never_rounds_a_share_of_unknown_tokens_to_zero(tiny_run, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("中国经济发展\n" * 300 + "Ж\n", encoding="utf-8")  # 1 <unk> in 2,102 tokens: 0.048%
    assert main(["eval", "ppl", "--model", str(tiny_run / "model"), str(text)]) == 0
    err = capsys.readouterr().err
    assert "1 of 2102 tokens (0.048%) are <unk>" in err
