"""Word-level tokenizer: the text is cut into runs of non-space and runs of space, one id per run.

>>> tok = WhitespaceTokenizer.train(["the cat sat on the mat"], vocab_size=10)
>>> tok.tokens("the dog sat")
['the', ' ', '<unk>', ' ', 'sat']
>>> tok.decode(tok.encode("the mat on the cat"))
'the mat on the cat'
>>> tok.tokens("the  mat")  # two spaces are one run, never seen in training
['the', '<unk>', 'mat']

Spaces are tokens too, so decoding restores the text whenever every word was in the vocabulary.
Saved as a Hugging Face ``WordLevel`` model. `WordLevelLoader` reads back any llmlab ``WordLevel``
file (this one or the character tokenizer's).
"""

from __future__ import annotations

from collections.abc import Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import UNK
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import (
    SubwordTokenizer,
    check_specials,
    check_unk,
    pretok_from_hf,
    specials_from_hf,
    vocab_in_id_order,
)


class WhitespaceTokenizer(SubwordTokenizer):
    kind = "whitespace"

    def __init__(self, vocab: list[str], specials: dict[str, int], pretok: PreTokenizer | None = None):
        super().__init__(specials, pretok or PreTokenizer("whitespace"))
        if UNK not in specials:
            raise InputError(f"a word-level tokenizer needs the {UNK!r} special token")
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}
        if len(self.ids) != len(self.vocab):
            raise InputError("word-level vocabulary has repeated entries")
        self.unk = specials[UNK]
        self._match = {t: i for t, i in self.ids.items() if i not in set(specials.values())}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, special_tokens: Iterable[str] = (),
              min_frequency: int = 1) -> WhitespaceTokenizer:
        """The `vocab_size` - #specials most frequent runs (ties: alphabetical)."""
        from llmlab.tokenizers.subword import count_pieces

        specials = check_specials(special_tokens)
        if vocab_size <= len(specials):
            raise InputError(f"vocab_size must exceed {len(specials)} (the special tokens), got {vocab_size}")
        pretok = PreTokenizer("whitespace")
        counts = count_pieces(texts, pretok)
        words = sorted((w for w, c in counts.items() if c >= min_frequency and w not in specials),
                       key=lambda w: (-counts[w], w))
        return cls(list(specials) + words[: vocab_size - len(specials)], {s: i for i, s in enumerate(specials)}, pretok)

    def token_to_id(self, token: str) -> int | None:
        return self.ids.get(token)

    def id_to_token(self, i: int) -> str:
        return self.vocab[i]

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        return (self._match.get(piece, self.unk),)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in self.checked_ids(ids))

    def _hf_model(self) -> dict:
        return {"type": "WordLevel", "vocab": dict(self.ids), "unk_token": UNK}

    @classmethod
    def from_hf_json(cls, doc: dict) -> WhitespaceTokenizer:
        model = doc.get("model") or {}
        tokens = vocab_in_id_order(model, "word-level")
        specials = specials_from_hf(doc)
        check_unk(model, specials)
        return cls(tokens, specials, pretok_from_hf(doc))


class WordLevelLoader:
    """Dispatch a ``WordLevel`` file: the character tokenizer splits every character, ours runs.

    A foreign file that splits every character but lists added tokens is read as a word-level one
    (one id per character piece), which matches added tokens in the text as HF does.
    """

    @staticmethod
    def from_hf_json(doc: dict):
        from llmlab.tokenizers.char import CharTokenizer
        from llmlab.tokenizers.subword import llmlab_meta

        kind = llmlab_meta(doc).get("kind")
        split = (doc.get("pre_tokenizer") or {}).get("pattern", {}).get("Regex")
        if kind == "char" or (kind is None and split == r"[\s\S]" and not doc.get("added_tokens")):
            return CharTokenizer.from_hf_json(doc)
        return WhitespaceTokenizer.from_hf_json(doc)
