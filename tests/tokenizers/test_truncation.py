"""Truncation and padding: hand-computed cases and HF's pair truncation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.tokenizers.truncation import fit_prompt, pad, truncate, truncate_pair


def test_sides():
    ids = list(range(10))
    assert truncate(ids, 4, "right") == [0, 1, 2, 3]
    assert truncate(ids, 4, "left") == [6, 7, 8, 9]
    assert truncate(ids, 5, "middle") == [0, 1, 2, 8, 9]
    assert truncate(ids, 0, "middle") == []
    assert truncate(ids, 20) == ids


@pytest.fixture(scope="module")
def hf_word_level():
    tk = pytest.importorskip("tokenizers")
    tok = tk.Tokenizer(tk.models.WordLevel({f"w{i}": i for i in range(100)}, unk_token="w0"))
    tok.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
    return tok


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 40))
def test_longest_first_matches_hf(hf_word_level, na, nb, n):
    a, b = list(range(1, na + 1)), list(range(50, 50 + nb))
    if na == 0:
        return  # HF refuses an empty first sequence
    hf_word_level.enable_truncation(n, strategy="longest_first")
    enc = hf_word_level.encode(" ".join(f"w{i}" for i in a), " ".join(f"w{i}" for i in b) or None)
    got_a = [i for i, s in zip(enc.ids, enc.type_ids) if s == 0]
    got_b = [i for i, s in zip(enc.ids, enc.type_ids) if s == 1]
    ours = truncate_pair(a, b, n)
    assert ours == (got_a, got_b)
    assert len(ours[0]) + len(ours[1]) == min(na + nb, n)


def test_only_one_side():
    assert truncate_pair([1, 2, 3], [4, 5, 6], 4, "only_second") == ([1, 2, 3], [4])
    assert truncate_pair([1, 2, 3], [4, 5, 6], 4, "only_first", side="left") == ([3], [4, 5, 6])
    with pytest.raises(InputError, match="only_first"):
        truncate_pair([1], [4, 5, 6], 2, "only_first")
    with pytest.raises(InputError, match="shortest_first"):  # even when nothing needs trimming
        truncate_pair([1], [4], 5, "shortest_first")


@pytest.mark.parametrize("strategy", ["only_first", "only_second"])
def test_only_one_side_matches_hf(hf_word_level, strategy):
    for na in range(1, 5):
        for nb in range(1, 5):
            for n in range(na + nb + 1):  # n = 0: HF empties both rather than refuse
                a, b = list(range(1, na + 1)), list(range(50, 50 + nb))
                hf_word_level.enable_truncation(n, strategy=strategy)
                try:
                    enc = hf_word_level.encode(" ".join(f"w{i}" for i in a), " ".join(f"w{i}" for i in b))
                except Exception:  # HF refuses to empty the trimmed sequence
                    with pytest.raises(InputError, match=strategy):
                        truncate_pair(a, b, n, strategy)
                    continue
                got = ([i for i, s in zip(enc.ids, enc.type_ids) if s == 0],
                       [i for i, s in zip(enc.ids, enc.type_ids) if s == 1])
                assert truncate_pair(a, b, n, strategy) == got


def test_pad_both_sides_and_multiple():
    ids, mask = pad([[1, 2], [3, 4, 5]], pad_id=0, side="left", multiple_of=4)
    assert ids == [[0, 0, 1, 2], [0, 3, 4, 5]]
    assert mask == [[0, 0, 1, 1], [0, 1, 1, 1]]
    with pytest.raises(InputError, match="shorter"):
        pad([[1, 2, 3]], 0, length=2)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50), st.integers(2, 40), st.data())
def test_fit_prompt_leaves_room(n, context, data):
    new = data.draw(st.integers(0, context - 1))
    kept = fit_prompt(list(range(n)), context, new)
    assert len(kept) + new <= context
    assert kept == list(range(n))[len(list(range(n))) - len(kept):]  # the most recent tokens
    assert len(kept) == min(n, context - new)


def test_fit_prompt_rejects_impossible():
    with pytest.raises(InputError, match="max_new_tokens"):
        fit_prompt([1, 2], 8, 8)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_pair_that_fits_exactly_is_untouched_like_hf(hf_word_level, strategy):
    # An empty side is fine when nothing needs trimming: HF returns both as they are, even when the
    # sequence that would be trimmed is the empty one.
    for a, b in [([], [1, 2]), ([1, 2], []), ([1], [2])]:
        hf_word_level.enable_truncation(2, strategy=strategy)
        enc = hf_word_level.encode(" ".join(f"w{i}" for i in a), " ".join(f"w{i}" for i in b))
        got = ([i for i, s in zip(enc.ids, enc.type_ids) if s == 0],
               [i for i, s in zip(enc.ids, enc.type_ids) if s == 1])
        assert truncate_pair(a, b, 2, strategy) == got == (a, b)


def test_pad_multiple_of_one_and_empty_batch():
    batch = [[1, 2, 3], [4]]
    assert pad(batch, 0, multiple_of=1) == pad(batch, 0)  # rounding up to a multiple of 1 changes nothing
    with pytest.raises(InputError, match="multiple_of"):
        pad(batch, 0, multiple_of=0)
    assert pad([], 0) == ([], []) and pad([], 0, length=0) == ([], [])


def test_pad_reads_a_generator_once():
    """max() over a generator used to consume it, leaving nothing to pad: ([], [])."""
    rows = [[1, 2, 3], [4]]
    for side in ("right", "left"):
        assert pad((r for r in rows), 0, side=side) == pad(rows, 0, side=side)
        assert pad(iter([iter(r) for r in rows]), 0, side=side, multiple_of=4) == pad(rows, 0, side=side, multiple_of=4)
