"""Unigram language-model tokenizer (Kudo 2018, as in sentencepiece).

Every piece has a log-probability; a text's segmentation is the sequence of pieces with the highest
total score (Viterbi). With pieces {a: -1, b: -1, ab: -1.5}, "ab" is one piece (-1.5 beats -2):

>>> tok = UnigramTokenizer([("a", -1.0), ("b", -1.0), ("ab", -1.5)], pattern="whitespace")
>>> [tok.id_to_token(i) for i in tok.encode("abba")]
['ab', 'b', 'a']

Sampling from all segmentations in proportion to exp(alpha * score) gives subword regularization:
training a model on varied splits of the same text (`encode_sample`).

Characters missing from the vocabulary become ``<unk>`` (runs of them, one ``<unk>``), as in
Hugging Face's ``Unigram`` model, whose ``tokenizer.json`` this class reads and writes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import UNK, checked_text
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.subword import (
    SubwordTokenizer,
    check_specials,
    check_unk,
    pretok_from_hf,
    specials_from_hf,
)

UNK_PENALTY = 10.0  # an unknown character scores this much below the rarest piece (as in HF/sentencepiece)
SCORE_DIGITS = 12  # significant digits a piece's score keeps (`exact_in_json`)


def exact_in_json(score: float) -> float:
    """`score` rounded to `SCORE_DIGITS` significant digits: a decimal that every JSON reader turns
    into the same float. HF's reader (serde_json's fast path) may land a 17-digit score one unit in
    the last place away from Python's, and two segmentations using the same pieces in another order
    tie exactly only when both sides add the same floats: "abbb" as a|b|bb or a|bb|b then went
    one way in llmlab and the other in HF.

    >>> exact_in_json(-4.549201273168417), exact_in_json(-1.0)
    (-4.54920127317, -1.0)
    """
    return float(f"{float(score):.{SCORE_DIGITS}g}")


def lattice(word: str, piece_id: dict[str, int], max_len: int) -> list[list[tuple[int, int]]]:
    """For each start position, the (end, piece id) of every vocabulary piece starting there.

    >>> lattice("ab", {"a": 0, "b": 1, "ab": 2}, 2)
    [[(1, 0), (2, 2)], [(2, 1)]]
    """
    n = len(word)
    get = piece_id.get
    out = []
    for s in range(n):
        row = []
        for e in range(s + 1, min(n, s + max_len) + 1):
            i = get(word[s:e])
            if i is not None:
                row.append((e, i))
        out.append(row)
    return out


def logsumexp(xs: list[float]) -> float:
    """log(sum(exp(x))) without overflow.

    >>> round(logsumexp([math.log(1), math.log(3)]), 9) == round(math.log(4), 9)
    True
    """
    if len(xs) == 1:
        return xs[0]
    m = max(xs)
    return m + math.log(sum([math.exp(x - m) for x in xs]))


class UnigramTokenizer(SubwordTokenizer):
    """`pieces` are (piece, log-probability) pairs; ids: the special tokens, then the pieces in order."""

    kind = "unigram"

    def __init__(self, pieces: list[tuple[str, float]], specials: dict[str, int] | None = None,
                 pretok: PreTokenizer | None = None, pattern: str = "gpt4"):
        if specials is None:
            specials = {s: i for i, s in enumerate(check_specials(()))}
        super().__init__(specials, pretok or PreTokenizer(pattern))
        if UNK not in specials:
            raise InputError(f"a unigram tokenizer needs the {UNK!r} special token")
        n = len(specials) + len(pieces)
        if sorted(specials.values()) != list(range(len(specials))):
            raise InputError("special tokens must take the first ids")
        self.vocab: list[tuple[str, float]] = [("", 0.0)] * n
        for s, i in specials.items():
            self.vocab[i] = (s, 0.0)  # HF's trainer gives special tokens score 0
        self.piece_id: dict[str, int] = {}
        for k, (piece, score) in enumerate(pieces, start=len(specials)):
            if not piece or piece in self.piece_id or piece in specials:
                raise InputError(f"unigram piece {piece!r} is empty or repeated")
            self.vocab[k] = (piece, exact_in_json(score))
            self.piece_id[piece] = k
        self.scores = [s for _, s in self.vocab]
        self.max_len = max((len(p) for p in self.piece_id), default=1)
        self.unk = specials[UNK]
        self.unk_score = min(self.scores) - UNK_PENALTY

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, pattern: str = "gpt4",
              segmenter: Callable[[str], list[str]] | None = None, special_tokens: Iterable[str] = (),
              **kw) -> UnigramTokenizer:
        """EM over a large seed vocabulary, pruned to `vocab_size` (see `unigram_train`)."""
        from llmlab.tokenizers.subword import count_pieces
        from llmlab.tokenizers.unigram_train import train_unigram

        specials = check_specials(special_tokens)
        pretok = PreTokenizer(pattern, segmenter)
        pieces = train_unigram(count_pieces(texts, pretok), vocab_size - len(specials), **kw)
        pieces = [p for p in pieces if p[0] not in specials]  # text spelling a special token uses other pieces
        return cls(pieces, {s: i for i, s in enumerate(specials)}, pretok)

    def token_to_id(self, token: str) -> int | None:
        return self.piece_id.get(token, self.special_ids.get(token))

    def id_to_token(self, i: int) -> str:
        return self.vocab[i][0]

    def _encode_piece(self, word: str) -> tuple[int, ...]:
        """Viterbi, visiting starts left to right and ends short to long; a tie keeps the first found
        (the longer last piece), exactly as HF's ``Unigram.encode_optimized``."""
        n, get, scores, max_len = len(word), self.piece_id.get, self.scores, self.max_len
        best = [0.0] * (n + 1)
        back: list[tuple[int, int] | None] = [None] * (n + 1)  # (start, id) of the best last piece
        for s in range(n):
            base, single = best[s], False
            for e in range(s + 1, min(n, s + max_len) + 1):
                i = get(word[s:e])
                if i is None:
                    continue
                sc = base + scores[i]
                if back[e] is None or sc > best[e]:
                    best[e], back[e] = sc, (s, i)
                single = single or e == s + 1
            if not single:
                sc = base + self.unk_score
                if back[s + 1] is None or sc > best[s + 1]:
                    best[s + 1], back[s + 1] = sc, (s, self.unk)
        return self._backtrack(word, back)

    def _backtrack(self, word: str, back: list) -> tuple[int, ...]:
        out: list[int] = []
        e, unk_end = len(word), None  # unk_end: end of a run of unknown characters being fused
        while e > 0:
            s, i = back[e]
            if i == self.unk:
                unk_end = e if unk_end is None else unk_end
            else:
                if unk_end is not None:
                    out.append(self.piece_id.get(word[e:unk_end], self.unk))
                    unk_end = None
                out.append(i)
            e = s
        if unk_end is not None:
            out.append(self.piece_id.get(word[:unk_end], self.unk))
        return tuple(reversed(out))

    def count_unknown(self, text: str) -> int:
        """Characters without a single-character piece (Viterbi must then use ``<unk>``)."""
        return sum(1 for c in checked_text(text) if c not in self.piece_id)

    def encode_sample(self, text: str, alpha: float = 0.1, rng: random.Random | None = None) -> list[int]:
        """One segmentation drawn with probability proportional to exp(alpha * total score).

        Large alpha approaches `encode`; alpha = 0 draws uniformly among segmentations.
        """
        if alpha < 0:
            raise InputError(f"alpha must be >= 0, got {alpha}")
        rng = rng or random.Random(0)
        ids: list[int] = []
        for piece in self.pretok(checked_text(text)):
            ids.extend(self._sample_piece(piece, alpha, rng))
        return ids

    def _sample_piece(self, word: str, alpha: float, rng: random.Random) -> tuple[int, ...]:
        n = len(word)
        ending: list[list[tuple[int, int, float]]] = [[] for _ in range(n + 1)]  # (start, id, score)
        for s, row in enumerate(lattice(word, self.piece_id, self.max_len)):
            for e, i in row:
                ending[e].append((s, i, self.scores[i]))
            if not any(e == s + 1 for e, _ in row):
                ending[s + 1].append((s, self.unk, self.unk_score))
        fwd = [0.0] + [0.0] * n  # log of the summed weight of all paths from 0 to each position
        for e in range(1, n + 1):
            fwd[e] = logsumexp([fwd[s] + alpha * sc for s, _, sc in ending[e]])
        back: list[tuple[int, int] | None] = [None] * (n + 1)  # the drawn path, as `_encode_piece` gives it
        e = n
        while e > 0:
            r, acc = rng.random(), 0.0
            choice = ending[e][-1]  # (guards against rounding leaving r just above the total)
            for edge in ending[e]:
                acc += math.exp(fwd[edge[0]] + alpha * edge[2] - fwd[e])
                if r < acc:
                    choice = edge
                    break
            back[e] = choice[:2]
            e = choice[0]
        return self._backtrack(word, back)  # a run of unknown characters is one <unk>, as in `encode`

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i][0] for i in self.checked_ids(ids))

    def _hf_model(self) -> dict:
        return {"type": "Unigram", "unk_id": self.unk, "vocab": [[p, s] for p, s in self.vocab],
                "byte_fallback": False}

    @classmethod
    def from_hf_json(cls, doc: dict) -> UnigramTokenizer:
        model = doc.get("model") or {}
        specials = specials_from_hf(doc)
        check_unk(model, specials)
        if model.get("byte_fallback"):
            raise InputError("unsupported unigram option byte_fallback=true (llmlab gives <unk>, not byte tokens)")
        vocab = model.get("vocab") or []
        pieces = [(p, float(s)) for k, (p, s) in enumerate(vocab) if k >= len(specials)]
        if [vocab[i][0] for i in sorted(specials.values())] != sorted(specials, key=specials.get):
            raise InputError("unigram file: special tokens must be the first vocabulary entries")
        return cls(pieces, specials, pretok_from_hf(doc))
