"""Perceptron + neural segmenter: the perceptron's B/M/E/S emissions plus scaled neural
log-probabilities, decoded with the perceptron's own transition weights.

``emissions = perceptron emissions + lam * scale * neural log P(tag | run)``, where ``scale`` is the
standard deviation of the perceptron's emissions (on the neural segmenter's held-out training
sentences, measured once at training time) so that ``lam`` does not depend on how large the
perceptron's weights happen to be: the same combination as `llmlab.text.pos_hybrid`. The perceptron
sees lexicons (training words, jackknifed; accessor-variety pseudo-words; a user's dictionary) and
the BiLSTM a whole run of context, so they make different errors. On pfr1998 (the default perceptron,
the default BiLSTM, lam = 0.07 chosen on dev) test F1 rises from 0.9595 to 0.9621 and dev F1 from
0.9738 to 0.9753 (retrained later by `seg train --algo hybrid`: test 0.9617, the BiLSTM alone 0.9562); a
larger lam lets the weaker BiLSTM overrule the perceptron (test 0.9592 at 0.5).

The hybrid's lexicon is the perceptron's; a user dictionary added to the hybrid goes into both
parts' lexicons, so it reaches both parts' lexicon features. The two segmenters are saved in
subdirectories of the model directory and load on their own too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmlab.core.errors import InputError
from llmlab.text.base import check_sentences, load_segmenter
from llmlab.text.bmes import decode_runs
from llmlab.text.lexicon import DictSegmenter
from llmlab.text.neural import check_hybrid, emission_scale, holdout_split, hybrid_further, load_hybrid, save_hybrid
from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter
from llmlab.text.seg_neural import NeuralSegmenter, NeuralSegmenterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridSegmenterConfig:
    lam: float = 0.07  # weight of the neural log-probabilities, in units of the perceptron's emission std; >= 0
    perceptron: PerceptronConfig = field(default_factory=PerceptronConfig)  # when trained here
    neural: NeuralSegmenterConfig = field(default_factory=NeuralSegmenterConfig)  # its holdout also measures `scale`
    perceptron_model: str | None = None  # directory of a saved perceptron segmenter to use instead of training one

    def __post_init__(self):
        check_hybrid(self, PerceptronConfig())


class HybridSegmenter(DictSegmenter):
    """A `PerceptronSegmenter` and a `NeuralSegmenter`, combined in the emissions."""

    kind = "hybrid"

    def __init__(self, perceptron: PerceptronSegmenter, neural: NeuralSegmenter, lam: float, scale: float):
        super().__init__(perceptron.lexicon)
        self.perceptron, self.neural, self.lam, self.scale = perceptron, neural, lam, scale

    @property
    def config(self) -> HybridSegmenterConfig:
        """The settings of both parts and ``lam`` (what training further keeps by default)."""
        return HybridSegmenterConfig(self.lam, self.perceptron.config, self.neural.config)

    def _add_user_words(self, entries: list[tuple[str, int | None]]) -> None:
        """A user dictionary goes to both parts' lexicons."""
        self.perceptron.add_user_dict(entries)
        self.neural.add_user_dict(entries)

    def _set_word_count(self, word: str, count: int) -> None:
        """So do `del_word` and `suggest_freq`."""
        self.perceptron.lexicon.set_count(word, count)
        self.neural.lexicon.set_count(word, count)

    def emissions(self, text: str) -> np.ndarray:
        """(n, 4) combined B/M/E/S scores of a run, before the perceptron's transitions."""
        return self._emissions([text], self.perceptron.emissions(text))

    def _emissions(self, runs: list[str], perceptron_scores: np.ndarray) -> np.ndarray:
        lp = np.concatenate([np.zeros((0, 4), np.float32), *self.neural.log_probs_runs(runs)])
        return perceptron_scores + (self.lam * self.scale) * lp.astype(np.float64)

    def _cut_run(self, run: str) -> list[str]:
        return self._cut_runs([run])[0]

    def _cut_runs(self, runs: list[str], batch_chars: int = 50_000) -> list[list[str]]:
        """The perceptron's batches (`PerceptronSegmenter._cut_runs`), each also through the BiLSTM."""
        p = self.perceptron
        return [words for batch in p.batches(runs, batch_chars)
                for words in decode_runs(batch, self._emissions(batch, p.batch_emissions(batch, batch_chars)),
                                         p.trans)]

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: HybridSegmenterConfig | None = None,
              init: HybridSegmenter | None = None) -> HybridSegmenter:
        """Train both parts, or with `init` train its two parts further on `sentences` alone
        (`PerceptronSegmenter.train` and `NeuralSegmenter.train` with their ``init``; None for `config`
        keeps all of `init`'s settings). The emission scale stays `init`'s, so ``lam`` weighs the
        parts as before."""
        if init is not None and not isinstance(init, HybridSegmenter):
            raise InputError(f"training goes on from a hybrid segmenter, got {type(init).__name__}")
        config = config or (init.config if init is not None else HybridSegmenterConfig())
        sents = check_sentences(sentences)
        if init is not None:
            seg = hybrid_further(cls, sents, config, init)
            if init.forced:
                seg.force_words(init.forced.words)
            return seg
        if config.perceptron_model:
            perceptron = load_segmenter(config.perceptron_model)
            if not isinstance(perceptron, PerceptronSegmenter):
                raise InputError(f"{config.perceptron_model!r} holds a {perceptron.kind} segmenter, not a perceptron")
        else:
            perceptron = PerceptronSegmenter.train(sents, config.perceptron)
        neural = NeuralSegmenter.train(sents, config.neural)
        held = holdout_split(sents, config.neural.holdout)[1] or sents
        scale = emission_scale([perceptron.emissions("".join(s)) for s in held])
        log.info("perceptron emission std %.3f on %d sentences", scale, len(held))
        return cls(perceptron, neural, config.lam, scale)

    def _state(self, directory: Path) -> dict:
        return save_hybrid(self, directory)

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> HybridSegmenter:
        return load_hybrid(cls, state, directory, load_segmenter, (PerceptronSegmenter, NeuralSegmenter), "segmenter")
