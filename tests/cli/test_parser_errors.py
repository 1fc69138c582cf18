"""Command-line mistakes (a mistyped flag or value, a missing subcommand) are one line, as other errors are."""

import pytest

from llmlab.cli import main


@pytest.mark.parametrize("argv, words", [
    (["pretrain", "--steps", "x"], "llmlab pretrain: error: argument --steps: invalid int value: 'x'"),
    (["seg", "train", "--algo", "nope"], "llmlab seg train: error: argument --algo: invalid choice: 'nope'"),
    (["pos"], "llmlab pos: error: the following arguments are required: COMMAND"),
    (["eval", "bleu", "--no-such-flag"], "llmlab eval bleu: error: "),
])
def test_a_command_line_mistake_is_one_line_saying_where_to_look(argv, words, capsys):
    """argparse printed its usage block first: 30 lines of flags for pretrain above the one that mattered."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(words), err
    assert err.rstrip().endswith(f"(`{words.split(': error')[0]} --help` lists what it takes)")
