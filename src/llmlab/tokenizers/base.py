"""The tokenizer interface every llmlab tokenizer implements, and the loader that dispatches on the
saved file's model type.

A tokenizer maps text to ids and back. Special tokens (``<unk>``, ``<|bos|>``, ``<|eos|>``,
``<|pad|>``) have fixed ids at the start of the vocabulary and are never produced from ordinary text:
the characters ``<|eos|>`` typed by a user encode as ordinary characters.
"""

from __future__ import annotations

import importlib
import json
import operator
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_text, read_json

UNK, BOS, EOS, PAD = "<unk>", "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD)


def checked_text(text: str) -> str:
    """`text` if it is a str of Unicode characters, else an InputError (bytes were encoded from every
    byte's character, a list from its items: neither is the text; a lone surrogate, see
    `refuse_surrogates`)."""
    if not isinstance(text, str):
        hint = ": decode the bytes first" if isinstance(text, (bytes, bytearray)) else ""
        raise InputError(f"a tokenizer encodes a str, got {type(text).__name__}{hint}")
    refuse_surrogates(text, "text")
    return text


def refuse_surrogates(text: str, what: str) -> None:
    """An InputError if `text` holds a lone surrogate (what a bad byte decoded with ``surrogateescape``
    becomes). It is no Unicode character: UTF-8 cannot hold it, so a byte-level model has no bytes for
    it and a vocabulary holding it could not be saved; every tokenizer refuses it, in training and in
    encoding alike, rather than each doing something else with it.

    >>> try:
    ...     refuse_surrogates("a" + chr(0xDCFF), "text")
    ... except InputError as e:
    ...     print(str(e).split(':')[0])
    text holds '\\udcff' at character 1
    """
    if not text.isascii():  # the common case costs one pass in C
        try:
            text.encode()
        except UnicodeEncodeError as e:
            raise InputError(f"{what} holds {text[e.start:e.end]!r} at character {e.start}: a lone surrogate, "
                             "not a Unicode character (decode the input with errors='replace')") from None


def training_texts(texts: Iterable[str]) -> Iterator[str]:
    """The texts of a training corpus, each checked as it is read: one string is refused rather than read
    as its characters (each a one-character text), and so is an item that is not a str (None, bytes) or
    holds a lone surrogate (`refuse_surrogates`), naming which text it is.

    >>> list(training_texts(["ab", "c"]))
    ['ab', 'c']
    """
    if isinstance(texts, (str, bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputError(f"texts must be an iterable of strings (lines or documents), not one "
                         f"{'string' if isinstance(texts, str) else type(texts).__name__}")
    return _checked_texts(texts)


def _checked_texts(texts: Iterable[str]) -> Iterator[str]:
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            hint = ": decode the bytes first" if isinstance(t, (bytes, bytearray)) else ""
            raise InputError(f"training texts must be strings, got {type(t).__name__} (text {k}){hint}")
        refuse_surrogates(t, f"training text {k}")
        yield t


class Tokenizer(ABC):
    """Text <-> ids. Subclasses implement the model; saving goes through `to_hf_json`."""

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def token_to_id(self, token: str) -> int | None: ...

    @abstractmethod
    def to_hf_json(self) -> dict:
        """The Hugging Face ``tokenizer.json`` document for this tokenizer."""

    @classmethod
    @abstractmethod
    def from_hf_json(cls, doc: dict) -> Tokenizer:
        """Rebuild the tokenizer from the document `to_hf_json` wrote."""

    def decodes_like(self, decoder: dict) -> bool:
        """Whether HF's `decoder` (a ``tokenizer.json`` one) gives the text that `decode` gives."""
        return decoder == self.to_hf_json()["decoder"]

    @property
    def bos_id(self) -> int:
        return self._special(BOS)

    @property
    def eos_id(self) -> int:
        return self._special(EOS)

    def checked_ids(self, ids: Iterable[int]) -> list[int]:
        """`ids` (any iterable of integers, numpy's and torch's included) as a list of ints in the vocabulary,
        or an InputError naming the first that is not one (a float, a string, a bool, one out of range)."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InputError(f"token ids come as a list of integers, got {type(ids).__name__}")
        out, n = [], self.vocab_size
        for i in ids:
            try:
                j = operator.index(i)
            except TypeError:
                j = None
            if j is None or isinstance(i, bool):
                raise InputError(f"token ids are integers, got {type(i).__name__} {i!r:.40}")
            if not 0 <= j < n:
                raise InputError(f"token id {j} is outside the vocabulary (size {n})")
            out.append(j)
        return out

    @property
    def pad_id(self) -> int:
        return self._special(PAD)

    @property
    def unk_id(self) -> int:
        return self._special(UNK)

    def _special(self, token: str) -> int:
        i = self.token_to_id(token)
        if i is None:
            raise InputError(f"this tokenizer has no {token!r} token")
        return i

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` (atomically) at `tokenizer_file(path)`."""
        atomic_write_text(tokenizer_file(path), json.dumps(self.to_hf_json(), ensure_ascii=False, indent=2) + "\n")


# Saved files carry {"model": {..., "llmlab": {"kind": ...}}}; each kind names the class whose
# `from_hf_json` reads it.
# Files from other tools fall back on the HF model type. Add a line here for a new tokenizer.
KINDS: dict[str, str] = {
    "char": "llmlab.tokenizers.char:CharTokenizer",
    "bpe": "llmlab.tokenizers.bpe:BPETokenizer",
    "unigram": "llmlab.tokenizers.unigram:UnigramTokenizer",
    "wordpiece": "llmlab.tokenizers.wordpiece:WordPieceTokenizer",
    "whitespace": "llmlab.tokenizers.whitespace:WhitespaceTokenizer",
    "BPE": "llmlab.tokenizers.bpe:BPETokenizer",
    "Unigram": "llmlab.tokenizers.unigram:UnigramTokenizer",
    "WordPiece": "llmlab.tokenizers.wordpiece:WordPieceTokenizer",
    "WordLevel": "llmlab.tokenizers.whitespace:WordLevelLoader",
}


def tokenizer_file(path: str | os.PathLike) -> Path:
    """The file `Tokenizer.save` writes for `path`: the path itself, or ``tokenizer.json`` inside it
    when it names a directory (an existing one, or one written with a trailing slash).

    >>> tokenizer_file("runs/tok.json").as_posix(), tokenizer_file("runs/new/").as_posix()
    ('runs/tok.json', 'runs/new/tokenizer.json')
    """
    p = Path(path)
    return p / "tokenizer.json" if p.is_dir() or str(path).endswith(("/", os.sep)) else p


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved by llmlab (a ``tokenizer.json`` file or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    doc = read_json(p, "tokenizer file")
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise InputError(f"tokenizer file {str(p)!r} has no 'model' object: not a tokenizer.json")
    model_type = doc["model"].get("type")
    llmlab_kind = (doc["model"].get("llmlab") or doc.get("llmlab") or {}).get("kind")
    target = KINDS.get(llmlab_kind or "") or KINDS.get(model_type or "")
    if target is None:
        raise InputError(f"tokenizer file {str(p)!r}: unsupported tokenizer {llmlab_kind or model_type!r}")
    module, cls = target.split(":")
    try:
        _check_post_processor(doc.get("post_processor"))
        tok = getattr(importlib.import_module(module), cls).from_hf_json(doc)
        _check_decoder(tok, doc.get("decoder"), foreign=not llmlab_kind)
        return tok
    except InputError as e:
        raise InputError(f"tokenizer file {str(p)!r}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # a field of the wrong shape
        raise InputError(f"tokenizer file {str(p)!r} is malformed ({type(e).__name__}: {e})") from None


def _check_post_processor(post: dict | None) -> None:
    """Refuse a post-processor that adds tokens: HF's ``encode`` applies it by default (BERT's
    ``[CLS] ... [SEP]``, a template's BOS), so its ids would differ from llmlab's ``encode``. A
    ``ByteLevel`` one only trims offsets and passes."""
    if post is not None and post.get("type") != "ByteLevel":
        raise InputError(f"unsupported post_processor {post.get('type')!r}: HF's encode adds its tokens by default "
                         "and llmlab's would not (llmlab adds BOS/EOS itself where a model needs them)")


def _check_decoder(tok: Tokenizer, decoder: dict | None, foreign: bool) -> None:
    """Refuse a foreign file whose decoder HF would turn into other text than `tok.decode` does.

    No decoder passes (HF-trained WordLevel files have none; HF then joins tokens with spaces), and
    so does any decoder in llmlab's own files, which decode as llmlab does by definition (files saved
    before WordPiece got its Replace decoder name HF's WordPiece one).
    """
    if decoder is not None and foreign and not tok.decodes_like(decoder):
        raise InputError(f"unsupported decoder {decoder.get('type')!r}: HF would decode the ids into other text "
                         f"than llmlab's decode ({decoder!r})")
