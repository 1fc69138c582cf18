"""`llmlab extrapolation` end to end with a tiny model."""

from llmlab.cli import main


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    argv = ["extrapolation", "--steps", "2", "--train-len", "16", "--lengths", "16,32", "--eval-tokens", "64",
            "--dim", "16", "--n-layer", "1", "--n-head", "2", "--batch-size", "2", "--vocab-size", "100",
            "--positions", "learned,rope", "--scalings", "yarn", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rope+yarn" in out and "n/a" in out
    assert (tmp_path / "extrapolation.png").read_bytes()[:4] == b"\x89PNG"
    assert "| learned |" in (tmp_path / "extrapolation.md").read_text()


def test_cli_refuses_lengths_below_the_trained_one(tmp_path, capsys):
    assert main(["extrapolation", "--lengths", "64,128", "--out", str(tmp_path)]) == 2
    assert "lengths" in capsys.readouterr().err


def test_cli_refuses_a_head_rope_cannot_rotate_before_training(tmp_path, capsys):
    # head size 2: refused at once, not after the learned and sinusoidal models have trained
    assert main(["extrapolation", "--dim", "16", "--n-head", "8", "--out", str(tmp_path / "x")]) == 2
    assert "must be > 2 for RoPE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
