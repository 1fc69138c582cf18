"""Perceptron + neural POS tagger: the perceptron's emissions plus scaled neural log-probabilities,
decoded with the perceptron's own tag-bigram and tag-trigram Viterbi.

``emissions = perceptron emissions + lam * scale * neural log P(tag | sentence)``, where ``scale`` is
the standard deviation of the perceptron's emissions (on the neural tagger's held-out training
sentences, measured once at training time) so that ``lam`` does not depend on how large the
perceptron's weights happen to be. On pfr1998 (default configs: perceptron ensemble of 3 with word
clusters, BiLSTM-CNN of `llmlab.text.pos_neural`, lam = 0.2) the two make different errors: test
accuracy 0.9640 -> 0.9686 (unknown words 0.7588 -> 0.7931), dev 0.9703 -> 0.9736 (0.8010 -> 0.8205),
for the training time of both (about 14 minutes, most of it the neural tagger's on one torch thread).
A third member tried beside them, a character-level BiLSTM (characters, character bigrams and their
place in the gold word; a word read from its first and last characters' states), scored 0.9597 alone
and lifted the hybrid's test accuracy by 0.0008 at the weight best on dev, for 45 more minutes of
training: not worth its cost, so the hybrid keeps two members.

The two taggers are saved in subdirectories of the model directory and load on their own too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmlab.core.errors import InputError
from llmlab.text.neural import check_hybrid, emission_scale, holdout_split, hybrid_further, load_hybrid, save_hybrid
from llmlab.text.pos import PosTagger, check_tagged, load_tagger
from llmlab.text.pos_neural import NeuralTagger, NeuralTaggerConfig
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridTaggerConfig:
    lam: float = 0.2  # weight of the neural log-probabilities, in units of the perceptron's emission std; >= 0
    perceptron: PerceptronTaggerConfig = field(default_factory=PerceptronTaggerConfig)  # when trained here
    neural: NeuralTaggerConfig = field(default_factory=NeuralTaggerConfig)  # its holdout also measures `scale`
    perceptron_model: str | None = None  # directory of a saved perceptron tagger to use instead of training one

    def __post_init__(self):
        check_hybrid(self, PerceptronTaggerConfig())


class HybridTagger(PosTagger):
    """A `PerceptronTagger` and a `NeuralTagger` over the same tags, combined in the emissions."""

    kind = "hybrid"

    def __init__(self, perceptron: PerceptronTagger, neural: NeuralTagger, lam: float, scale: float):
        if sorted(perceptron.tags) != sorted(neural.tags):
            raise InputError(f"the perceptron's tags {perceptron.tags} and the neural tagger's {neural.tags} differ")
        self.perceptron, self.neural, self.lam, self.scale = perceptron, neural, lam, scale
        self.tags = perceptron.tags
        self._cols = np.array([neural.tags.index(t) for t in perceptron.tags])  # neural columns in perceptron order

    @property
    def config(self) -> HybridTaggerConfig:
        """The settings of both parts and ``lam`` (what training further keeps by default)."""
        return HybridTaggerConfig(self.lam, self.perceptron.config, self.neural.config)

    def emissions(self, words: Sequence[str], log_probs: np.ndarray | None = None) -> np.ndarray:
        """(n, K) combined emissions in the perceptron's tag order (`log_probs`: the neural ones, if known)."""
        lp = self.neural.log_probs(words) if log_probs is None else log_probs
        return self.perceptron.emissions(words) + (self.lam * self.scale) * lp[:, self._cols].astype(np.float64)

    def add_user_tags(self, entries: Iterable[tuple[str, str]]) -> None:
        """`PosTagger.add_user_tags`, kept by the perceptron part, whose emissions carry them."""
        self.perceptron.add_user_tags(entries)

    def _tag(self, words: list[str]) -> list[str]:
        return self.perceptron.decode(self.emissions(words))

    def _tag_sentences(self, sentences: list[list[str]]) -> list[list[str]]:
        sents = sentences
        lps = self.neural.log_probs_sentences(sents)  # batched: much faster than one sentence at a time
        return [self.perceptron.decode(self.emissions(s, lp)) for s, lp in zip(sents, lps)]

    @classmethod
    def train(cls, sentences, config: HybridTaggerConfig | None = None, init: HybridTagger | None = None
              ) -> HybridTagger:
        """Train both parts, or with `init` train its two parts further on `sentences` alone
        (`PerceptronTagger.train` and `NeuralTagger.train` with their ``init``; None for `config` keeps
        all of `init`'s settings). The emission scale stays `init`'s, so ``lam`` weighs the parts as before."""
        if init is not None and not isinstance(init, HybridTagger):
            raise InputError(f"training goes on from a hybrid tagger, got {type(init).__name__}")
        config = config or (init.config if init is not None else HybridTaggerConfig())
        sents = check_tagged(sentences)
        if init is not None:
            return hybrid_further(cls, sents, config, init)
        if config.perceptron_model:
            perceptron = load_tagger(config.perceptron_model)
            if not isinstance(perceptron, PerceptronTagger):
                raise InputError(f"{config.perceptron_model!r} holds a {perceptron.kind} tagger, not a perceptron")
            tags = sorted({t for s in sents for _, t in s})
            if sorted(perceptron.tags) != tags:  # before the long neural training
                raise InputError(f"the perceptron in {config.perceptron_model!r} knows the tags {perceptron.tags}, "
                                 f"the training data has {tags}: train both on the same data")
        else:
            perceptron = PerceptronTagger.train(sents, config.perceptron)
        neural = NeuralTagger.train(sents, config.neural)
        held = holdout_split(sents, config.neural.holdout)[1] or sents
        scale = emission_scale([perceptron.emissions([w for w, _ in s]) for s in held])
        log.info("perceptron emission std %.3f on %d sentences", scale, len(held))
        return cls(perceptron, neural, config.lam, scale)

    def _state(self, directory: Path) -> dict:
        return save_hybrid(self, directory)

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> HybridTagger:
        return load_hybrid(cls, state, directory, load_tagger, (PerceptronTagger, NeuralTagger), "tagger")
