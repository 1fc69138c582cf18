"""Small trained models shared by the text tests (trained once per session on a slice of pfr1998)."""

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
