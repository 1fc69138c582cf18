"""Text cleaning and Gopher-style quality filters for training corpora. No torch.

`clean_text` is a conservative normaliser: every step is switchable in `CleanConfig`, none of them
touches letters, digits or punctuation (NFKC, off by default, is the one exception: it folds
full-width forms), and cleaning twice gives what cleaning once gave.

`quality_signals` measures a document the way Gopher (Rae et al. 2021, appendix A1) does, and
`quality_reasons` names the Gopher rules it breaks. The repetition signals follow datatrove's
`GopherRepetitionFilter`. Where this module differs from it, on purpose:

- words are `split_words` (whitespace tokens, each CJK character a word, punctuation-only tokens
  dropped), not nltk tokens, so Chinese text has words at all;
- an n-gram's characters are the sum of its words' lengths (no joining spaces, which CJK text does
  not have), and n-grams compare as word tuples (``("ab", "c") != ("a", "bc")``);
- the most frequent n-gram counts only when it occurs at least twice (a text without repetition
  scores 0, however short);
- lines are the non-blank pieces of ``text.split("\\n")``; a paragraph break is a blank line.

Every fraction over ``len(text)``, lines, paragraphs or words is 0.0 when that denominator is 0.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import regex

from llmlab.core.errors import InputError

# ----------------------------------------------------------------------------- cleaning

NORMAL_FORMS = ("NFC", "NFKC", None)


@dataclass(frozen=True)
class CleanConfig:
    normalize: str | None = "NFC"  # Unicode normal form: "NFC", "NFKC" (folds full-width forms) or None
    newlines: bool = True  # "\r\n" and lone "\r" become "\n"
    controls: bool = True  # drop control (Cc) and format (Cf) characters; see `strip_controls`
    trailing_whitespace: bool = True  # drop tabs and spaces (Unicode Zs) at the end of every line
    max_blank_lines: int | None = 1  # longer runs of blank lines shrink to this many empty lines; None: off

    def __post_init__(self):
        if self.normalize not in NORMAL_FORMS:
            raise InputError(f"normalize must be one of {NORMAL_FORMS}, got {self.normalize!r}")
        for name in ("newlines", "controls", "trailing_whitespace"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        m = self.max_blank_lines
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise InputError(f"max_blank_lines must be an integer >= 0 or None, got {m!r}")


# An emoji tag sequence (subdivision flags such as England's) is a black flag, tag characters and a
# cancel tag; tag characters anywhere else are invisible and can smuggle text, so they go.
_TAG_SEQUENCE = "\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"
# Cc except tab, newline and carriage return (that one is `newlines`' business); Cf except the
# zero-width non-joiner and joiner, which spell words in Persian and Indic scripts and join emoji.
_DROPPED = r"[\p{Cc}\p{Cf}--[\t\n\r\u200c\u200d]]"
_CONTROLS = regex.compile(f"({_TAG_SEQUENCE})|{_DROPPED}", regex.V1)
_TRAILING = regex.compile(r"[\t\p{Zs}]+$", regex.MULTILINE)


def strip_controls(text: str) -> str:
    """`text` without control and format characters, except tab, newline, carriage return, ZWNJ
    (U+200C), ZWJ (U+200D) and the tag characters of an emoji tag sequence. Variation selectors are
    marks, not format characters, and stay.

    >>> strip_controls("a\\u200bb\\x00c\\ufeff") == "abc"
    True
    >>> family = "\\U0001f468\\u200d\\U0001f469\\u200d\\U0001f467"
    >>> strip_controls(family) == family
    True
    """
    return _CONTROLS.sub(lambda m: m.group(1) or "", text)


def collapse_blank_lines(text: str, keep: int = 1) -> str:
    """Every run of more than `keep` blank lines (empty or only tabs and spaces) as `keep` empty lines.

    >>> collapse_blank_lines("a\\n\\n \\n\\nb\\n\\nc")
    'a\\n\\nb\\n\\nc'
    """
    run = regex.compile(r"(?:^|(?<=\n))(?:[\t\p{Zs}]*\n){" + str(keep + 1) + ",}")
    return run.sub("\n" * keep, text)


def clean_text(text: str, config: CleanConfig | None = None) -> str:
    """`text` cleaned by the steps `config` switches on, in this order: newlines, controls, Unicode
    normal form, trailing whitespace, blank lines. Controls go before normalising because a removed
    character can sit between two that compose. Idempotent: ``clean_text(clean_text(x)) ==
    clean_text(x)``.

    >>> clean_text("Cafe\\u0301 \\r\\n\\r\\n\\r\\nzero\\u200bwidth\\t")
    'Café\\n\\nzerowidth'
    >>> clean_text("ＡＢ１２", CleanConfig(normalize="NFKC"))
    'AB12'
    """
    config = config or CleanConfig()
    if config.newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if config.controls:
        text = strip_controls(text)
    if config.normalize:
        text = unicodedata.normalize(config.normalize, text)
    if config.trailing_whitespace:
        text = _TRAILING.sub("", text)
    if config.max_blank_lines is not None:
        text = collapse_blank_lines(text, config.max_blank_lines)
    return text


# ----------------------------------------------------------------------------- words

# One word per character: CJK ideographs (Script=Han, with 々 and 〇) and kana, the scripts written
# without spaces; Korean puts spaces between its words, so Hangul is tokenised like Latin.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
# Whitespace as `str.split` sees it: Unicode White_Space plus the information separators \x1c-\x1f.
_SPACE = r"\s\x1c-\x1f"
# A CJK character, or a run of anything else up to whitespace or CJK, unless that run is all
# punctuation and symbols (then skipped whole).
_WORD = regex.compile(rf"[{_CJK}]|[\p{{P}}\p{{S}}]++(?![^{_SPACE}{_CJK}])(*SKIP)(*FAIL)|[^{_SPACE}{_CJK}]+")
_CJK_CHAR = regex.compile(rf"[{_CJK}]")
_HAS_LETTER = regex.compile(r"^[^\n\p{L}]*\p{L}", regex.MULTILINE)  # a line (here: a word) with a letter


def split_words(text: str) -> list[str]:
    """The words the quality signals count: whitespace-separated tokens, where every CJK ideograph
    and kana is a word of its own, and a token of only punctuation and symbols (``-``, ``，``, ``#``)
    is no word.

    >>> split_words("我爱Python3，也爱 C++ ! 한국어 문장")
    ['我', '爱', 'Python3，', '也', '爱', 'C++', '한국어', '문장']
    """
    return _WORD.findall(text)


# ----------------------------------------------------------------------------- signals

# Gopher's stop words; a text of spaced words needs some of them (compared lowercased, with the
# punctuation around them stripped).
STOP_WORDS_EN = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
# For CJK-dominant text: ten of the most frequent Chinese function characters (the possessive and
# aspect particles, the copula, common prepositions and conjunctions, the demonstrative, "not").
STOP_WORDS_ZH = frozenset("的了是在和有与也这不")
_PUNCTUATION = string.punctuation + "“”‘’«»…"  # stripped from a word before the English stop-word test
CJK_DOMINANT = 0.5  # a text whose words are more than this fraction CJK characters is CJK-dominant
BULLETS = ("•", "‣", "◦", "⁃", "∙", "●", "○", "▪", "■", "□", "◆", "◇", "►", "▶", "- ", "* ")
ELLIPSES = ("...", "…")
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
_PARAGRAPH_BREAK = regex.compile(r"\n\s*\n")


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(items equal to an earlier one, their total characters).

    >>> _duplicates(["a", "bb", "a", "bb", "a"])
    (3, 4)
    """
    counts = Counter(items)
    return len(items) - len(counts), sum(len(x) * (c - 1) for x, c in counts.items())


def _ngram_ids(ids: np.ndarray, n_max: int) -> Iterator[tuple[int, np.ndarray]]:
    """(n, ids of the n-grams) for n = 2..n_max, where equal n-grams get equal ids; each n builds on
    n - 1: an (n-1)-gram id and the next word id make one int64 key.

    >>> [(n, g.tolist()) for n, g in _ngram_ids(np.array([0, 1, 0, 1, 0]), 3)]
    [(2, [0, 1, 0, 1]), (3, [0, 1, 0])]
    """
    base = int(ids.max()) + 1 if len(ids) else 1
    grams = ids.astype(np.int64)
    for n in range(2, n_max + 1):
        key = grams[:-1] * base + ids[n - 1 :]
        grams = np.unique(key, return_inverse=True)[1].reshape(-1)
        yield n, grams


def _top_ngram_chars(grams: np.ndarray, cum: np.ndarray, n: int) -> int:
    """Characters of the most frequent n-gram times its count (first seen wins a tie), 0 when no
    n-gram occurs twice; `grams` from `_ngram_ids`, `cum` the running sum of word lengths from 0.

    >>> cum = np.array([0, 1, 3, 4, 6, 7])  # words a bb a bb c
    >>> _top_ngram_chars(np.array([0, 1, 0, 2]), cum, 2)  # (a bb) twice
    6
    """
    if len(grams) == 0:
        return 0
    counts = np.bincount(grams)
    top = int(counts.max())
    if top < 2:
        return 0
    i = int(np.argmax(counts[grams] == top))
    return top * int(cum[i + n] - cum[i])


def _dup_ngram_chars(grams: np.ndarray, cum: np.ndarray, n: int) -> int:
    """Characters in repeated n-grams, datatrove's way: scan left to right; an n-gram seen before
    counts its characters and the scan jumps past it, a new one is remembered and the scan moves one
    word on.

    >>> cum = np.arange(9)  # words a b c a b c a b
    >>> _dup_ngram_chars(np.array([0, 1, 2, 0, 1, 2]), cum, 3)  # abc bca cab [abc] -> past the end
    3
    """
    counts = np.bincount(grams)
    if len(grams) == 0 or counts.max() < 2:
        return 0
    seen, ids, cum = bytearray(len(counts)), grams.tolist(), cum.tolist()
    chars = i = 0
    while i < len(ids):
        if seen[ids[i]]:
            chars += cum[i + n] - cum[i]
            i += n
        else:
            seen[ids[i]] = 1
            i += 1
    return chars


def _stop_words(counts: Counter, cjk_dominant: bool) -> int:
    if cjk_dominant:
        return sum(counts[c] for c in STOP_WORDS_ZH)
    return sum(c for w, c in counts.items() if w.strip(_PUNCTUATION).lower() in STOP_WORDS_EN)


def _repetition(words: list[str], n_chars: int) -> dict[str, float]:
    """The n-gram signals; none is above 0 unless some 2-gram repeats (a repeated n-gram starts with
    a repeated 2-gram)."""
    s = {f"top_{n}gram_char_fraction": 0.0 for n in TOP_NGRAMS}
    s.update({f"dup_{n}gram_char_fraction": 0.0 for n in DUP_NGRAMS})
    pairs = list(zip(words, words[1:]))
    if len(set(pairs)) == len(pairs):
        return s
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    cum = np.concatenate([[0], np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)))])
    for n, grams in _ngram_ids(ids, max(DUP_NGRAMS)):
        if n in TOP_NGRAMS:
            s[f"top_{n}gram_char_fraction"] = _ratio(_top_ngram_chars(grams, cum, n), n_chars)
        else:
            s[f"dup_{n}gram_char_fraction"] = _ratio(_dup_ngram_chars(grams, cum, n), n_chars)
    return s


def quality_signals(text: str) -> dict[str, float]:
    """Gopher's quality and repetition measurements of one document (see the module docstring for
    the definitions; `QualityConfig` for what each is held against).

    >>> s = quality_signals("the cat sat\\nthe cat sat\\n\\n# so ...")
    >>> s["words"], s["dup_line_fraction"], s["hash_ratio"], s["ellipsis_lines"], s["stop_words"]
    (7.0, 0.3333333333333333, 0.14285714285714285, 0.3333333333333333, 2.0)
    """
    words = split_words(text)
    n_words, counts = len(words), Counter(words)
    cjk = len(_CJK_CHAR.findall(text))  # every CJK character is a word
    word_chars = sum(map(len, words))
    lines = [line for line in text.split("\n") if line.strip()]
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    dup_lines, dup_line_chars = _duplicates(lines)
    dup_paras, dup_para_chars = _duplicates(paragraphs)
    return {
        "words": float(n_words),
        "cjk_fraction": _ratio(cjk, n_words),
        "mean_word_length": _ratio(word_chars - cjk, n_words - cjk),  # of the non-CJK words
        "hash_ratio": _ratio(text.count("#"), n_words),
        "ellipsis_ratio": _ratio(sum(text.count(e) for e in ELLIPSES), n_words),
        "bullet_lines": _ratio(sum(line.lstrip().startswith(BULLETS) for line in lines), len(lines)),
        "ellipsis_lines": _ratio(sum(line.rstrip().endswith(ELLIPSES) for line in lines), len(lines)),
        "alpha_words": _ratio(len(_HAS_LETTER.findall("\n".join(words))), n_words),
        "stop_words": float(_stop_words(counts, cjk > CJK_DOMINANT * n_words)),
        "dup_line_fraction": _ratio(dup_lines, len(lines)),
        "dup_line_char_fraction": _ratio(dup_line_chars, len(text)),
        "dup_para_fraction": _ratio(dup_paras, len(paragraphs)),
        "dup_para_char_fraction": _ratio(dup_para_chars, len(text)),
        **_repetition(words, len(text)),
    }


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class QualityConfig:
    """Gopher's thresholds (Rae et al. 2021, A1). A document breaks a `min_` rule when its signal is
    below the threshold and a `max_` rule when above it; equal passes. None switches a rule off."""

    min_words: int | None = 50  # words (`split_words`)
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3  # mean length of the non-CJK words; not for CJK-dominant text
    max_mean_word_length: float | None = 10
    max_hash_ratio: float | None = 0.1  # "#" per word
    max_ellipsis_ratio: float | None = 0.1  # "..." and "…" per word
    max_bullet_lines: float | None = 0.9  # fraction of lines starting with a bullet
    max_ellipsis_lines: float | None = 0.3  # fraction of lines ending with an ellipsis
    min_alpha_words: float | None = 0.8  # fraction of words with a letter (CJK characters are letters)
    min_stop_words: int | None = 2  # English stop words, or Chinese ones for CJK-dominant text
    max_dup_line_fraction: float | None = 0.30  # lines equal to an earlier line, per line
    max_dup_para_fraction: float | None = 0.30
    max_dup_line_char_fraction: float | None = 0.20  # their characters per character of the text
    max_dup_para_char_fraction: float | None = 0.20
    max_top_2gram_char_fraction: float | None = 0.20  # characters in the most frequent 2-gram
    max_top_3gram_char_fraction: float | None = 0.18
    max_top_4gram_char_fraction: float | None = 0.16
    max_dup_5gram_char_fraction: float | None = 0.15  # characters in repeated 5-grams
    max_dup_6gram_char_fraction: float | None = 0.14
    max_dup_7gram_char_fraction: float | None = 0.13
    max_dup_8gram_char_fraction: float | None = 0.12
    max_dup_9gram_char_fraction: float | None = 0.11
    max_dup_10gram_char_fraction: float | None = 0.10

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InputError(f"{f.name} must be a number >= 0 or None, got {v!r}")
            if f.name.endswith(("fraction", "_lines", "alpha_words")) and v > 1:
                raise InputError(f"{f.name} is a fraction and must be in [0, 1], got {v!r}")
        for low, high in (("min_words", "max_words"), ("min_mean_word_length", "max_mean_word_length")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise InputError(f"{low} ({a}) must not exceed {high} ({b})")


def _signal_of(rule: str) -> str:
    """The `quality_signals` key a `QualityConfig` field is held against.

    >>> _signal_of("max_top_2gram_char_fraction"), _signal_of("min_words")
    ('top_2gram_char_fraction', 'words')
    """
    return rule[4:]


def quality_reasons(
    text: str, config: QualityConfig | None = None, signals: dict[str, float] | None = None
) -> list[str]:
    """Names of the `config` rules (its field names) that `text` breaks; empty: keep the document.
    Pass `signals` when `quality_signals(text)` is already at hand.

    >>> quality_reasons("Buy now!!! # # #")
    ['min_words', 'max_hash_ratio', 'min_stop_words']
    >>> quality_reasons("Buy now!!! # # #", QualityConfig(min_words=None, max_hash_ratio=None, min_stop_words=None))
    []
    """
    config = config or QualityConfig()
    s = quality_signals(text) if signals is None else signals
    cjk = s["cjk_fraction"] > CJK_DOMINANT
    reasons = []
    for f in fields(config):
        limit = getattr(config, f.name)
        if limit is None or (cjk and f.name.endswith("mean_word_length")):
            continue
        value = s[_signal_of(f.name)]
        if value < limit if f.name.startswith("min_") else value > limit:
            reasons.append(f.name)
    return reasons
