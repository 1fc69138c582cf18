"""The closed vocabulary of a classic model: ids for words plus ``<unk>``, ``<s>`` and ``</s>``.

Ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``; words follow by falling training count (ties in
first-seen order), so the same corpus always gives the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

from llmlab.core.errors import InputError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]  # id -> token; tokens[:3] == ("<unk>", "<s>", "</s>")

    def __post_init__(self):
        if tuple(self.tokens[:3]) != (UNK, BOS, EOS):
            raise InputError(f"a vocabulary must start with {UNK}, {BOS}, {EOS}; got {list(self.tokens[:3])}")
        bad = next((i for i, t in enumerate(self.tokens) if not isinstance(t, str)), None)
        if bad is not None:  # a damaged saved vocabulary: sampling would join a number into the text
            raise InputError(f"a vocabulary's tokens are strings; token {bad} is {self.tokens[bad]!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise InputError("a vocabulary must not repeat a token")
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def id(self, token: str) -> int:
        """Id of `token`, or the id of ``<unk>`` when it is not in the vocabulary."""
        return self._ids.get(token, UNK_ID)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`, unknown ones as ``<unk>`` (0).

        >>> Vocab.build([["a", "b", "a"]]).encode(["a", "z", "b"])
        [3, 0, 4]
        """
        get = self._ids.get
        return [get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None) -> Vocab:
        """Vocabulary of the tokens seen at least `min_count` times, the `max_size` most frequent at most.

        >>> Vocab.build([["b", "a", "a"]]).tokens
        ('<unk>', '<s>', '</s>', 'a', 'b')
        """
        return build_encoded(list(sentences), min_count, max_size)[0]


def token_list(tokens, what: str = "tokens") -> list[str]:
    """`tokens` (any iterable of strings, read once) as a list; a string is an InputError, not read as
    its characters (a text must be split into tokens first).

    >>> token_list(("中国", "人"))
    ['中国', '人']
    """
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
        raise InputError(f"{what} must be a list of tokens (split the text first), got {type(tokens).__name__} "
                         f"{tokens!r:.60}")
    out = list(tokens)
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"{what} must be strings, got {type(out[bad]).__name__} {out[bad]!r:.60}")
    return out


def token_sentences(sentences, what: str = "sentences") -> list[list[str]]:
    """`sentences` as a list of token lists (`token_list` each): a generator is read once, here, so work
    that reads the sentences twice (a vocabulary, then the ids) sees them both times.

    >>> token_sentences(s.split() for s in ["a b", "c"])
    [['a', 'b'], ['c']]
    """
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Iterable):
        raise InputError(f"{what} must be a list of sentences, each a list of tokens, got {type(sentences).__name__}")
    return [token_list(s, f"{what}[{i}]") for i, s in enumerate(sentences)]


def build_encoded(sentences: Sequence[Sequence[str]], min_count: int = 1, max_size: int | None = None):
    """`Vocab.build` and `encode_sentences` in one pass over the tokens: (vocab, ids, sentence numbers).

    >>> vocab, ids, sent = build_encoded([["b", "a"], ["a"]])
    >>> vocab.tokens[3:], ids.tolist()
    (('a', 'b'), [1, 4, 3, 2, 1, 3, 2])
    """
    if min_count < 1:
        raise InputError(f"min_count must be >= 1, got {min_count}")
    if max_size is not None and max_size < 1:
        raise InputError(f"max_size must be >= 1 or None, got {max_size}")
    first: dict[str, int] = {}
    seen = np.fromiter((first.setdefault(t, len(first)) for t in chain.from_iterable(sentences)), dtype=np.int64)
    counts = np.bincount(seen, minlength=len(first))
    words = list(first)
    _refuse_boundaries(first)
    remap = np.full(len(first), UNK_ID, dtype=np.int64)
    if UNK in first:  # a corpus that already wrote its rare words as <unk> (as Penn Treebank does)
        counts[first[UNK]] = 0
        remap[first[UNK]] = UNK_ID
    order = np.argsort(-counts, kind="stable")  # falling count, ties in first-seen order
    order = order[counts[order] >= min_count][:max_size]
    remap[order] = np.arange(3, 3 + len(order))
    vocab = Vocab((UNK, BOS, EOS, *[words[i] for i in order.tolist()]))
    return (vocab, *_with_boundaries(remap[seen], np.array([len(s) for s in sentences], dtype=np.int64)))


def encode_sentences(vocab: Vocab, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """All sentences as one id stream, each as ``<s> w1 .. wm </s>``, with each position's sentence number.

    >>> ids, sent = encode_sentences(Vocab.build([["a"]]), [["a"], ["a", "b"]])
    >>> ids.tolist(), sent.tolist()
    ([1, 3, 2, 1, 3, 0, 2], [0, 0, 0, 1, 1, 1, 1])
    """
    get = vocab._ids.get
    lengths = np.array([len(s) for s in sentences], dtype=np.int64)
    words = np.fromiter(map(get, chain.from_iterable(sentences), repeat(UNK_ID)), dtype=np.int64,
                        count=int(lengths.sum()))
    _refuse_boundaries([t for t, i in ((BOS, BOS_ID), (EOS, EOS_ID)) if (words == i).any()])
    return _with_boundaries(words, lengths)


def _refuse_boundaries(words) -> None:
    """A word spelled ``<s>`` or ``</s>`` in the text would silently become a sentence boundary and
    drop out of perplexity; refuse it, as KenLM does."""
    for special in (BOS, EOS):
        if special in words:
            raise InputError(f"the text holds the word {special!r}, which n-gram models keep for sentence "
                             "boundaries: remove or rename it (KenLM refuses it too)")


def _with_boundaries(words: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert <s> before and </s> after each sentence of the flat word ids; sentence number per position."""
    ends = np.cumsum(lengths + 2)  # one past each sentence's </s>
    ids = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
    is_word = np.ones(len(ids), dtype=bool)
    is_word[ends - 1] = is_word[ends - lengths - 2] = False
    ids[ends - lengths - 2], ids[ends - 1], ids[is_word] = BOS_ID, EOS_ID, words
    sent = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths + 2)
    return ids, sent
