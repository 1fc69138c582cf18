"""Shared fixtures of the text tests: small models trained once per session on a slice of pfr1998, and every
small dependency tree (for the decoders and the oracle)."""

import functools
import io
import sys

import numpy as np
import pytest

from llmlab.data.corpora import pfr1998, pfr1998_words
from llmlab.text.seg_neural import NeuralSegmenterConfig

N_TRAIN = 600
SMALL_NEURAL = NeuralSegmenterConfig(epochs=2, char_dim=16, bigram_dim=16, span_dim=4, hidden=32, holdout=10, lr=1e-2)


@pytest.fixture(scope="session")
def small_neural():
    """A neural segmenter config that trains in seconds."""
    return SMALL_NEURAL


@pytest.fixture(scope="session")
def train_words():
    return pfr1998_words("train")[:N_TRAIN]


@pytest.fixture(scope="session")
def test_words():
    return pfr1998_words("test")[:80]


@pytest.fixture(scope="session")
def train_tagged():
    return pfr1998("train")[:N_TRAIN]


@pytest.fixture(scope="session")
def segmenters(train_words):
    """One trained segmenter of every kind."""
    from llmlab.text.base import KINDS, segmenter_class
    from llmlab.text.hmm import HmmConfig
    from llmlab.text.lattice import LatticeConfig
    from llmlab.text.matching import MatchConfig
    from llmlab.text.perceptron import PerceptronConfig
    from llmlab.text.seg_hybrid import HybridSegmenterConfig

    configs = {"fmm": MatchConfig("forward"), "bmm": MatchConfig("backward"), "bimm": MatchConfig("bidirectional"),
               "unigram": LatticeConfig(), "bigram": LatticeConfig(), "hmm": HmmConfig(),
               "perceptron": PerceptronConfig(epochs=2, folds=2), "neural": SMALL_NEURAL,
               "hybrid": HybridSegmenterConfig(perceptron=PerceptronConfig(epochs=2, folds=2), neural=SMALL_NEURAL)}
    assert set(configs) == set(KINDS)
    return {k: segmenter_class(k).train(train_words, c) for k, c in configs.items()}


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(argv, stdin)`` runs ``llmlab ARGV`` in this process with `stdin` as its standard input and
    gives (exit code, stdout, stderr)."""
    from llmlab.cli import main

    def run(argv, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8"))
        rc = main(argv)
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture()
def defaults(tmp_path, monkeypatch, train_words, train_tagged):
    """The default models, trained small (the real ones take minutes) into a fresh cache; the number of
    trainings of each is counted. Each `clear()` is what a new process sees: nothing loaded yet."""
    import llmlab.text.default as default
    from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter
    from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig

    trained = {"seg": 0, "pos": 0}

    def seg():
        trained["seg"] += 1
        return PerceptronSegmenter.train(train_words[:300], PerceptronConfig(epochs=1, folds=2))

    def pos():
        trained["pos"] += 1
        return PerceptronTagger.train(train_tagged[:300], PerceptronTaggerConfig(epochs=1, ensemble=1, clusters=()))

    def clear():
        default.default_segmenter.cache_clear()
        default.default_tagger.cache_clear()

    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(default, "_train_segmenter", seg)
    monkeypatch.setattr(default, "_train_tagger", pos)
    clear()
    yield trained, clear, tmp_path / "cache"
    clear()


@functools.cache
def _all_trees(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every single-rooted tree over n words as (trees, n) heads, and which of them are projective."""
    digits = np.stack(np.unravel_index(np.arange(n**n), (n,) * n), axis=1).astype(np.int64)  # a head other than self
    heads = digits + (digits >= np.arange(1, n + 1))  # digit v of word d: head v if v < d, else v + 1
    heads = heads[(heads == 0).sum(axis=1) == 1]
    parent = np.concatenate([np.zeros((len(heads), 1), np.int64), heads], axis=1)  # parent[:, 0]: the root
    pos = np.tile(np.arange(1, n + 1), (len(heads), 1))
    for _ in range(n):  # n steps up reach the root unless on a cycle
        pos = np.take_along_axis(parent, pos, axis=1)
    trees = heads[(pos == 0).all(axis=1)]
    dep = np.arange(1, n + 1)
    lo, hi = np.minimum(trees, dep), np.maximum(trees, dep)  # (trees, n) arc spans
    a, b = lo[:, :, None], hi[:, :, None]
    c, e = lo[:, None, :], hi[:, None, :]
    crossing = ((a < c) & (c < b) & (b < e)).any(axis=(1, 2))
    return trees, ~crossing


@pytest.fixture(scope="session")
def all_trees():
    """n -> (every single-rooted tree over n words as (trees, n) heads, which of them are projective)."""
    return _all_trees
