"""What the subword tokenizers (BPE, Unigram, WordPiece, whitespace) share: special tokens, the
pre-tokenizer, a cache of encoded pieces, and the frame of the Hugging Face ``tokenizer.json``.

A subclass supplies `_encode_piece` (one pre-token to ids), `id_to_token`, `decode` and the HF
``model`` / ``decoder`` documents.

Special tokens occupy the first ids. Ordinary text never produces them: ``encode("<|eos|>")`` spells
the characters. Pass ``allowed_special`` to let their spelling in the text stand for them, as Hugging
Face's ``Tokenizer.encode`` does by default::

    tok.encode("a<|eos|>")                        # ids of 'a', '<', '|', 'eos', ... no special id
    tok.encode("a<|eos|>", allowed_special="all")  # ids of 'a', then tok.eos_id
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import chain

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import SPECIAL_TOKENS, UNK, Tokenizer, checked_text, training_texts
from llmlab.tokenizers.pretokenize import PreTokenizer, split_specials

CACHE_SIZE = 1 << 18  # encoded pieces remembered per tokenizer; cleared when full


def check_specials(specials: Iterable[str]) -> tuple[str, ...]:
    """The special tokens a new tokenizer gets: llmlab's four first, then any extra ones (chat roles).

    >>> check_specials(["<|user|>"])
    ('<unk>', '<|bos|>', '<|eos|>', '<|pad|>', '<|user|>')
    """
    extra = [s for s in specials if s not in SPECIAL_TOKENS]
    out = tuple(SPECIAL_TOKENS) + tuple(dict.fromkeys(extra))
    for s in out:
        if not isinstance(s, str) or not s:
            raise InputError(f"special tokens must be non-empty strings, got {s!r}")
    return out


def count_pieces(texts: Iterable[str], pretok: PreTokenizer) -> Counter[str]:
    """How often each pre-token occurs in the corpus (its texts checked by `training_texts`); raises on
    an empty corpus.

    >>> sorted(count_pieces(["a b a"], PreTokenizer("gpt2")).items())
    [(' a', 1), (' b', 1), ('a', 1)]
    """
    counts: Counter[str] = Counter()
    for t in training_texts(texts):
        counts.update(pretok(t))
    if not counts:
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    return counts


class SubwordTokenizer(Tokenizer):
    kind = ""  # the KINDS key written into saved files

    def __init__(self, specials: dict[str, int], pretok: PreTokenizer):
        self.special_ids = dict(specials)
        self.pretok = pretok
        self._cache: dict[str, tuple[int, ...]] = {}

    # --- encoding -------------------------------------------------------------------------------
    @abstractmethod
    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """Ids of one pre-token."""

    def encode(self, text: str, allowed_special: Iterable[str] | str = ()) -> list[int]:
        """Ids of `text`; special-token spellings in it count only if listed in `allowed_special`."""
        checked_text(text)
        allowed = self.special_ids if allowed_special == "all" else list(allowed_special)
        for s in allowed:
            if s not in self.special_ids:
                raise InputError(f"{s!r} is not a special token of this tokenizer")
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for part, special in split_specials(text, allowed):
            ids.extend([self.special_ids[part]] if special else self.encode_ordinary(part))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        pieces = self.pretok(checked_text(text))
        ids: list[int] = []
        for got in map(self._cache.get, pieces):
            if got is None:
                return self._encode_missing(pieces)
            ids += got
        return ids

    def _encode_missing(self, pieces: list[str]) -> list[int]:
        """Ids of `pieces`, some of them not in the cache: those are encoded, each distinct one once and
        all in one `_encode_pieces` call, and cached."""
        cache = self._cache
        missing = list(dict.fromkeys([p for p in pieces if p not in cache]))
        new = dict(zip(missing, self._encode_pieces(missing)))  # no lone surrogate: `checked_text` refused it
        ids = list(chain.from_iterable(map(new.get, pieces, map(cache.get, pieces))))  # new, else cached
        if len(cache) + len(new) > CACHE_SIZE:
            cache.clear()
        cache.update(new)
        return ids

    def _encode_pieces(self, pieces: list[str]) -> list[tuple[int, ...]]:
        """Ids of each piece; a subclass may encode them all in one go."""
        return [self._encode_piece(p) for p in pieces]

    def count_unknown(self, text: str) -> int:
        """How many characters of `text` end up inside ``<unk>`` tokens (lost on decoding)."""
        unk = self.special_ids.get(UNK)
        return sum(len(p) for p in self.pretok(checked_text(text)) if unk in self._encode_piece(p))

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def tokens(self, text: str) -> list[str]:
        """The token strings `text` splits into (as written in ``tokenizer.json``)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    @abstractmethod
    def id_to_token(self, i: int) -> str: ...

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)  # every subclass keeps its token table, indexed by id, in `self.vocab`

    # --- Hugging Face tokenizer.json ------------------------------------------------------------
    @abstractmethod
    def _hf_model(self) -> dict: ...

    def _hf_pre_tokenizer(self) -> dict:
        return self.pretok.to_hf()

    def _hf_decoder(self) -> dict | None:
        return {"type": "Fuse"}

    def decodes_like(self, decoder: dict) -> bool:
        return decoder == self._hf_decoder()

    def _llmlab_meta(self) -> dict:
        # A segmenter is Python code and cannot be saved; the flag says one was used in training (kept
        # by a file loaded and saved again without attaching it).
        used = self.pretok.segmenter is not None or self.pretok.segmenter_missing
        return {"cjk_segmenter": True} if used else {}

    def with_segmenter(self, segmenter: Callable[[str], list[str]] | None) -> SubwordTokenizer:
        """Attach (or remove) the Chinese segmenter, e.g. after loading a file trained with one.

        Files record only that one was used (``cjk_segmenter``); Hugging Face encodes without it. Such
        a file loads refusing Han text until this is called: with the segmenter to encode as in
        training, or with None to encode as Hugging Face does.
        """
        self.pretok = PreTokenizer(self.pretok.pattern, segmenter, self.pretok.then)
        self._cache.clear()
        return self

    def to_hf_json(self) -> dict:
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True}
                 for s, i in sorted(self.special_ids.items(), key=lambda kv: kv[1])]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": self._hf_pre_tokenizer(),
            "post_processor": None,
            "decoder": self._hf_decoder(),
            # HF rejects unknown top-level keys but ignores them inside "model": our metadata goes there.
            "model": {**self._hf_model(), "llmlab": {"kind": self.kind, "format_version": 1,
                                                     "pattern": self.pretok.pattern, **self._llmlab_meta()}},
        }


def specials_from_hf(doc: dict) -> dict[str, int]:
    """The special tokens listed in a ``tokenizer.json`` (``added_tokens``, all marked special).

    HF also matches a non-special added token in any text, and can strip the spaces around one
    (``lstrip``, ``rstrip``) or match only whole words (``single_word``): llmlab does neither, so such
    files are refused rather than encoded differently.
    """
    added = doc.get("added_tokens") or []
    for a in added:
        if not a.get("special", True):
            raise InputError(f"unsupported added token {a['content']!r}: it is not special (HF finds it in "
                             "any text; llmlab only knows special tokens)")
        for flag in ("lstrip", "rstrip", "single_word"):
            if a.get(flag):
                raise InputError(f"unsupported added token {a['content']!r}: {flag}=true")
    return {a["content"]: int(a["id"]) for a in added}


def vocab_in_id_order(model: dict, what: str) -> list[str]:
    """The tokens of a ``tokenizer.json`` model's ``vocab`` ({token: id}) in id order; InputError unless
    its ids are the integers 0..n-1, each once (they index the embedding rows).

    >>> vocab_in_id_order({"vocab": {"b": 1, "a": 0}}, "BPE")
    ['a', 'b']
    """
    vocab = model.get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else None
    if ids is None or any(type(i) is not int for i in ids) or sorted(ids) != list(range(len(ids))):
        raise InputError(f"{what} vocabulary ids must be the integers 0..n-1 without gaps or repeats")
    return sorted(vocab, key=vocab.get)


def check_unk(model: dict, specials: dict[str, int]) -> None:
    """Refuse a model whose unknown token (``unk_id`` or ``unk_token``) is not llmlab's ``<unk>``."""
    got, want = (model["unk_id"], specials.get(UNK)) if "unk_id" in model else (model.get("unk_token", UNK), UNK)
    if got != want:
        raise InputError(f"unsupported unknown token {got!r}: llmlab's is the special token {UNK!r} "
                         f"(id {specials.get(UNK)})")


def llmlab_meta(doc: dict) -> dict:
    """llmlab's own metadata in a ``tokenizer.json`` (inside ``model``; older files: top level)."""
    return (doc.get("model") or {}).get("llmlab") or doc.get("llmlab") or {}


def pretok_from_hf(doc: dict, byte_level: bool = False) -> PreTokenizer:
    """The pre-tokenizer a ``tokenizer.json`` describes (files with a normalizer are not supported).

    It is read from the file's ``pre_tokenizer`` even in llmlab's files: that is what HF applies.
    """
    if doc.get("normalizer") is not None:
        raise InputError(f"unsupported tokenizer file: it has a normalizer ({doc['normalizer'].get('type')!r})")
    return PreTokenizer.from_hf(doc.get("pre_tokenizer"), byte_level,
                                segmenter_missing=bool(llmlab_meta(doc).get("cjk_segmenter")))


def unk_of(specials: dict[str, int]) -> int | None:
    return specials.get(UNK)
