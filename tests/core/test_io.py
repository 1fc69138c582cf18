import json
import math
import os
import stat
import threading

import numpy as np
import pytest

from llmlab.core.config import config_from_dict, load_config, save_config
from llmlab.core.errors import InputError
from llmlab.core.io import (
    JsonlAppender,
    atomic_folder,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_not_input,
    check_output,
    read_json,
    read_jsonl,
    read_lines,
    write_jsonl,
)
from llmlab.models import ModelConfig


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    p = tmp_path / "out.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_an_output_path_that_cannot_be_a_file_is_an_input_error(tmp_path):
    (tmp_path / "f").write_text("keep")
    (tmp_path / "d").mkdir()
    for path, message in ((tmp_path / "d", "is a directory"), (tmp_path / "f" / "x", "is a file, not a folder")):
        with pytest.raises(InputError, match=message):
            atomic_write_text(path, "new")
    with pytest.raises(InputError, match="is a file, expected a folder"):
        check_output(tmp_path / "f", folder=True)
    assert check_output(tmp_path / "d", folder=True) == tmp_path / "d"
    assert (tmp_path / "f").read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_read_json_names_the_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_bytes(b'\xef\xbb\xbf{"a": [1, 2]}')  # a byte-order mark is not JSON, nor an error
    assert read_json(p) == {"a": [1, 2]}
    p.write_text('{"a": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"run config .*c\.json' is not valid JSON: .* \(line 2\)"):
        read_json(p, "run config")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_lines(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a directory"):
        read_lines(tmp_path)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_lines(bad)
    j = tmp_path / "x.jsonl"
    j.write_text('{"a": 1}\n\n{oops\n')
    with pytest.raises(InputError, match="line 3"):
        read_jsonl(j)


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = ModelConfig(dim=64, n_head=2, n_kv_head=1)
    save_config(cfg, tmp_path / "c.json")
    assert load_config(ModelConfig, tmp_path / "c.json") == cfg
    with pytest.raises(InputError, match="unknown field"):
        config_from_dict(ModelConfig, {"dimm": 3})
    (tmp_path / "bad.json").write_text(json.dumps({"dim": 63}))
    with pytest.raises(InputError, match="divisible"):
        load_config(ModelConfig, tmp_path / "bad.json")


def test_atomic_write_gives_the_mode_of_a_plain_write(tmp_path):
    """Not mkstemp's private 0600: a new file gets what open() would give it, a replaced file keeps its mode."""
    from llmlab.core.io import umask

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    new = tmp_path / "new.txt"
    atomic_write_text(new, "x")
    assert new.stat().st_mode == plain.stat().st_mode == 0o100666 & ~umask()
    new.chmod(0o640)
    atomic_write_text(new, "y")
    assert new.read_text() == "y" and new.stat().st_mode & 0o777 == 0o640


def test_atomic_path_gives_that_mode_to_a_file_its_writer_replaced(tmp_path):
    """safetensors' save_file writes a new private file over the temporary one; the result still gets the
    mode a plain write gives (a model saved for other users must be readable by them)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from llmlab.core.io import umask

    path = tmp_path / "w.safetensors"
    with atomic_path(path) as tmp:
        save_file({"a": np.arange(3.0)}, str(tmp))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask()
    assert load_file(str(path))["a"].tolist() == [0.0, 1.0, 2.0]


def test_line_batches_cut_at_newlines_only(tmp_path, monkeypatch):
    import io
    import sys

    from llmlab.core.io import line_batches

    text = "中国\u2028人民\x0c银行\r\n第二\r行\n\n末行"  # U+2028, a form feed, a lone \r stay inside their lines
    want = ["中国\u2028人民\x0c银行", "第二\r行", "", "末行"]
    f = tmp_path / "in.txt"
    f.write_bytes(text.encode("utf-8"))
    assert read_lines(f) == want
    assert [b for b in line_batches(f, size=3)] == [want[:3], want[3:]]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))
    assert [line for b in line_batches(None, size=2) for line in b] == want
    f.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # a byte-order mark is not text
    assert read_lines(f) == want and [line for b in line_batches(f) for line in b] == want
    f.write_bytes("好\n".encode() + b"\xff\xfe\n")
    with pytest.raises(InputError, match=r"in.txt' line 2 is not UTF-8"):
        list(line_batches(f))


def test_rereadable_lines_spool_stdin_and_pipes_and_leave_no_file(monkeypatch, tmp_path):
    """Standard input, or a pipe, spooled for work that reads it more than once: each pass gives
    `line_batches`' lines (a byte-order mark dropped), a bad byte is named by line, and the spool is
    gone afterwards; a regular file is read from disk again."""
    import io
    import sys
    import threading

    from llmlab.core.io import line_batches, rereadable_lines

    text = ("\ufeff中国\r\n第二\r行\n\n" + "末行" * 400_000).encode("utf-8")  # more than one copy block
    want = ["中国", "第二\r行", "", "末行" * 400_000]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text), encoding="utf-8"))
    with rereadable_lines(None) as lines:
        assert list(lines) == want and list(lines) == want and [b[0] for b in zip(lines, range(2))] == want[:2]
        assert list(lines) == want  # a pass left half-way restarts from the beginning
    assert lines.file.closed  # an unnamed temporary file: closed, it is gone
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("好\n".encode() + b"\xff\n"), encoding="utf-8"))
    with rereadable_lines(None) as lines, pytest.raises(InputError, match="^standard input line 2 is not UTF-8"):
        list(lines)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text), encoding="utf-8"))
    assert [line for b in line_batches(None) for line in b] == want
    fifo = tmp_path / "fifo"  # a named pipe: its bytes can be read once
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(text,))
    writer.start()
    with rereadable_lines(fifo) as lines:
        assert list(lines) == want and list(lines) == want
    writer.join()
    (tmp_path / "in.txt").write_bytes(text)
    with rereadable_lines(tmp_path / "in.txt") as lines:
        assert lines.file is None and list(lines) == want and list(lines) == want
    with pytest.raises(InputError, match="does not exist"), rereadable_lines(tmp_path / "none.txt"):
        pass


def _saved_ngram(d):
    from llmlab.classic.ngram import NgramConfig, NgramModel

    NgramModel.train([["a", "b", "c"], ["b", "c"]], NgramConfig(order=2)).save(d)


def _saved_index(d):
    from llmlab.generate.retrieval import BM25Index

    BM25Index.build(["中国经济", "香港回归"]).save(d)


def _saved_segmenter(d):
    from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter

    PerceptronSegmenter.train([["中国", "经济"], ["香港", "回归"]], PerceptronConfig(epochs=1)).save(d)


def _saved_checkpoint(d):
    import torch

    from llmlab.train.checkpoint import save_checkpoint

    model = torch.nn.Linear(2, 2)
    save_checkpoint(d, 1, model, torch.optim.AdamW(model.parameters()))


@pytest.mark.parametrize("save", [_saved_ngram, _saved_index, _saved_segmenter, _saved_checkpoint])
def test_every_file_a_save_writes_has_a_plain_writes_mode(tmp_path, save):
    """safetensors writes private files; a saved model's weights must be as readable as its config."""
    from llmlab.core.io import umask

    save(tmp_path / "out")
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: 0o666 & ~umask() for p in files}


@pytest.mark.parametrize("data", [None, [1, 2], "dim=64", 3])
def test_config_from_dict_refuses_a_value_that_is_not_an_object(data):
    """A config.json whose "config" entry was null or a list died with a bare TypeError in every loader."""
    with pytest.raises(InputError, match=r"m/config\.json: ModelConfig must be a JSON object"):
        config_from_dict(ModelConfig, data, what="m/config.json")


def test_config_rule_errors_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"n_head": 0}))
    with pytest.raises(InputError, match=r"bad\.json: n_head must be > 0"):
        load_config(ModelConfig, tmp_path / "bad.json")


def strict_loads(text: str):
    """json.loads refusing NaN, Infinity and -Infinity, as JavaScript's JSON.parse, jq or serde do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


UNDEFINED = {"nan": float("nan"), "inf": math.inf, "ninf": -math.inf, "np32": np.float32("nan"),
             "np64": np.float64("inf"), "ok": 0.5, "np_ok": np.float32(0.25), "n": np.int64(3), "flag": True,
             "nested": {"curve": [1.0, float("nan"), (2, -math.inf)]}}
STRICT = {"nan": None, "inf": None, "ninf": None, "np32": None, "np64": None, "ok": 0.5, "np_ok": 0.25, "n": 3,
          "flag": True, "nested": {"curve": [1.0, None, [2, None]]}}


def test_json_writers_write_a_non_finite_float_as_null(tmp_path):
    atomic_write_json(tmp_path / "a.json", UNDEFINED)
    write_jsonl(tmp_path / "b.jsonl", [UNDEFINED, {"step": 1, "x": float("nan")}])
    log = JsonlAppender(tmp_path / "c.jsonl")
    log.write(UNDEFINED)
    log.write({"step": 2, "explained_variance": float("nan")})
    assert strict_loads((tmp_path / "a.json").read_text()) == STRICT
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert [strict_loads(ln) for ln in lines] == [STRICT, {"step": 1, "x": None}]
    assert [strict_loads(ln) for ln in (tmp_path / "c.jsonl").read_text().splitlines()] == [
        STRICT, {"step": 2, "explained_variance": None}]


def test_json_text_writes_null_and_refuses_what_strict_json_cannot_hold():
    from llmlab.core.io import json_text

    assert json_text([float("nan"), {"x": np.float32("-inf")}]) == '[null, {"x": null}]'
    with pytest.raises(TypeError):
        json_text({"x": object()})


def test_a_metrics_file_an_older_version_wrote_with_bare_nan_still_reads(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "explained_variance": NaN}\n{"step": 2, "loss": Infinity}\n')
    a, b = read_jsonl(p, "metrics")
    assert math.isnan(a["explained_variance"]) and b["loss"] == math.inf


def test_atomic_writes_go_through_a_symlink_to_its_target(tmp_path):
    (tmp_path / "store").mkdir()
    target, link = tmp_path / "store" / "real.txt", tmp_path / "link.txt"
    target.write_text("old")
    link.symlink_to("store/real.txt")
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["real.txt"]  # no temp file left
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to("store/later.txt")  # a link to a file not written yet: the file is made
    atomic_write_text(dangling, "first")
    assert dangling.is_symlink() and (tmp_path / "store" / "later.txt").read_text() == "first"


def test_atomic_folder_goes_through_a_symlink_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to("real")
    with atomic_folder(link, ("a.txt",)) as d:
        (d / "a.txt").write_text("new")
    assert link.is_symlink() and (tmp_path / "real" / "a.txt").read_text() == "new"


def test_atomic_writes_to_a_fifo_write_into_it(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    # a daemon: were the FIFO replaced, the reader would wait on it for ever
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        atomic_write_text(fifo, "through the pipe\n")
    finally:
        reader.join(timeout=10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a regular file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_an_output_that_is_an_input_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("mine")
    os.symlink("a.txt", tmp_path / "ln.txt")
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    for out in ("a.txt", "./a.txt", str(tmp_path / "a.txt"), "ln.txt", "hard.txt"):
        with pytest.raises(InputError, match=r"^-o '.*' is the same file as --corpus 'a.txt': writing it would"):
            check_not_input(out, {"--corpus": "a.txt"}, "-o")
    (tmp_path / "b.txt").write_text("other")
    for out, inputs in (("b.txt", {"--corpus": "a.txt"}), ("new.txt", {"--corpus": "a.txt"}),
                        ("a.txt", {"--corpus": None}), ("a.txt", {"the input": "pfr1998"}), (None, {"x": "a.txt"})):
        check_not_input(out, inputs)


@pytest.mark.parametrize("line", [
    '{"text": "x \\ud83d y"}',  # an emoji cut in half
    '{"text": "ok", "meta": {"tags": ["a", "\\uDC00"]}}',  # another field, nested, upper-case hex
    '{"text": "ok", "\\ud800key": 1}',  # a key
    '["\\ude00"]',
])
def test_a_lone_surrogate_in_jsonl_is_refused_naming_the_line(tmp_path, monkeypatch, line):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "s.jsonl"
    p.write_text('{"text": "fine \\ud83d\\ude00"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^corpus 's\.jsonl' line 2 holds a lone surrogate '\\ud[89a-f]"):
        read_jsonl("s.jsonl", "corpus")
    p.write_text('{"text": "fine \\ud83d\\ude00"}\n', encoding="utf-8")  # a whole pair is a character
    assert read_jsonl("s.jsonl") == [{"text": "fine \U0001f600"}]


def test_atomic_writes_to_a_proc_fd_path_write_into_the_open_file(tmp_path):
    # /dev/stdout is such a link (to /proc/self/fd/1): the stream is written, whatever file it is open on,
    # not that file replaced by a new one the stream no longer sees
    with open(tmp_path / "out.txt", "w+b") as f:
        atomic_write_text(f"/proc/self/fd/{f.fileno()}", "into the stream\n")
        f.seek(0)
        assert f.read() == b"into the stream\n"
        assert os.fstat(f.fileno()).st_ino == os.stat(tmp_path / "out.txt").st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_an_output_naming_an_open_descriptor_is_written_through_it_not_truncated(tmp_path):
    from llmlab.core.io import own_descriptor

    p = tmp_path / "all.txt"
    p.write_text("PRECIOUS\n")
    with open(p, "a") as f:  # the shell's `>> all.txt`, on a descriptor of this process
        fd = f.fileno()
        for name in (f"/dev/fd/{fd}", f"/proc/self/fd/{fd}"):
            assert own_descriptor(name) == fd
            atomic_write_text(name, f"via {name}\n")
    assert p.read_text() == f"PRECIOUS\nvia /dev/fd/{fd}\nvia /proc/self/fd/{fd}\n"
    assert [e.name for e in tmp_path.iterdir()] == ["all.txt"]
    assert own_descriptor("/dev/stdout") == 1 and own_descriptor(tmp_path / "fd" / "3") is None


def test_a_failed_write_to_a_descriptor_sends_nothing(tmp_path):
    p = tmp_path / "all.txt"
    with open(p, "w") as f, pytest.raises(RuntimeError), atomic_path(f"/dev/fd/{f.fileno()}") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert p.read_text() == ""


def test_a_line_reader_on_a_terminal_gives_each_line_at_once():
    from llmlab.core.io import line_batches

    master, slave = os.openpty()
    got = []
    try:
        batches = line_batches(os.ttyname(slave))
        reader = threading.Thread(target=lambda: got.append(next(batches)), daemon=True)
        os.write(master, "第一行\n".encode())
        reader.start()
        reader.join(10)  # a batch of more lines would wait for lines never typed
        assert got == [["第一行"]]
        os.write(master, b"two\n\x04")  # a line, then the end of input
        assert list(batches) == [["two"]]
    finally:
        os.close(master)
        os.close(slave)


def test_an_input_that_is_the_file_stdout_writes_to_is_refused(tmp_path, monkeypatch):
    import io
    import sys

    from llmlab.core.io import check_not_stdout

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x\n")
    b.write_text("y\n")
    with open(a, "a") as out:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.FileIO(out.fileno(), "w", closefd=False)))
        with pytest.raises(InputError, match="is the file standard output writes to"):
            check_not_stdout(a)
        check_not_stdout(b)  # another file
        with open(a, "rb") as i:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.FileIO(i.fileno(), closefd=False))))
            with pytest.raises(InputError, match="standard input is the file"):
                check_not_stdout(None)
