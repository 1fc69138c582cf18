"""Choosing domain text from a large pool by cross-entropy difference (Moore and Lewis, 2010; topic 42:
which data to continue pretraining a domain model on).

Two n-gram models score every pool document: one trained on a sample of the domain, one on a random
sample of the pool of about the same size. A document's score is its cross-entropy under the domain
model minus that under the pool model, in nats per token: negative where the domain model finds it
likelier than general text does. Both models see one vocabulary, the tokens seen at least twice in
the domain sample; every other token is one ``<other>`` token in both (Axelrod et al., 2011), so the
domain model, which meets its own rare tokens as ``<other>``, learns how often text leaves its
vocabulary, and the difference compares like with like.
The lowest scores are the most domain-like.

>>> domain = ["3+4=7", "12*3=36", "8-5=3", "40+2=42"] * 5
>>> pool = ["今天天气很好", "21+21=42", "我们去北京", "9*9=81"]
>>> [pool[i] for i in select_domain(pool, domain, keep=2)]
['21+21=42', '9*9=81']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from llmlab.classic.ngram import NgramConfig, NgramModel, split_units
from llmlab.core.errors import InputError

OTHER = "<other>"  # every token outside the domain sample's vocabulary


def _tokens(texts: Sequence[str], unit: str, vocab: set[str]) -> list[list[str]]:
    return [[t if t in vocab else OTHER for t in split_units(x, unit)] for x in texts]


def doc_cross_entropy(model: NgramModel, sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """Nats per predicted token (each token and the end of the document) of every sentence.

    >>> m = NgramModel.train([["a", "b"]], NgramConfig(order=1, smoothing="mle"))
    >>> doc_cross_entropy(m, [["a"], ["a", "b"]]).round(4).tolist()  # p(a) = p(b) = p(</s>) = 1/3
    [1.0986, 1.0986]
    """
    lp, _ = model.token_logprobs(sentences)
    counts = np.array([len(s) + 1 for s in sentences])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return -np.add.reduceat(lp, starts) / counts if len(sentences) else np.zeros(0)


def moore_lewis_scores(pool: Sequence[str], domain: Sequence[str], config: NgramConfig | None = None,
                       seed: int = 0) -> np.ndarray:
    """Cross-entropy difference H_domain - H_pool per pool document (nats per token; lower = more
    domain-like). The pool model trains on random pool documents holding about as many tokens as
    the domain sample, in two halves of which each scores the other's documents (and the first
    scores the rest). `config` (default: character trigrams, modified Kneser-Ney) sets both models."""
    config = config or NgramConfig(order=3, unit="char")
    config = replace(config, min_count=1, max_vocab=0)  # the shared vocabulary is fixed here
    counts = Counter(t for x in domain for t in split_units(x, config.unit))
    vocab = {t for t, c in counts.items() if c >= 2}
    if not counts:
        raise InputError("the domain sample has no tokens to learn from")
    if not pool:
        raise InputError("the pool has no documents to choose from")
    domain_sents = [s for s in _tokens(domain, config.unit, vocab) if s]
    pool_sents = _tokens(pool, config.unit, vocab)
    want = sum(len(s) + 1 for s in domain_sents)
    order = np.random.default_rng(seed).permutation(len(pool))
    sizes = np.array([len(pool_sents[i]) + 1 for i in order])
    sample = order[: int(np.searchsorted(np.cumsum(sizes), want)) + 1]
    halves = sample[0::2], sample[1::2]
    if not any(pool_sents[i] for i in halves[0]) or not any(pool_sents[i] for i in halves[1]):
        raise InputError(f"the pool's {len(pool)} documents hold too little text to learn general text from")
    # Cross-fitted: a document of one half is scored by the model of the other, so that no document
    # is scored by a model that trained on it (which would make it look general)
    models = [NgramModel.train([pool_sents[i] for i in h if pool_sents[i]], config) for h in halves]
    h_pool = doc_cross_entropy(models[0], pool_sents)
    h_pool[halves[0]] = doc_cross_entropy(models[1], [pool_sents[i] for i in halves[0]])
    h_domain = doc_cross_entropy(NgramModel.train(domain_sents, config), pool_sents)
    return h_domain - h_pool


def keep_count(keep: int | float, n: int) -> int:
    """How many of `n` documents `keep` asks for: a count, or a fraction in (0, 1] (at least one).

    >>> keep_count(0.25, 10), keep_count(50, 10)
    (2, 10)
    """
    if isinstance(keep, float):
        if not 0 < keep <= 1:
            raise InputError(f"keep as a fraction must be in (0, 1], got {keep}")
        keep = max(1, round(keep * n))
    if keep < 1:
        raise InputError(f"keep must be at least 1 document, got {keep}")
    return min(keep, n)


def most_domain_like(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` lowest scores, lowest first; ties keep pool order."""
    return np.argsort(scores, kind="stable")[:k]


def select_domain(pool: Sequence[str], domain: Sequence[str], keep: int | float,
                  config: NgramConfig | None = None, seed: int = 0) -> np.ndarray:
    """Indices of the `keep` most domain-like pool documents (a float in (0, 1]: that fraction of the
    pool), most domain-like first; ties keep pool order."""
    k = keep_count(keep, len(pool))  # checked before the models train
    return most_domain_like(moore_lewis_scores(pool, domain, config, seed), k)
