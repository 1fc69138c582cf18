"""Byte-level byte-pair encoding (BPE), as in GPT-2 and later.

The vocabulary starts as the 256 byte values; each merge joins the two adjacent tokens of one pair into
a new token. Encoding a piece applies the learned merges in the order they were learned:

>>> tok = BPETokenizer.train(["aaabdaaabac"], vocab_size=263, pattern="whitespace")
>>> [tok.id_to_token(i) for i in tok.encode("aaabdaaabac")]
['aaab', 'd', 'aaab', 'a', 'c']
>>> tok.decode(tok.encode("any text, even 中文 or 🤖")) == "any text, even 中文 or 🤖"
True

Training lives in `bpe_train`; the two small functions below are the whole idea, written plainly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.pretokenize import (
    PreTokenizer,
    bytes_to_token,
    token_to_bytes,
)
from llmlab.tokenizers.subword import (
    CACHE_SIZE,
    SubwordTokenizer,
    check_specials,
    pretok_from_hf,
    specials_from_hf,
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


def apply_merges(ids: list[int], ranks: dict[int, int], merges: list[tuple[int, int, int]], base: int) -> list[int]:
    """Merge `ids` by rank: always the lowest-ranked pair present, leftmost first.

    `ranks` maps a pair key ``a * base + b`` (base > every id; small ints hash fastest) to its merge
    rank; ``merges[rank]`` is (left id, right id, merged id). A heap over (rank, position) with a
    linked list makes a long piece cost O(n log n), with the same result as calling `merge` with the
    lowest-ranked pair until none is left:

    >>> apply_merges([1, 2, 3, 1, 2], {1 * 10 + 2: 0, 4 * 10 + 3: 1}, [(1, 2, 4), (4, 3, 5)], base=10)
    [5, 4]
    """
    n = len(ids)
    if n < 2:
        return list(ids)
    get = ranks.get
    sym = list(ids)
    # Heap entries are single ints, rank << shift | position: cheaper to compare than tuples.
    shift = n.bit_length()
    mask = (1 << shift) - 1
    heap = [r << shift | i for i, key in enumerate([a * base + b for a, b in zip(sym, sym[1:])])
            if (r := get(key)) is not None]
    if not heap:
        return sym
    heapq.heapify(heap)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        e = pop(heap)
        r, i = e >> shift, e & mask
        left, right, new = merges[r]
        j = nxt[i]
        if sym[i] != left or j < 0 or sym[j] != right:
            continue  # stale: this position's pair changed since it was queued
        sym[i] = new
        sym[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k >= 0:
            prv[k] = i
            rk = get(new * base + sym[k])
            if rk is not None:
                push(heap, rk << shift | i)
        p = prv[i]
        if p >= 0:
            rp = get(sym[p] * base + new)
            if rp is not None:
                push(heap, rp << shift | p)
    return [s for s in sym if s >= 0]


class Joins:
    """Which adjacent characters some token spans, so encoding can cut a piece where none does.

    Most tokens are whole characters; their neighbouring characters are recorded as pairs. A trainer
    may also join part of a character to its neighbour (e.g. "基" + the first two bytes of "础");
    those are recorded by the byte fragment and what stands next to it. A vocabulary with tokens of
    any other shape is not `usable` (pieces are then never cut).

    >>> j = Joins(["中国".encode(), "基".encode() + "础".encode()[:2]])
    >>> j.cuts("中国人基础")  # 中|国 joined, 国|人 and 人|基 free, 基|础 joined through a fragment
    [2, 3]
    """

    def __init__(self, tokens: Iterable[bytes]):
        self.pairs: set[tuple[str, str]] = set()
        self.after: dict[bytes, set[bytes]] = {}  # end fragment of a character -> what follows it
        self.before: dict[bytes, set[bytes]] = {}  # start fragment of a character -> what precedes it
        self.usable = True
        self._seen: set[str] = set()  # characters whose fragment joins are already in `pairs`
        self._loose: dict[str, list[bytes]] = {}  # char -> start fragments a token joins to its end
        for t in tokens:
            self._add(t)

    def _add(self, t: bytes) -> None:
        k = 0
        while k < len(t) and k < 3 and 0x80 <= t[k] <= 0xBF:
            k += 1  # leading continuation bytes: the end of a character
        lead = max((m for m in range(k, len(t)) if t[m] >= 0xC0), default=len(t))
        tail = t[lead:] if lead < len(t) and _is_fragment(t[lead:]) else b""
        try:
            chars = t[k:len(t) - len(tail)].decode()
        except UnicodeDecodeError:
            self.usable = len(t) == 1 or _is_fragment(t)  # a lone byte or part of one character is fine
            return
        self.pairs.update(zip(chars, chars[1:]))
        if k and (chars or tail):
            self.after.setdefault(t[:k], set()).add(chars[0].encode() if chars else tail)
        if tail and (chars or k):
            self.before.setdefault(tail, set()).add(chars[-1].encode() if chars else t[:k])

    def _register(self, ch: str) -> None:
        """Turn the fragment joins that concern `ch` into character pairs (done once per character)."""
        self._seen.add(ch)
        data = ch.encode()
        for k in range(1, len(data)):
            for nxt in self.after.get(data[k:], ()):
                if _is_fragment(nxt):
                    self._loose.setdefault(ch, []).append(nxt)  # end of ch + start of the next character
                else:
                    self.pairs.add((ch, nxt.decode()))
            for prev in self.before.get(data[:k], ()):
                if not _is_fragment(prev):
                    self.pairs.add((prev.decode(), ch))

    def cuts(self, piece: str) -> list[int]:
        """Positions k where no token spans piece[k - 1] and piece[k]."""
        for ch in set(piece) - self._seen:
            self._register(ch)
        pairs, loose, out = self.pairs, self._loose, []
        for k, xy in enumerate(zip(piece, piece[1:]), 1):
            if xy in pairs:
                continue
            if loose and xy[0] in loose and any(xy[1].encode().startswith(f) for f in loose[xy[0]]):
                continue
            out.append(k)
        return out


def _is_fragment(token: bytes) -> bool:
    """Part of one UTF-8 character: a lead byte with fewer continuations than it announces, or up
    to three continuation bytes."""
    if not token or any(not 0x80 <= c <= 0xBF for c in token[1:]):
        return False
    lead = token[0]
    if 0x80 <= lead <= 0xBF:
        return len(token) <= 3
    need = 2 if 0xC0 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF7 else 0
    return len(token) < need


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
        self._base = max(len(self.vocab), 2)
        self._ranks: dict[int, int] = {}
        self._merge_table: list[tuple[int, int, int]] = []  # rank -> (left, right, merged)
        for rank, (a, b) in enumerate(self.merges):
            joined = self.vocab[a] + self.vocab[b]
            if joined not in by_bytes:
                raise InputError(f"merge {rank} ({a}, {b}) makes {joined!r}, which is not in the vocabulary")
            self._ranks.setdefault(a * self._base + b, rank)
            self._merge_table.append((a, b, by_bytes[joined]))
        made = {m for _, _, m in self._merge_table} | set(self._byte_id) | self._special_set
        stray = [i for i in range(len(self.vocab)) if i not in made]
        if stray:  # a token no merge makes is never produced: the file's merges are missing or cut short
            raise InputError(f"{len(stray)} vocabulary tokens (first: id {stray[0]}, {self.vocab[stray[0]]!r}) "
                             "are neither bytes, special tokens nor made by a merge; are the merges missing?")
        self._token_to_id = {self.id_to_token(i): i for i in range(len(self.vocab))}
        self._joins = Joins(t for i, t in enumerate(self.vocab) if i not in self._special_set)
        # Parts of cut pieces, kept apart from the whole-piece cache: with ignore_merges a whole piece
        # in the vocabulary is one token, but the same text as a part of a longer piece is merged.
        self._parts: dict[str, tuple[int, ...]] = {}

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
        """Ids of one pre-token. A long non-ASCII piece (a Chinese clause) is first cut between any
        two characters that no token spans: no merge can cross such a cut, so the parts encode on
        their own, and they repeat far more often than whole clauses, so a cache of parts catches them."""
        if self._whole and (i := self._whole.get(piece.encode())) is not None:
            return (i,)
        if len(piece) >= 4 and self._joins.usable and not piece.isascii():
            cuts = self._joins.cuts(piece)
            if cuts:
                out: list[int] = []
                cache = self._parts
                if len(cache) >= CACHE_SIZE:
                    cache.clear()
                for a, b in zip([0, *cuts], [*cuts, len(piece)]):
                    part = piece[a:b]
                    got = cache.get(part)
                    if got is None:
                        got = cache[part] = self._merge_bytes(part)
                    out.extend(got)
                return tuple(out)
        return self._merge_bytes(piece)

    def _merge_bytes(self, piece: str) -> tuple[int, ...]:
        byte_id = self._byte_id
        return tuple(apply_merges([byte_id[b] for b in piece.encode()], self._ranks, self._merge_table, self._base))

    def count_unknown(self, text: str) -> int:
        return 0  # every byte has a token

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        ids = list(ids)
        self._check_ids(ids)
        return b"".join(self.vocab[i] for i in ids)

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
        vocab_doc = model.get("vocab") or {}
        n = len(vocab_doc)
        if sorted(vocab_doc.values()) != list(range(n)):
            raise InputError("BPE vocabulary ids must be 0..n-1 without gaps")
        special_ids = set(specials.values())
        vocab: list[bytes] = [b""] * n
        for token, i in vocab_doc.items():
            vocab[i] = token.encode() if i in special_ids else token_to_bytes(token)
        ids = {token: i for token, i in vocab_doc.items()}
        merges = []
        for m in model.get("merges") or []:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a not in ids or b not in ids:
                raise InputError(f"merge {m!r} names a token missing from the vocabulary")
            merges.append((ids[a], ids[b]))
        return cls(vocab, merges, specials, pretok_from_hf(doc, byte_level=True),
                   ignore_merges=bool(model.get("ignore_merges", False)))
