"""Which sentences `llmlab probe` scores on, what each starts from, and the seeds it takes."""

import pytest
import torch

import llmlab.adapt.probe as probe_module
from llmlab.adapt.probe import encode_texts
from llmlab.cli import main
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.models.scoring import text_start
from llmlab.tokenizers import CharTokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tok = CharTokenizer.train(["好评很好很满意", "差评太差了不满意"])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                 max_seq_len=32))
    return save_model(model, tmp_path_factory.mktemp("probe") / "m", tok), tok


def test_a_small_test_size_holds_both_classes(saved, monkeypatch):
    """The dev split lists its 417 positives before its negatives: its first N were one class."""
    seen = []

    def fake_probe(model, tok, train, test, c):
        seen.append(test)
        raise SystemExit(0)  # the sentences are what this test is about, not the probe

    monkeypatch.setattr(probe_module, "probe", fake_probe)
    for seed in (0, 1):
        with pytest.raises(SystemExit):
            main(["probe", "--model", str(saved[0]), "--test-size", "40", "--no-control", "--seed", str(seed)])
    assert [len(t) for t in seen] == [40, 40] and seen[0] != seen[1]
    for test in seen:
        assert {y for _, y in test} == {0, 1}
        assert len(set(test)) == 40  # drawn without replacement


def test_texts_start_from_text_start_not_bos(saved):
    tok = saved[1]
    ids = encode_texts(tok, ["好评", "差"], 32)
    assert [s[0] for s in ids] == [text_start(tok)[0]] * 2 and text_start(tok)[0] != tok.bos_id
    assert ids[0][1:] == tok.encode("好评")


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_outside_numpys_range_is_one_line(saved, seed, capsys):
    assert main(["probe", "--model", str(saved[0]), "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert "--seed must be in [0, 2**32)" in err and "Traceback" not in err
