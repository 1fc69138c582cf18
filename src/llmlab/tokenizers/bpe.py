"""Byte-level byte-pair encoding (BPE), as in GPT-2 and later.

The vocabulary starts as the 256 byte values; each merge joins the two adjacent tokens of one pair into
a new token. Encoding a piece applies the learned merges in the order they were learned:

>>> tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=263, pattern="whitespace")
>>> [tok.id_to_token(i) for i in tok.encode("aaabdaaabac")]
['aaab', 'd', 'aaab', 'a', 'c']
>>> tok.decode(tok.encode("any text, even 中文 or 🤖")) == "any text, even 中文 or 🤖"
True

Training lives in `bpe_train`; the two small functions below are the whole idea, written plainly.
Encoding merges by rank with a heap, compiled (`bpe_merge`), which gives the same ids as calling `merge`
with the lowest-ranked pair present until none is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import checked_text
from llmlab.tokenizers.pretokenize import (
    PreTokenizer,
    bytes_to_token,
    token_to_bytes,
)
from llmlab.tokenizers.subword import (
    SubwordTokenizer,
    check_specials,
    pretok_from_hf,
    specials_from_hf,
    vocab_in_id_order,
)


def pair_counts(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict[tuple[int, int], int]:
    """Count adjacent pairs (overlapping, so "aaa" holds (a, a) twice).

    >>> pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of `pair`, left to right and without overlap, by `new_id`.

    >>> merge([1, 2, 3, 1, 2], pair=(1, 2), new_id=4)
    [4, 3, 4]
    >>> merge([5, 5, 5], pair=(5, 5), new_id=6)
    [6, 5]
    """
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(SubwordTokenizer):
    """Byte-level BPE: `vocab[i]` is the byte string of token i (special tokens hold their spelling).

    `merges` are id pairs in rank order; the id each one makes is the id of the joined bytes (two
    merges may make the same token, as Hugging Face's trainer allows). With `ignore_merges` (HF's
    option, used by Llama 3) a piece that is itself a token becomes that token without merging.
    """

    kind = "bpe"

    def __init__(self, vocab: list[bytes], merges: list[tuple[int, int]], specials: dict[str, int],
                 pretok: PreTokenizer, ignore_merges: bool = False):
        super().__init__(specials, pretok)
        self.ignore_merges = ignore_merges
        self.vocab = list(vocab)
        self.merges = [(int(a), int(b)) for a, b in merges]
        self._special_set = set(specials.values())
        by_bytes = {}
        for i, tok in enumerate(self.vocab):
            if i not in self._special_set:
                by_bytes.setdefault(tok, i)
        missing = [b for b in range(256) if bytes([b]) not in by_bytes]
        if missing:
            raise InputError(f"byte-level vocabulary lacks single-byte tokens for bytes {missing[:5]}...")
        self._byte_id = [by_bytes[bytes([b])] for b in range(256)]
        self._whole = by_bytes if ignore_merges else {}  # piece bytes -> id, for ignore_merges
        self._merge_table: list[tuple[int, int, int]] = []  # rank -> (left, right, merged)
        for rank, (a, b) in enumerate(self.merges):
            joined = self.vocab[a] + self.vocab[b]
            if joined not in by_bytes:
                raise InputError(f"merge {rank} ({a}, {b}) makes {joined!r}, which is not in the vocabulary")
            self._merge_table.append((a, b, by_bytes[joined]))
        made = {m for _, _, m in self._merge_table} | set(self._byte_id) | self._special_set
        stray = [i for i in range(len(self.vocab)) if i not in made]
        if stray:  # a token no merge makes is never produced: the file's merges are missing or cut short
            raise InputError(f"{len(stray)} vocabulary tokens (first: id {stray[0]}, {self.vocab[stray[0]]!r}) "
                             "are neither bytes, special tokens nor made by a merge; are the merges missing?")
        self._token_to_id = {self.id_to_token(i): i for i in range(len(self.vocab))}
        self._compiled = None  # the `bpe_merge.MergeTable`, built when encoding first needs it

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, pattern: str = "gpt4",
              segmenter: Callable[[str], list[str]] | None = None, special_tokens: Iterable[str] = (),
              min_frequency: int = 0) -> BPETokenizer:
        """Learn merges until the vocabulary (special tokens + 256 bytes + merges) has `vocab_size` tokens."""
        from llmlab.tokenizers.bpe_train import train_bpe
        from llmlab.tokenizers.subword import count_pieces

        specials = check_specials(special_tokens)
        pretok = PreTokenizer(pattern, segmenter)
        vocab, merges = train_bpe(count_pieces(texts, pretok), vocab_size, specials, min_frequency)
        return cls(vocab, merges, {s: i for i, s in enumerate(specials)}, pretok)

    # --- the Tokenizer interface ----------------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        return self._token_to_id.get(token)

    def id_to_token(self, i: int) -> str:
        return self.vocab[i].decode() if i in self._special_set else bytes_to_token(self.vocab[i])

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        return self._encode_pieces([piece])[0]

    def _encode_pieces(self, pieces: list[str]) -> list[tuple[int, ...]]:
        """Ids of each piece, all merged in one compiled call (`llmlab.tokenizers.bpe_merge`)."""
        if self._compiled is None:
            from llmlab.tokenizers.bpe_merge import MergeTable  # numba loads only once encoding needs it

            self._compiled = MergeTable(self._merge_table, self._byte_id)
        if not self._whole:
            return self._compiled.encode(pieces)
        whole = [self._whole.get(p.encode()) for p in pieces]
        merged = iter(self._compiled.encode([p for p, i in zip(pieces, whole) if i is None]))
        return [next(merged) if i is None else (i,) for i in whole]

    def count_unknown(self, text: str) -> int:
        checked_text(text)
        return 0  # every byte has a token

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return b"".join(self.vocab[i] for i in self.checked_ids(ids))

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; a cut inside a UTF-8 character shows as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- Hugging Face tokenizer.json ------------------------------------------------------------
    def _hf_pre_tokenizer(self) -> dict:
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
        return {"type": "Sequence", "pretokenizers": [*self.pretok.hf_splits(), byte_level]}

    def _hf_decoder(self) -> dict:
        return {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

    def decodes_like(self, decoder: dict) -> bool:
        return decoder.get("type") == "ByteLevel"  # its options matter only to pre-tokenizing

    def _hf_model(self) -> dict:
        tok = self.id_to_token
        return {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": self.ignore_merges,
            "vocab": {tok(i): i for i in range(len(self.vocab))},
            "merges": [[tok(a), tok(b)] for a, b in self.merges],
        }

    @classmethod
    def from_hf_json(cls, doc: dict) -> BPETokenizer:
        model = doc.get("model") or {}
        specials = specials_from_hf(doc)
        if model.get("dropout"):
            raise InputError(f"unsupported BPE option dropout={model['dropout']!r} (HF then merges at random)")
        for option in ("continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(option):  # HF adds it to the pieces it looks up inside / at the end of a word
                raise InputError(f"unsupported BPE option {option}={model[option]!r} (llmlab's byte-level BPE "
                                 "has no word prefix or suffix)")
        tokens = vocab_in_id_order(model, "BPE")
        special_ids = set(specials.values())
        vocab = [t.encode() if i in special_ids else token_to_bytes(t) for i, t in enumerate(tokens)]
        ids = {t: i for i, t in enumerate(tokens)}
        merges = []
        for m in model.get("merges") or []:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a not in ids or b not in ids:
                raise InputError(f"merge {m!r} names a token missing from the vocabulary")
            merges.append((ids[a], ids[b]))
        return cls(vocab, merges, specials, pretok_from_hf(doc, byte_level=True),
                   ignore_merges=bool(model.get("ignore_merges", False)))
