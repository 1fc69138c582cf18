"""WordPiece (BERT): greedy longest-match-first, pieces inside a word marked with a prefix (``##``).

>>> tok = WordPieceTokenizer(["un", "##aff", "##able", "a", "##b"], pattern="whitespace")
>>> tok.tokens("unaffable")
['un', '##aff', '##able']

A word that cannot be covered entirely becomes one ``<unk>``, as in Hugging Face's ``WordPiece``.

Training (`train_wordpiece`) starts from characters and repeatedly joins the pair with the best
likelihood gain, count(ab) / (count(a) * count(b)), so a pair of rare pieces that nearly always occur
together is joined before a pair of common ones. Ties: higher pair count, then the smaller pair of
(left, right) strings. The text's spaces stay inside the pieces (we pre-tokenize with the same
lossless regex as BPE), so decoding gives the text back when no piece was unknown.

A word must not start with the prefix: Hugging Face's ``WordPiece`` would match "###" at the start of
a word to the continuation "#", and no decoder could tell the two apart. So the pre-tokenizer cuts
each prefix character that starts the prefix into a piece of its own (`prefix_guard`), as BERT's
pre-tokenizer does with every punctuation character; "## Heading" is then "#", "#", " Heading".
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import regex

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import UNK
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import (
    SubwordTokenizer,
    check_specials,
    check_unk,
    pretok_from_hf,
    specials_from_hf,
    vocab_in_id_order,
)

MAX_WORD = 10_000  # longer words become <unk>; generous because Chinese pre-tokens are whole clauses


def prefix_guard(prefix: str) -> str:
    """The regex that isolates each character starting an occurrence of `prefix`, so that no piece
    begins with it (a one-character prefix: every occurrence).

    >>> prefix_guard("##"), regex.findall(prefix_guard("##"), "a###")
    ('\\\\#(?=\\\\#)', ['#', '#'])
    """
    if len(prefix) == 1:
        return regex.escape(prefix)
    return regex.escape(prefix[0]) + "(?=" + regex.escape(prefix[1:]) + ")"


class WordPieceTokenizer(SubwordTokenizer):
    """`vocab` holds the pieces (continuations spelled with `prefix`); special tokens come first."""

    kind = "wordpiece"

    def __init__(self, vocab: list[str], specials: dict[str, int] | None = None, pretok: PreTokenizer | None = None,
                 pattern: str = "gpt4", prefix: str = "##", max_word: int = MAX_WORD):
        if specials is None:
            specials = {s: i for i, s in enumerate(check_specials(()))}
            vocab = list(specials) + [v for v in vocab if v not in specials]
        super().__init__(specials, pretok or PreTokenizer(pattern, then=[prefix_guard(prefix)]))
        if UNK not in specials:
            raise InputError(f"a WordPiece tokenizer needs the {UNK!r} special token")
        if not prefix:
            raise InputError("the continuation prefix must be non-empty")
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}
        if len(self.ids) != len(self.vocab):
            raise InputError("WordPiece vocabulary has repeated entries")
        self.prefix, self.max_word, self.unk = prefix, max_word, specials[UNK]
        # Special tokens are left out of matching so that ordinary text never produces them.
        self._match = {t: i for t, i in self.ids.items() if i not in set(specials.values())}
        self.max_len = max((len(t) for t in self._match), default=1)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, pattern: str = "gpt4",
              segmenter: Callable[[str], list[str]] | None = None, special_tokens: Iterable[str] = (),
              prefix: str = "##") -> WordPieceTokenizer:
        from llmlab.tokenizers.subword import count_pieces

        specials = check_specials(special_tokens)
        pretok = PreTokenizer(pattern, segmenter, then=[prefix_guard(prefix)])
        pieces = train_wordpiece(count_pieces(texts, pretok), vocab_size - len(specials), prefix)
        pieces = [p for p in pieces if p not in specials]  # text spelling a special token uses other pieces
        return cls(list(specials) + pieces, {s: i for i, s in enumerate(specials)}, pretok, prefix=prefix)

    def token_to_id(self, token: str) -> int | None:
        return self.ids.get(token)

    def id_to_token(self, i: int) -> str:
        return self.vocab[i]

    def _encode_piece(self, word: str) -> tuple[int, ...]:
        if len(word) > self.max_word:
            return (self.unk,)
        get, prefix, n = self._match.get, self.prefix, len(word)
        out, start = [], 0
        while start < n:
            for end in range(min(n, start + self.max_len), start, -1):
                i = get(word[start:end] if start == 0 else prefix + word[start:end])
                if i is not None:
                    break
            else:
                return (self.unk,)
            out.append(i)
            start = end
        return tuple(out)

    def decode(self, ids: list[int]) -> str:
        """Each token's text, a continuation without its prefix (the prefix alone is no continuation)."""
        ids = self.checked_ids(ids)
        p, specials, vocab = self.prefix, set(self.special_ids.values()), self.vocab
        return "".join(vocab[i][len(p):] if i not in specials and len(vocab[i]) > len(p) and vocab[i].startswith(p)
                       else vocab[i] for i in ids)

    def _hf_model(self) -> dict:
        return {"type": "WordPiece", "unk_token": UNK, "continuing_subword_prefix": self.prefix,
                "max_input_chars_per_word": self.max_word, "vocab": dict(self.ids)}

    def _hf_decoder(self) -> dict:
        # Not HF's WordPiece decoder: it puts a space before each word, and ours carry their own.
        # Replace works token by token: it drops the prefix that starts a longer token, like `decode`.
        strip = r"\A" + regex.escape(self.prefix) + r"(?=[\s\S])"
        return {"type": "Replace", "pattern": {"Regex": strip}, "content": ""}

    @classmethod
    def from_hf_json(cls, doc: dict) -> WordPieceTokenizer:
        model = doc.get("model") or {}
        tokens = vocab_in_id_order(model, "WordPiece")
        specials = specials_from_hf(doc)
        check_unk(model, specials)
        return cls(tokens, specials, pretok_from_hf(doc),
                   prefix=model.get("continuing_subword_prefix", "##"),
                   max_word=int(model.get("max_input_chars_per_word", MAX_WORD)))


def train_wordpiece(word_counts: Mapping[str, int], size: int, prefix: str = "##") -> list[str]:
    """`size` pieces: the characters (word-initial and ``##`` forms) then joined pieces, in order.

    All first pairs score 0.05 (e.g. (##u, ##g): 20 / (20 * 20)); the most frequent, (##u, ##g), wins;
    then (h, ##ug); then (p, ##ug) scores 5 / (5 * 5) = 0.2 against (hug, ##s) 5 / (15 * 5):

    >>> train_wordpiece({"hug": 10, "pug": 5, "hugs": 5}, 9)
    ['h', 'p', '##g', '##s', '##u', '##ug', 'hug', 'pug', 'hugs']
    """
    from llmlab.core.progress import progress as progress_bar

    if not word_counts:
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    for w in word_counts:
        if len(w) > len(prefix) and w.startswith(prefix):  # the prefix alone is no continuation
            raise InputError(f"word {w!r} starts with the continuation prefix {prefix!r}, so its pieces would be "
                             "read as continuations; pre-tokenize with prefix_guard")
    state = _PairState([([w[0]] + [prefix + ch for ch in w[1:]], c) for w, c in word_counts.items()])
    alphabet = sorted(state.units, key=lambda t: (t.startswith(prefix), t))
    if size < len(alphabet):
        raise InputError(f"vocab size leaves room for {size} pieces, below the {len(alphabet)} characters "
                         f"(word-initial and continuation forms) of the corpus")
    vocab, seen = list(alphabet), set(alphabet)
    bar = progress_bar(total=size - len(vocab), desc="wordpiece merges")
    while len(vocab) < size:
        pair = state.pop_best()
        if pair is None:
            break
        new = pair[0] + pair[1][len(prefix):]
        state.merge(pair, new)
        if new not in seen:
            seen.add(new)
            vocab.append(new)
            bar.update(1)
    bar.close()
    return vocab


class _PairState:
    """Words as piece lists with pair and piece counts kept up to date, and a heap of pair scores.

    A pair's score rises when one of its pieces gets rarer, so after a merge every pair that holds
    the merged pieces is queued again; stale heap entries are recognised on pop and requeued.
    """

    def __init__(self, words: list[tuple[list[str], int]]):
        self.words = words
        self.pairs: Counter = Counter()
        self.units: Counter = Counter()
        self.where: dict[tuple[str, str], set[int]] = {}
        self.with_unit: dict[str, set[tuple[str, str]]] = {}
        for k, (w, c) in enumerate(words):
            for t in w:
                self.units[t] += c
            for p in zip(w, w[1:]):
                self._add(p, c, k)
        self.heap = [self._entry(p) for p in self.pairs]
        heapq.heapify(self.heap)

    def _entry(self, p: tuple[str, str]) -> tuple:
        c = self.pairs[p]
        return (-c / (self.units[p[0]] * self.units[p[1]]), -c, p)

    def _add(self, p: tuple[str, str], c: int, k: int) -> None:
        self.pairs[p] += c
        self.where.setdefault(p, set()).add(k)
        self.with_unit.setdefault(p[0], set()).add(p)
        self.with_unit.setdefault(p[1], set()).add(p)

    def pop_best(self) -> tuple[str, str] | None:
        while self.heap:
            entry = heapq.heappop(self.heap)
            p = entry[2]
            if self.pairs.get(p, 0) <= 0:
                continue
            fresh = self._entry(p)
            if fresh == entry:
                return p
            heapq.heappush(self.heap, fresh)
        return None

    def merge(self, pair: tuple[str, str], new: str) -> None:
        a, b = pair
        touched: set[tuple[str, str]] = set()
        for k in self.where.pop(pair, ()):
            w, c = self.words[k]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:]):
                self.pairs[p] -= c
                touched.add(p)
            for t in w:
                self.units[t] -= c
            w = _join(w, a, b, new)
            self.words[k] = (w, c)
            for t in w:
                self.units[t] += c
            for p in zip(w, w[1:]):
                self._add(p, c, k)
                touched.add(p)
        self.pairs.pop(pair, None)
        touched |= self.with_unit.get(a, set()) | self.with_unit.get(b, set())
        for p in touched:
            if self.pairs.get(p, 0) > 0:
                heapq.heappush(self.heap, self._entry(p))


def _join(w: list[str], a: str, b: str, new: str) -> list[str]:
    """Join each `a` followed by `b`, left to right.

    >>> _join(["a", "##b", "##a", "##b"], "a", "##b", "ab")
    ['ab', '##a', '##b']
    """
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out
