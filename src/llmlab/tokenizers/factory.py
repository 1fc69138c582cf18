"""One entry point to train any llmlab tokenizer by name (what ``--tokenizer bpe --vocab-size 8000``
calls in the pipeline and ``llmlab tokenizer train`` calls on the command line).

>>> tok = train_tokenizer("bpe", ["hello world", "hello there"], vocab_size=262)
>>> tok.decode(tok.encode("hello"))
'hello'
"""

from __future__ import annotations

from collections.abc import Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import Tokenizer, training_texts

ALGOS = ("bpe", "unigram", "wordpiece", "whitespace", "char")


def train_tokenizer(algo: str, texts: Iterable[str], vocab_size: int, **kw) -> Tokenizer:
    """Train tokenizer `algo` (one of `ALGOS`) on `texts` with `vocab_size` tokens in all.

    Keyword arguments go to the trainer: ``pattern`` ("gpt2", "gpt4" or a regex), ``segmenter`` (a
    ``cut(str) -> list[str]`` for Chinese), ``special_tokens`` (extra ones, e.g. chat roles), and
    algorithm-specific ones (``min_frequency``, ``max_piece_len``, ``prefix``...).
    """
    checked = training_texts(texts)  # refuses one string here, a bad item as it is read
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise InputError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    texts = list(checked)
    if not any(texts):
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    if algo == "bpe":
        from llmlab.tokenizers.bpe import BPETokenizer
        return BPETokenizer.train(texts, vocab_size, **kw)
    if algo == "unigram":
        from llmlab.tokenizers.unigram import UnigramTokenizer
        return UnigramTokenizer.train(texts, vocab_size, **kw)
    if algo == "wordpiece":
        from llmlab.tokenizers.wordpiece import WordPieceTokenizer
        return WordPieceTokenizer.train(texts, vocab_size, **kw)
    if algo == "whitespace":
        from llmlab.tokenizers.whitespace import WhitespaceTokenizer
        return WhitespaceTokenizer.train(texts, vocab_size, **kw)
    if algo == "char":
        from llmlab.tokenizers.char import CharTokenizer
        return CharTokenizer.train(texts, max_vocab=vocab_size, **kw)
    raise InputError(f"unknown tokenizer algorithm {algo!r}: use one of {ALGOS}")
