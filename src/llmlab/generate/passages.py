"""What retrieval indexes and compares: terms of a text, and documents cut into passages. Torch-free.

Terms (`cjk_terms`): the text is NFKC-normalised (full-width letters and digits become ASCII) and
lowercased; each run of CJK characters gives its characters and its character bigrams (Chinese has no
spaces, and a bigram is a cheap stand-in for a word that needs no segmenter), each run of letters and
digits gives one term. Punctuation and spaces give none.

>>> cjk_terms("北京的GDP在１９９７年")
['北', '京', '的', '北京', '京的', 'gdp', '在', '1997', '年']
>>> split_passages("一二。三四五。六七。", size=6, overlap=1)  # cut after 。 where it can
[(0, 3), (2, 7), (6, 10)]
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable

from llmlab.core.errors import InputError

# Han (with extensions A-F and compatibility ideographs), kana and Hangul syllables
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
# one CJK run, or one run of letters / digits that holds no CJK character
RUN = re.compile(rf"(?P<cjk>[{CJK}]+)|(?P<word>(?:(?![{CJK}])[^\W_])+)")
# one CJK character, or one run of letters / digits: the units that grounding counts n-grams of
UNIT = re.compile(rf"[{CJK}]|(?:(?![{CJK}])[^\W_])+")
# a sentence ends after these (with closing quotes or brackets that follow), or at a line break
SENTENCE_END = re.compile(r"(?:[。！？!?；;…]+|\.(?=\s))[”’」』）)\]\"']*|\n")


def normalise(text: str) -> str:
    """NFKC and lowercase: ``"ＡＢ１"`` and ``"ab1"`` are the same terms."""
    return unicodedata.normalize("NFKC", text).lower()


def cjk_terms(text: str) -> list[str]:
    """Characters and character bigrams of each CJK run, and the lowercased words of the rest (see the
    module docstring); the default tokenisation of a `BM25Index`."""
    out: list[str] = []
    for m in RUN.finditer(normalise(text)):
        run = m.group()
        if m.lastgroup == "cjk":
            out.extend(run)
            out.extend(run[i: i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out


def unit_runs(text: str) -> list[list[str]]:
    """The units of `text` (each CJK character, each lowercased word or number), grouped into runs that
    only spaces separate: punctuation ends a run, so an n-gram never spans a comma or a full stop.

    >>> unit_runs("北京，New York 大学。")
    [['北', '京'], ['new', 'york', '大', '学']]
    """
    runs: list[list[str]] = []
    text, end = normalise(text), None
    for m in UNIT.finditer(text):
        if end is None or text[end: m.start()].strip():
            runs.append([])
        runs[-1].append(m.group())
        end = m.end()
    return runs


def segmenter_terms(text: str) -> list[str]:
    """The words of llmlab's default segmenter (`llmlab.text.cut`, trained on pfr1998 on first use),
    lowercased, less those without a letter or digit (spaces, punctuation)."""
    from llmlab.text import cut

    return [w for w in (normalise(w) for w in cut(text)) if RUN.search(w)]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"cjk": cjk_terms, "cut": segmenter_terms}


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end of `text`.

    >>> sentence_ends("好。对吗？A. B")
    [2, 5, 7]
    """
    return [m.end() for m in SENTENCE_END.finditer(text)]


def check_passage_size(size: int, overlap: int, size_name: str = "size", overlap_name: str = "overlap") -> None:
    """InputError unless size >= 0 and 0 <= overlap < size (any overlap >= 0 when size is 0: no cutting)."""
    if size < 0:
        raise InputError(f"passage {size_name} must be >= 0 (0 = whole documents), got {size}")
    if overlap < 0 or (size > 0 and overlap >= size):
        raise InputError(f"{overlap_name} must be in [0, {size_name}={size}), got {overlap}")


def split_passages(text: str, size: int, overlap: int = 0) -> list[tuple[int, int]]:
    """(start, end) offsets of passages of at most `size` characters that cover `text`, each starting
    `overlap` characters before the previous one ends. A passage ends at the last sentence end that
    keeps it within `size` and past the overlap (so every step moves on), else after `size` characters.
    ``size`` 0 keeps the text whole; an empty text has no passages.

    Lossless: ``text[s0:e0] + text[s1 + overlap:e1] + ...`` is `text`.
    """
    check_passage_size(size, overlap)
    n = len(text)
    if n == 0:
        return []
    if size == 0 or n <= size:
        return [(0, n)]
    ends = sentence_ends(text)
    spans, start = [], 0
    while n - start > size:
        limit = start + size
        i = bisect.bisect_right(ends, limit) - 1  # the last sentence end within the size
        end = ends[i] if i >= 0 and ends[i] > start + overlap else limit
        spans.append((start, end))
        start = end - overlap
    spans.append((start, n))
    return spans
