"""`llmlab parse` end to end on small files."""

import io
import sys

import pytest

import llmlab.cli
from llmlab.cli import main
from llmlab.text.conllu import format_conllu, read_conllu
from llmlab.text.dep_parser import load_parser


@pytest.fixture(scope="module")
def cli_parser():
    return llmlab.cli.build_parser()


@pytest.fixture(autouse=True)
def _one_parser(cli_parser, monkeypatch):
    """`main` as it is, with the argument parser built once (building it reads every config's source: ~2 s)."""
    monkeypatch.setattr(llmlab.cli, "build_parser", lambda: cli_parser)


def _run(argv, monkeypatch, capsys, stdin: str | bytes = ""):
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("algo", ["graph", "transition"])
def test_treebank_train_parse_eval(algo, tmp_path, monkeypatch, capsys):
    train, test, model = tmp_path / "train.conllu", tmp_path / "test.conllu", tmp_path / "model"
    assert _run(["parse", "treebank", "-o", str(train), "--size", "200"], monkeypatch, capsys)[0] == 0
    assert _run(["parse", "treebank", "--split", "test", "--size", "30", "-o", str(test)], monkeypatch, capsys)[0] == 0
    extra = ["--decoder", "cle"] if algo == "graph" else []
    rc, out, _ = _run(["parse", "train", "--algo", algo, "--data", str(train), "--dev", str(test), "--epochs", "3",
                       "-o", str(model), *extra], monkeypatch, capsys)
    assert rc == 0 and "200 training sentences" in out and "dev: UAS=" in out
    rc, out, _ = _run(["parse", "parse", "--model", str(model), "--input", str(test)], monkeypatch, capsys)
    assert rc == 0
    pred = tmp_path / "pred.conllu"
    pred.write_text(out, encoding="utf-8")
    gold = read_conllu(test)
    assert [s.words for s in read_conllu(pred)] == [s.words for s in gold]
    assert [s.comments for s in read_conllu(pred)] == [s.comments for s in gold]
    rc, out, _ = _run(["parse", "eval", str(test), str(pred)], monkeypatch, capsys)
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("with punctuation: UAS=") and lines[1].startswith("without punctuation")
    # tagged lines, as `llmlab pos tag` writes them: an empty line gives no sentence
    tagged = "我们/r 喜欢/v 书/n 。/w\n\n他/r 来/v\n"
    rc, out, _ = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, tagged)
    assert rc == 0
    sents = read_conllu_text(out, tmp_path)
    assert [s.words for s in sents] == [["我们", "喜欢", "书", "。"], ["他", "来"]]
    assert [s.comments for s in sents] == [["# sent_id = 1", "# text = 我们喜欢书。"],
                                           ["# sent_id = 3", "# text = 他来"]]
    assert [s.tags("xpos") for s in sents] == [["r", "v", "n", "w"], ["r", "v"]]


def read_conllu_text(text, tmp_path):
    path = tmp_path / "out.conllu"
    path.write_text(text, encoding="utf-8")
    return read_conllu(path)


def _joined_per_space_after(s):
    return "".join(t.form + ("" if "SpaceAfter=No" in t.misc.split("|") else " ") for t in s.tokens).strip()


def test_parse_output_has_text_comments_that_equal_the_words_joined_per_space_after(tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    assert _run(["parse", "train", "--algo", "transition", "--size", "50", "--epochs", "1", "-o", str(model)],
                monkeypatch, capsys)[0] == 0
    tagged = "我们/r 喜欢/v Python/nx 3/m 。/w\n他/r 来/v\n"
    rc, out, _ = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, tagged)
    sents = read_conllu_text(out, tmp_path)
    assert rc == 0 and [s.comments for s in sents] == [["# sent_id = 1", "# text = 我们喜欢Python 3。"],
                                                      ["# sent_id = 2", "# text = 他来"]]
    assert [t.misc for t in sents[0].tokens] == ["SpaceAfter=No", "SpaceAfter=No", "_", "SpaceAfter=No", "_"]
    # CoNLL-U input: its own # text sets SpaceAfter (a wrong MISC is corrected, others kept); without one,
    # the text is its words joined per their SpaceAfter
    conllu = ("# text = 他来 了\n1\t他\t_\t_\tr\t_\t_\t_\t_\tGloss=he\n2\t来\t_\t_\tv\t_\t_\t_\t_\tSpaceAfter=No\n"
              "3\t了\t_\t_\tu\t_\t_\t_\t_\t_\n\n"
              "1\tNew\t_\t_\tns\t_\t_\t_\t_\t_\n2\tYork\t_\t_\tns\t_\t_\t_\t_\tSpaceAfter=No\n"
              "3\t好\t_\t_\ta\t_\t_\t_\t_\t_\n\n")
    (tmp_path / "in.conllu").write_text(conllu, encoding="utf-8")
    rc, out, _ = _run(["parse", "parse", "--model", str(model), "--input", str(tmp_path / "in.conllu")],
                      monkeypatch, capsys)
    more = read_conllu_text(out, tmp_path)
    assert rc == 0 and [s.comments for s in more] == [["# text = 他来 了"], ["# text = New York好"]]
    assert [t.misc for t in more[0].tokens] == ["SpaceAfter=No|Gloss=he", "_", "_"]
    for s in sents + more:  # UD's rule, and the file reads back as written
        assert s.comments[-1] == f"# text = {_joined_per_space_after(s)}"
    assert format_conllu(more) == out


def test_eval_scores_gold_against_itself(tmp_path, monkeypatch, capsys):
    gold = tmp_path / "g.conllu"
    _run(["parse", "treebank", "--split", "dev", "--size", "5", "-o", str(gold)], monkeypatch, capsys)
    rc, out, _ = _run(["parse", "eval", str(gold), str(gold)], monkeypatch, capsys)
    assert rc == 0 and out.count("UAS=1.0000 LAS=1.0000") == 2


@pytest.mark.parametrize("argv, stdin, message", [
    (["parse", "train", "--algo", "transition", "--decoder", "cle", "-o", "{d}/m"], "", "--decoder applies to"),
    (["parse", "train", "--no-pseudo-projective", "-o", "{d}/m"], "", "--pseudo-projective applies to"),
    (["parse", "train", "--data", "{d}/none.conllu", "-o", "{d}/m"], "", "does not exist"),
    (["parse", "train", "--data", "{d}/g.conllu", "--dev", "{d}/none.conllu", "-o", "{d}/m"], "", "does not exist"),
    (["parse", "train", "--data", "{d}/g.conllu", "--dev", "{d}/bad.conllu", "-o", "{d}/m"], "", "HEAD 'x'"),
    (["parse", "train", "--data", "{d}/g.conllu", "--size", "3", "-o", "{d}/m"], "", "--size picks"),
    (["parse", "train", "-o", "{d}/g.conllu"], "", "is a file, expected a folder"),
    (["parse", "parse", "--model", "{d}/none"], "", "does not exist"),
    (["parse", "treebank", "--size", "0", "-o", "{d}/t.conllu"], "", "--size must be >= 1"),
    (["parse", "eval", "{d}/g.conllu", "{d}/bad.conllu"], "", "bad.conllu' line 1: HEAD 'x'"),
])
def test_errors_are_one_line(argv, stdin, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "g.conllu").write_text("1\t好\t_\t_\t_\t_\t0\troot\t_\t_\n", encoding="utf-8")
    (tmp_path / "bad.conllu").write_text("1\t好\t_\t_\t_\t_\tx\troot\t_\t_\n", encoding="utf-8")
    rc, _, err = _run([a.replace("{d}", str(tmp_path)) for a in argv], monkeypatch, capsys, stdin)
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()  # refused before training: no model saved


def test_parse_rejects_untagged_lines(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m"
    _run(["parse", "train", "--algo", "transition", "--size", "30", "--epochs", "1", "-o", str(model)], monkeypatch,
         capsys)
    assert load_parser(model).config.pseudo_projective  # the default
    _run(["parse", "train", "--algo", "transition", "--size", "30", "--epochs", "1", "--no-pseudo-projective", "-o",
          str(tmp_path / "off")], monkeypatch, capsys)
    assert not load_parser(tmp_path / "off").config.pseudo_projective
    rc, _, err = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, "我们 喜欢 书\n")
    assert rc == 2 and "token '我们' is not word/TAG" in err
    # standard input is read as --input reads a file: UTF-8 only, a byte-order mark dropped
    rc, out, err = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, "我/r 爱/v\n".encode("gbk"))
    assert rc == 2 and out == "" and "standard input is not UTF-8" in err
    rc, out, _ = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, "\ufeff我/r 爱/v\n")
    assert rc == 0 and [s.words for s in read_conllu_text(out, tmp_path)] == [["我", "爱"]]
    # a tagged line may start with the word # (auto: a CoNLL-U comment is # not followed by /TAG)
    rc, out, _ = _run(["parse", "parse", "--model", str(model)], monkeypatch, capsys, "#/w 我/r 爱/v\n")
    assert rc == 0 and [s.words for s in read_conllu_text(out, tmp_path)] == [["#", "我", "爱"]]


def test_parse_drops_the_inputs_enhanced_graph(tmp_path, monkeypatch, capsys):
    """Parsing a CoNLL-U file that has a tree already replaces HEAD and DEPREL; its enhanced graph (DEPS,
    empty nodes) belongs to the old tree, so it goes rather than contradict the new one. Multiword
    tokens stay."""
    model = tmp_path / "model"
    assert _run(["parse", "train", "--algo", "transition", "--size", "50", "--epochs", "1", "-o", str(model)],
                monkeypatch, capsys)[0] == 0
    conllu = ("1\t好\t_\tADJ\ta\t_\t0\troot\t0:root\t_\n1.1\t是\t_\t_\t_\t_\t_\t_\t1:dep\t_\n"
              "2-3\t！！\t_\t_\t_\t_\t_\t_\t_\t_\n2\t！\t_\tPUNCT\tw\t_\t1\tpunct\t1:punct\t_\n"
              "3\t！\t_\tPUNCT\tw\t_\t2\tpunct\t2:punct\t_\n\n")
    (tmp_path / "deps.conllu").write_text(conllu, encoding="utf-8")
    rc, out, _ = _run(["parse", "parse", "--model", str(model), "--input", str(tmp_path / "deps.conllu")],
                      monkeypatch, capsys)
    (sent,) = read_conllu_text(out, tmp_path)
    assert rc == 0 and sent.words == ["好", "！", "！"] and sent.heads == load_parser(model).parse(
        sent.words, sent.tags("xpos"))[0]
    assert [t.deps for t in sent.tokens] == ["_"] * 3
    assert [line.split("\t")[0] for _, line in sent.extra] == ["2-3"]
