"""The scaling experiment (topic 4): exact match against per-token scores across sizes."""

import dataclasses
import json

import pytest
import torch

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig
from llmlab.pipeline import preset
from llmlab.pipeline.scaling import run_scaling, score_problems
from llmlab.tokenizers import CharTokenizer


def test_an_exact_answer_is_right_at_every_token_and_scores_agree_with_brute_force():
    problems = arithmetic(12, "test", seed=3)
    tok = CharTokenizer.train([p.text for p in arithmetic(200, "train")])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                 max_seq_len=32))
    s = score_problems(model, tok, problems)
    for ok, acc in s["per_problem"]:
        assert not ok or acc == 1.0  # greedy decoding follows the argmax, so exact implies every token right
    n_tokens = sum(len(tok.encode(p.answer)) + 1 for p in problems)
    want = sum(acc * (len(tok.encode(p.answer)) + 1) for (_, acc), p in zip(s["per_problem"], problems)) / n_tokens
    assert s["token_accuracy"] == pytest.approx(want)
    assert s["exact_match"] == sum(ok for ok, _ in s["per_problem"]) / len(problems)
    assert s["answer_nll"] > 0


def test_the_sweep_writes_its_results_and_refuses_a_foreign_folder(tmp_path, capsys):
    base = dataclasses.replace(preset("tiny"), train=dataclasses.replace(preset("tiny").train, batch_size=8,
                                                                         seq_len=32))
    base = dataclasses.replace(base, model=dataclasses.replace(base.model, max_seq_len=32))
    results = run_scaling(base, tmp_path / "s", sizes=[(8, 1), (16, 1)], steps=30, n_eval=5, n_train=2000)
    assert [r["model"] for r in results] == ["d8-l1", "d16-l1"]
    assert results[0]["parameters"] < results[1]["parameters"]
    assert json.loads((tmp_path / "s" / "results.json").read_text()) == results
    assert (tmp_path / "s" / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert "| d16-l1 |" in (tmp_path / "s" / "report.md").read_text()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep")
    with pytest.raises(InputError):
        run_scaling(base, tmp_path / "x", sizes=[(8, 1)], steps=1, n_eval=1)
    assert (tmp_path / "x" / "mine.txt").read_text() == "keep"
    assert main(["scaling", "--sizes", "8x", "--out", str(tmp_path / "y")]) == 2
    assert "--sizes" in capsys.readouterr().err
    # its own earlier output takes a run of other sizes: d16-l1 was refused as not its own
    again = run_scaling(base, tmp_path / "s", sizes=[(8, 1)], steps=2, n_eval=1, n_train=50)
    assert [r["model"] for r in again] == ["d8-l1"] and (tmp_path / "s" / "d16-l1").is_dir()
    assert len(run_scaling(base, tmp_path / "s", sizes=[(16, 1), (8, 1)], steps=2, n_eval=1, n_train=50)) == 2
    with pytest.raises(InputError, match="sizes must differ, got d8-l1, d8-l1"):
        run_scaling(base, tmp_path / "z", sizes=[(8, 1), (8, 1)], steps=1, n_eval=1)
