"""Epoch checkpoints of the neural segmenter and tagger (`llmlab.text.neural.epoch_checkpoints`): a training
stopped after an epoch resumes to the very weights an uninterrupted one gives; a checkpoint of another run
is refused; `seg train` / `pos train` keep one beside -o, resume from it and remove it when the model is saved."""

import json
from dataclasses import replace

import numpy as np
import pytest

import llmlab.text.neural as neural
from llmlab.core.errors import InputError
from llmlab.text.pos_neural import NeuralTagger, NeuralTaggerConfig
from llmlab.text.seg_neural import NeuralSegmenter

POS_SMALL = NeuralTaggerConfig(epochs=3, word_dim=16, char_dim=8, filters=16, length_dim=4, hidden=16, batch_size=8,
                               lr=1e-2, holdout=10, pretrain=False)


def _stop_in_epoch(monkeypatch, epoch: int) -> None:
    """Make `fit_epochs` raise KeyboardInterrupt as epoch `epoch` (1-based) starts, as Ctrl-C would."""
    real = neural.progress

    def progress(items, desc):
        if f"epoch {epoch}/" in desc:
            raise KeyboardInterrupt
        return real(items, desc=desc)

    monkeypatch.setattr(neural, "progress", progress)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["segmenter", "tagger"])
def test_a_stopped_training_resumes_to_the_same_weights(kind, train_words, train_tagged, small_neural, tmp_path,
                                                        monkeypatch):
    cls, data, config = ((NeuralSegmenter, train_words[:200], replace(small_neural, epochs=3)) if kind == "segmenter"
                         else (NeuralTagger, train_tagged[:200], POS_SMALL))
    whole = cls.train(data, config)
    ckpt = tmp_path / "ckpt"
    with monkeypatch.context() as m:
        _stop_in_epoch(m, 3)
        with pytest.raises(KeyboardInterrupt), neural.epoch_checkpoints(ckpt):
            cls.train(data, config)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    with neural.epoch_checkpoints(ckpt):
        resumed = cls.train(data, config)
    assert _same(resumed.weights, whole.weights) and resumed.info == whole.info
    with neural.epoch_checkpoints(ckpt):  # a finished run's checkpoint: nothing left to train, the same model
        assert _same(cls.train(data, config).weights, whole.weights)
    with pytest.raises(InputError, match="another run"), neural.epoch_checkpoints(ckpt):
        cls.train(data, replace(config, seed=1))
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(neural.CHECKPOINT_FILES)  # left as it was


def test_cli_training_resumes_and_cleans_up(train_words, small_neural, tmp_path, monkeypatch, cli):
    import llmlab.cli.seg as seg_cli
    from llmlab.text.base import load_segmenter

    config = replace(small_neural, epochs=2)
    monkeypatch.setattr(seg_cli, "_config_for", lambda algo, args, base=None: config)
    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[:200]), encoding="utf-8")
    argv = ["seg", "train", "--algo", "neural", "--train", str(train), "-o", str(tmp_path / "m")]
    whole = NeuralSegmenter.train(train_words[:200], config)

    with monkeypatch.context() as m:
        _stop_in_epoch(m, 2)
        rc, _, err = cli(argv)
    ckpt = tmp_path / "m.checkpoint"
    assert rc == 130 and "resumes there" in err and (ckpt / "state.json").exists() and not (tmp_path / "m").exists()
    rc, _, _ = cli(argv)
    assert rc == 0 and not ckpt.exists() and _same(load_segmenter(tmp_path / "m").weights, whole.weights)

    with monkeypatch.context() as m:  # a stopped run of other settings: refused, then --fresh starts over
        m.setattr(seg_cli, "_config_for", lambda algo, args, base=None: replace(config, seed=5))
        _stop_in_epoch(m, 2)
        assert cli(argv)[0] == 130
    rc, _, err = cli(argv)
    assert rc == 2 and "another run" in err and ckpt.exists()
    rc, _, _ = cli([*argv, "--fresh"])
    assert rc == 0 and not ckpt.exists() and _same(load_segmenter(tmp_path / "m").weights, whole.weights)

    rc, _, err = cli(["seg", "train", "--algo", "fmm", "--train", str(train), "-o", str(tmp_path / "f"), "--fresh"])
    assert rc == 2 and "--fresh applies to --algo neural / hybrid" in err
