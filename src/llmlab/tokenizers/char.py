"""Character-level tokenizer: one id per Unicode code point seen in training.

Saved as a Hugging Face ``WordLevel`` model whose pre-tokenizer isolates every character, so
``tokenizers.Tokenizer.from_file`` gives the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import SPECIAL_TOKENS, UNK, Tokenizer, checked_text, training_texts
from llmlab.tokenizers.subword import check_unk, pretok_from_hf, specials_from_hf, vocab_in_id_order

# The pre-tokenizer of a character file: every character is a piece of its own.
CHAR_SPLIT = {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated", "invert": False}


class CharTokenizer(Tokenizer):
    """>>> tok = CharTokenizer.train(["abca"])
    >>> tok.encode("cab?")
    [6, 4, 5, 0]
    >>> tok.decode(tok.encode("cab"))
    'cab'
    """

    def __init__(self, vocab: list[str]):
        if list(vocab[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise InputError(f"vocab must start with the special tokens {SPECIAL_TOKENS}")
        for tok in vocab[len(SPECIAL_TOKENS):]:
            if len(tok) != 1:
                raise InputError(f"character vocab entry {tok!r} is not one character")
        self.itos = list(vocab)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise InputError("character vocab has duplicate entries")
        self._unk = self.stoi[UNK]
        # Characters map through `stoi`; the specials are multi-character strings, so a user's
        # literal "<|eos|>" can never hit them.

    @classmethod
    def train(cls, texts: Iterable[str], max_vocab: int | None = None, min_freq: int = 1) -> CharTokenizer:
        """Vocabulary of the most frequent characters (ties broken by code point); the texts are checked
        as every tokenizer's are (`training_texts`)."""
        if min_freq < 1:
            raise InputError(f"min_freq must be >= 1, got {min_freq}")
        counts: Counter[str] = Counter()
        for t in training_texts(texts):
            counts.update(t)
        chars = sorted((c for c, n in counts.items() if n >= min_freq), key=lambda c: (-counts[c], c))
        if max_vocab is not None:
            if max_vocab <= len(SPECIAL_TOKENS):
                raise InputError(f"max_vocab must exceed {len(SPECIAL_TOKENS)} (the special tokens), got {max_vocab}")
            chars = chars[: max_vocab - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + chars)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def token_to_id(self, token: str) -> int | None:
        return self.stoi.get(token)

    def encode(self, text: str) -> list[int]:
        get, unk = self.stoi.get, self._unk
        return [get(c, unk) for c in checked_text(text)]

    def count_unknown(self, text: str) -> int:
        """How many characters of `text` fall outside the vocabulary (encode to ``<unk>``)."""
        return sum(1 for c in checked_text(text) if c not in self.stoi)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in self.checked_ids(ids))

    def to_hf_json(self) -> dict:
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [],
            "normalizer": None,
            "pre_tokenizer": dict(CHAR_SPLIT),
            "post_processor": None,
            "decoder": {"type": "Fuse"},
            # HF rejects unknown top-level keys but ignores them inside "model"
            "model": {"type": "WordLevel", "vocab": self.stoi, "unk_token": UNK,
                      "llmlab": {"kind": "char", "format_version": 1}},
        }

    @classmethod
    def from_hf_json(cls, doc: dict) -> CharTokenizer:
        """Read a file laid out as `to_hf_json` writes it; HF would encode any other one differently."""
        if pretok_from_hf(doc).hf_splits() != [CHAR_SPLIT]:  # also refuses a normalizer
            raise InputError(f"unsupported character tokenizer: pre-tokenizer {doc.get('pre_tokenizer')!r} "
                             f"(llmlab's is {CHAR_SPLIT!r})")
        if specials_from_hf(doc):
            raise InputError("unsupported character tokenizer: it has added tokens (HF finds them in the text; "
                             "llmlab's character tokenizer spells them out)")
        check_unk(doc["model"], {UNK: 0})
        return cls(vocab_in_id_order(doc["model"], "character tokenizer"))

