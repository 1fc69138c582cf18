"""The gradient-flow experiment (topic 69): table, per-layer norms and plot, small."""

import json

from llmlab.cli import main
from llmlab.nn.gradflow import GradFlowConfig, gradient_norms_at_init
from llmlab.pipeline.gradflow import run_gradflow


def test_rows_carry_every_layer_and_match_the_library(tmp_path):
    rows = run_gradflow(tmp_path, ("sigmoid", "relu"), depth=4, width=8)
    assert [(r["activation"], r["residual"], r["norm"]) for r in rows][:4] == [
        ("sigmoid", False, False), ("sigmoid", False, True), ("sigmoid", True, False), ("sigmoid", True, True)]
    assert len(rows) == 8
    for r in rows:
        expected = gradient_norms_at_init(GradFlowConfig(4, 8, r["activation"], r["residual"], r["norm"]))
        assert r["norms"] == expected and r["first"] == expected[0] and r["last"] == expected[-1]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["depth"] == 4 and len(saved["results"]) == 8
    assert (tmp_path / "gradflow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "gradflow.md").read_text()
    assert "| sigmoid | residual + norm |" in table and "| relu | plain |" in table


def test_cli_writes_table_and_plot(tmp_path, capsys):
    assert main(["gradflow", "--depth", "6", "--width", "8", "--activations", "tanh", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tanh" in out and "residual + norm" in out
    assert (tmp_path / "gradflow.png").is_file() and (tmp_path / "gradflow.md").is_file()


def test_cli_refuses_a_bad_activation(tmp_path, capsys):
    assert main(["gradflow", "--activations", "softsign", "--out", str(tmp_path)]) == 2
    assert "activation" in capsys.readouterr().err
    for bad in ("", " , ", "tanh,tanh"):
        assert main(["gradflow", "--activations", bad, "--out", str(tmp_path / "x")]) == 2
        assert "at least one activation, each once" in capsys.readouterr().err
    (tmp_path / "file").write_text("not a folder")
    assert main(["gradflow", "--activations", "tanh", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
