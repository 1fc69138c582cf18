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
