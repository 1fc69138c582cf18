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


@pytest.mark.parametrize("command", ["seg", "pos"])
def test_the_global_threads_reaches_a_neural_training_and_its_own_flag_wins(command):
    """`llmlab --threads 3 seg train` lost the 3: the train command's own --threads set it back to None, so
    no thread count was set and the neural model trained on its default 1."""
    from llmlab.cli import build_parser
    from llmlab.cli.pos import _train_config
    from llmlab.cli.seg import _config_for

    def threads(argv):
        args = build_parser().parse_args(argv)
        config = _config_for("neural", args) if command == "seg" else _train_config(args)
        return args.threads, config.threads

    base = [command, "train", "--algo", "neural", "-o", "x"]
    assert threads(["--threads", "3", *base]) == (3, 3)
    assert threads(["--threads", "3", *base, "--threads", "2"]) == (3, 2)
    assert threads(base)[1] == 1
