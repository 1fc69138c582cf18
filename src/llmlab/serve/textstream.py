"""Text out of a token stream, piece by piece, never showing what may still change.

Two filters a streamed completion runs its tokens through:

- `IncrementalDecoder` turns token ids into text as they come. A byte-level BPE token may end inside a
  UTF-8 character (a Chinese character is 3 bytes, often split over 2 tokens), and decoding it alone
  gives U+FFFD; the decoder holds such a tail back until the character completes (the method of
  Hugging Face's text-generation-inference: decode a short window twice, with and without the new
  token, and send the difference once it no longer ends in U+FFFD).
- `StopFilter` cuts the text at a stop string and holds back any tail that could be the start of one,
  so a client never receives text that a later token reveals as part of a stop string.

Pieces concatenate to the text the whole completion decodes to, cut at the stop string::

    >>> dec, stop = IncrementalDecoder(lambda ids: bytes(ids).decode("utf-8", "replace")), StopFilter(["。"])
    >>> [stop.push(dec.push(b)) for b in "中。".encode()]  # 中 is e4 b8 ad, 。 is e3 80 82
    ['', '', '中', '', '', '']
    >>> stop.stopped
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that are not (yet) a whole UTF-8 character


class IncrementalDecoder:
    """Feed token ids with `push`; each call returns the new text that is final (maybe ""); `flush`
    returns what was held back once the stream ends (a U+FFFD the full text also shows).

    Needs a `decode` whose text for ids[a:b] starts with its text for ids[a:c] (c < b) up to a held-back
    U+FFFD tail, as every llmlab tokenizer's does; pieces are then exactly the full decode's text.
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.ids: list[int] = []
        self.prefix = 0  # ids[prefix:read] were sent already; decoded again as context for the next token
        self.read = 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        sent = self.decode(self.ids[self.prefix:self.read])
        text = self.decode(self.ids[self.prefix:])
        if len(text) > len(sent) and not text.endswith(REPLACEMENT):
            self.prefix, self.read = self.read, len(self.ids)
            return text[len(sent):]
        return ""

    def flush(self) -> str:
        sent = self.decode(self.ids[self.prefix:self.read])
        text = self.decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return text[len(sent):]


class StopFilter:
    """Feed text with `push`; each call returns the text safe to send. Once a stop string is complete,
    `stopped` is True and the text is cut where it begins. `flush` returns the held-back tail when the
    stream ends without one.

    The cut is at the stop string completed first (as if the text came one character at a time; of two
    completed at the same character, the longer), so it does not depend on how text is split into pieces:

    >>> f = StopFilter(["abcd", "c"])
    >>> f.push("ab"), f.push("cd"), f.stopped
    ('', 'ab', True)
    >>> StopFilter(["abcd", "c"]).push("abcd")  # "c" ends before "abcd" does: the cut is at "c"
    'ab'
    """

    def __init__(self, stops: Sequence[str]):
        if any(not s for s in stops):
            raise ValueError("stop strings must be non-empty")
        self.stops = tuple(stops)
        self.pending = ""  # text received but not yet sent: the tail that may begin a stop string
        self.stopped = False

    def push(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            out, self.pending = self.pending[:cut], ""
            return out
        keep = self._held_tail()
        out, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out

    def _first_stop(self) -> int | None:
        """Where the stop string completed first in `pending` begins, or None."""
        best = None  # (end, -length, start)
        for s in self.stops:
            i = self.pending.find(s)
            if i >= 0 and (best is None or (i + len(s), -len(s)) < best[:2]):
                best = (i + len(s), -len(s), i)
        return None if best is None else best[2]

    def _held_tail(self) -> int:
        """Length of the longest tail of `pending` that is the start of a stop string."""
        longest = min(len(self.pending), max((len(s) for s in self.stops), default=1) - 1)
        for k in range(longest, 0, -1):
            tail = self.pending[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0
