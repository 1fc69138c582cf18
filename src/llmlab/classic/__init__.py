"""Classic language modelling: information theory, n-gram models, word vectors. No torch at import
(word2vec imports torch inside `train_word2vec`)."""

from llmlab.classic.arpa import read_arpa, write_arpa
from llmlab.classic.information import (
    bits_per_unit,
    cross_entropy,
    entropy,
    perplexity,
    perplexity_from_nll,
)
from llmlab.classic.ngram import NgramConfig, NgramModel, corpus_sentences
from llmlab.classic.two_errors import plot_two_errors, two_errors_table
from llmlab.classic.vectors import WordVectors, evaluate_analogies, evaluate_similarity, onehot_vs_distributed
from llmlab.classic.vocab import Vocab
from llmlab.classic.word2vec import Word2VecConfig, train_word2vec

__all__ = [
    "NgramConfig",
    "NgramModel",
    "Vocab",
    "Word2VecConfig",
    "WordVectors",
    "bits_per_unit",
    "corpus_sentences",
    "cross_entropy",
    "entropy",
    "evaluate_analogies",
    "evaluate_similarity",
    "onehot_vs_distributed",
    "perplexity",
    "perplexity_from_nll",
    "plot_two_errors",
    "read_arpa",
    "train_word2vec",
    "two_errors_table",
    "write_arpa",
]
