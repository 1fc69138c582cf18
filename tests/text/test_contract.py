"""The segmenter contract for every segmenter: lossless on any text, save/load gives the same cuts."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.text.base import KINDS, load_segmenter, normalize_text, unit_spans

TEXTS = [
    "",
    "中",
    " ",
    "\n\t ",
    "迈向充满希望的新世纪",
    "  前后有空格  ",
    "一九九八年１２月３１日，ＣＣＴＶ播出了iPhone 15 的广告😀😀！",
    "Hello, world! 123 4.5",
    "全角ＡＢＣ１２３和半角ABC123混排",
    "\u3000全角空格\u3000",
    "emoji👨‍👩‍👧 and 한국어 and العربية",
    "a\u0301\u200b\u200d",
    "中\ud800国\x00人\U0010ffff",  # a lone surrogate, NUL and the last code point
    "新" * 5000 + " " + "年快乐" * 3000,
]
CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80), max_size=40)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_lossless_on_hand_picked_texts(segmenters, kind, text):
    words = segmenters[kind].cut(text)
    assert "".join(words) == text
    assert all(words)  # no empty words
    assert all(not w.isspace() or w.strip() == "" for w in words)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lossless_on_arbitrary_unicode(segmenters, kind):
    seg = segmenters[kind]

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.text(max_size=60), CHINESE))
    def check(text):
        words = seg.cut(text)
        assert "".join(words) == text
        assert all(words)
        # whitespace never sits inside a word with other characters
        assert all(w.isspace() or not any(c.isspace() for c in w) for w in words)

    check()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_offsets_search_and_full_modes_on_arbitrary_unicode(segmenters, kind):
    """`tokenize` is the cut with offsets into the text. Search mode puts before each word of the cut
    the lexicon words of 2 characters inside it (a word of 3+), then of 3 (a word of 4+), in text
    order. Full mode gives slices of the text by start and then length, covering every non-space
    character. A segmenter without a lexicon (the HMM) refuses both modes with a clear error."""
    seg = segmenters[kind]

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.text(max_size=60), CHINESE))
    def check(text):
        spans = seg.tokenize(text)
        assert [w for w, _, _ in spans] == seg.cut(text)
        assert all(text[a:b] == w for w, a, b in spans)
        if kind == "hmm":
            return
        search = seg.tokenize(text, "search")
        assert seg.cut_for_search(text) == [w for w, _, _ in search]
        inside = {k for a, b in unit_spans(text) for k in range(a + 1, b)}  # no piece of a unit (`test_no_mode_...`)
        rest = search
        for w, a, b in spans:
            k = rest.index((w, a, b))
            inner, rest = rest[:k], rest[k + 1:]
            want = [(text[i:i + n], i, i + n) for n in (2, 3) if b - a > n for i in range(a, b - n + 1)
                    if text[i:i + n] in seg.lexicon and i not in inside and i + n not in inside]
            assert inner == want
        assert rest == []
        full = seg.tokenize(text, "full")
        assert seg.cut_all(text) == [w for w, _, _ in full]
        assert all(text[a:b] == w for w, a, b in full)
        assert [(a, b - a) for _, a, b in full] == sorted((a, b - a) for _, a, b in full)
        assert len(set(full)) == len(full)
        covered = {i for _, a, b in full for i in range(a, b)}
        assert covered >= {i for i, c in enumerate(text) if not c.isspace()}

    check()
    if kind == "hmm":
        for call in (lambda: seg.cut_for_search("中国"), lambda: seg.cut_all("中国")):
            with pytest.raises(InputError, match="mode looks words up in the segmenter's lexicon, and a 'hmm'"):
                call()


UNIT_TEXT = st.text(alphabet="0123456789.%年月中国人民abcＡ１２．\u0301", max_size=30)  # numbers, Latin words, Han


@pytest.mark.parametrize("kind", ["fmm", "bimm", "unigram", "bigram", "perceptron", "fragments"])
def test_no_mode_gives_a_piece_of_a_unit(segmenters, kind):
    """No word of any mode (the cut, search, full) starts or ends inside a unit (`base.UNIT_RUN`: a
    number, a Latin word), even where the lexicon holds pieces of numbers, as one learnt from text does
    ("fragments": 3., 14, 4%, 19, 94, 49年 ...)."""
    from llmlab.text.lattice import UnigramSegmenter
    from llmlab.text.lexicon import Lexicon

    fragments = Lexicon({"3.": 2, "14": 4, "4%": 3, "14%": 2, "19": 5, "94": 5, "49": 5, "194": 3, "9年": 2,
                         "49年": 2, "年": 9, "中国": 8, "人民": 7, "国人": 3, "bc": 2, "c中": 2, "１２": 3, "2年": 2})
    seg = UnigramSegmenter(fragments) if kind == "fragments" else segmenters[kind]

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(UNIT_TEXT, st.sampled_from(["增长了3.14%", "中华人民共和国成立于1949年", "１２．５年abc中国"])))
    def check(text):
        inside = {k for a, b in unit_spans(text) for k in range(a + 1, b)}
        for mode in ("default", "search", "full"):
            bad = [(w, a, b) for w, a, b in seg.tokenize(text, mode) if a in inside or b in inside]
            assert bad == [], (mode, text)

    check()


def test_tokenize_rejects_an_unknown_mode(segmenters):
    with pytest.raises(InputError, match="mode must be one of 'default', 'search', 'full', got 'all'"):
        segmenters["fmm"].tokenize("中国", "all")
    with pytest.raises(InputError, match="cut_all\\(\\) needs a str"):
        segmenters["fmm"].cut_all(b"bytes")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_save_load_gives_the_same_cuts(segmenters, kind, tmp_path, test_words):
    seg = segmenters[kind]
    seg.save(tmp_path / kind)
    back = load_segmenter(tmp_path / kind)
    assert back.kind == seg.kind
    texts = ["".join(s) for s in test_words[:30]] + TEXTS[:12]
    assert [back.cut(t) for t in texts] == [seg.cut(t) for t in texts]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_full_and_half_width_cut_alike(segmenters, kind, test_words):
    """Features and lexicons are width-normalised: a full-width text cuts at the same places as its
    half-width twin (pfr1998 writes digits, Latin letters and most punctuation full-width)."""
    seg = segmenters[kind]
    texts = ["１９９７年ＧＤＰ增长８．８％，ＣＰＵ价格下降"] + ["".join(s) for s in test_words]
    texts = [t for t in texts if t != normalize_text(t)]
    assert len(texts) > 20
    for text in texts:
        assert [len(w) for w in seg.cut(text)] == [len(w) for w in seg.cut(normalize_text(text))], text


def test_cut_rejects_non_strings(segmenters):
    with pytest.raises(InputError, match="needs a str"):
        segmenters["fmm"].cut(b"bytes")
    for call in (segmenters["fmm"].cut_lines, segmenters["fmm"].tokenize_lines,
                 lambda t: segmenters["fmm"].tokenize_lines(t, "full")):
        with pytest.raises(InputError, match="a list of lines, not one string"):  # each character a line
            call("中国人")


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "segmenter.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(InputError, match="not an llmlab segmenter"):
        load_segmenter(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_segmenter(tmp_path / "missing")


def test_training_data_is_checked():
    from llmlab.text.matching import MaxMatchSegmenter

    with pytest.raises(InputError, match="sentence 1 is a string"):
        MaxMatchSegmenter.train(["中国 人民"])
    with pytest.raises(InputError, match="whitespace word"):
        MaxMatchSegmenter.train([["中国", "人 民"]])
    with pytest.raises(InputError, match="no non-empty sentences"):
        MaxMatchSegmenter.train([[]])


UNITS = ["Москва", "iPhone15", "３．１４", "ＣＣＴＶ", "café", "cafe\u0301", "नमस्ते", "مرحبا", "서울에서", "Ελλάδα",
         "👨\u200d👩\u200d👧", "👍🏽", "🇨🇳", "🇺🇸", "中\ufe0f", "กิ", "3.14.15", "x2", "2024년", "12Москва", "2αβ",
         "\u0600123"]


def test_units_are_what_the_unicode_rules_say():
    from llmlab.text.base import unit_spans

    assert unit_spans("".join(UNITS)) != []
    for u in UNITS:  # each whole on its own, and between Chinese characters
        assert unit_spans(u) == [(0, len(u))], u
        assert unit_spans(f"中{u}国")[0] == (1, 1 + len(u)), u
    assert unit_spans("中国人民" * 10 + "。，、《》——…") == []
    assert unit_spans("กินข้าว") == [(0, 2), (3, 5)]  # Thai is cut like Chinese: only its clusters stay
    assert unit_spans("Москва1998年") == [(0, 10)]
    assert unit_spans("ⴰⴱabc") == [(0, 2), (2, 5)]  # two scripts, two units
    assert unit_spans("12๓๔") == [(0, 2)]  # Thai digits are cut like Thai letters


@given(st.text(alphabet="🇨🇳\u0301\u200d\u0600中👍🏽 。", max_size=40))
@settings(max_examples=300, deadline=None)
def test_without_word_characters_the_units_are_the_grapheme_clusters(text):
    """Flag pairs, emoji sequences, prepended and combining marks: the units are the clusters of
    several code points that the regex module's \\X finds (regional indicators pair from the left)."""
    import regex

    from llmlab.text.base import unit_spans

    assert unit_spans(text) == [m.span() for m in regex.finditer(r"\X", text) if len(m[0]) > 1]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_units_are_never_cut_inside(segmenters, kind):
    """Words of spaced scripts, numbers and grapheme clusters come out whole, whatever the model."""
    from llmlab.text.base import unit_spans

    text = "他用iPhone15拍了３．１４张ＣＣＴＶ照片abc中文123xyz" + "在".join(UNITS) + "，"
    words = segmenters[kind].cut(text)
    assert "".join(words) == text
    cuts, pos = set(), 0
    for w in words[:-1]:
        pos += len(w)
        cuts.add(pos)
    spans = unit_spans(text)
    assert len(spans) >= len(UNITS) + 4
    for a, b in spans:
        assert not cuts & set(range(a + 1, b)), (text[a:b], words)
    for u in ("Москва", "👨\u200d👩\u200d👧", "नमस्ते", "🇨🇳"):  # a unit between Chinese characters is one word
        assert u in words or any(u in w for w in words), (u, words)

def test_the_fast_unit_path_agrees_with_the_unicode_rules():
    """unit_spans skips UNIT_RUN when no character needs it: check the ranges it trusts, code point by
    code point, and the result on texts drawn from them."""
    import re

    from llmlab.text import base

    narrow = re.compile(f"[{base._NARROW}]")
    trusted = [chr(c) for c in range(0x110000) if narrow.match(chr(c))]
    assert len(trusted) > 20000  # ASCII, punctuation, the CJK blocks
    assert [c for c in trusted if base._WIDE.match(c)] == []
    rng = __import__("random").Random(0)
    pool = [c for c in trusted if not 0xD800 <= ord(c) < 0xE000] + list("ａｂ１２．.")
    others = [chr(c) for c in range(0x80, 0x10000) if not 0xD800 <= ord(chr(c)) < 0xE000 and not narrow.match(chr(c))
              and not base._WIDE.match(chr(c))]  # Thai digits, kana, symbols, ...: not trusted, yet not wide
    for _ in range(300):
        text = "".join(rng.choice(pool if rng.random() < 0.7 else others) for _ in range(rng.randint(1, 30)))
        want = [(m.start(), m.end()) for m in base.UNIT_RUN.finditer(text) if m.end() - m.start() > 1]
        assert base.unit_spans(text) == want, text
    for _ in range(300):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 30)))
        want = [(m.start(), m.end()) for m in base.UNIT_RUN.finditer(text) if m.end() - m.start() > 1]
        assert base.unit_spans(text) == want, text


@given(st.lists(st.sampled_from(["中", "国", "a", "b", "1", ".", "Д", "о", "\u0301", "👍", "\U0001f3fd", " x"]),
                min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_keep_runs_whole_removes_exactly_the_cuts_inside_units(pieces, rnd):
    from llmlab.text.base import keep_runs_whole, unit_spans

    text = "".join(pieces)
    cuts = sorted(rnd.sample(range(1, len(text)), rnd.randint(0, len(text) - 1))) if len(text) > 1 else []
    words = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    inside = {k for a, b in unit_spans(text) for k in range(a + 1, b)}
    kept = [c for c in cuts if c not in inside]
    assert keep_runs_whole(text, words) == [text[a:b] for a, b in zip([0, *kept], [*kept, len(text)])]
