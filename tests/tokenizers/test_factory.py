"""The factory and the CLI: every algorithm trains, saves, loads back and encodes the same."""

from __future__ import annotations

import io

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.tokenizers import (
    ALGOS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnigramTokenizer,
    WhitespaceTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    train_tokenizer,
)


@pytest.mark.parametrize("algo", ALGOS)
def test_train_save_load_same_ids(algo, corpus, samples, tmp_path):
    texts = corpus[:40] + corpus[-80:]
    tok = train_tokenizer(algo, texts, 1500 if algo in ("unigram", "wordpiece", "char") else 400)
    assert isinstance(tok, Tokenizer) and tok.vocab_size <= 1500
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok)
    for text in [*samples.values(), texts[0]]:
        assert again.encode(text) == tok.encode(text)
    assert again.decode(again.encode(texts[-1])) == texts[-1]
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (1, 2, 3, 0)


@pytest.mark.parametrize("algo", ALGOS)
def test_encode_takes_text_and_decode_integer_ids_or_a_clear_error(algo, corpus):
    """Bytes were encoded from their characters (or all to <unk>), a list from its items; ids that are
    no integers failed deep inside (or, as bools, decoded); numpy and torch integers are ids."""
    import numpy as np
    import torch

    tok = train_tokenizer(algo, corpus[:40], 1500 if algo in ("unigram", "wordpiece", "char") else 400)
    ids = tok.encode(corpus[0])
    for same in (np.array(ids), torch.tensor(ids), iter(ids), tuple(ids)):
        assert tok.decode(same) == tok.decode(ids)
    for text, words in ((b"abc", "got bytes: decode the bytes first"), (None, "got NoneType"), (["a"], "got list")):
        for encode in (tok.encode, tok.count_unknown):
            with pytest.raises(InputError, match=words):
                encode(text)
    for bad, words in (([1.5], "got float 1.5"), (["a"], "got str"), ([True, False], "got bool"), (None, "NoneType"),
                       ("12", "got str"), ([tok.vocab_size], "outside the vocabulary"), ([-1], "outside")):
        with pytest.raises(InputError, match=words):
            tok.decode(bad)


def test_factory_errors():
    with pytest.raises(InputError, match="unknown tokenizer"):
        train_tokenizer("sentencepiece", ["a"], 300)
    with pytest.raises(InputError, match="empty"):
        train_tokenizer("bpe", ["", ""], 300)
    with pytest.raises(InputError, match="not one string"):
        train_tokenizer("bpe", "abc", 300)


@pytest.mark.parametrize("algo", ["bpe", "unigram", "wordpiece"])
def test_a_special_token_that_is_also_ordinary_text_trains(algo):
    texts = ["the user said hello to the assistant", "assistant: hi user", "<unk> is text here"] * 30
    tok = train_tokenizer(algo, texts, 320, pattern=r"\S+|\s+", special_tokens=["user", "assistant"])
    tokens = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    assert len(set(tokens)) == len(tokens)  # no piece shares a special token's spelling
    special = {tok.token_to_id(s) for s in ("user", "assistant", "<unk>")}
    for text in texts[:3]:
        ids = tok.encode(text)
        assert not set(ids) & special and tok.decode(ids) == text
    assert tok.token_to_id("user") in tok.encode("user", allowed_special="all")


def run_cli(argv, stdin="", monkeypatch=None, capsys=None):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8"))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_encode_decode_show(tmp_path, monkeypatch, capsys):
    data = tmp_path / "in.txt"
    data.write_text("中国人民 hello world\nhello there, 世界\n" * 20, encoding="utf-8")
    out = tmp_path / "tok.json"
    code, text, _ = run_cli(["tokenizer", "train", "--algo", "bpe", "--vocab-size", "300", "--input", str(data),
                             "-o", str(out)], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and out.exists() and "bpe:" in text
    assert load_tokenizer(out).vocab_size <= 300
    lines = "hello 世界\n\n<|eos|>x\n"
    code, ids, _ = run_cli(["tokenizer", "encode", "--tokenizer", str(out)], lines, monkeypatch, capsys)
    tok = load_tokenizer(out)
    assert ids.splitlines() == [" ".join(map(str, tok.encode(x))) for x in lines.splitlines()]
    code, back, _ = run_cli(["tokenizer", "decode", "--tokenizer", str(out)], ids, monkeypatch, capsys)
    assert back == lines
    code, special, _ = run_cli(["tokenizer", "encode", "--tokenizer", str(out), "--allow-special"], "<|eos|>",
                               monkeypatch, capsys)
    assert special.split() == [str(tok.eos_id)]
    code, shown, _ = run_cli(["tokenizer", "show", "hello 世界", "--tokenizer", str(out)], "", monkeypatch, capsys)
    assert code == 0 and "tokens (" in shown and "'hello'" in shown


def test_cli_errors(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(["tokenizer", "train", "--vocab-size", "100", "--input", "arithmetic", "-o",
                            str(tmp_path / "t.json")], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "below the byte alphabet" in err
    code, _, err = run_cli(["tokenizer", "train", "--vocab-size", "300", "--input", str(tmp_path / "nope.txt"),
                            "-o", str(tmp_path / "t.json")], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "nope.txt" in err
    code, _, err = run_cli(["tokenizer", "encode", "--tokenizer", str(tmp_path / "missing.json")], "x",
                           monkeypatch, capsys)
    assert code == 2 and "missing.json" in err


def test_cli_train_refuses_a_split_that_applies_to_no_input(tmp_path, monkeypatch, capsys):
    data = tmp_path / "in.txt"
    data.write_text("中国人民 hello\n" * 5, encoding="utf-8")
    train = ["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", str(data), "-o"]
    code, _, err = run_cli([*train, str(tmp_path / "t.json"), "--split", "test"], monkeypatch=monkeypatch,
                           capsys=capsys)
    assert code == 2 and "--split picks a split of a built-in corpus; it does not apply with --input FILE" in err
    assert not (tmp_path / "t.json").exists()
    # beside a built-in corpus the split is that corpus's: arithmetic's test split, and the whole file
    code, _, _ = run_cli(["tokenizer", "train", "--algo", "char", "--vocab-size", "50", "--input", str(data),
                          "arithmetic", "--split", "test", "-o", str(tmp_path / "t.json")], monkeypatch=monkeypatch,
                         capsys=capsys)
    assert code == 0 and (tmp_path / "t.json").is_file()


@pytest.mark.parametrize("algo", ALGOS)
def test_count_unknown(algo, corpus):
    tok = train_tokenizer(algo, corpus[-80:], 1500 if algo in ("unigram", "wordpiece", "char") else 400)
    assert tok.count_unknown(corpus[-1]) == 0
    novel = "㐀㐁"  # rare CJK characters absent from the corpus
    expected = 0 if algo == "bpe" else 2
    assert tok.count_unknown(novel) == expected


def test_cli_char_tokenizer_options_and_decode_input(tmp_path, monkeypatch, capsys):
    data = tmp_path / "in.txt"
    data.write_text("中国人民 hello\n" * 5, encoding="utf-8")
    out = tmp_path / "ch.json"
    train = ["tokenizer", "train", "--algo", "char", "--vocab-size", "100", "--input", str(data), "-o", str(out)]
    code, _, err = run_cli([*train, "--special-token", "<|user|>"], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "fixed set of special tokens" in err and not out.exists()
    assert run_cli(train, monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    code, _, err = run_cli(["tokenizer", "encode", "--tokenizer", str(out), "--allow-special"], "中国\n",
                           monkeypatch, capsys)
    assert code == 2 and "--allow-special needs" in err
    ids = " ".join(map(str, load_tokenizer(out).encode("中国")))
    code, text, _ = run_cli(["tokenizer", "decode", "--tokenizer", str(out)], f"\ufeff{ids}\r\n", monkeypatch, capsys)
    assert code == 0 and text == "中国\n"  # a byte-order mark and CRLF are not ids
    code, _, err = run_cli(["tokenizer", "show", "a\udcffb"], "", monkeypatch, capsys)  # argv byte 0xff
    assert code == 2 and "not UTF-8: b'a\\xffb'" in err
    for bad in ("１２", "-1", "3 x"):
        code, _, err = run_cli(["tokenizer", "decode", "--tokenizer", str(out)], bad + "\n", monkeypatch, capsys)
        assert code == 2 and "expected ids (ASCII digits)" in err
    # a 5000-digit id was a ValueError traceback from int(); a long bad line was echoed whole
    for bad, msg in (("1\n" + "9" * 5000, "stdin line 2: token id 999999999999999999... (5000 digits) is outside"),
                     ("7 " * 10000 + "x", "(20001 characters)"), ("1\n100000", "stdin line 2: token id 100000 is")):
        code, _, err = run_cli(["tokenizer", "decode", "--tokenizer", str(out)], bad + "\n", monkeypatch, capsys)
        assert code == 2 and msg in err and len(err) < 300


def test_cli_output_folder_and_a_closed_pipe(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    data = tmp_path / "in.txt"
    data.write_text("中国人民 hello\n" * 5, encoding="utf-8")
    train = ["tokenizer", "train", "--algo", "char", "--vocab-size", "100", "--input", str(data)]
    code, _, _ = run_cli([*train, "-o", str(tmp_path / "new") + "/"], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and (tmp_path / "new" / "tokenizer.json").is_file()  # a trailing slash names a folder
    code, _, err = run_cli([*train, "-o", str(data) + "/"], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "is a file, not a folder" in err
    # a reader that stops early (`| head -1`) ends the command quietly
    cmd = [sys.executable, "-m", "llmlab", "tokenizer", "encode", "--tokenizer", str(tmp_path / "new")]
    lines = tmp_path / "lines.txt"
    lines.write_text("中国人民 hello\n" * 100_000, encoding="utf-8")
    with open(lines, "rb") as stdin:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().split()[0].isdigit()
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 141 and b"Traceback" not in err


def test_a_malformed_tokenizer_file_is_one_clear_error(tmp_path):
    import json

    tok = train_tokenizer("unigram", ["中国人民 hello world"] * 20, 300)
    path = tmp_path / "tok.json"
    tok.save(path)
    good = json.loads(path.read_text(encoding="utf-8"))
    no_vocab = {**good, "model": {k: v for k, v in good["model"].items() if k != "vocab"}}
    bad_pieces = {**good, "model": {**good["model"], "vocab": [["a"], ["b", "x"]]}}
    for doc, message in (([1, 2], "no 'model' object"), ({"model": 5}, "no 'model' object"),
                         (no_vocab, "tokenizer file .*tok.json"), (bad_pieces, "is malformed")):
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(InputError, match=message):
            load_tokenizer(path)


def test_cli_show_refuses_a_missing_tokenizer_or_bad_pattern_before_printing(tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(["tokenizer", "show", "hi", "--tokenizer", str(tmp_path / "none.json")], "",
                             monkeypatch, capsys)
    assert code == 2 and "does not exist" in err and out == ""  # no half answer on stdout
    code, out, err = run_cli(["tokenizer", "show", "hi", "--pattern", "("], "", monkeypatch, capsys)
    assert code == 2 and "llmlab: error:" in err and out == ""


@pytest.mark.parametrize("algo", ["char", "whitespace"])
def test_cli_pattern_is_refused_where_it_would_be_ignored(algo, tmp_path, monkeypatch, capsys):
    """A char or whitespace tokenizer has no pre-tokenizer to set (the file came out the same with any
    --pattern); with --tokenizer, show splits by the tokenizer's own."""
    data = tmp_path / "in.txt"
    data.write_text("中国人民 hello world\n" * 5, encoding="utf-8")
    out = tmp_path / "t"
    train = ["tokenizer", "train", "--algo", algo, "--vocab-size", "50", "--input", str(data), "-o", str(out)]
    code, _, err = run_cli([*train, "--pattern", "gpt2"], monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and f"--pattern sets the pre-tokenizer of bpe, unigram and wordpiece; a {algo}" in err
    assert not (tmp_path / "t").exists()
    assert run_cli(train, monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    code, out, err = run_cli(["tokenizer", "show", "hi", "--tokenizer", str(tmp_path / "t"), "--pattern", "gpt2"], "",
                             monkeypatch, capsys)
    assert code == 2 and "with --tokenizer the text splits by the tokenizer's own" in err and out == ""


TRAINERS = {  # each tokenizer class's own train, small sizes
    "bpe": lambda texts: BPETokenizer.train(texts, 300),
    "unigram": lambda texts: UnigramTokenizer.train(texts, 40),
    "wordpiece": lambda texts: WordPieceTokenizer.train(texts, 60),
    "whitespace": lambda texts: WhitespaceTokenizer.train(texts, 20),
    "char": lambda texts: CharTokenizer.train(texts),
}


@pytest.mark.parametrize("algo", ALGOS)
def test_a_lone_surrogate_is_refused_alike_in_training_and_encoding(algo, tmp_path):
    """No tokenizer learns a lone surrogate (it could not be saved) or maps one to <unk>: all refuse it with
    one error, naming the text and the place, whether training through a class or train_tokenizer, or encoding."""
    texts = ["hello world", "ab \ud800b hello"]
    with pytest.raises(InputError, match=r"training text 1 holds '\\ud800' at character 3: a lone surrogate"):
        TRAINERS[algo](texts)
    with pytest.raises(InputError, match=r"training text 1 holds '\\ud800' at character 3: a lone surrogate"):
        train_tokenizer(algo, texts, 300)
    tok = TRAINERS[algo](["hello world ab"] * 3)
    tok.save(tmp_path / "t.json")
    for text in ("a\ud800b", "hello \udcff"):
        for call in (tok.encode, tok.count_unknown, load_tokenizer(tmp_path / "t.json").encode):
            with pytest.raises(InputError, match=r"text holds '\\ud[8c]..' at character \d: a lone surrogate"):
                call(text)


@pytest.mark.parametrize("algo", ALGOS)
def test_every_trainer_refuses_one_string_and_items_that_are_not_strings(algo):
    """A string would be read as its characters, each a text (BPE learnt no merge, WordPiece gave <unk>s);
    None was skipped and bytes were a TypeError. Each class's train refuses them as train_tokenizer does."""
    train = TRAINERS[algo]
    for trainer in (train, lambda texts: train_tokenizer(algo, texts, 300)):
        with pytest.raises(InputError, match="not one string"):
            trainer("hello world hello there " * 20)
        with pytest.raises(InputError, match=r"must be strings, got NoneType \(text 1\)"):
            trainer(["hello", None])
        with pytest.raises(InputError, match="got bytes .*decode the bytes first"):
            trainer([b"hello"])
    assert train(iter(["hello world"] * 3)).encode("hello") == train(["hello world"] * 3).encode("hello")
