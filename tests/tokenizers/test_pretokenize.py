"""Pre-tokenization helpers: Split against HF's, special-token cutting, the byte-level alphabet."""

from __future__ import annotations

import json

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers import BPETokenizer
from llmlab.tokenizers.pretokenize import PreTokenizer, split_isolated, split_specials, token_to_bytes

hf = pytest.importorskip("tokenizers")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([r"\d*", r"x?", r"(?<=a)", r"(?=a)", r"a*|b"]), st.text(alphabet="ax1 b", max_size=12))
def test_patterns_with_empty_matches_split_as_hf(pattern, text):
    """A pattern that can match the empty string gives no empty pieces, as HF's Isolated Split."""
    ref = [s for s, _ in hf.pre_tokenizers.Split(hf.Regex(pattern), "isolated").pre_tokenize_str(text)]
    assert PreTokenizer(pattern)(text) == ref


SPECIALS = ["<|eos|>", "<|bos|>", "<x>"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="ab |", min_size=1, max_size=4).map(lambda s: (s, False)),
                          st.sampled_from(SPECIALS).map(lambda s: (s, True))), max_size=6))
def test_split_specials_marks_every_occurrence(parts):
    """Any mix of plain text and special tokens comes back as written, specials marked, plain runs joined."""
    expected: list[tuple[str, bool]] = []
    for part, special in parts:
        if expected and not special and not expected[-1][1]:
            expected[-1] = (expected[-1][0] + part, False)
        else:
            expected.append((part, special))
    text = "".join(p for p, _ in parts)
    assert split_specials(text, SPECIALS) == expected
    assert split_specials(text, []) == ([(text, False)] if text else [])


def test_token_outside_the_byte_alphabet_is_refused():
    with pytest.raises(InputError, match="byte-level alphabet"):
        token_to_bytes("a b")  # a plain space has the stand-in Ġ


SPLIT_TEXT = "ab cd\nef g\u200dh\n"  # lines, a final newline and a zero-width joiner inside a word


def hf_split(pattern: str, text: str) -> list[str] | None:
    """HF's Isolated Split of `text` by `pattern`, or None when HF cannot read the pattern."""
    try:
        return [s for s, _ in hf.pre_tokenizers.Split(hf.Regex(pattern), "isolated").pre_tokenize_str(text)]
    except Exception:
        return None


@pytest.mark.parametrize("pattern", [r"^\w+", r"\w+$", r"\b\w", r"\B\w", r"\w+\Z", r"(?u)\w+", r"(?s).",
                                     r"(?P<w>\w+)"])
def test_patterns_hf_reads_otherwise_are_refused(pattern):
    """Anchors, word boundaries and inline flags: HF's Oniguruma cannot load the pattern or splits other pieces,
    so a saved tokenizer.json would give other ids there; the pattern is refused, saying why, in training too."""
    assert hf_split(pattern, SPLIT_TEXT) != split_isolated(regex.compile(pattern), SPLIT_TEXT)
    with pytest.raises(InputError, match="Hugging Face tokenizers .* would split text differently"):
        PreTokenizer(pattern)
    with pytest.raises(InputError, match="would split text differently"):
        BPETokenizer.train(["ab cd"], 300, pattern=pattern + r"|\s+")
    with pytest.raises(InputError, match="would split text differently"):
        PreTokenizer("whitespace", then=[pattern])


@pytest.mark.parametrize("pattern", [r"\Aab", r"ab\z", r"(?i)ab", r"(?m)^\w", r"(?-i:ab)"])
def test_other_anchors_and_flags_are_refused_too(pattern):
    """The same rule for all of them, whether or not this text shows the engines apart."""
    with pytest.raises(InputError, match="would split text differently"):
        PreTokenizer(pattern)


@pytest.mark.parametrize("pattern", [r"[^\s]+|\s+", r"\^|\$|[^^$]+", r"(?i:AB|ij)|.", r"[\b]|[^\b]+",
                                     r"(?<!\S)\w+|\s+|\W", r"[[:alpha:]]+|\s+|.", r"(?=a)\w|(?<=b)\s|."])
def test_lookalikes_that_hf_reads_alike_are_accepted(pattern):
    """A ^ opening a character class, escaped ^ and $, \b in a class (a backspace), (?i:...) and lookarounds."""
    text = "ab cd\nef ^$ IJ\n"
    assert PreTokenizer(pattern)(text) == hf_split(pattern, text)


def test_a_file_with_an_anchored_split_is_refused_on_load(tmp_path):
    """A foreign file's pattern that llmlab would read otherwise than HF does is refused, not encoded differently."""
    from llmlab.tokenizers import load_tokenizer

    doc = BPETokenizer.train(["ab cd"], 300, pattern="gpt2").to_hf_json()
    doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"^\w+|\s+"
    del doc["model"]["llmlab"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="anchor \\^"):
        load_tokenizer(tmp_path)
