"""Outputs of the train commands: never an input file, never a folder holding what is not theirs, and
inputs that are no text (a lone surrogate in JSONL) refused before the work."""

import json

import pytest

from llmlab.cli import main

TEXT = "".join(f"the cat sat on the mat {i}\nthe dog ran in the park {i}\n" for i in range(20))


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    return tmp_path / "c.txt"


@pytest.mark.parametrize("argv", [
    ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", "c.txt", "-o", "c.txt"],
    ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", "pfr1998", "c.txt", "-o", "./c.txt"],
    ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", "c.txt", "-o", "link.txt"],
    ["word2vec", "train", "--corpus", "c.txt", "-o", "c.txt", "--epochs", "1"],
    ["word2vec", "train", "--corpus", "c.txt", "-o", "link.txt", "--epochs", "1"],
    ["ngram", "train", "--corpus", "c.txt", "--unit", "word", "-o", "m", "--arpa", "c.txt"],
    ["ngram", "train", "--corpus", "./c.txt", "--unit", "word", "-o", "m", "--arpa", "link.txt"],
])
def test_an_output_that_is_the_input_is_refused_before_the_work(corpus, capsys, argv):
    (corpus.parent / "link.txt").symlink_to("c.txt")
    assert main(argv) == 2
    assert "is the same file as --" in capsys.readouterr().err
    assert corpus.read_text(encoding="utf-8") == TEXT
    assert sorted(p.name for p in corpus.parent.iterdir()) == ["c.txt", "link.txt"]


def test_ngram_errors_plot_may_not_replace_its_corpus_or_model(corpus, capsys):
    assert main(["ngram", "train", "--corpus", "c.txt", "--unit", "word", "-o", "m", "--arpa", "m.arpa"]) == 0
    arpa = (corpus.parent / "m.arpa").read_bytes()
    for model, out, flag in (("m", "c.txt", "--corpus"), ("m.arpa", "m.arpa", "--model")):
        capsys.readouterr()
        assert main(["ngram", "errors", "--model", model, "--corpus", "c.txt", "-o", out]) == 2
        assert f"is the same file as {flag}" in capsys.readouterr().err
    assert corpus.read_text(encoding="utf-8") == TEXT and (corpus.parent / "m.arpa").read_bytes() == arpa


def test_tokenizer_train_refuses_a_folder_that_is_not_its_own(corpus, capsys):
    model = corpus.parent / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    (model / "tokenizer.json").write_text('{"the model\'s": 1}', encoding="utf-8")
    argv = ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", "c.txt", "-o"]
    assert main([*argv, "model"]) == 2
    assert "holds files that are not its own (config.json)" in capsys.readouterr().err
    assert (model / "tokenizer.json").read_text(encoding="utf-8") == '{"the model\'s": 1}'
    assert main([*argv, "tok/"]) == 0
    first = (corpus.parent / "tok" / "tokenizer.json").read_text(encoding="utf-8")
    assert main([*argv, "tok"]) == 0  # its own folder again: replaced
    assert sorted(p.name for p in (corpus.parent / "tok").iterdir()) == ["tokenizer.json"]
    assert (corpus.parent / "tok" / "tokenizer.json").read_text(encoding="utf-8") == first


@pytest.mark.parametrize("argv", [
    ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", "s.jsonl", "-o", "t.json"],
    ["ngram", "train", "--corpus", "s.jsonl", "--unit", "word", "-o", "m"],
    ["word2vec", "train", "--corpus", "s.jsonl", "-o", "v.txt", "--epochs", "1"],
])
def test_a_lone_surrogate_in_a_jsonl_corpus_is_refused_before_the_work(corpus, capsys, argv):
    (corpus.parent / "s.jsonl").write_text(json.dumps({"text": "the cat"}) + "\n"
                                           + '{"text": "x \\ud83d", "id": 2}\n', encoding="utf-8")
    assert main(argv) == 2
    assert "'s.jsonl' line 2 holds a lone surrogate '\\ud83d'" in capsys.readouterr().err
    assert sorted(p.name for p in corpus.parent.iterdir()) == ["c.txt", "s.jsonl"]
