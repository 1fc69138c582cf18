"""`llmlab ngram` and `llmlab word2vec` end to end on small files."""

import math

import pytest

from llmlab.cli import main

TEXT = "\n".join(["我 爱 北京", "北京 欢迎 你", "我 爱 你", "你 爱 北京 吗", ""] * 20) + "\n"


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


def test_ngram_train_ppl_sample(tmp_path, corpus, capsys):
    model = tmp_path / "m"
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(model), "--order", "3",
                 "--smoothing", "kn", "--arpa", str(tmp_path / "m.arpa")]) == 0
    assert "3-gram kn" in capsys.readouterr().out
    for m in (model, tmp_path / "m.arpa"):
        assert main(["ngram", "ppl", "--model", str(m), "--corpus", str(corpus)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{corpus}: perplexity ")  # a file has no split
        ppl = float(out.split("perplexity ")[1].split(",")[0])
        assert 1 < ppl < 10 and math.isfinite(ppl)
    assert main(["ngram", "sample", "--model", str(model), "-n", "3", "--seed", "1", "--prefix", "我"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(ln.startswith("我") for ln in lines)
    assert main(["ngram", "errors", "--model", str(model), "--corpus", str(corpus), "-o", str(tmp_path / "e.png")]) == 0
    assert (tmp_path / "e.png").exists()


def test_ngram_char_model(tmp_path, corpus, capsys):
    c = str(tmp_path / "c")
    assert main(["ngram", "train", "--corpus", str(corpus), "--unit", "char", "-o", c, "--order", "2"]) == 0
    assert main(["ngram", "sample", "--model", str(tmp_path / "c"), "-n", "1"]) == 0
    assert " " not in capsys.readouterr().out.splitlines()[-1]
    # a model folder is scored in its own unit; an ARPA file from another tool (no unit comment) may be told it
    assert main(["ngram", "ppl", "--model", c, "--corpus", str(corpus), "--unit", "word"]) == 2
    assert "--unit word: the model counts chars, so it scores only chars" in capsys.readouterr().err
    assert main(["ngram", "ppl", "--model", c, "--corpus", str(corpus), "--unit", "char"]) == 0
    own = capsys.readouterr().out
    assert main(["ngram", "train", "--corpus", str(corpus), "--unit", "char", "-o", str(tmp_path / "c2"), "--order",
                 "2", "--arpa", str(tmp_path / "c.arpa")]) == 0
    lines = (tmp_path / "c.arpa").read_text(encoding="utf-8").split("\n")
    (tmp_path / "kenlm.arpa").write_text("\n".join(x for x in lines if not x.startswith("#")), encoding="utf-8")
    capsys.readouterr()
    assert main(["ngram", "ppl", "--model", str(tmp_path / "kenlm.arpa"), "--corpus", str(corpus), "--unit",
                 "char"]) == 0
    scored = capsys.readouterr().out
    assert scored.split(": ", 1)[1].split(" tokens")[0] == own.split(": ", 1)[1].split(" tokens")[0]


def test_ngram_bad_input_is_one_line(tmp_path, corpus, capsys):
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(tmp_path / "m"), "--order", "0"]) == 2
    assert "order must be" in capsys.readouterr().err
    assert main(["ngram", "ppl", "--model", str(tmp_path / "missing")]) == 2
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(tmp_path / "m"), "--smoothing", "kn",
                 "--k", "5"]) == 2
    assert "--k applies to --smoothing add_k, not kn: leave it out" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    # the two-errors experiment names the corpus it could not use, not a function
    empty, other = tmp_path / "empty.txt", tmp_path / "other.txt"
    empty.write_text("", encoding="utf-8")
    other.write_text("没有 见过 的 词\n", encoding="utf-8")
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(tmp_path / "mle"), "--smoothing", "mle"]) == 0
    for model, text, message in (("mle", empty, "empty.txt holds no tokens to score"),
                                 ("mle", other, "other.txt's tokens probability 0 (mle)")):
        capsys.readouterr()
        assert main(["ngram", "errors", "--model", str(tmp_path / model), "--corpus", str(text), "-o",
                     str(tmp_path / "e.png")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "e.png").exists()
    # every float flag refuses NaN and infinity before anything runs
    for argv in (["ngram", "sample", "--model", str(tmp_path / "m"), "--temperature", "nan"],
                 ["ngram", "train", "--corpus", str(corpus), "-o", str(tmp_path / "m"), "--k", "inf"],
                 ["word2vec", "train", "--corpus", str(corpus), "-o", str(tmp_path / "v"), "--lr=-inf"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "expected a finite number" in capsys.readouterr().err


def test_an_unwritable_output_is_refused_before_training(tmp_path, corpus, capsys, monkeypatch):
    import llmlab.classic.ngram as ngram
    import llmlab.classic.word2vec as word2vec

    def no_training(*a, **k):
        raise AssertionError("trained before checking where the result goes")

    monkeypatch.setattr(ngram.NgramModel, "train", no_training)
    monkeypatch.setattr(word2vec, "train_word2vec", no_training)
    (tmp_path / "d").mkdir()
    c = str(corpus)
    for argv, message in ((["ngram", "train", "--corpus", c, "-o", c], "is a file, expected a folder"),
                          (["ngram", "train", "--corpus", c, "-o", str(tmp_path / "m"), "--arpa", str(tmp_path / "d")],
                           "is a directory"),
                          (["ngram", "errors", "--model", str(tmp_path / "m"), "-o", str(tmp_path / "d")],
                           "is a directory"),
                          # the ARPA file replaced the model's config.json, leaving a model that would not load
                          (["ngram", "train", "--corpus", c, "-o", str(tmp_path / "m"), "--arpa",
                            str(tmp_path / "m" / "config.json")], "is inside the model folder"),
                          (["word2vec", "train", "--corpus", c, "-o", str(tmp_path / "d")], "is a directory"),
                          (["word2vec", "train", "--corpus", c, "-o", c + "/v.txt"], "is a file, not a folder")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert corpus.read_text(encoding="utf-8") == TEXT and not (tmp_path / "m").exists()


def test_ngram_train_refuses_a_folder_of_other_files_and_replaces_its_own_model(tmp_path, corpus, capsys):
    llm = tmp_path / "run" / "model"  # an LLM model folder, as `pretrain` saves it
    llm.mkdir(parents=True)
    for name, data in (("config.json", b'{"dim": 64}\n'), ("model.safetensors", b"weights"),
                       ("tokenizer.json", b"{}\n"), ("README.md", b"# card\n")):
        (llm / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in llm.iterdir()}
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(llm), "--order", "2"]) == 2
    assert ("holds files that are not its own (README.md, config.json, model.safetensors, tokenizer.json)"
            in capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in llm.iterdir()} == before
    model = tmp_path / "m"
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(model), "--order", "2"]) == 0
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(model), "--order", "3"]) == 0  # its own
    assert '"order": 3' in (model / "config.json").read_text(encoding="utf-8")
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "counts.safetensors"]


def test_a_split_beside_a_corpus_file_is_refused_not_ignored(tmp_path, corpus, capsys):
    model = tmp_path / "m"
    assert main(["ngram", "train", "--corpus", str(corpus), "-o", str(model), "--order", "2"]) == 0
    capsys.readouterr()
    for argv, flag in ((["ngram", "train", "-o", str(tmp_path / "m2"), "--split", "test"], "--split"),
                       (["ngram", "train", "-o", str(tmp_path / "m2"), "--eval-split", "test"], "--eval-split"),
                       (["ngram", "ppl", "--model", str(model), "--split", "test"], "--split"),
                       (["ngram", "errors", "--model", str(model), "-o", str(tmp_path / "e.png"), "--split", "dev"],
                        "--split"),
                       (["word2vec", "train", "-o", str(tmp_path / "v.txt"), "--split", "dev"], "--split")):
        assert main([*argv, "--corpus", str(corpus)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert f"{flag} picks a split of a built-in corpus; it does not apply with --corpus FILE" in captured.err
    for command in (["ngram", "train", "-o", str(tmp_path / "m2")], ["word2vec", "train", "-o", str(tmp_path / "v")]):
        assert main([*command, "--corpus", "pfr1989", "--split", "dev"]) == 2  # a mistyped corpus name
        assert "--corpus 'pfr1989' is no file (nor a built-in corpus)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "m"]


def test_word2vec_train_similar_analogy(tmp_path, corpus, capsys):
    vec = tmp_path / "v.txt"
    assert main(["word2vec", "train", "--corpus", str(corpus), "-o", str(vec), "--min-count", "1", "--dim", "8",
                 "--epochs", "2", "--batch-size", "16"]) == 0
    assert main(["word2vec", "similar", "--vectors", str(vec), "北京", "--topn", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("北京:")
    assert main(["word2vec", "analogy", "--vectors", str(vec), "我", "爱", "你", "--topn", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["word2vec", "similar", "--vectors", str(vec), "火星"]) == 2
