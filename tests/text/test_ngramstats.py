"""`NgramStats`: counts, accessor varieties and branching entropies against a direct count over the
text, for any chunking of the text; and the texts read again level by level, never held."""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.core.io import FileLines
from llmlab.text.base import normalize_text
from llmlab.text.ngramstats import NgramStats, cjk

ALPHABET = "甲乙丙丁，a Ａ"


def _direct(texts, max_n, min_count, inside):
    """n-gram -> (count, left AV, right AV, left entropy, right entropy), one occurrence at a time."""
    out = {}
    for n in range(1, max_n + 1):
        left, right = {}, {}
        for k, t in enumerate(texts):
            t = normalize_text(t)  # width-normalised: Ａ is A, ， is ,
            for i in range(len(t) - n + 1):
                g = t[i : i + n]
                if all(inside(ch) for ch in g):  # a text edge is a neighbour of its own each time
                    left.setdefault(g, Counter())[t[i - 1] if i else ("edge", k, i)] += 1
                    right.setdefault(g, Counter())[t[i + n] if i + n < len(t) else ("edge", k, i)] += 1
        for g, lc in left.items():
            c = sum(lc.values())
            if c >= min_count:
                h = [-sum(v / c * math.log(v / c) for v in side.values()) for side in (lc, right[g])]
                out[g] = (c, len(lc), len(right[g]), *h)
    return out


def _found(stats):
    out = {}
    for n in range(1, stats.max_n + 1):
        t = stats.table(n)
        columns = (t["count"], t["left_av"], t["right_av"], t["left_entropy"], t["right_entropy"])
        out.update((g, row) for g, *row in zip(stats.strings(n), *(c.tolist() for c in columns)))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(st.sampled_from(ALPHABET), max_size=12), max_size=8), st.integers(1, 4),
       st.integers(1, 3), st.integers(1, 20), st.booleans())
def test_statistics_equal_a_direct_count_for_any_chunking(texts, max_n, min_count, chunk_chars, chinese_only):
    inside = (lambda ch: "\u4e00" <= ch <= "\u9fff") if chinese_only else (lambda ch: True)
    stats = NgramStats(texts, max_n, min_count, inside=cjk if chinese_only else None, chunk_chars=chunk_chars)
    ref = _direct(texts, max_n, min_count, inside)
    found = _found(stats)
    assert found.keys() == ref.keys()
    for g, (count, lav, rav, lh, rh) in ref.items():
        assert found[g][:3] == [count, lav, rav]
        assert found[g][3:] == [pytest.approx(lh, abs=1e-12), pytest.approx(rh, abs=1e-12)]
    assert stats.n_chars == sum(map(len, texts))
    for n in range(1, max_n + 1):  # code-point order
        assert stats.strings(n) == sorted(stats.strings(n))
    whole = _found(NgramStats(texts, max_n, min_count, inside=cjk if chinese_only else None))
    assert found == whole  # the chunks' integer tallies merge exactly: the same floats too


def test_counts_of_any_rows():
    stats = NgramStats(["甲乙甲乙丙", "甲乙"], max_n=3, min_count=2)
    codes = np.array([[ord(c) for c in g] for g in ("甲乙", "乙甲", "乙丙", "丁甲")])
    assert stats.counts(codes).tolist() == [3, 0, 0, 0]  # 乙甲 and 乙丙 occur once: below min_count
    assert stats.counts(np.array([[ord("甲")], [ord("丙")]])).tolist() == [3, 0]


class CountingTexts:
    """Texts that count how often they are read."""

    def __init__(self, texts):
        self.texts, self.reads = texts, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.texts)


def test_the_texts_are_read_once_per_level_and_once_more(tmp_path):
    texts = ["甲乙丙丁甲乙", "丙丁甲乙", "乙丙"] * 3
    source = CountingTexts(texts)
    stats = NgramStats(source, max_n=4, min_count=2, chunk_chars=5)
    assert source.reads == 5
    reference = _found(NgramStats(texts, 4, 2))
    assert _found(stats) == reference
    assert _found(NgramStats(iter(texts), 4, 2, chunk_chars=5)) == reference  # a one-time iterator is kept
    path = tmp_path / "texts.txt"
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    assert _found(NgramStats(FileLines(path), 4, 2, chunk_chars=5)) == reference


def test_bad_input_is_refused():
    for kwargs, match in (({"max_n": 0}, "max_n"), ({"min_count": 0}, "min_count"),
                          ({"chunk_chars": 0}, "chunk_chars"), ({"max_n": 2.0}, "max_n")):
        with pytest.raises(InputError, match=match):
            NgramStats(["甲乙"], **{"max_n": 2, **kwargs})
    with pytest.raises(InputError, match="not one string"):
        NgramStats("甲乙", 2)
    with pytest.raises(InputError, match="strings, got int"):
        NgramStats(["甲乙", 3], 2)
    with pytest.raises(InputError, match="n must be"):
        NgramStats(["甲乙"], 2).table(3)
