"""The BLEU tokenizers `13a`, `intl`, `zh`, `char` and `none`, rule for rule as sacrebleu 2.x applies
them, so a score names its tokenizer and means the same number everywhere.

Each tokenizer maps a line to a string of space-separated tokens. The rules are sacrebleu's; the code
is arranged for speed (single-character rules become one ``str.translate``, context rules only run
when their trigger character occurs), which gives the same output by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from llmlab.core.errors import InputError

# mteval-v13a's language-dependent punctuation: every ASCII char in {|}~ [\]^_` space-& ()*+ :-@ /
_V13A_PUNCT = "{|}~[\\]^_` !\"#$%&()*+:;<=>?@/"
_V13A_TABLE = {ord(c): f" {c} " for c in _V13A_PUNCT}
_PERIOD_COMMA_AFTER_NON_DIGIT = re.compile(r"([^0-9])([\.,])")  # split . , unless after a digit
_PERIOD_COMMA_BEFORE_NON_DIGIT = re.compile(r"([\.,])([^0-9])")  # split . , unless before a digit
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")  # split - after a digit


def _regexp_post(line: str) -> str:
    """The western-language part shared by `13a` and `zh`.

    >>> _regexp_post(" Hello, world. 3.5 (x-1) 2-3 ")
    'Hello , world . 3.5 ( x-1 ) 2 - 3'
    """
    line = line.translate(_V13A_TABLE)
    if "." in line or "," in line:
        line = _PERIOD_COMMA_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
        line = _PERIOD_COMMA_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return " ".join(line.split())


def tokenize_13a(line: str) -> str:
    """mteval-v13a: unescape a few SGML entities, then split western punctuation.

    >>> tokenize_13a("Is 3.14 &lt; pi, or not?")
    'Is 3.14 < pi , or not ?'
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return _regexp_post(f" {line} ")


# sacrebleu's `zh` table compares single characters with these strings; entries written with five hex
# digits are really two-character strings (e.g. "\u2000" + "0"), which moves their bounds. We keep the
# table verbatim and derive the code-point ranges from the same string comparison.
_ZH_TABLE = (
    ("\u3400", "\u4db5"), ("\u4e00", "\u9fa5"), ("\u9fa6", "\u9fbb"), ("\uf900", "\ufa2d"),
    ("\ufa30", "\ufa6a"), ("\ufa70", "\ufad9"), ("\u20000", "\u2a6d6"), ("\u2f800", "\u2fa1d"),
    ("\uff00", "\uffef"), ("\u2e80", "\u2eff"), ("\u3000", "\u303f"), ("\u31c0", "\u31ef"),
    ("\u2f00", "\u2fdf"), ("\u2ff0", "\u2fff"), ("\u3100", "\u312f"), ("\u31a0", "\u31bf"),
    ("\ufe10", "\ufe1f"), ("\ufe30", "\ufe4f"), ("\u2600", "\u26ff"), ("\u2700", "\u27bf"),
    ("\u3200", "\u32ff"), ("\u3300", "\u33ff"),
)  # fmt: skip


def _char_bounds(start: str, end: str) -> tuple[int, int]:
    """Code points c with start <= chr(c) <= end under Python string order.

    >>> _char_bounds("a", "c"), _char_bounds("\\u20000", "\\u2a6d6")
    ((97, 99), (8193, 10861))
    """
    lo = ord(start[0]) + (1 if len(start) > 1 else 0)  # "x" < "x0": the bare char is below the bound
    hi = ord(end[0])  # "x" <= "x0" always holds
    return lo, hi


class _ZhTable(dict):
    """A str.translate table that pads `zh` characters with spaces, filled in as characters are seen."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        self[cp] = v = f" {ch} " if is_zh_char(ch) else ch
        return v


def is_zh_char(ch: str) -> bool:
    """Whether sacrebleu's `zh` tokenizer splits `ch` off as a character of its own.

    >>> is_zh_char("中"), is_zh_char("a"), is_zh_char("，")
    (True, False, True)
    """
    return any(lo <= ord(ch) <= hi for lo, hi in (_char_bounds(s, e) for s, e in _ZH_TABLE))


_ZH_TABLES: list[_ZhTable] = []  # made on first use, not at import


def tokenize_zh(line: str) -> str:
    """Chinese characters one by one, the rest as 13a's western part (no entity unescaping).

    >>> tokenize_zh("我爱NLP, 2.5倍")
    '我 爱 NLP , 2.5 倍'
    """
    if not _ZH_TABLES:
        _ZH_TABLES.append(_ZhTable())
    return _regexp_post(line.strip().translate(_ZH_TABLES[0]))


_INTL_RE: list = []  # compiled on first use


def tokenize_intl(line: str) -> str:
    """mteval-v14 international: split Unicode punctuation unless between digits, and all symbols.

    >>> tokenize_intl("Préface: 1,000€ «ok».")
    'Préface : 1,000 € « ok » .'
    """
    if not _INTL_RE:
        import regex

        _INTL_RE.extend([
            (regex.compile(r"(\P{N})(\p{P})"), r"\1 \2 "),
            (regex.compile(r"(\p{P})(\P{N})"), r" \1 \2"),
            (regex.compile(r"(\p{S})"), r" \1 "),
        ])
    for pattern, repl in _INTL_RE:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


def tokenize_char(line: str) -> str:
    """Every character a token (spaces fall away when the result is split).

    >>> tokenize_char("ab c")
    'a b   c'
    """
    return " ".join(line)


def tokenize_none(line: str) -> str:
    """No tokenization: the line is split on whitespace as it stands."""
    return line


BLEU_TOKENIZERS: dict[str, Callable[[str], str]] = {
    "13a": tokenize_13a,
    "intl": tokenize_intl,
    "zh": tokenize_zh,
    "char": tokenize_char,
    "none": tokenize_none,
}


def get_bleu_tokenizer(name: str) -> Callable[[str], str]:
    """The tokenizer called `name`; a clear error lists the known names."""
    try:
        return BLEU_TOKENIZERS[name]
    except KeyError:
        raise InputError(f"unknown BLEU tokenizer {name!r}: use one of {sorted(BLEU_TOKENIZERS)}") from None
