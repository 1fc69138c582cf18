"""Pre-tokenization: how text is cut into pieces before a subword model sees them.

A subword model never merges across a piece boundary, so the split decides what tokens can exist.
GPT-2 splits letters, digits, punctuation and spaces apart and keeps one leading space on a word;
GPT-4 (cl100k) also caps digit runs at three and lets punctuation absorb a newline:

>>> PreTokenizer("gpt2")("Hello world, 12345!")
['Hello', ' world', ',', ' 12345', '!']
>>> PreTokenizer("gpt4")("Hello world, 12345!")
['Hello', ' world', ',', ' ', '123', '45', '!']

Chinese has no spaces, so a whole clause is one piece. A CJK-aware pre-tokenizer cuts the pieces that
hold Han characters with any word segmenter (a ``cut(str) -> list[str]`` callable):

>>> PreTokenizer("gpt2", segmenter=lambda s: [s[:2], s[2:]])("我们 喜欢")
['我们', ' 喜', '欢']

Byte-level models see a piece as UTF-8 bytes, shown in ``tokenizer.json`` through GPT-2's printable
stand-ins (`bytes_to_unicode`): a space byte is written ``Ġ``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import regex

from llmlab.core.errors import InputError

# Named split patterns. "gpt4" is the cl100k pattern in the form Hugging Face's Llama-3 files use
# (no possessive quantifiers), so both `regex` and HF's Oniguruma read it the same way.
PATTERNS: dict[str, str] = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "whitespace": r"""\S+|\s+""",
}
_HAN = regex.compile(r"\p{Han}")


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters.

    >>> m = bytes_to_unicode()
    >>> m[ord("a")], m[ord(" ")], m[0], len(set(m.values()))
    ('a', 'Ġ', 'Ā', 256)
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


@functools.lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def bytes_to_token(data: bytes) -> str:
    """The ``tokenizer.json`` spelling of a byte string.

    >>> bytes_to_token(" 中".encode())
    'Ġä¸Ń'
    """
    m = bytes_to_unicode()
    return "".join(m[b] for b in data)


def token_to_bytes(token: str) -> bytes:
    """The bytes a ``tokenizer.json`` byte-level token stands for.

    >>> token_to_bytes('Ġä¸Ń').decode()
    ' 中'
    """
    m = unicode_to_bytes()
    try:
        return bytes(m[c] for c in token)
    except KeyError as e:
        raise InputError(f"token {token!r} is not in the byte-level alphabet (character {e.args[0]!r})") from None


def byte_alphabet() -> list[int]:
    """The 256 byte values in the order Hugging Face's trainer gives them ids: by stand-in code point.

    >>> byte_alphabet()[:3], byte_alphabet()[-1]
    ([33, 34, 35], 173)
    """
    m = bytes_to_unicode()
    return sorted(range(256), key=lambda b: m[b])


class PreTokenizer:
    """Cuts text into pieces with a named or custom regex, then optionally segments Chinese pieces.

    `then` holds further regexes, each cutting every piece again in turn (a Hugging Face ``Sequence``
    of ``Split`` steps). The pieces always join back to the input: nothing is dropped or altered.

    >>> PreTokenizer("whitespace", then=[r"\\d"])("ab12 c")
    ['ab', '1', '2', ' ', 'c']
    """

    def __init__(self, pattern: str = "gpt4", segmenter: Callable[[str], list[str]] | None = None,
                 then: Iterable[str] = (), segmenter_missing: bool = False):
        self.pattern = pattern
        self.regex_text = PATTERNS.get(pattern, pattern)
        self.then = tuple(then)
        custom = [r for r in (self.regex_text, *self.then) if r not in PATTERNS.values()]
        self._res = [_compile(r) for r in (self.regex_text, *self.then)]
        for r in custom:
            _refuse_unportable(r)
        self.segmenter = segmenter
        # Loaded from a file saying the vocabulary was learnt from segmented Han text, with no segmenter
        # attached since: Han text would split otherwise than in training, so it is refused (`__call__`).
        self.segmenter_missing = segmenter_missing and segmenter is None

    def __call__(self, text: str) -> list[str]:
        pieces = split_isolated(self._res[0], text)
        for r in self._res[1:]:
            pieces = [q for p in pieces for q in split_isolated(r, p)]
        if self.segmenter is not None:
            pieces = list(self._segment(pieces))
        elif self.segmenter_missing and any(_HAN.search(p) for p in pieces):
            raise InputError("this tokenizer learnt its vocabulary from Han text cut by a word segmenter "
                             "(its file says cjk_segmenter; a file cannot hold the segmenter itself), so "
                             "without it Chinese text gets other tokens than in training: call "
                             "tok.with_segmenter(cut) with the same segmenter first, or tok.with_segmenter(None) "
                             "to encode without one, as Hugging Face tokenizers do")
        return pieces

    def _segment(self, pieces: Iterable[str]) -> Iterable[str]:
        for p in pieces:
            if not _HAN.search(p):
                yield p
                continue
            words = self.segmenter(p)
            if "".join(words) != p:
                raise InputError(f"segmenter changed the text {p!r} into {words!r}; it must only cut")
            yield from (w for w in words if w)

    def hf_splits(self) -> list[dict]:
        """The HF ``Split`` steps, in order (the segmenter, a Python callable, cannot be saved)."""
        return [{"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False}
                for r in (self.regex_text, *self.then)]

    def to_hf(self) -> dict:
        splits = self.hf_splits()
        return splits[0] if len(splits) == 1 else {"type": "Sequence", "pretokenizers": splits}

    @classmethod
    def from_hf(cls, doc: dict | None, byte_level: bool = False, segmenter_missing: bool = False) -> PreTokenizer:
        """Read back ``Split`` steps (alone or in a ``Sequence``) and GPT-2's ``ByteLevel``, which must
        come last and only for a byte-level model (`byte_level`); anything else is refused.
        `segmenter_missing`: the file's model was trained with a segmenter (see `__init__`)."""
        parts = (doc.get("pretokenizers") or []) if doc and doc.get("type") == "Sequence" else [doc]
        regexes, seen_bytes = [], False
        for part in parts:
            kind = (part or {}).get("type")
            if seen_bytes:  # ByteLevel rewrites the characters a later step would see
                raise InputError(f"unsupported pre-tokenizer: {kind!r} after ByteLevel")
            if kind == "Split":
                regexes.append(_split_regex(part))
            elif kind == "ByteLevel":
                if part.get("add_prefix_space"):
                    raise InputError("unsupported pre-tokenizer: ByteLevel with add_prefix_space=true")
                regexes += [PATTERNS["gpt2"]] if part.get("use_regex", True) else []
                seen_bytes = True
            else:
                raise InputError(f"unsupported pre-tokenizer in tokenizer file: {part!r}")
        if seen_bytes != byte_level:
            raise InputError("unsupported pre-tokenizer: a ByteLevel step goes with a byte-level BPE model, "
                             f"and only there ({'missing' if byte_level else 'found'} here)")
        if not regexes:
            raise InputError(f"unsupported pre-tokenizer in tokenizer file: {doc!r} (no Split)")
        name = next((k for k, v in PATTERNS.items() if v == regexes[0]), regexes[0])
        return cls(name, then=regexes[1:], segmenter_missing=segmenter_missing)


def _compile(text: str) -> regex.Pattern:
    try:
        return regex.compile(text)
    except regex.error as e:
        raise InputError(f"pre-tokenizer pattern {text!r} is not a valid regex: {e}") from None


def unportable_part(pattern: str) -> str | None:
    """What in `pattern` Hugging Face tokenizers' regex engine (Oniguruma) reads otherwise than Python's
    `regex`, or None: an anchor (``^`` and ``$`` match at every line there, ``\\Z`` also before a final
    newline), a word boundary (``\\b``, ``\\B``: the two disagree on which characters are word
    characters) or a group of inline flags (``(?u)``, ``(?s)``: unknown there, or another meaning; ``(?m)``
    is dotall there). Only ``(?i:...)``, case-insensitive within the group, reads alike, and the gpt4
    pattern uses it. A ``^`` opening a character class and escaped ``\\^``, ``\\$`` are ordinary.

    >>> unportable_part(r"^\\w+"), unportable_part(r"[^\\s]+\\$"), unportable_part(r"(?u)\\w+|\\b")
    ('the anchor ^', None, 'the inline group option (?u')
    """
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1:i + 2]
            if not in_class and escaped in ("A", "Z", "z"):
                return f"the anchor \\{escaped}"
            if not in_class and escaped in ("b", "B"):  # in a class, \b is a backspace
                return f"the word boundary \\{escaped}"
            i += 2
        elif in_class:
            if c == "[" and pattern.startswith(":", i + 1) and ":]" in pattern[i + 2:]:  # [:alpha:]
                i = pattern.index(":]", i + 2) + 2
                continue
            in_class = c != "]"
            i += 1
        elif c == "[":
            i += 1
            i += pattern.startswith("^", i)  # negation
            i += pattern.startswith("]", i)  # a "]" first is a literal one
            in_class = True
        elif c in "^$":
            return f"the anchor {c}"
        elif pattern.startswith("(?", i) and regex.match(r"[a-zA-Z^-]", pattern[i + 2:i + 3]) \
                and not pattern.startswith("(?i:", i):
            return "the inline group option " + regex.match(r"\(\?[a-zA-Z^-]*", pattern[i:]).group()
        else:
            i += 1
    return None


def _refuse_unportable(pattern: str) -> None:
    what = unportable_part(pattern)
    if what is not None:
        raise InputError(f"pre-tokenizer pattern {pattern!r} uses {what}, which Hugging Face tokenizers (Oniguruma) "
                         "reads otherwise than Python's regex: the saved tokenizer.json would split text differently "
                         "there (and may not load); write it without anchors, word boundaries and inline flags, "
                         "e.g. with lookarounds such as (?<!\\S)")


def _split_regex(doc: dict) -> str:
    """The regex of an HF ``Split`` step that keeps each match as a piece (``Isolated``, not inverted)."""
    pattern = doc.get("pattern") or {}
    if "Regex" not in pattern:
        raise InputError(f"unsupported Split pre-tokenizer: pattern {pattern!r} is not a Regex")
    if doc.get("behavior") != "Isolated" or doc.get("invert"):
        raise InputError(f"unsupported Split pre-tokenizer: behavior {doc.get('behavior')!r} with invert="
                         f"{doc.get('invert')!r} (llmlab implements Isolated without invert only)")
    return pattern["Regex"]


def split_isolated(compiled: regex.Pattern, text: str) -> list[str]:
    """The matches of `compiled` in `text` and the gaps between them, in order (HF's ``Isolated``).

    >>> split_isolated(regex.compile(r"\\d+"), "ab12c")
    ['ab', '12', 'c']
    """
    pieces = compiled.findall(text)
    if "".join(pieces) == text and "" not in pieces:
        return pieces
    # The pattern skipped characters (keep the gaps as pieces so nothing is lost) or matched the empty
    # string (drop those matches, as HF does).
    out, pos = [], 0
    for m in compiled.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def split_specials(text: str, specials: Iterable[str]) -> list[tuple[str, bool]]:
    """Cut `text` around occurrences of `specials` (leftmost, then longest), marking which are special.

    >>> split_specials("hi<|eos|>yo", ["<|eos|>"])
    [('hi', False), ('<|eos|>', True), ('yo', False)]
    """
    specials = sorted(set(specials), key=lambda s: (-len(s), s))
    if not specials:
        return [(text, False)] if text else []
    out = []
    for i, part in enumerate(regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text)):
        if part:
            out.append((part, i % 2 == 1))
    return out
