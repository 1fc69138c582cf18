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
