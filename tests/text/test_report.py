"""The comparison report: scores per segmenter, and the ambiguity / OOV cases it picks out."""

import pytest

from llmlab.text.lexicon import Lexicon
from llmlab.text.matching import MatchConfig, MaxMatchSegmenter
from llmlab.text.report import ambiguity_cases, evaluate_segmenter, format_report, oov_cases


def test_report_finds_the_textbook_ambiguity_and_oov_words():
    lex = Lexicon({"研究": 10, "研究生": 5, "生命": 10, "起源": 10, "的": 9})
    fmm = MaxMatchSegmenter(lex, MatchConfig("forward"))
    bmm = MaxMatchSegmenter(lex, MatchConfig("backward"))
    gold = [["研究", "生命", "的", "起源"], ["量子", "的", "研究"]]
    results = [evaluate_segmenter("fmm", fmm, gold, set(lex.counts)),
               evaluate_segmenter("bmm", bmm, gold, set(lex.counts))]
    assert results[1].f1 == pytest.approx(2 * (6 / 8) * (6 / 7) / (6 / 8 + 6 / 7))  # only 量子 is wrong
    # bmm cuts sentence 1 right; both split the OOV word 量子 into characters
    assert results[1].cuts[0] == gold[0] and results[0].cuts[0] == ["研究生", "命", "的", "起源"]
    assert results[0].oov_recall == 0.0 and results[0].f1 < results[1].f1
    texts = ["".join(s) for s in gold]
    amb = ambiguity_cases(gold, [fmm.cut(t) for t in texts], [bmm.cut(t) for t in texts], results)
    assert amb == [{"text": "研究生命", "gold": "研究 生命", "fmm": "研究生 命", "bmm": "研究 生命"}]
    oov = oov_cases(gold, set(lex.counts), results)
    assert oov == [{"text": "量子", "gold": "量子", "fmm": "量 子", "bmm": "量 子"}]
    text = format_report(results, amb, oov)
    assert "| fmm |" in text and "研究生 命" in text and "## OOV cases" in text
    assert ambiguity_cases(gold, [fmm.cut(t) for t in texts], [bmm.cut(t) for t in texts], results, 0) == []
    assert oov_cases(gold, set(lex.counts), results, 0) == []
    assert "cases" not in format_report(results, [], [])


def test_report_refuses_a_negative_number_of_cases(capsys):
    from llmlab.cli import main

    assert main(["seg", "report", "--algos", "fmm", "--cases", "-1"]) == 2
    assert capsys.readouterr().err == "llmlab: error: --cases must be >= 0, got -1\n"


@pytest.mark.parametrize("argv, message", [
    (["-o", "{d}"], "report file '{d}' is a directory"),
    (["-o", "{d}/f.txt/r.md"], "is a file"),
    (["--models", "{d}/none"], "does not exist"),
    (["--algos"], "nothing to compare"),
])
def test_report_checks_its_arguments_before_any_training(argv, message, tmp_path, capsys, monkeypatch):
    import llmlab.data.corpora
    from llmlab.cli import main

    (tmp_path / "f.txt").write_text("x\n", encoding="utf-8")

    def no_corpus(split):
        raise AssertionError("the report read its corpus before checking its arguments")

    monkeypatch.setattr(llmlab.data.corpora, "pfr1998_words", no_corpus)
    assert main(["seg", "report", *(a.replace("{d}", str(tmp_path)) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and message.replace("{d}", str(tmp_path)) in err
