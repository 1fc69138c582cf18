"""A word lexicon with counts and a prefix table, owned by each dictionary-aware segmenter.

The prefix table maps every word and every proper prefix of a word to the word's count (0 for a
prefix that is not itself a word), so a scan can stop as soon as a fragment is no prefix: jieba's
trick, without jieba's module-level default dictionary.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable

from llmlab.core.errors import InputError
from llmlab.core.io import read_text, split_lines
from llmlab.text.base import Segmenter, is_normalized, normalize_text


def _check_word(word: str) -> str:
    if not isinstance(word, str) or not word or any(ch.isspace() for ch in word):
        raise InputError(f"lexicon word must be a non-empty string without whitespace, got {word!r}")
    return word


def _check_count(word: str, count) -> None:
    if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InputError(f"count of {word!r} must be an integer from 1 to 2**53, got {count!r}")


class LogProbs(dict):
    """word -> log probability; a word not in it gets `unknown`."""

    def __init__(self, table: dict[str, float], unknown: float):
        super().__init__(table)
        self.unknown = unknown

    def __missing__(self, word: str) -> float:
        return self.unknown


class Lexicon:
    """Word -> count, with total, longest word length and the prefix table.

    Words are kept width-normalised (`normalize_text`): "ＷＴＯ" and "WTO" are one word, and lookups
    (`in`, `count`, `logp`) normalise what they are given. The prefix and suffix tables hold the
    normalised forms, to be matched against `normalize_text` of the text (`DictSegmenter` does this).

    >>> lex = Lexicon({"中国": 3, "中国人": 1, "人": 2, "ＷＴＯ": 1, "WTO": 2})
    >>> lex.total, lex.max_len, lex.prefixes["中"], "中国" in lex, "中" in lex, lex.count("ＷＴＯ")
    (9, 3, 0, True, False, 3)
    """

    def __init__(self, counts: dict[str, int] | None = None):
        self.counts: dict[str, int] = {}
        self.total = 0
        self.max_len = 1
        self._prefixes: dict[str, int] | None = None
        self._suffixes: dict[str, int] | None = None
        self._log_probs: LogProbs | None = None
        self._scan = None  # the compiled scans' index (`scan_index`)
        self.version = 0  # raised by every change: matchers built from the counts compare it
        if counts and _plain(counts):  # each word its own normal form and checked: take the table whole
            self.counts = dict(counts)
            self.total = sum(self.counts.values())
            self.max_len = max(1, max(map(len, self.counts)))
            return
        for w, c in (counts or {}).items():  # the word by word way, which names the first bad entry
            self.add(w, c)

    @classmethod
    def from_sentences(cls, sentences: Iterable[Iterable[str]], min_count: int = 1) -> Lexicon:
        """Word counts of segmented sentences, keeping words seen at least `min_count` times."""
        counts = Counter(w for s in sentences for w in s)
        return cls({w: c for w, c in counts.items() if c >= min_count})

    def __contains__(self, word: str) -> bool:
        return self.count(word) > 0

    def __len__(self) -> int:
        return len(self.counts)

    def count(self, word: str) -> int:
        c = self.counts.get(word)  # a word found as given is normalised already: keys are (the fast path)
        return c if c is not None else self.counts.get(normalize_text(word), 0)

    def add(self, word: str, count: int = 1) -> None:
        """Add `count` occurrences of `word` (count >= 1)."""
        _check_count(_check_word(word), count)
        word = normalize_text(word)
        self.counts[word] = self.counts.get(word, 0) + count
        self.total += count
        self.max_len = max(self.max_len, len(word))
        if self._prefixes is not None:  # kept up to date in place: matchers hold its ``get``
            _add_fragments(self._prefixes, word, self.counts[word], prefixes=True)
        self._changed()

    def set_count(self, word: str, count: int) -> None:
        """Make `word`'s count `count`; 0 takes the word out (jieba's ``del_word``).

        >>> lex = Lexicon({"中国": 3, "人": 2})
        >>> lex.prefixes["中国"]
        3
        >>> lex.set_count("中国", 0)
        >>> "中国" in lex, lex.total, lex.prefixes["中国"]  # the prefix table keeps it as a fragment, no word
        (False, 2, 0)
        """
        _check_word(word)
        if count != 0 or isinstance(count, bool):
            _check_count(word, count)
        word = normalize_text(word)
        self.total -= self.counts.pop(word, 0)
        if count:
            self.counts[word] = count
            self.total += count
            self.max_len = max(self.max_len, len(word))  # a bound on the scans: a removed word may leave it high
        if self._prefixes is not None:
            if count:
                _add_fragments(self._prefixes, word, count, prefixes=True)
            elif word in self._prefixes:
                self._prefixes[word] = 0
        self._changed()

    def _changed(self) -> None:
        self._suffixes = self._log_probs = self._scan = None
        self.version += 1

    def scan_index(self):
        """The lexicon as the word lattice's compiled scans read it (`lexscan.LexiconIndex`; built on
        first use after an `add`)."""
        if self._scan is None:
            from llmlab.text.lexscan import LexiconIndex

            lp, words = self.log_probs, list(self.counts)
            self._scan = LexiconIndex(words, [lp[w] for w in words], lp.unknown)  # the same floats as `logp`
        return self._scan

    @property
    def prefixes(self) -> dict[str, int]:
        """Every word -> its count and every proper prefix of a word that is no word -> 0 (built on
        first use: the perceptron never needs it)."""
        if self._prefixes is None:
            self._prefixes = self._fragments(prefixes=True)
        return self._prefixes

    @property
    def suffixes(self) -> dict[str, int]:
        """Like `prefixes`, for proper suffixes: what a right-to-left scan needs.

        >>> sorted(Lexicon({"中国人": 1}).suffixes.items())
        [('中国人', 1), ('人', 0), ('国人', 0)]
        """
        if self._suffixes is None:
            self._suffixes = self._fragments(prefixes=False)
        return self._suffixes

    def _fragments(self, prefixes: bool) -> dict[str, int]:
        table: dict[str, int] = {}
        for w, c in self.counts.items():
            _add_fragments(table, w, c, prefixes=prefixes)
        return table

    def logp(self, word: str) -> float:
        """Unigram log probability ``log(count) - log(total)``; an unknown word gets a count of 1. Both
        as jieba computes them: on a tie between two cuts, rounding picks the same one.

        >>> round(Lexicon({"a": 1, "b": 3}).logp("b"), 4), round(Lexicon({"a": 1, "b": 3}).logp("zz"), 4)
        (-0.2877, -1.3863)
        """
        return math.log(max(self.count(word), 1)) - math.log(max(self.total, 1))  # not via `log_probs`:
        # adding user words calls this between adds, and each add would rebuild that table

    @property
    def log_probs(self) -> LogProbs:
        """Width-normalised word -> `logp`, the same numbers, for the lattice's inner loop (rebuilt on
        first use after an `add`).

        >>> lp = Lexicon({"a": 1, "b": 3}).log_probs
        >>> round(lp["b"], 4), round(lp["zz"], 4)  # an unknown word: a count of 1
        (-0.2877, -1.3863)
        """
        if self._log_probs is None:
            log_total = math.log(max(self.total, 1))
            self._log_probs = LogProbs({w: math.log(c) - log_total for w, c in self.counts.items()}, -log_total)
        return self._log_probs

    def suggest_count(self, word: str) -> int:
        """The smallest count that makes `word` beat its best split into known pieces (unigram model).

        >>> Lexicon({"中": 10, "国": 10}).suggest_count("中国")  # 10/20 * 10/20 * 20 -> 5, plus 1
        6
        """
        n = len(word)
        best = [0.0] + [-math.inf] * n
        for j in range(1, n + 1):
            for i in range(max(0, j - self.max_len), j):
                piece = word[i:j]
                if piece != word and (piece in self or j - i == 1):
                    best[j] = max(best[j], best[i] + self.logp(piece))
        return max(1, int(math.exp(best[n]) * max(self.total, 1)) + 1)

    def add_user_words(self, entries: Iterable[tuple[str, int | None]]) -> None:
        """Take (word, count) entries as jieba's ``add_word`` does: a counted entry sets the word's count
        (jieba's ``FREQ[word] = freq``: a user can lower a count as well as raise it, and a later entry
        for a word replaces an earlier one, as a later line of jieba's dictionary does), the counted
        ones first. Unlike jieba, whose total only grows, `total` stays the sum of the counts. Then
        each word without a count, shortest first, is raised to the count that makes it beat its split
        (`suggest_count`) if it has less. Later words are no shorter, so none is a piece of an earlier
        one's split, and what they add to the total only makes splits less likely: every such word
        wins, whatever the order or repeats of the entries.

        >>> lex = Lexicon({"甲": 1000, "乙": 5})
        >>> lex.add_user_words([("甲丙", None), ("丙", None), ("丙", None), ("乙", 7), ("乙", 2)])
        >>> lex.logp("甲丙") > lex.logp("甲") + lex.logp("丙"), lex.count("乙"), lex.total == sum(lex.counts.values())
        (True, 2, True)
        """
        entries = list(entries)
        for word, count in entries:  # all checked before any is added
            _check_word(word)
            if count is not None:
                _check_count(word, count)
        for word, count in entries:
            if count is not None:
                self.set_count(word, count)
        uncounted = [w for w, c in entries if c is None]
        for word in sorted(dict.fromkeys(uncounted), key=len):  # once each; raising a count is idempotent
            need = self.suggest_count(word) - self.count(word)
            if need > 0:
                self.add(word, need)

    def to_dict(self) -> dict:
        return {"counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict) -> Lexicon:
        counts = d.get("counts")
        if not isinstance(counts, dict):
            raise InputError("saved lexicon has no 'counts' table")
        return cls({str(k): int(v) for k, v in counts.items()})


def _add_fragments(table: dict[str, int], word: str, count: int, prefixes: bool) -> None:
    """Enter `word` with its count, and its proper prefixes (or suffixes) not yet in `table` with 0."""
    table[word] = count
    for i in range(1, len(word)):
        table.setdefault(word[:i] if prefixes else word[i:], 0)


def _plain(counts: dict[str, int]) -> bool:
    """Whether every entry of `counts` would pass `Lexicon.add` unchanged: words are non-empty strings
    without whitespace, already width-normalised, and counts are ints from 1 to MAX_COUNT (checked for
    the whole table at once; the caller adds the entries one by one otherwise)."""
    if set(map(type, counts)) != {str} or "" in counts or set(map(type, counts.values())) != {int}:
        return False
    joined = "".join(counts)
    return (not _SPACE.search(joined) and is_normalized(joined)
            and min(counts.values()) >= 1 and max(counts.values()) <= MAX_COUNT)


_SPACE = re.compile(r"\s")  # what str.isspace calls whitespace
_COUNT = re.compile(r"[+-]?[0-9]+")
# A user dictionary's tag field: jieba's are ASCII lowercase letters ([a-z]+ in its re_userdict, which reads
# "块链 条目" as one word holding a space); tagsets such as UD's or pfr1998's have capitals (PROPN, Ng) too.
_TAG = re.compile(r"[A-Za-z][!-~]*")
MAX_COUNT = 2**53  # counts meet floats (probabilities, suggested counts); beyond this they are not exact


def read_user_dict(path: str | os.PathLike, what: str = "user dictionary",
                   user: bool = True) -> list[tuple[str, int | None]]:
    """A jieba-style user dictionary: one ``word [count] [tag]`` per line. The count is ASCII digits; a
    second field that holds any other digit or number sign (``2.5``, ``²``, ``1e3``), or any second
    field followed by a third, must be a count. A tag is printable ASCII beginning with a letter, so a
    line ``块链 条目`` (jieba's word with a space) is an error, as is a fourth field. In a user's file
    (`user`), a line whose first field begins with ``#`` is a comment (so a word cannot begin with
    ``#``) and a count of 0 takes the word out, as in jieba (`split_deletions`); in a file llmlab wrote
    (a saved model's word lists, `user` false) words may begin with ``#`` and every count is at least 1.

    A bad line is an error naming the file (as `what`) and line.
    """
    text = read_text(path, what)
    plain = _plain_entries(text, user)
    return plain if plain is not None else _entries_by_line(text, f"{what} {str(path)!r}", user)


def read_user_entries(path: str | os.PathLike, what: str = "user dictionary",
                      user: bool = True) -> list[tuple[str, int | None, str | None]]:
    """`read_user_dict`'s entries with their tags: (word, count or None, tag or None). A line's tag is
    its third field, or its second when that is no count (``云计算 5 n``, ``云计算 n``).

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "user.txt"
    >>> _ = path.write_text("云计算 5 n\\n区块链 nz\\n大模型 3\\n# 注释 5 n\\n", encoding="utf-8")
    >>> read_user_entries(path)
    [('云计算', 5, 'n'), ('区块链', None, 'nz'), ('大模型', 3, None)]
    """
    return user_entries_of_text(read_text(path, what), f"{what} {str(path)!r}", user)


def user_entries_of_text(text: str, where: str, user: bool = True) -> list[tuple[str, int | None, str | None]]:
    """`read_user_entries` of a dictionary's text (read from `where`, named in errors)."""
    plain = _plain_entries(text, user)
    if plain is not None:  # every line "word count": no tags
        return [(w, c, None) for w, c in plain]
    return _fields_by_line(text, where, user)


def read_user_tags(path: str | os.PathLike, what: str = "user dictionary") -> list[tuple[str, str]]:
    """The (word, tag) pairs of a user dictionary (`read_user_entries`); a line without a tag gives none."""
    return [(w, t) for w, _, t in read_user_entries(path, what) if t is not None]


def _entries_by_line(text: str, where: str, user: bool) -> list[tuple[str, int | None]]:
    """`read_user_dict`'s entries of `text` (from `where`, for errors), a line at a time."""
    return [(w, c) for w, c, _ in _fields_by_line(text, where, user)]


def _fields_by_line(text: str, where: str, user: bool) -> list[tuple[str, int | None, str | None]]:
    """(word, count, tag) of each entry of `text` (from `where`, for errors), a line at a time."""
    entries: list[tuple[str, int | None, str | None]] = []
    low = 0 if user else 1
    for i, line in enumerate(split_lines(text), 1):
        parts = line.split()
        if not parts or (user and parts[0].startswith("#")):
            continue
        count = None
        if len(parts) > 1 and (_COUNT.fullmatch(parts[1]) or len(parts) > 2 or _looks_numeric(parts[1])):
            if not _COUNT.fullmatch(parts[1]):
                raise InputError(f"{where} line {i}: count {parts[1]!r} is not a whole number "
                                 "(ASCII digits)")
            count = int(parts[1])
            if not low <= count <= MAX_COUNT:
                raise InputError(f"{where} line {i}: count must be from {low} to 2**53, got {parts[1]}")
        rest = parts[2:] if count is not None else parts[1:]  # what follows the word and its count: a tag
        if len(rest) > 1:
            raise InputError(f"{where} line {i}: {len(parts)} fields, {' '.join(rest[1:])!r} after the tag; a "
                             "line is `word [count] [tag]`")
        if rest and not _TAG.fullmatch(rest[0]):  # one rule for every reader: `seg` and `pos` alike
            raise InputError(f"{where} line {i}: {rest[0]!r} is no POS tag (ASCII, beginning with a letter, as "
                             "jieba's `n`, `nz`); a word holds no space")
        entries.append((parts[0], count, rest[0] if rest else None))
    return entries


_PLAIN_ENTRY = re.compile(r"^(\S+) ([0-9]+)$", re.MULTILINE)  # "word count", as llmlab writes them


def _plain_entries(text: str, comments: bool) -> list[tuple[str, int | None]] | None:
    """`read_user_dict`'s entries when every line of `text` is ``word count`` with one space and a
    count from 1 (the files a saved model holds), parsed by one regular-expression scan; None
    otherwise, for the line by line reading that names a bad line or reads a count of 0. With
    `comments`, a word that begins with ``#`` also sends it there.

    >>> _plain_entries("中国 3\\n人 1", True), _plain_entries("中国 3\\n人 x", True)
    ([('中国', 3), ('人', 1)], None)
    """
    found = _PLAIN_ENTRY.findall(text)
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)  # as `split_lines` counts
    if len(found) != lines or (comments and any(w.startswith("#") for w, _ in found)):
        return None
    entries = [(w, int(c)) for w, c in found]
    if entries and not 1 <= min(c for _, c in entries) <= max(c for _, c in entries) <= MAX_COUNT:
        return None
    return entries


def _looks_numeric(field: str) -> bool:
    """Whether a field is meant as a number rather than a POS tag (tags are letters).

    >>> [_looks_numeric(f) for f in ("nr", "2.5", "²", "-x", "Ｎ")]
    [False, True, True, True, False]
    """
    return field[0] in "+-." or any(ch.isnumeric() for ch in field)


def user_entries(source: Iterable) -> list[tuple[str, int | None]]:
    """In-memory user-dictionary entries, checked before any is added: (word, count or None) pairs."""
    entries = list(source)
    for e in entries:
        if not (isinstance(e, (tuple, list)) and len(e) == 2 and isinstance(e[0], str)
                and (e[1] is None or isinstance(e[1], int))):
            raise InputError(f"user dictionary entries are (word, count or None) pairs, got {e!r:.80}")
    return [(w, c) for w, c in entries]


def split_deletions(entries: list[tuple[str, int | None]]) -> tuple[list[tuple[str, int | None]], list[str]]:
    """User-dictionary entries as the (word, count-or-None) entries that add words and the words that a
    count of 0 takes out (jieba's ``word 0`` line, or ``add_word(word, 0)``: ``del_word``). A dictionary
    that both adds and takes out one word (width-normalised) is refused: counts of a word add up, so
    the order of its lines cannot decide.

    >>> split_deletions([("中国", 3), ("中国人", 0), ("人", None)])
    ([('中国', 3), ('人', None)], ['中国人'])
    """
    added: list[tuple[str, int | None]] = []
    removed: list[str] = []
    for w, c in entries:  # every entry checked here, before any model changes
        if c == 0 and type(c) is int:  # not False, which the count checks refuse
            removed.append(_check_word(w))
        else:
            added.append((_check_word(w), c))
            if c is not None:
                _check_count(w, c)
    if removed:
        both = {normalize_text(w) for w in removed} & {normalize_text(w) for w, _ in added if isinstance(w, str)}
        if both:
            raise InputError(f"the user dictionary both adds {min(both)!r} and takes it out (count 0): keep one")
    return added, removed


def lexicon_from_dictionary(source: str | os.PathLike | Iterable[tuple[str, int | None]],
                            min_count: int = 1) -> Lexicon:
    """A lexicon from a dictionary alone, without training text (jieba's way): a file of
    ``word [count] [tag]`` lines or (word, count-or-None) pairs. A word listed with a count more than
    once takes its last (as jieba reads its dict.txt); words whose count is less than `min_count` are
    left out; a word without a count gets the count that makes it beat its split
    (`Lexicon.add_user_words`).

    >>> lex = lexicon_from_dictionary([("中国人", None), ("中国", 3), ("人", 2), ("国人", 1)], min_count=2)
    >>> lex.count("中国"), lex.count("中国人"), "国人" in lex  # 中国+人 is worth 5 * 3/5 * 2/5 = 1.2
    (3, 2, False)
    """
    path = isinstance(source, (str, os.PathLike))
    entries, _ = split_deletions(read_user_dict(source, "dictionary") if path else user_entries(source))
    if not entries:  # a word taken out (count 0) is no word of the dictionary
        raise InputError(f"dictionary {str(source)!r} has no words" if path else "the dictionary has no words")
    counts: dict[str, int] = {}
    for word, count in entries:
        if count is not None:
            counts[normalize_text(_check_word(word))] = count  # the last count of a word stands
    kept = [*((w, c) for w, c in counts.items() if c >= min_count), *((w, c) for w, c in entries if c is None)]
    if not kept:
        raise InputError(f"no word of the dictionary has a count of at least min_count {min_count} (--min-count)")
    lexicon = Lexicon()
    lexicon.add_user_words(kept)
    return lexicon


class DictSegmenter(Segmenter):
    """A segmenter that owns a `Lexicon` (training words plus the user's own dictionary). The lexicon
    holds width-normalised words, so subclasses match `normalize_text` of a run and cut the run itself
    at the same places: full- and half-width text cut alike."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

