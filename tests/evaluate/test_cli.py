"""`llmlab eval ...` end to end on small files: scores equal the library's, bad files are one-line errors."""

import json

import pytest

from llmlab.cli import main
from llmlab.evaluate.bleu import BleuConfig, corpus_bleu
from llmlab.evaluate.chrf import ChrfConfig, corpus_chrf


@pytest.fixture
def files(tmp_path, gen):
    refs = [gen.sentence() or "x" for _ in range(30)]
    hyps = [gen.noisy_copy(r) for r in refs]
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    return tmp_path, hyps, refs


def test_bleu_and_chrf_json_equal_the_library(files, capsys):
    d, hyps, refs = files
    assert main(["eval", "bleu", "--ref", str(d / "ref.txt"), "--hyp", str(d / "hyp.txt"), "--tokenize", "zh",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["score"] == pytest.approx(corpus_bleu(hyps, [refs], BleuConfig(tokenize="zh")).score)
    assert "tok:zh" in out["signature"]
    assert main(["eval", "chrf", "--ref", str(d / "ref.txt"), "--hyp", str(d / "hyp.txt"), "--word-order", "2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "chrF2++"
    assert out["score"] == pytest.approx(corpus_chrf(hyps, [refs], ChrfConfig(word_order=2)))


def test_lines_lose_trailing_whitespace_as_in_sacrebleus_command_line(tmp_path, capsys):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = ["the cat sat  ", "hello world\t", "a b"], ["the cat sat", "hello  world ", "a c\t"]
    (tmp_path / "h.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    strip = [s.rstrip() for s in hyps], [[s.rstrip() for s in refs]]
    assert main(["eval", "chrf", "--ref", str(tmp_path / "r.txt"), "--hyp", str(tmp_path / "h.txt"), "--whitespace",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(
        sacrebleu.metrics.CHRF(whitespace=True).corpus_score(*strip).score)


def test_rouge_diversity_and_rank_run(files, capsys, tmp_path):
    d, _, _ = files
    assert main(["eval", "rouge", "--ref", str(d / "ref.txt"), "--hyp", str(d / "hyp.txt"), "--types",
                 "rouge1,rougeL", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"rouge1", "rougeL"} and 0 < out["rouge1"]["fmeasure"] <= 1
    assert main(["eval", "diversity", str(d / "hyp.txt")]) == 0
    assert "distinct-2" in capsys.readouterr().out
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in [{"winner": "a", "loser": "b"}] * 3 +
                             [{"winner": "b", "loser": "a"}]), encoding="utf-8")
    assert main(["eval", "rank", str(prefs), "--n-bootstrap", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[1] == "a" and lines[2].split()[1] == "b" and "95% CI" in lines[0]
    assert main(["eval", "rank", str(prefs), "--n-bootstrap", "0"]) == 0  # no intervals, and no header for them
    assert "CI" not in capsys.readouterr().out
    for flag in (["--seed", "5"], ["--confidence", "0.5"]):  # taken and ignored, with a "50% CI" header
        assert main(["eval", "rank", str(prefs), "--n-bootstrap", "0", *flag]) == 2
        assert "applies to the bootstrap intervals (--n-bootstrap > 0)" in capsys.readouterr().err


def test_mismatched_and_empty_files_are_one_line_errors(files, capsys):
    d, _, _ = files
    (d / "short.txt").write_text("one line\n", encoding="utf-8")
    (d / "empty.txt").write_text("", encoding="utf-8")
    assert main(["eval", "bleu", "--ref", str(d / "ref.txt"), "--hyp", str(d / "short.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 30 lines but hypothesis file" in err and "\n" not in err
    for cmd in (["eval", "chrf", "--ref", str(d / "empty.txt"), "--hyp", str(d / "hyp.txt")],
                ["eval", "diversity", str(d / "empty.txt")], ["eval", "rank", str(d / "empty.txt")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert "is empty" in err and "\n" not in err


def test_rank_errors_name_the_file_and_line_blank_lines_counted(tmp_path, capsys):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"winner": "a", "loser": "b"}\n\n{"a": null, "b": "a", "winner": "b"}\n', encoding="utf-8")
    assert main(["eval", "rank", str(prefs)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"preferences file {str(prefs)!r} line 3: players are named by strings" in err and "\n" not in err


def test_a_hypothesis_file_of_blank_lines_scores_like_sacrebleu(files, capsys):
    sacrebleu = pytest.importorskip("sacrebleu")
    d, hyps, refs = files
    (d / "blank.txt").write_text("\n" * len(hyps), encoding="utf-8")  # a system that output nothing
    for metric, theirs in (("bleu", sacrebleu.corpus_bleu), ("chrf", sacrebleu.corpus_chrf)):
        assert main(["eval", metric, "--ref", str(d / "ref.txt"), "--hyp", str(d / "blank.txt"), "--json"]) == 0
        ours = json.loads(capsys.readouterr().out)["score"]
        assert ours == pytest.approx(theirs([""] * len(hyps), [refs]).score)
    assert main(["eval", "diversity", str(d / "blank.txt")]) == 2
    assert "has no text, only blank lines" in capsys.readouterr().err


def test_rouge_with_an_llmlab_segmenter_scores_chinese_words(tmp_path, capsys):
    from llmlab.data.corpora import pfr1998_words
    from llmlab.evaluate.rouge import RougeConfig, corpus_rouge

    matching = pytest.importorskip("llmlab.text.matching")
    seg = matching.MaxMatchSegmenter.train(pfr1998_words("train")[:3000])
    seg.save(tmp_path / "seg")
    refs = ["".join(s) for s in pfr1998_words("dev")[:20]]
    hyps = [r[: len(r) * 2 // 3] for r in refs]
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    args = ["eval", "rouge", "--ref", str(tmp_path / "ref.txt"), "--hyp", str(tmp_path / "hyp.txt"), "--types",
            "rouge1", "--json"]
    assert main(args + ["--seg-model", str(tmp_path / "seg")]) == 0
    words_f = json.loads(capsys.readouterr().out)["rouge1"]["fmeasure"]
    cfg = RougeConfig(rouge_types=("rouge1",))
    assert words_f == pytest.approx(corpus_rouge(hyps, [refs], cfg, seg.cut)["rouge1"].fmeasure)
    assert main(args) == 0  # without a segmenter: characters, a different but non-zero score
    chars_f = json.loads(capsys.readouterr().out)["rouge1"]["fmeasure"]
    assert chars_f > 0 and chars_f != pytest.approx(words_f)


@pytest.mark.parametrize("cmd, flags, words", [
    ("bleu", ["--smooth-value", "0.5"], "--smooth-value applies to --smooth-method floor (epsilon) and add-k (k), "
                                        "not exp"),
    ("bleu", ["--smooth-method", "none", "--smooth-value", "0.5"], "not none"),
    ("rouge", ["--tokenize", "english", "--seg-model", "nowhere"], "--seg-model applies to --tokenize auto and "
                                                                   "words (Chinese words), not english"),
    ("rouge", ["--tokenize", "char", "--seg-model", "nowhere"], "not char"),
])
def test_flags_the_score_would_not_use_are_refused(files, capsys, cmd, flags, words):
    """Each was taken and ignored, exit 0: the smoothing value of a method without one (the signature said
    smooth:exp), a segmenter loaded and never asked for words."""
    d, _, _ = files
    assert main(["eval", cmd, "--ref", str(d / "ref.txt"), "--hyp", str(d / "hyp.txt"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and words in err, err
    for method in ("floor", "add-k"):  # where it applies, it is taken and shown in the signature
        assert main(["eval", "bleu", "--ref", str(d / "ref.txt"), "--hyp", str(d / "hyp.txt"), "--smooth-method",
                     method, "--smooth-value", "0.5"]) == 0
        assert f"smooth:{method}[0.50]" in capsys.readouterr().out
