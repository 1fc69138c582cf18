"""Classic language modelling: information theory, n-gram models, word vectors. No torch at import."""

from llmlab.classic.information import (
    bits_per_unit,
    cross_entropy,
    entropy,
    perplexity,
    perplexity_from_nll,
)

__all__ = ["bits_per_unit", "cross_entropy", "entropy", "perplexity", "perplexity_from_nll"]
