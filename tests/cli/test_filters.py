"""The command line as a filter in a shell: an output named /dev/stdout goes through the shell's
descriptor (append mode kept, the summary on stderr), a filter refuses to read the file its output is
appended to, answers each line typed at a terminal (or given a line at a time over a pipe) at once, and a
failed write is one line, not a traceback. Each runs the CLI in a subprocess whose stdout is a file of the
test's own (never this process's stdout)."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

LLMLAB = [sys.executable, "-m", "llmlab"]
TEXT = "迈向充满希望的新世纪\n一九九八年新年讲话\n\n中国 人民 万岁\n"


@pytest.fixture
def env():
    e = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # flushing is the command's own
    e["PYTHONIOENCODING"] = "utf-8"
    return e


@pytest.fixture
def fmm(tmp_path, env):
    """A forward maximum matching segmenter trained on a few words."""
    train = tmp_path / "train.txt"
    train.write_text("迈向 充满 希望 的 新 世纪\n一九九八年 新年 讲话\n中国 人民 万岁\n", encoding="utf-8")
    subprocess.run(LLMLAB + ["seg", "train", "--algo", "fmm", "--train", str(train), "-o", str(tmp_path / "fmm")],
                   env=env, check=True, capture_output=True, timeout=60)
    return str(tmp_path / "fmm")


def run(args, env, stdout, **kw):
    return subprocess.run(LLMLAB + args, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, **kw)


def test_an_output_on_stdout_appended_to_keeps_the_file_and_the_summary_goes_to_stderr(tmp_path, env):
    src = tmp_path / "docs.txt"
    src.write_text("这是 第一 篇 文档 ， 它 的 内容 足够 长 了 。\n" * 3 + "短\n", encoding="utf-8")
    plain = run(["data", "clean", str(src), "-o", str(tmp_path / "plain.txt"), "--no-quality"], env, subprocess.PIPE)
    assert plain.returncode == 0 and json.loads(plain.stdout)["kept"] == 4
    expected = (tmp_path / "plain.txt").read_text(encoding="utf-8")

    out = tmp_path / "all.txt"
    out.write_text("PRECIOUS\n")
    with open(out, "a") as f:  # `>> all.txt`
        r = run(["data", "clean", str(src), "-o", "/dev/stdout", "--no-quality"], env, f)
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == "PRECIOUS\n" + expected  # kept, then the output alone
    assert json.loads(r.stderr.splitlines()[-1])["kept"] == 4  # the summary, on stderr

    r = run(["data", "clean", str(src), "-o", "/dev/stdout", "--no-quality"], env, subprocess.PIPE)  # `| ...`
    assert r.returncode == 0 and r.stdout == expected


def test_a_tokenizer_and_a_treebank_written_to_stdout_are_whole(tmp_path, env):
    src = tmp_path / "text.txt"
    src.write_text(TEXT, encoding="utf-8")
    with open(tmp_path / "tok.json", "w") as f:  # `> tok.json`
        r = run(["tokenizer", "train", "--algo", "char", "--vocab-size", "40", "--input", str(src),
                 "-o", "/dev/stdout"], env, f)
    assert r.returncode == 0, r.stderr
    assert "model" in json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))
    with open(tmp_path / "tb.conllu", "w") as f:
        r = run(["parse", "treebank", "--size", "3", "-o", "/dev/stdout"], env, f)
    assert r.returncode == 0, r.stderr
    run(["parse", "treebank", "--size", "3", "-o", str(tmp_path / "plain.conllu")], env, subprocess.PIPE)
    written = (tmp_path / "tb.conllu").read_text(encoding="utf-8")
    assert written == (tmp_path / "plain.conllu").read_text(encoding="utf-8")


def test_a_filter_refuses_the_file_its_output_is_appended_to(tmp_path, env, fmm):
    loop = tmp_path / "loop.txt"
    loop.write_text(TEXT, encoding="utf-8")
    with open(loop, "a") as f:  # `--input loop.txt >> loop.txt`: it read its own output without end
        r = run(["seg", "cut", "--model", fmm, "--input", str(loop)], env, f)
    assert r.returncode == 2 and "standard output writes to" in r.stderr
    with open(loop, "rb") as i, open(loop, "a") as f:  # `< loop.txt >> loop.txt`
        r = run(["seg", "cut", "--model", fmm], env, f, stdin=i)
    assert r.returncode == 2 and "standard input is the file" in r.stderr
    assert loop.read_text(encoding="utf-8") == TEXT
    with open(tmp_path / "out.txt", "w") as f:  # another file: cut as ever
        assert run(["seg", "cut", "--model", fmm, "--input", str(loop)], env, f).returncode == 0
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()[0] == "迈向 充满 希望 的 新 世纪"


def test_seg_cut_answers_a_line_typed_at_a_terminal_at_once(tmp_path, env, fmm):
    master, slave = pty.openpty()
    p = subprocess.Popen(LLMLAB + ["seg", "cut", "--model", fmm], stdin=slave, stdout=slave, stderr=slave,
                         env=env)
    os.close(slave)
    try:
        os.write(master, "迈向充满希望的新世纪\n".encode())
        got, deadline = b"", time.monotonic() + 30
        while "希望 的".encode() not in got and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                got += os.read(master, 4096)
        assert "迈向 充满 希望 的 新 世纪".encode() in got  # before the end of the input
        os.write(master, b"\x04")  # end of input
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
        p.wait()
        os.close(master)


def test_tokenizer_encode_and_decode_answer_each_line_over_pipes_before_the_end(tmp_path, env):
    src = tmp_path / "text.txt"
    src.write_text(TEXT, encoding="utf-8")
    tok = tmp_path / "tok.json"
    subprocess.run(LLMLAB + ["tokenizer", "train", "--algo", "char", "--vocab-size", "40", "--input", str(src),
                             "-o", str(tok)], env=env, check=True, capture_output=True, timeout=60)
    for cmd, line in (("encode", "中国人民\n"), ("decode", "5 6 7\n")):
        p = subprocess.Popen(LLMLAB + ["tokenizer", cmd, "--tokenizer", str(tok)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env)
        try:
            p.stdin.write(line.encode())
            p.stdin.flush()
            ready = select.select([p.stdout], [], [], 30)[0]
            assert ready, f"tokenizer {cmd} gave nothing for a line before the end of its input"
            assert p.stdout.readline().strip()
        finally:
            p.stdin.close()
            p.kill()
            p.wait()


def test_a_full_disk_or_a_closed_stdout_is_one_line(tmp_path, env, fmm):
    src = tmp_path / "in.txt"
    src.write_text(TEXT * 3000, encoding="utf-8")
    with open("/dev/full", "w") as full:  # the child's stdout: every write fails with ENOSPC
        r = run(["seg", "cut", "--model", fmm, "--input", str(src)], env, full)
    assert r.returncode == 1 and r.stderr == "llmlab: error: cannot write the output: No space left on device\n"
    for args in (["seg", "cut", "--model", fmm, "--input", str(src)], ["tokenizer", "show", "中国"]):
        r = subprocess.run(LLMLAB + args, env=env, stderr=subprocess.PIPE, text=True, timeout=60,
                           preexec_fn=lambda: os.close(1))  # `>&-`
        assert r.returncode == 1 and r.stderr == "llmlab: error: cannot write the output: Bad file descriptor\n"
