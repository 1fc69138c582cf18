import subprocess
import sys

import pytest

from llmlab.cli import COMMANDS, build_parser, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("pretrain", "generate", "speedrun"):
        assert name in out


def _leaf_commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        groups = [a for a in p._actions if getattr(a, "choices", None) and a.dest.endswith("_command")]
        if groups:
            yield from ([name, leaf] for leaf in groups[0].choices)
        else:
            yield [name]


@pytest.mark.parametrize("argv", list(_leaf_commands()), ids=" ".join)
def test_every_command_has_help_with_defaults(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_commands_table_matches_modules():
    assert len(set(COMMANDS)) == len(COMMANDS)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "llmlab", "pretrain", "--corpus", "no-such-corpus",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "llmlab: error: unknown corpus 'no-such-corpus': use one of ('pfr1998', 'sentiment', 'arithmetic') "
        "or a path to a .txt/.jsonl file"]
    r = subprocess.run([sys.executable, "-m", "llmlab", "generate", "--model", str(tmp_path / "none"),
                        "--prompt", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("encoding", ["gbk", "ascii"])
def test_output_is_utf8_whatever_the_locale(encoding):
    """Input must be UTF-8, and so is output: a GBK (or ASCII) locale neither changes the bytes written
    nor stops at a character it lacks (😀)."""
    import os

    text = "我们发展经济😀\n经济发展我们\n我们经济\n"
    r = subprocess.run([sys.executable, "-m", "llmlab", "seg", "newwords", "--min-count", "2", "-k", "0"],
                       input=text.encode("utf-8"), capture_output=True, timeout=300,
                       env={**os.environ, "PYTHONIOENCODING": encoding})
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.decode("utf-8").split()) >= {"我们", "经济", "发展"}


def test_threads_sets_torchs_thread_count_for_the_command(monkeypatch, capsys):
    import os

    import torch

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored after the test
    try:
        main(["--threads", "3", "memory", "llama-7b"])
        assert torch.get_num_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"
    finally:
        torch.set_num_threads(before)
    # a fresh process reads it from the environment before torch is imported
    out = subprocess.run([sys.executable, "-c", "from llmlab.cli import main, set_threads\n"
                          "set_threads(2)\nimport torch\nprint(torch.get_num_threads())"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_threads_refuses_what_is_not_a_count(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--threads", bad, "memory", "llama-7b"])
    assert e.value.code == 2 and "threads" in capsys.readouterr().err


BEAMS_UNDER_A_MEMORY_LIMIT = """
import resource, sys
import torch
from llmlab.cli import main
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer

tok = CharTokenizer.train(["0123456789+="])
model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=512))
folder = save_model(model, sys.argv[1], tok)
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, resource.RLIM_INFINITY))  # 1 GiB more than now
# 20,000 beams' caches: 4 tensors of 20,000 x 2 heads x 512 positions x 16 x 4 bytes, 1.2 GiB each
sys.exit(main(["generate", "--model", str(folder), "--prompt", "12+", "--num-beams", "20000", "--max-new-tokens", "2"]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an address-space limit through /proc and rlimit")
def test_running_out_of_memory_is_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-c", BEAMS_UNDER_A_MEMORY_LIMIT, str(tmp_path / "model")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "llmlab: error: out of memory, allocating 1.22 GiB: this command's sizes (batch, beams, sequence length, "
        "model) need more than the machine has; lower them"]


def test_only_failed_allocations_are_reported_as_out_of_memory(monkeypatch, capsys):
    import argparse

    import llmlab.cli as cli

    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 1.00 GiB free)")
    assert cli.out_of_memory(MemoryError()) and cli.out_of_memory(cuda)
    assert cli.what_failed(cuda) == ", allocating 2.00 GiB" and cli.what_failed(MemoryError()) == ""

    def parser_raising(error):
        parser = argparse.ArgumentParser()
        parser.add_argument("-v", "--verbose", action="store_true")
        parser.add_argument("--threads", type=int, default=0)

        def func(args):
            raise error
        parser.set_defaults(func=func)
        return lambda: parser

    monkeypatch.setattr(cli, "build_parser", parser_raising(cuda))
    assert cli.main([]) == 1
    assert capsys.readouterr().err.startswith("llmlab: error: out of memory, allocating 2.00 GiB: ")
    with pytest.raises(RuntimeError, match="CUDA out of memory"):  # --verbose keeps the traceback
        cli.main(["--verbose"])
    monkeypatch.setattr(cli, "build_parser", parser_raising(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):  # any other error is a bug: its traceback stays
        cli.main([])
