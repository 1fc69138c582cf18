"""Cleaning and Gopher quality signals, each signal against a plain brute-force computation here."""

import dataclasses
import random
import unicodedata
from collections import Counter

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.data.clean import (
    CleanConfig,
    QualityConfig,
    clean_text,
    quality_reasons,
    quality_signals,
    split_words,
    strip_controls,
)
from llmlab.data.corpora import pfr1998_text

OFF = CleanConfig(normalize=None, newlines=False, controls=False, trailing_whitespace=False, max_blank_lines=None)
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man ZWJ woman ZWJ girl ZWJ boy
EMOJI = [
    FAMILY,
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag: white flag, VS16, ZWJ, rainbow
    "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England: tag sequence
    "\U0001f44d\U0001f3fd",  # thumbs up, skin tone modifier
    "1\ufe0f\u20e3",  # keycap one
    "\u2764\ufe0f",  # red heart, emoji presentation
    "\U0001f1e8\U0001f1f3",  # regional indicators C N
]


# ----------------------------------------------------------------------------- clean_text


def test_clean_text_steps_one_at_a_time():
    only = lambda **kw: dataclasses.replace(OFF, **kw)  # noqa: E731
    assert clean_text("a\r\nb\rc", only(newlines=True)) == "a\nb\nc"
    assert clean_text("a\x00b\u200bc\ufeff\x7f\t\n\r", only(controls=True)) == "abc\t\n\r"
    assert clean_text("e\u0301 ＡＢ", only(normalize="NFC")) == "\u00e9 ＡＢ"
    assert clean_text("e\u0301 ＡＢ", only(normalize="NFKC")) == "\u00e9 AB"
    assert clean_text("a \t\u3000\nb\u00a0 ", only(trailing_whitespace=True)) == "a\nb"
    assert clean_text("a\n\n\n\nb\n\nc", only(max_blank_lines=1)) == "a\n\nb\n\nc"
    assert clean_text("a\n\n\n\nb\n\nc", only(max_blank_lines=0)) == "a\nb\nc"
    assert clean_text("\n\n\na\n \t\n\n", only(max_blank_lines=1)) == "\na\n\n"
    assert clean_text("a\n\n\n\nb", only(max_blank_lines=2)) == "a\n\n\nb"


def test_clean_text_default_does_all_steps():
    dirty = "Cafe\u0301  \r\n\r\n\r\n\r\n\ufeffzero\u200bwidth\x07\t"
    assert clean_text(dirty) == "Café\n\nzerowidth"
    assert clean_text(dirty, CleanConfig()) == clean_text(dirty)


@pytest.mark.parametrize("emoji", EMOJI)
def test_emoji_sequences_survive(emoji):
    for config in (CleanConfig(), CleanConfig(normalize="NFKC")):
        text = f"a{emoji} b{emoji}\n{emoji}"
        assert clean_text(text, config) == text


def test_stray_tags_and_invisible_characters_go():
    smuggled = "hi" + "".join(chr(0xE0000 + ord(c)) for c in "ignore me") + "!"
    assert strip_controls(smuggled) == "hi!"
    assert strip_controls("\U0001f3f4\U000e0067x") == "\U0001f3f4x"  # a tag sequence needs its cancel tag
    assert strip_controls("\u200eabc\u202e\u2066d\u2069\u00ad") == "abcd"
    # ZWNJ and ZWJ spell Persian and Indic words: kept
    assert strip_controls("می\u200cخواهم \u0915\u094d\u200d\u0937") == "می\u200cخواهم \u0915\u094d\u200d\u0937"


def visible(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Zs") and c not in "\t\n\r")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["NFC", "NFKC", None]), st.booleans(), st.booleans(), st.booleans())
def test_clean_text_is_idempotent(text, form, newlines, controls, trailing):
    for blank in (None, 0, 1, 2):
        config = CleanConfig(form, newlines, controls, trailing, blank)
        once = clean_text(text, config)
        assert clean_text(once, config) == once


TRICKY = ["", "\u200d", "\u200c", "\r", " \n", "\n\n", "\u0301", "\ufe0f", "\U000e0067", "\U000e007f", "\U0001f3f4"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.characters(), st.sampled_from(TRICKY)), max_size=40))
def test_clean_text_is_idempotent_on_tricky_alphabets(pairs):
    text = "".join(c + joiner for c, joiner in pairs)
    for config in (CleanConfig(), CleanConfig(normalize="NFKC")):
        once = clean_text(text, config)
        assert clean_text(once, config) == once


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_all_steps_off_is_the_identity_and_no_step_touches_visible_characters(text):
    assert clean_text(text, OFF) == text
    # without normalising, cleaning only ever removes controls, format characters and whitespace
    assert visible(clean_text(text, CleanConfig(normalize=None))) == visible(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Mn")), max_size=40))
def test_clean_text_leaves_clean_text_alone(body):
    text = unicodedata.normalize("NFC", "x" + body + "\n\nsecond line\tx\n")
    assert clean_text(text) == text


# ----------------------------------------------------------------------------- words

CJK = regex.compile(r"\p{Script=Han}|\p{Script=Hiragana}|\p{Script=Katakana}")


def brute_words(text: str) -> list[str]:
    words = []
    for token in text.split():
        run = ""
        for ch in token:
            if CJK.fullmatch(ch):
                words += [run, ch] if run else [ch]
                run = ""
            else:
                run += ch
        if run:
            words.append(run)
    return [w for w in words if not all(unicodedata.category(c)[0] in "PS" for c in w)]


def test_split_words_cjk():
    assert split_words("我爱北京天安门") == list("我爱北京天安门")
    assert split_words("ひらがなカタカナ한국어 문장") == [*"ひらがなカタカナ", "한국어", "문장"]  # Korean is spaced
    # punctuation stays on the token it touches, as in spaced text ("and," is a word)
    assert split_words("1998年，GDP增长8%。") == ["1998", "年", "，GDP", "增", "长", "8%。"]
    assert split_words("-- hello , world ... # ok") == ["hello", "world", "ok"]
    assert split_words("〇々") == ["〇", "々"]
    assert split_words("") == [] and split_words(" \n\t\u3000") == []


# ----------------------------------------------------------------------------- signals, brute force

STOP_EN = {"the", "be", "to", "of", "and", "that", "have", "with"}
STOP_ZH = set("的了是在和有与也这不")
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…"
BULLET_STARTS = ("•", "‣", "◦", "⁃", "∙", "●", "○", "▪", "■", "□", "◆", "◇", "►", "▶", "- ", "* ")


def frac(a, b):
    return a / b if b else 0.0


def dups(items):
    seen, n, chars = set(), 0, 0
    for x in items:
        if x in seen:
            n, chars = n + 1, chars + len(x)
        seen.add(x)
    return n, chars


def grams_of(words, n):
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def top_chars(words, n):
    grams = grams_of(words, n)
    counts = Counter(grams)
    if not grams or max(counts.values()) < 2:
        return 0
    best = max(counts.values())
    first = next(g for g in grams if counts[g] == best)
    return best * sum(len(w) for w in first)


def dup_chars(words, n):
    # datatrove's find_all_duplicate, on word tuples
    seen, chars, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def brute_signals(text):
    words = brute_words(text)
    cjk = [w for w in words if CJK.fullmatch(w)]
    spaced = [w for w in words if not CJK.fullmatch(w)]
    lines = [line for line in text.split("\n") if line.strip()]
    paragraphs = [p for p in regex.split(r"\n\s*\n", text) if p.strip()]
    if len(cjk) > 0.5 * len(words):
        stop = sum(w in STOP_ZH for w in words)
    else:
        stop = sum(w.strip(PUNCT).lower() in STOP_EN for w in words)
    s = {
        "words": len(words),
        "cjk_fraction": frac(len(cjk), len(words)),
        "mean_word_length": frac(sum(len(w) for w in spaced), len(spaced)),
        "hash_ratio": frac(text.count("#"), len(words)),
        "ellipsis_ratio": frac(text.count("...") + text.count("…"), len(words)),
        "bullet_lines": frac(sum(line.lstrip().startswith(BULLET_STARTS) for line in lines), len(lines)),
        "ellipsis_lines": frac(sum(line.rstrip().endswith(("...", "…")) for line in lines), len(lines)),
        "alpha_words": frac(sum(any(c.isalpha() for c in w) for w in words), len(words)),
        "stop_words": stop,
        "dup_line_fraction": frac(dups(lines)[0], len(lines)),
        "dup_line_char_fraction": frac(dups(lines)[1], len(text)),
        "dup_para_fraction": frac(dups(paragraphs)[0], len(paragraphs)),
        "dup_para_char_fraction": frac(dups(paragraphs)[1], len(text)),
    }
    for n in (2, 3, 4):
        s[f"top_{n}gram_char_fraction"] = frac(top_chars(words, n), len(text))
    for n in range(5, 11):
        s[f"dup_{n}gram_char_fraction"] = frac(dup_chars(words, n), len(text))
    return s


VOCAB = ["the", "The", "of", "and,", "cat", "sat", "mat", "x", "12", "3.5", "hello-world", "Tokenisation", "a"]
PIECES = ["#", "...", "…", "-", "，", "。", "的", "了", "中", "国", "人", "〇", "カ", "한", "• ", "- ", "* ", "!"]


def random_doc(rng: random.Random) -> str:
    cjk_heavy = rng.random() < 0.4
    lines = []
    for _ in range(rng.randint(0, 14)):
        if lines and rng.random() < 0.25:
            lines.append(rng.choice(lines))  # a repeated line
            continue
        if rng.random() < 0.15:
            lines.append(rng.choice(["", " ", "\t"]))  # blank lines: paragraph breaks
            continue
        parts = []
        for _ in range(rng.randint(1, 25)):
            pool = PIECES if cjk_heavy or rng.random() < 0.2 else VOCAB
            parts.append(rng.choice(pool[: rng.randint(2, len(pool))]))
            parts.append(rng.choice([" ", " ", "", "  "]) if not cjk_heavy else rng.choice(["", "", " "]))
        lines.append("".join(parts))
    return rng.choice(["", "\n"]) + "\n".join(lines) + rng.choice(["", "\n"])


def assert_signals_match(text):
    got, want = quality_signals(text), brute_signals(text)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=0), (key, text)


@pytest.mark.parametrize("seed", range(40))
def test_signals_match_brute_force_on_random_documents(seed):
    rng = random.Random(seed)
    for _ in range(25):
        assert_signals_match(random_doc(rng))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab 中国的\n#.…-•，", "cat ", "the ", "...", "\n\n"]), max_size=60).map("".join))
def test_signals_match_brute_force_on_generated_text(text):
    assert_signals_match(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n\n",
        "#",
        "a",
        "a a a a a a a a a a a a a a a a a a a a a a a a",  # every n-gram repeats
        "哈" * 40,
        "ab " * 3 + "\n\nab ab ab\n\nab ab ab \n\n" + "...\n" * 4,
        "• one\n• two\n•three\n  • four\nfive…",
        "the cat sat on the mat. The CAT sat on THE mat!",
        "“The” (of) and, with... that; have",
    ],
)
def test_signals_match_brute_force_on_crafted_documents(text):
    assert_signals_match(text)


def test_signals_on_crafted_documents_by_hand():
    s = quality_signals("a b c a b c a b c d")  # 10 words, len 19
    assert s["top_2gram_char_fraction"] == 3 * 2 / 19  # "a b" three times
    assert s["top_3gram_char_fraction"] == 3 * 3 / 19
    # 5-grams: abcab bcabc cabca [abcab] -> jump 5 to "cd"... only 6 5-grams, so one repeat
    assert s["dup_5gram_char_fraction"] == 5 / 19
    assert quality_signals("one two three four")["top_2gram_char_fraction"] == 0.0  # nothing repeats
    s = quality_signals("x\ny\nx\nx\n\ny")
    assert s["dup_line_fraction"] == 3 / 5 and s["dup_line_char_fraction"] == 3 / 10
    assert s["dup_para_fraction"] == 0.0  # paragraphs "x\ny\nx\nx" and "y" differ


def test_chinese_uses_chinese_stop_words_and_skips_word_length():
    s = quality_signals("我们的国家是一个伟大的国家，人民在这里生活。")
    assert s["cjk_fraction"] == 1.0 and s["stop_words"] == 5  # 的 是 的 在 这
    assert s["mean_word_length"] == 0.0  # no spaced words
    reasons = quality_reasons("我们的国家是一个伟大的国家，人民在这里生活。")
    assert reasons == ["min_words", "max_top_3gram_char_fraction"]  # 的国家 twice is 6 of 22 characters
    english = "We the people of the nation live here and there with joy."
    assert quality_signals(english)["stop_words"] == 5  # the the of and with


def test_chinese_news_mostly_passes_gopher():
    lines = pfr1998_text("dev")
    docs = ["\n".join(lines[i : i + 30]) for i in range(30, 600, 30)]
    kept = [d for d in docs if not quality_reasons(d)]
    assert len(kept) >= 0.8 * len(docs)


# ----------------------------------------------------------------------------- rules at their edges

RULES = [f.name for f in dataclasses.fields(QualityConfig)]


def only_rule(rule: str, limit: float) -> QualityConfig:
    return QualityConfig(**{f: None for f in RULES} | {rule: limit})


@pytest.mark.parametrize("seed", range(6))
def test_every_rule_flips_exactly_at_its_threshold(seed):
    rng = random.Random(seed)
    for _ in range(10):
        text = random_doc(rng)
        s = quality_signals(text)
        cjk = s["cjk_fraction"] > 0.5
        for rule in RULES:
            v = s[rule[4:]]
            if rule.endswith("mean_word_length") and cjk:
                assert quality_reasons(text, only_rule(rule, 0 if rule.startswith("max") else 1e9)) == []
                continue
            assert quality_reasons(text, only_rule(rule, v)) == []  # equal passes
            if rule.startswith("min_"):
                if v >= 1 and rule == "min_alpha_words":
                    continue  # no fraction above 1
                assert quality_reasons(text, only_rule(rule, float(np.nextafter(v, np.inf)))) == [rule]
            elif v > 0:
                assert quality_reasons(text, only_rule(rule, float(np.nextafter(v, -np.inf)))) == [rule]


def good_doc(n_words: int = 60, **swap) -> str:
    """Distinct 5-letter words, 'the' and 'of' among them, in lines of 10 words."""
    letters = "bcdfghjklmnpqrstvwxz"
    words = ["the", "of"] + [
        "a" + letters[i % 20] + letters[i // 20 % 20] + letters[i // 400 % 20] + "e" for i in range(n_words - 2)
    ]
    for i, w in swap.items():
        words[int(i[1:])] = w
    return "\n".join(" ".join(words[i : i + 10]) for i in range(0, len(words), 10))


def test_good_doc_passes_gopher_defaults():
    assert quality_reasons(good_doc()) == []


def test_gopher_defaults_at_their_edges():
    assert quality_reasons(good_doc(50)) == []
    assert quality_reasons(good_doc(49)) == ["min_words"]
    assert quality_reasons(good_doc(60) + " #" * 6) == []  # 6 / 60 = 0.1
    assert quality_reasons(good_doc(60) + " #" * 7) == ["max_hash_ratio"]
    assert quality_reasons(good_doc(60) + " …" * 6) == []
    assert quality_reasons(good_doc(60) + " ..." * 7) == ["max_ellipsis_ratio"]
    # 12 of 60 words without a letter: 0.8 passes, 13 do not
    assert quality_reasons(good_doc(60, **{f"w{i}": str(i) for i in range(10, 22)})) == []
    assert quality_reasons(good_doc(60, **{f"w{i}": str(i) for i in range(10, 23)})) == ["min_alpha_words"]
    assert quality_reasons(good_doc(60, w0="thy")) == ["min_stop_words"]
    # lines: 3 of 10 ending with an ellipsis is 0.3 (passes), 4 is not
    lines = good_doc(100).split("\n")
    assert quality_reasons("\n".join(x + "…" if i < 3 else x for i, x in enumerate(lines))) == []
    assert quality_reasons("\n".join(x + "…" if i < 4 else x for i, x in enumerate(lines))) == ["max_ellipsis_lines"]
    assert quality_reasons("\n".join("• " + x if i < 9 else x for i, x in enumerate(lines))) == []
    assert quality_reasons("\n".join("• " + x for x in lines)) == ["max_bullet_lines"]
    # mean word length: 60 words of 3 letters on average pass, a little less does not
    swaps = {f"w{i}": "ab" if i % 2 else "abcd" for i in range(2, 60)}
    short = good_doc(60, w1="and", **swaps)
    assert quality_signals(short)["mean_word_length"] == 3.0
    assert "min_mean_word_length" not in quality_reasons(short)
    assert "min_mean_word_length" in quality_reasons(short.replace("abcd", "abc", 1))


def test_repetition_edges():
    # 10 distinct lines then k repeats of the first: duplicate line fraction k / (10 + k)
    lines = good_doc(100).split("\n")
    only = QualityConfig(**{f: None for f in RULES} | {"max_dup_line_fraction": 0.3})
    k3 = "\n".join(lines[:7] + lines[:3])  # 3 of 10 repeat: 0.3
    assert quality_reasons(k3, only) == []
    assert quality_reasons("\n".join(lines[:6] + lines[:4]), only) == ["max_dup_line_fraction"]


def test_default_config_equals_gopher_table():
    c = QualityConfig()
    assert (c.min_words, c.max_words, c.min_mean_word_length, c.max_mean_word_length) == (50, 100_000, 3, 10)
    assert (c.max_hash_ratio, c.max_ellipsis_ratio, c.max_bullet_lines, c.max_ellipsis_lines) == (0.1, 0.1, 0.9, 0.3)
    assert (c.min_alpha_words, c.min_stop_words) == (0.8, 2)
    assert [getattr(c, f"max_top_{n}gram_char_fraction") for n in (2, 3, 4)] == [0.20, 0.18, 0.16]
    assert [getattr(c, f"max_dup_{n}gram_char_fraction") for n in range(5, 11)] == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    assert (c.max_dup_line_fraction, c.max_dup_para_fraction) == (0.3, 0.3)
    assert (c.max_dup_line_char_fraction, c.max_dup_para_char_fraction) == (0.2, 0.2)


def test_quality_reasons_reuses_given_signals():
    text = good_doc()
    s = quality_signals(text) | {"words": 3.0}
    assert quality_reasons(text, signals=s) == ["min_words"]


def test_filters_corpus_lines():
    lines = pfr1998_text("train")[:5000]
    kept = [line for line in lines if not quality_reasons(line, QualityConfig(min_words=5, min_stop_words=None))]
    assert 0.5 * len(lines) < len(kept) < len(lines)


# ----------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"normalize": "NFD"}, "normalize must be one of"),
        ({"newlines": 1}, "newlines must be True or False"),
        ({"max_blank_lines": -1}, "max_blank_lines must be an integer >= 0"),
        ({"max_blank_lines": 1.5}, "max_blank_lines"),
        ({"max_blank_lines": True}, "max_blank_lines"),
    ],
)
def test_clean_config_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        CleanConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_words": -1}, "min_words must be a number >= 0"),
        ({"max_hash_ratio": "0.1"}, "max_hash_ratio must be a number"),
        ({"min_stop_words": True}, "min_stop_words must be a number"),
        ({"max_dup_line_fraction": 1.5}, r"max_dup_line_fraction is a fraction and must be in \[0, 1\]"),
        ({"min_alpha_words": 2}, "min_alpha_words is a fraction"),
        ({"max_bullet_lines": float("nan")}, "max_bullet_lines must be a number >= 0"),
        ({"min_words": 10, "max_words": 5}, r"min_words \(10\) must not exceed max_words \(5\)"),
        ({"min_mean_word_length": 11}, "min_mean_word_length"),
    ],
)
def test_quality_config_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        QualityConfig(**kwargs)
