"""The two text filters alone, against references, on every way of cutting a text into tokens or pieces:
the decoder's pieces are the whole decode, with U+FFFD only where the whole text has it; the stop
filter's output is the text cut where reading it a character at a time first completes a stop string."""

from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.serve.textstream import IncrementalDecoder, StopFilter
from llmlab.tokenizers import CharTokenizer, train_tokenizer


def cuts(draw, n: int) -> list[int]:
    """Sorted cut points in [1, n)."""
    return sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=n)))) if n > 1 else []


def pieces(s, points):
    bounds = [0, *points, len(s)]
    return [s[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_decoder_pieces_are_the_whole_text_whole_characters_only(data):
    """Tokens are arbitrary byte groups of UTF-8 text (a byte-level BPE's worst case), sometimes with stray
    bytes that no character completes."""
    text = data.draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12))
    raw = text.encode()
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(raw)))
        raw = raw[:i] + data.draw(st.sampled_from([b"\xe4", b"\x80", b"\xf0\x9f"])) + raw[i:]
    tokens = pieces(raw, cuts(data.draw, len(raw)))
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    inverse = {i: t for t, i in vocab.items()}

    def decode(ids):
        return b"".join(inverse[i] for i in ids).decode("utf-8", "replace")

    dec = IncrementalDecoder(decode)
    out = [dec.push(vocab[t]) for t in tokens] + [dec.flush()]
    full = raw.decode("utf-8", "replace")
    assert "".join(out) == full
    sent = ""
    for piece in out:  # a U+FFFD is sent only where the whole text has one
        sent += piece
        assert sent == full[:len(sent)]


def test_decoder_on_real_tokenizers():
    texts = ["北京的冬天很冷，上海的夏天很热。", "hello world 😀 ok", "naïve café"]
    for tok in (CharTokenizer.train(texts), train_tokenizer("bpe", texts, 256 + 4 + 8),
                train_tokenizer("wordpiece", texts * 3, 120)):
        for text in texts:
            ids = tok.encode(text)
            dec = IncrementalDecoder(tok.decode)
            assert "".join([dec.push(i) for i in ids] + [dec.flush()]) == tok.decode(ids)


def first_stop_cut(text: str, stops: list[str]) -> int | None:
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return end - max(map(len, done))
    return None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_stop_filter_cuts_as_reading_one_character_at_a_time(data):
    text = data.draw(st.text("abc中。", max_size=16))
    stops = data.draw(st.lists(st.text("abc中。", min_size=1, max_size=4), min_size=1, max_size=4))
    cut = first_stop_cut(text, stops)
    want = text if cut is None else text[:cut]
    f = StopFilter(stops)
    sent = ""
    for piece in pieces(text, cuts(data.draw, len(text))):
        sent += f.push(piece)
        assert want.startswith(sent)  # nothing sent is later found to be part of a stop string
        if f.stopped:
            break
    sent += f.flush()
    assert f.stopped == (cut is not None)
    assert sent == want
