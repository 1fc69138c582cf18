"""Pre-tokenization helpers: Split against HF's, special-token cutting, the byte-level alphabet."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers.pretokenize import PreTokenizer, split_specials, token_to_bytes

hf = pytest.importorskip("tokenizers")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([r"\d*", r"x?", r"\b", r"(?=a)", r"a*|b"]), st.text(alphabet="ax1 b", max_size=12))
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
