"""The segmenter interface, the lossless pre-split every segmenter shares, and the loader.

Contract: ``"".join(seg.cut(text)) == text`` for every string. Every segmenter first splits the text
at runs of whitespace (a whitespace run is always one word of its own), then hands each non-space run
to its model. Models may look at width-normalised characters (full-width ``Ａ１`` as ``A1``) but always
return slices of the original text. No segmenter cuts inside a unit (`UNIT_RUN`): a word of a script
written with spaces (Latin, Cyrillic, Greek, Arabic, Devanagari, Hangul, ...), a number, or a grapheme
cluster of several code points (a letter with combining marks, an emoji sequence, a flag).
Words a user forces (`Segmenter.force_words`) are cut out of each run before the model sees it.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import regex

from llmlab.core.errors import InputError, LlmlabError
from llmlab.core.io import atomic_folder, atomic_write_json, check_folder, read_json
from llmlab.core.registry import load_class

FORMAT = "llmlab-segmenter"
VERSION = 1
MODEL_FILE = "segmenter.json"

_SPACE_SPLIT = re.compile(r"(\s+)")
_SPACE = re.compile(r"\s")
# Scripts written without spaces between words: their letters are cut like Chinese characters.
_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}\p{Yi}"
_DIGIT = rf"[\p{{Nd}}--[{_NO_SPACE}]]"
_WORD_CHAR = rf"[[\p{{L}}\p{{Nd}}]--[{_NO_SPACE}]]"  # a letter of a script written with spaces, or a digit
_EXTEND = r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}]"  # continues the grapheme cluster before it
_SCRIPTS = ("Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana", "Devanagari", "Bengali",
            "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam", "Sinhala", "Georgian",
            "Hangul", "Ethiopic", "Cherokee", "Mongolian")


def _clusters(base: str, more: str = "+") -> str:
    """Grapheme clusters whose base character (after any prepended marks) is in the class `base`."""
    return rf"(?:(?=\p{{GCB=Prepend}}*{base})\X){more}"


def _word_of(letter: str) -> str:
    """Digits and letters of the class `letter`, at least one letter: a word of one script."""
    return _clusters(_DIGIT, "*") + _clusters(letter, "") + _clusters(f"[{letter}{_DIGIT}]", "*")


_LISTED = "".join(rf"\p{{{s}}}" for s in _SCRIPTS)
_OTHER_LETTER = rf"[\p{{L}}--[{_NO_SPACE}{_LISTED}]]"  # the letters of scripts not listed count as one script
_WORD = "|".join([*(_word_of(rf"[\p{{{s}}}&&\p{{L}}]") for s in _SCRIPTS), _word_of(_OTHER_LETTER), _clusters(_DIGIT)])
# A unit no segmenter cuts inside: digits and the letters of one script (either width, each with its
# combining marks), with inner decimal points; or any other grapheme cluster of several code points.
_UNIT_RUN = (rf"(?=\p{{GCB=Prepend}}*{_WORD_CHAR})(?:{_WORD})(?:[.\uff0e]{_clusters(_DIGIT)})*"
             rf"|\p{{RI}}\p{{RI}}{_EXTEND}*|(?=.{_EXTEND}|\p{{GCB=Prepend}}.)\X")  # a flag: \X is quadratic on a run


@functools.cache
def _unit_run() -> regex.Pattern:
    """`UNIT_RUN`, compiled on first use (30 ms: Chinese text rarely needs it, `unit_spans`)."""
    return regex.compile(_UNIT_RUN, regex.V1)


def __getattr__(name: str) -> Any:
    if name == "UNIT_RUN":
        return _unit_run()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SPACED_WORD_CHAR = regex.compile(_WORD_CHAR, regex.V1)  # a letter or digit of a script written with spaces
# UNIT_RUN where the only word characters are ASCII or full-width letters and digits (most Chinese
# text), ten times faster; _WIDE finds the characters that need UNIT_RUN, and _NARROW, a quick first
# look, the ASCII, Latin-1 symbols, punctuation, CJK and full-width ranges that hold none of them.
_ALNUM = "0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a"
_ALNUM_RUN = re.compile(rf"[{_ALNUM}]+(?:[.\uff0e][0-9\uff10-\uff19]+)*")
_WIDE = regex.compile(rf"[[\p{{L}}\p{{Nd}}]--[{_NO_SPACE}{_ALNUM}]]|{_EXTEND}|\p{{RI}}|\p{{GCB=Prepend}}", regex.V1)
_NARROW = ("\x00-\x7f\u00a0-\u00a9\u00ab-\u00b4\u00b6-\u00b9\u00bb-\u00bf\u00d7\u00f7\u2010-\u2027\u2030-\u205e"
           "\u3000-\u3004\u3008-\u3029\u3030\u3036-\u303b\u303d-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff60\uffe0-\uffee")
_MAYBE_WIDE = re.compile(f"[^{_NARROW}]")
_WIDTH = str.maketrans({**{chr(o): chr(o - 0xFEE0) for o in range(0xFF01, 0xFF5F)}, "\u3000": " "})
_WIDE_FORM = re.compile("[" + "".join(map(chr, _WIDTH)) + "]")  # a character `normalize_text` changes


def normalize_char(c: str) -> str:
    """Full-width ASCII forms and the ideographic space to their half-width twins; others unchanged.

    >>> normalize_char("Ａ") + normalize_char("１") + normalize_char("中") + normalize_char("\\u3000")
    'A1中 '
    """
    return c.translate(_WIDTH)


def normalize_text(text: str) -> str:
    """`normalize_char` on every character; same length as the input.

    >>> normalize_text("１９９８年ＡＢ")
    '1998年AB'
    """
    return text.translate(_WIDTH)


def is_normalized(text: str) -> bool:
    """Whether ``normalize_text(text) == text`` (a search, no copy).

    >>> is_normalized("1998年AB"), is_normalized("１９９８年")
    (True, False)
    """
    return _WIDE_FORM.search(text) is None


def same_cuts(text: str, words: list[str]) -> list[str]:
    """`text` cut where `words`, the words of a text of the same length (say its `normalize_text`), are cut.

    >>> same_cuts("１９９８年ＡＢ", ["1998年", "AB"])
    ['１９９８年', 'ＡＢ']
    """
    ends = list(itertools.accumulate(map(len, words)))
    return [text[a:b] for a, b in zip([0, *ends], ends)]


def split_spaces(text: str) -> list[str]:
    """The text as alternating non-space runs and whitespace runs (empty pieces dropped).

    >>> split_spaces("ab  c\\td")
    ['ab', '  ', 'c', '\\t', 'd']
    """
    return [p for p in _SPACE_SPLIT.split(text) if p]


def unit_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every unit (`UNIT_RUN`) of more than one code point in `text`.

    >>> text = "Москва中ab1.5👍🏽"
    >>> [text[a:b] for a, b in unit_spans(text)]
    ['Москва', 'ab1.5', '👍🏽']
    """
    rx = _unit_run() if _MAYBE_WIDE.search(text) and _WIDE.search(text) else _ALNUM_RUN
    return [(m.start(), m.end()) for m in rx.finditer(text) if m.end() - m.start() > 1]


def unit_ends(spans: list[tuple[int, int]]) -> dict[int, int]:
    """For each position inside a unit (`unit_spans`), where the unit ends.

    >>> unit_ends(unit_spans("ab中1.5"))
    {0: 2, 1: 2, 3: 6, 4: 6, 5: 6}
    """
    return {k: b for a, b in spans for k in range(a, b)}


def unit_starts(spans: list[tuple[int, int]]) -> dict[int, int]:
    """For each position just after a character of a unit (`unit_spans`), where the unit starts.

    >>> unit_starts(unit_spans("ab中1.5"))
    {1: 0, 2: 0, 4: 3, 5: 3, 6: 3}
    """
    return {k: a for a, b in spans for k in range(a + 1, b + 1)}


def keep_runs_whole(text: str, words: list[str]) -> list[str]:
    """Remove cuts that fall inside a unit (`UNIT_RUN`; statistical models may propose them).

    >>> keep_runs_whole("ab12中文Дом", ["a", "b1", "2中", "文Д", "ом"])
    ['ab12中', '文Дом']
    """
    runs = unit_spans(text)
    if not runs:
        return words
    inside = {k for a, b in runs for k in range(a + 1, b)}
    cuts = [c for c in itertools.accumulate(map(len, words[:-1])) if c not in inside]
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


MODES = ("default", "search", "full")  # of `Segmenter.tokenize`


def _checked_str(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"{what}() needs a str, got {type(text).__name__}")
    return text


def _checked_lines(lines: Any, what: str) -> Iterable[str]:
    if isinstance(lines, str):  # its characters would each be cut as a line
        raise InputError(f"{what}() takes a list of lines, not one string (one text: {what.removesuffix('_lines')})")
    return lines


def word_spans(words: Iterable[str], lexicon: Container[str] | None = None) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` of consecutive `words`. With `lexicon` (width-normalised words: search
    mode), each word of more than two characters comes after its two-character substrings that are
    lexicon words, then (more than three) its three-character ones, each at its own offsets: jieba's
    search mode, word for word. A substring that starts or ends inside a unit (`UNIT_RUN`: a number, a
    Latin word) is left out, as the cut leaves it whole: a lexicon learnt from text may hold number
    fragments ("19", "4%"), and jieba's dictionary Latin ones.

    >>> word_spans(["北京", "大学生"], lexicon={"大学", "学生"})
    [('北京', 0, 2), ('大学', 2, 4), ('学生', 3, 5), ('大学生', 2, 5)]
    >>> word_spans(["1949年"], lexicon={"19", "94", "49年", "9年", "年"})
    [('1949年', 0, 5)]
    """
    words = list(words)
    out: list[tuple[str, int, int]] = []
    inside: set[int] | None = None  # positions strictly inside a unit, found when a long word first needs them
    start = 0
    for w in words:
        end = start + len(w)
        if lexicon is not None and len(w) > 2:
            if inside is None:
                inside = {k for a, b in unit_spans("".join(words)) for k in range(a + 1, b)}
            norm = normalize_text(w)
            for n in (2, 3) if len(w) > 3 else (2,):
                out += [(w[i:i + n], start + i, start + i + n) for i in range(len(w) - n + 1)
                        if norm[i:i + n] in lexicon and start + i not in inside and start + i + n not in inside]
        out.append((w, start, end))
        start = end
    return out


def word_ends(text: str, i: int, get: Callable[[str], int | None]) -> list[int]:
    """Ends ``j`` of the words ``text[i:j]``, given a prefix table's ``get`` (`Lexicon.prefixes`: a
    word's count, 0 for a prefix that is no word, None for neither). The scan stops at the first
    fragment that is no word's prefix (jieba's trick).

    >>> word_ends("研究生命", 0, {"研": 0, "研究": 1, "研究生": 1}.get)
    [2, 3]
    """
    out = []
    n, j, frag = len(text), i + 1, text[i]
    while True:
        c = get(frag)
        if c is None:
            return out
        if c:
            out.append(j)
        if j == n:
            return out
        j += 1
        frag = text[i:j]


class ForcedWords:
    """Words always cut whole, as pkuseg cuts its user dictionary's words: a run is scanned from the
    left, the longest forced word that starts at each position is cut out (forward maximum matching),
    and the model cuts only the text between. Words are matched width-normalised; a match that would
    cut inside a unit (`UNIT_RUN`) is passed over for a shorter one.

    >>> ForcedWords(["体育馆内", "馆内", "ab"]).split("去体育馆内看abc")
    [('去', False), ('体育馆内', True), ('看abc', False)]
    """

    def __init__(self, words: Iterable[str] = ()):
        self._table: dict[str, int] = {}  # word -> 1, proper prefix -> 0 (`word_ends`)
        self._first: re.Pattern | None = None
        self.add(words)

    @property
    def words(self) -> set[str]:
        """The forced words, width-normalised."""
        return {w for w, is_word in self._table.items() if is_word}

    def add(self, words: Iterable[str]) -> None:
        """Add words: non-empty strings without whitespace (InputError otherwise)."""
        if isinstance(words, str):  # its characters would each be forced
            raise InputError(f"forced words come as a list of words, not one string: {words!r:.80}")
        new = []
        for w in words:
            if not isinstance(w, str) or not w or _SPACE.search(w):
                raise InputError(f"a forced word must be a non-empty string without whitespace, got {w!r}")
            new.append(normalize_text(w))
        for w in new:
            for i in range(1, len(w)):
                self._table.setdefault(w[:i], 0)
            self._table[w] = 1
        if self._table:
            self._first = re.compile("[" + "".join(sorted({re.escape(w[0]) for w in self._table})) + "]")

    def remove(self, words: Iterable[str]) -> None:
        """No longer force `words` (matched width-normalised, as added); a word not forced is left be."""
        rest = self.words - {normalize_text(w) for w in words}
        self._table, self._first = {}, None
        self.add(rest)

    def __bool__(self) -> bool:
        return bool(self._table)

    def split(self, run: str) -> list[tuple[str, bool]]:
        """`run` (no whitespace) as consecutive pieces, each with whether it is a forced word."""
        if self._first is None:
            return [(run, False)]
        norm = normalize_text(run)
        out: list[tuple[str, bool]] = []
        inside: set[int] | None = None  # positions strictly inside a unit, found on the first match
        done = pos = 0
        while (m := self._first.search(norm, pos)) is not None:
            i = m.start()
            ends = word_ends(norm, i, self._table.get)
            if ends:
                if inside is None:
                    inside = {k for a, b in unit_spans(run) for k in range(a + 1, b)}
                ends = [j for j in ends if i not in inside and j not in inside]
            if not ends:
                pos = i + 1
                continue
            if done < i:
                out.append((run[done:i], False))
            out.append((run[i:ends[-1]], True))
            done = pos = ends[-1]
        if done < len(run):
            out.append((run[done:], False))
        return out


def check_sentences(sentences: Iterable[Iterable[str]], what: str = "training data") -> list[list[str]]:
    """Segmented sentences as lists of non-empty words without whitespace, or an InputError."""
    out = []
    for i, s in enumerate(sentences, 1):
        if isinstance(s, str):
            raise InputError(f"{what}: sentence {i} is a string; expected a list of words")
        words = list(s)
        for w in words:
            if not isinstance(w, str) or not w or _SPACE.search(w):
                raise InputError(f"{what}: sentence {i} has an empty, non-string or whitespace word {w!r}")
        if words:
            out.append(words)
    if not out:
        raise InputError(f"{what}: no non-empty sentences to train on")
    return out


class Segmenter(ABC):
    """Text -> words. Subclasses implement `_cut_run` (a run without whitespace), `train`, and
    `_state` / `_from_state` for saving."""

    kind: ClassVar[str] = ""

    def cut(self, text: str) -> list[str]:
        """The words of `text`; ``"".join(cut(text)) == text`` always."""
        return self.cut_lines([text])[0]

    def cut_lines(self, lines: Iterable[str]) -> list[list[str]]:
        """`cut` of each line; the model sees all non-space runs of all lines in one batch (less the
        forced words, `force_words`)."""
        forced = self.__dict__.get("_forced")
        plans: list[list[tuple[str, bool]]] = []  # (piece, whether it is a word as it stands)
        runs: list[str] = []
        for text in _checked_lines(lines, "cut_lines"):
            _checked_str(text, "cut")
            pieces = split_spaces(text) if _SPACE.search(text) else ([text] if text else [])
            plan = [(p, p[0].isspace()) for p in pieces]
            if forced:
                plan = [q for p, whole in plan for q in ([(p, whole)] if whole else forced.split(p))]
            plans.append(plan)
            runs.extend(p for p, whole in plan if not whole)
        cut_runs = iter(self._cut_runs(runs))
        out = []
        for plan in plans:
            words: list[str] = []
            for p, whole in plan:
                if whole:
                    words.append(p)
                else:
                    words.extend(next(cut_runs))
            out.append(words)
        return out

    def add_user_dict(self, source: str | os.PathLike | Iterable[tuple[str, int | None]], force: bool = False) -> None:
        """Add a user dictionary: a file path (jieba's ``word [count] [tag]`` lines) or (word,
        count-or-None) pairs. A segmenter with a lexicon takes the words into it, as jieba does: a count
        becomes the word's count (a later entry for a word replaces an earlier one), a word without one
        is raised to the count that keeps it whole (`lexicon.Lexicon.add_user_words`); with `force` every
        segmenter also cuts them whole (`force_words`). One without a lexicon (the HMM) takes them only
        with `force`. A count of 0 takes the word out, as jieba's ``word 0`` line does (`del_word`;
        `lexicon.split_deletions`)."""
        from llmlab.text.lexicon import read_user_dict, split_deletions, user_entries  # they build on this module

        entries = read_user_dict(source) if isinstance(source, (str, os.PathLike)) else user_entries(source)
        added, removed = split_deletions(entries)
        has_lexicon = getattr(self, "lexicon", None) is not None
        if has_lexicon:
            self._add_user_words(added)
        elif added and not force:
            raise InputError(f"a {self.kind!r} segmenter has no dictionary; force=True (--force-words) keeps "
                             "the words whole all the same")
        if removed and not has_lexicon and "_forced" not in self.__dict__:  # `word 0` lines: as `del_word`
            raise InputError(f"a {self.kind!r} segmenter has no dictionary and no forced words to take a word from")
        if force:
            self.force_words(w for w, _ in added)
        self._take_out(removed)

    def add_word(self, word: str, count: int | None = None, force: bool = False) -> None:
        """`add_user_dict` of one word (jieba's ``add_word``; a count of 0 is `del_word`)."""
        self.add_user_dict([(word, count)], force)

    def _add_user_words(self, entries: list[tuple[str, int | None]]) -> None:
        """Put (word, count-or-None) entries into the lexicon (segmenters that have one)."""
        self.lexicon.add_user_words(entries)

    def del_word(self, word: str) -> None:
        """Take `word` out of the lexicon and the forced words (jieba's ``del_word``). The dictionary
        methods and the word lattices then never give it as a word; the statistical models lose its
        lexicon features, and may still cut it where their other features call for it."""
        _checked_str(word, "del_word")
        if getattr(self, "lexicon", None) is None and "_forced" not in self.__dict__:
            raise InputError(f"a {self.kind!r} segmenter has no dictionary and no forced words to take a word from")
        self._take_out([word])

    def _take_out(self, words: list[str]) -> None:
        """Take (checked) `words` out of the lexicon and the forced words, where this segmenter has them."""
        if getattr(self, "lexicon", None) is not None:
            for word in words:
                self._set_word_count(word, 0)
        forced = self.__dict__.get("_forced")
        if forced is not None and words:
            forced.remove(words)

    def suggest_freq(self, segment: str | Sequence[str], tune: bool = False) -> int:
        """jieba's ``suggest_freq`` on this segmenter's lexicon, with jieba's arithmetic: for a word (a
        string), a count that makes the unigram model keep it whole (one more than its best cut's
        probability times the total, or its count now if higher); for words (a tuple or list), the count
        of their joined string that lets the model cut it into them (their probability times the
        total, or its count now if lower; 0 takes it out). With `tune` the lexicon takes that count.
        A piece that is no word counts 1, as in the cut itself (jieba takes 0 for one that only begins
        longer words, and then suggests 1).

        The counts are the unigram model's, so only the unigram lattice follows them as jieba does: a
        word tuned whole is then cut whole, a word tuned apart is cut apart. The bigram lattice takes
        the count into its unigram part alone: it cannot outweigh the word pairs seen in training (a
        word new to the lexicon has none, its pieces often many), so a word tuned whole may still be
        cut, and one tuned apart kept whole. Maximum matching (fmm, bmm, bimm) reads only whether a
        word is in the lexicon: tuned whole, a word joins it; tuned apart, only a count of 0 (which
        takes the word out) changes the cut. The statistical models also see only whether a word is
        in the lexicon. `force_words` keeps a word whole in any segmenter, and `del_word` takes one
        out."""
        from llmlab.text.lattice import best_path  # the lattice builds on this module

        lexicon = getattr(self, "lexicon", None)
        if lexicon is None:
            raise InputError(f"a {self.kind!r} segmenter has no dictionary to suggest a count in")
        whole = isinstance(segment, str)
        pieces = [segment] if whole else list(segment) if isinstance(segment, (list, tuple)) else []
        if len(pieces) < (1 if whole else 2) or not all(isinstance(w, str) and w and not _SPACE.search(w)
                                                        for w in pieces):
            raise InputError("suggest_freq takes a word, or two or more words to cut it into (non-empty strings "
                             f"without whitespace), got {segment!r}")
        word, total = "".join(pieces), max(lexicon.total, 1)
        p = 1.0
        for w in best_path(normalize_text(word), lexicon) if whole else pieces:
            p *= (lexicon.count(w) or 1) / total  # in jieba's order: the same float
        if whole:
            count = max(int(p * total) + 1, lexicon.count(word))
        else:
            count = min(int(p * total), lexicon.count(word))
        if tune:
            self._set_word_count(word, count)
        return count

    def _set_word_count(self, word: str, count: int) -> None:
        self.lexicon.set_count(word, count)

    @property
    def forced(self) -> ForcedWords:
        """The words this segmenter always cuts whole (`force_words` adds them)."""
        return self.__dict__.get("_forced") or ForcedWords()

    def force_words(self, words: Iterable[str]) -> None:
        """Always cut `words` whole, whatever the model would do there (`ForcedWords`: forward maximum
        matching, as pkuseg treats its user dictionary), for any segmenter, the HMM included. A
        dictionary's words given to `add_user_dict` only raise their odds: the model may still cut
        through one where the context pulls its characters elsewhere. Saved with the model.

        >>> from llmlab.text.lattice import UnigramSegmenter
        >>> from llmlab.text.lexicon import Lexicon
        >>> seg = UnigramSegmenter(Lexicon({"体育馆": 50, "内": 50}))
        >>> seg.cut("去体育馆内")
        ['去', '体育馆', '内']
        >>> seg.force_words(["体育馆内"])
        >>> seg.cut("去体育馆内")
        ['去', '体育馆内']
        """
        if "_forced" not in self.__dict__:
            self._forced = ForcedWords()
        self._forced.add(words)

    def tokenize(self, text: str, mode: str = "default") -> list[tuple[str, int, int]]:
        """Words with their offsets, ``(word, start, end)`` with ``text[start:end] == word`` (jieba's
        ``tokenize``): those of `cut` (``mode="default"``), of `cut_for_search` ("search") or of
        `cut_all` ("full"). The last two look words up in the segmenter's lexicon."""
        return self.tokenize_lines([text], mode)[0]

    def tokenize_lines(self, lines: Iterable[str], mode: str = "default") -> list[list[tuple[str, int, int]]]:
        """`tokenize` of each line; the default and search modes cut all lines in one batch (`cut_lines`)."""
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        _checked_lines(lines, "tokenize_lines")
        lexicon = getattr(self, "lexicon", None)
        if mode != "default" and lexicon is None:
            raise InputError(f"{mode} mode looks words up in the segmenter's lexicon, and a {self.kind!r} "
                             "segmenter has none")
        if mode == "full":
            from llmlab.text.lattice import full_spans  # the lattices build on this module

            return [full_spans(_checked_str(line, "cut_all"), lexicon) for line in lines]
        return [word_spans(words, lexicon.counts if mode == "search" else None) for words in self.cut_lines(lines)]

    def cut_for_search(self, text: str) -> list[str]:
        """Search-engine mode (jieba's ``cut_for_search``): the words of `cut(text)`, each word of more
        than two characters preceded by the lexicon words of two characters inside it, then (more than
        three) of three characters, in text order. Words overlap: terms for an index, not a cut.

        >>> from llmlab.text.lattice import UnigramSegmenter
        >>> from llmlab.text.lexicon import Lexicon
        >>> seg = UnigramSegmenter(Lexicon({"中华": 2, "人民": 3, "共和": 1, "共和国": 2, "中华人民共和国": 5}))
        >>> seg.cut_for_search("中华人民共和国")
        ['中华', '人民', '共和', '共和国', '中华人民共和国']
        """
        return [w for w, _, _ in self.tokenize(text, "search")]

    def cut_all(self, text: str) -> list[str]:
        """Full mode (jieba's ``cut(text, cut_all=True)``): every lexicon word in `text`, by start and
        then length (`lattice.full_spans`). Words overlap: candidates, not a cut.

        >>> from llmlab.text.lattice import UnigramSegmenter
        >>> from llmlab.text.lexicon import Lexicon
        >>> UnigramSegmenter(Lexicon({"研究": 1, "研究生": 1, "生命": 1, "命": 1})).cut_all("研究生命 起源")
        ['研究', '研究生', '生命', ' ', '起', '源']
        """
        return [w for w, _, _ in self.tokenize(text, "full")]

    def _cut_runs(self, runs: list[str]) -> list[list[str]]:
        """`_cut_run` of each run; models that batch override this."""
        return [self._cut_run(r) for r in runs]

    @abstractmethod
    def _cut_run(self, run: str) -> list[str]:
        """Words of a non-empty string without whitespace."""

    @classmethod
    @abstractmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: Any = None) -> Segmenter:
        """A segmenter learnt from segmented sentences (lists of words)."""

    @abstractmethod
    def _state(self, directory: Path) -> dict:
        """JSON-able state; large arrays may be written as extra files into `directory`."""

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict, directory: Path) -> Segmenter: ...

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model into `directory` (``segmenter.json`` plus any array files)."""
        forced = {"forced_words": sorted(self.forced.words)} if self.forced else {}
        return write_model_doc(directory, MODEL_FILE, FORMAT, VERSION, self.kind, self._state, forced)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Segmenter:
        seg = load_segmenter(directory)
        if not isinstance(seg, cls):
            want = repr(cls.kind) if cls.kind else cls.__name__  # MaxMatchSegmenter: one class, three kinds
            raise InputError(f"{str(directory)!r} holds a {seg.kind!r} segmenter, not a {want}")
        return seg


# kind -> "module:Class"; imported on demand so loading one model never imports the others.
KINDS: dict[str, str] = {
    "fmm": "llmlab.text.matching:MaxMatchSegmenter",
    "bmm": "llmlab.text.matching:MaxMatchSegmenter",
    "bimm": "llmlab.text.matching:MaxMatchSegmenter",
    "unigram": "llmlab.text.lattice:UnigramSegmenter",
    "bigram": "llmlab.text.lattice:BigramSegmenter",
    "hmm": "llmlab.text.hmm:HmmSegmenter",
    "perceptron": "llmlab.text.perceptron:PerceptronSegmenter",
    "neural": "llmlab.text.seg_neural:NeuralSegmenter",
    "hybrid": "llmlab.text.seg_hybrid:HybridSegmenter",
}


def segmenter_class(kind: str) -> type[Segmenter]:
    return load_class(KINDS, kind, "segmenter")


def load_segmenter(directory: str | os.PathLike) -> Segmenter:
    """Load any segmenter saved with `Segmenter.save`, dispatching on its saved kind."""
    doc, path = read_model_doc(directory, MODEL_FILE, FORMAT, VERSION, "segmenter")
    seg = from_model_doc(segmenter_class(str(doc.get("kind"))), doc, path)
    forced = doc.get("forced_words", [])
    try:
        if not isinstance(forced, list):
            raise InputError(f"a {type(forced).__name__}, not a list of words")
        if forced:
            seg.force_words(forced)
    except InputError as e:
        raise InputError(f"{str(path)!r} is damaged: 'forced_words': {e}") from None
    return seg


def from_model_doc(cls: Any, doc: dict, path: Path) -> Any:
    """``cls._from_state`` of the document `read_model_doc` read from `path`. A state with a key
    missing, or a value of the wrong type or shape (a damaged or hand-edited file), is an InputError
    naming the file rather than a traceback from deep inside; the loaders raise ValueError for
    shapes that would otherwise only fail at cut time (`checked_array`)."""
    try:
        state = doc["state"]
        if not isinstance(state, dict):
            raise TypeError(f"'state' is a {type(state).__name__}, not an object")
        return cls._from_state(state, path.parent)
    except LlmlabError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        detail = f"no {e} entry" if isinstance(e, KeyError) else str(e)
        raise InputError(f"{str(path)!r} is damaged or not from this llmlab version: {detail}") from None


def checked_array(name: str, value: Any, shape: tuple[int, ...]) -> Any:
    """`value` as a float64 numpy array of `shape`, or ValueError naming it.

    >>> checked_array("trans", [[0, 1], [2, 3]], (2, 2)).shape
    (2, 2)
    """
    import numpy as np

    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def write_model_doc(directory: str | os.PathLike, model_file: str, fmt: str, version: int, kind: str,
                    state: Callable[[Path], dict], extra: dict | None = None) -> Path:
    """Write ``{"format", "version", "kind", "state", "files"}`` (and the `extra` keys) as
    `directory`/`model_file`, where `state(folder)` may first write array files beside it ("files"
    lists them). Shared by segmenters and taggers. The folder is written as a whole (`atomic_folder`):
    a failed save leaves the old model; and it may only replace a folder holding a model this way saved
    there (`check_model_folder`)."""
    with atomic_folder(directory, model_folder_entries(directory, model_file), "model folder") as tmp:
        doc = {"format": fmt, "version": version, "kind": kind, "state": state(tmp), **(extra or {})}
        doc["files"] = sorted(p.name for p in tmp.iterdir())
        atomic_write_json(tmp / model_file, doc)
    return Path(directory)


def model_folder_entries(directory: str | os.PathLike, model_file: str) -> set[str]:
    """The entries of a model folder that belong to the model `write_model_doc` saved there (its
    ``files`` list and `model_file`); none when the folder holds no such model."""
    path = Path(directory) / model_file
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    return {model_file, *files} if isinstance(files, list) and all(isinstance(f, str) for f in files) else set()


def check_model_folder(directory: str | os.PathLike, model_file: str) -> Path:
    """InputError now, before training, if `write_model_doc` could not save into `directory` later."""
    return check_folder(directory, model_folder_entries(directory, model_file), "model folder")


def read_model_doc(directory: str | os.PathLike, model_file: str, fmt: str, version: int,
                   what: str) -> tuple[dict, Path]:
    """The document `write_model_doc` wrote (a directory or the file itself) and its path, checked."""
    d = Path(directory)
    path = d / model_file if d.is_dir() or not d.exists() else d
    doc = read_json(path, f"{what} model")
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise InputError(f"{str(path)!r} is not an llmlab {what} (format {fmt!r} missing)")
    if doc.get("version") != version:
        raise InputError(f"{str(path)!r} has format version {doc.get('version')}, this llmlab reads {version}")
    return doc, path
