"""Built-in corpora and user corpora. No torch."""

from llmlab.data.corpora import (
    CORPORA,
    SPLITS,
    ArithmeticProblem,
    arithmetic,
    corpus_text,
    lm_splits,
    pfr1998,
    pfr1998_text,
    pfr1998_words,
    sentiment,
)

__all__ = [
    "CORPORA",
    "SPLITS",
    "ArithmeticProblem",
    "arithmetic",
    "corpus_text",
    "lm_splits",
    "pfr1998",
    "pfr1998_text",
    "pfr1998_words",
    "sentiment",
]
