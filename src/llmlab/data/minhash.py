"""MinHash signatures of documents' shingle sets, bit for bit those of datasketch when asked.

A document (a string) stands for the set of its shingles: character n-grams (``unit="char"``; n=5 is
the usual for Chinese) or word n-grams (``unit="word"``: the whitespace tokens ``str.split()`` finds,
each n-gram joined by one space). A text shorter than n units has one shingle, itself (its tokens
joined by one space); an empty text (or, for words, one of only whitespace) has none.

A signature is made in two steps; the first is pluggable, the second shared:

1. Shingle hash: one 32-bit value per shingle, a batch of documents in one array with offsets.
   ``"sha1"`` is datasketch's default ``sha1_hash32``: the first 4 bytes (little-endian) of the SHA-1
   of the shingle's UTF-8, one Python call per shingle. ``"fast"`` is a compiled FNV-1a hash over the
   code points (word unit: over per-token hashes of the same kind), finished with MurmurHash3's
   64-bit finaliser and cut to 32 bits; it matches nothing outside llmlab but is far quicker.
2. Permute and take minima, for each of ``num_perm`` permutations k and each document:
   ``scheme="legacy"``: ``min over shingles of ((a_k * h + b_k) mod (2**61 - 1)) & (2**32 - 1)``,
   the product and sum wrapping mod 2**64 first (uint64, as numpy computes it);
   ``scheme="affine32"``: ``min of a_k * fmix32(h) + b_k mod 2**32`` (datasketch 2.0's default).

The permutation parameters are drawn from ``np.random.RandomState(seed)`` exactly as datasketch draws
them, so with ``hash="sha1"`` a signature equals ``datasketch.MinHash(num_perm, seed, scheme=...)``
after ``update(shingle.encode("utf-8"))`` for each shingle (datasketch < 2.0 knows only "legacy").
A document without shingles has the empty MinHash's signature, every value ``2**32 - 1``; near-
duplicate search never pairs such a document with anything (see `llmlab.data.dedup`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.jit import jit
from llmlab.core.progress import progress

UNITS = ("char", "word")
HASHES = ("fast", "sha1")
SCHEMES = ("legacy", "affine32")
EMPTY = np.uint32(0xFFFFFFFF)  # every value of the signature of a document without shingles

_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class MinHashConfig:
    num_perm: int = 128  # permutations = values per signature; the Jaccard estimate's error ~ 1/sqrt(num_perm)
    ngram: int = 5  # shingle length n, in characters or words
    unit: str = "char"  # "char" (character n-grams) or "word" (whitespace-token n-grams)
    seed: int = 1  # seeds the permutations (datasketch's default is 1)
    hash: str = "fast"  # shingle hash: "fast" (compiled) or "sha1" (datasketch's sha1_hash32)
    scheme: str = "legacy"  # permutation scheme: "legacy" (datasketch < 2.0) or "affine32" (datasketch 2.0)

    def __post_init__(self):
        for name, value in (("num_perm", self.num_perm), ("ngram", self.ngram), ("seed", self.seed)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise InputError(f"{name} must be an integer, got {value!r}")
        if not 2 <= self.num_perm <= 1 << 16:
            raise InputError(f"num_perm must be in [2, 65536], got {self.num_perm}")
        if self.ngram < 1:
            raise InputError(f"ngram must be >= 1, got {self.ngram}")
        if not 0 <= self.seed < 1 << 32:
            raise InputError(f"seed must be in [0, 2**32) (numpy's RandomState), got {self.seed}")
        for name, value, allowed in (("unit", self.unit, UNITS), ("hash", self.hash, HASHES),
                                     ("scheme", self.scheme, SCHEMES)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {value!r}")


def permutations(num_perm: int, seed: int, scheme: str = "legacy") -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) parameters, uint64, drawn in datasketch's order (legacy: a then b per permutation).

    >>> a, b = permutations(3, seed=1)
    >>> bool((a >= 1).all() and (a < 2**61 - 1).all() and (b < 2**61 - 1).all()), a.dtype.name, len(b)
    (True, 'uint64', 3)
    """
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        ab = np.array([(gen.randint(1, _PRIME, dtype=np.uint64), gen.randint(0, _PRIME, dtype=np.uint64))
                       for _ in range(num_perm)], dtype=np.uint64).reshape(num_perm, 2)
        return np.ascontiguousarray(ab[:, 0]), np.ascontiguousarray(ab[:, 1])
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: a bijection
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint64), b.astype(np.uint64)


def shingles(text: str, ngram: int = 5, unit: str = "char") -> list[str]:
    """The shingles of one text, in order, repeats included (the reference the hashes follow).

    >>> shingles("abcd", 3), shingles("ab", 3), shingles("", 3), shingles(" a b  c ", 2, "word")
    (['abc', 'bcd'], ['ab'], [], ['a b', 'b c'])
    """
    if unit == "word":
        tokens = text.split()
        k = min(ngram, len(tokens))
        return [" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)] if k else []
    k = min(ngram, len(text))
    return [text[i:i + k] for i in range(len(text) - k + 1)] if k else []


def has_shingles(text: str, unit: str = "char") -> bool:
    """Whether `text` has any shingle: any character, or for words any non-whitespace.

    >>> has_shingles(" ", "char"), has_shingles(" \u3000", "word"), has_shingles("", "char")
    (True, False, False)
    """
    return bool(text) and (unit == "char" or not text.isspace())


def sha1_hash32(shingle: str) -> int:
    """datasketch's default hash of ``shingle.encode("utf-8")``: SHA-1's first 4 bytes, little-endian."""
    return int.from_bytes(hashlib.sha1(shingle.encode("utf-8", "surrogatepass")).digest()[:4], "little")


def _sha1_hashes(texts: Sequence[str], ngram: int, unit: str) -> tuple[np.ndarray, np.ndarray]:
    counts, digests, sha1 = np.zeros(len(texts) + 1, np.int64), [], hashlib.sha1
    for i, text in enumerate(texts):
        grams = set(shingles(text, ngram, unit))  # a repeat cannot change a minimum
        digests.append(b"".join([sha1(g.encode("utf-8", "surrogatepass")).digest()[:4] for g in grams]))
        counts[i + 1] = len(grams)
    return np.frombuffer(b"".join(digests), dtype="<u4").astype(np.uint32), np.cumsum(counts)  # = sha1_hash32


@jit
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@jit
def _span_hashes(units: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """FNV-1a over units[lo[i]:hi[i]] for each i, mixed with the span's length, finalised (uint64)."""
    out = np.empty(lo.shape[0], np.uint64)
    for i in range(lo.shape[0]):
        h = _FNV_BASIS
        for j in range(lo[i], hi[i]):
            h = (h ^ np.uint64(units[j])) * _FNV_PRIME
        out[i] = _fmix64(h ^ np.uint64(hi[i] - lo[i]))
    return out


def _ngram_spans(starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit spans [lo, hi) of every shingle of each document (units starts[d]:starts[d+1]), and the
    shingle offsets per document: n-grams, or the whole document when it has fewer than n units.

    >>> [x.tolist() for x in _ngram_spans(np.array([0, 4, 6, 6]), 3)]
    [[0, 1, 4], [3, 4, 6], [0, 2, 3, 3]]
    """
    length = np.diff(starts)
    k = np.minimum(length, n)
    count = np.where(length > 0, length - k + 1, 0)
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    doc = np.repeat(np.arange(len(length)), count)
    lo = starts[:-1][doc] + (np.arange(offsets[-1]) - offsets[:-1][doc])
    return lo, lo + k[doc], offsets


@functools.lru_cache(maxsize=1)
def _whitespace() -> np.ndarray:
    """Code points ``str.split()`` splits on (all below U+3001 in every Unicode version so far)."""
    return np.array([c for c in range(0x110000) if chr(c).isspace()], dtype=np.uint32)


def _fast_hashes(texts: Sequence[str], ngram: int, unit: str) -> tuple[np.ndarray, np.ndarray]:
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts = np.concatenate([[0], np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))])
    if unit == "word":  # units become token hashes; starts become token offsets per document
        word = ~np.isin(cps, _whitespace())
        edge = np.zeros(len(cps) + 1, bool)
        edge[starts] = True  # a document boundary ends and starts tokens
        prev = np.concatenate([[False], word])
        nxt = np.concatenate([word, [False]])
        tok_lo = np.flatnonzero(word & (~prev[:-1] | edge[:-1]))
        tok_hi = np.flatnonzero(prev[1:] & (~nxt[1:] | edge[1:])) + 1
        cps, starts = _span_hashes(cps, tok_lo, tok_hi), np.searchsorted(tok_lo, starts)
    lo, hi, offsets = _ngram_spans(starts, ngram)
    return (_span_hashes(cps, lo, hi) & _MASK32).astype(np.uint32), offsets


@jit
def _min_legacy(hv: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for d in range(out.shape[0]):  # out: (docs, num_perm), uint32, filled with EMPTY
        for i in range(offsets[d], offsets[d + 1]):
            h = np.uint64(hv[i])
            for k in range(a.shape[0]):
                x = a[k] * h + b[k]  # wraps mod 2**64, as datasketch's numpy uint64 product does
                x = (x & _PRIME) + (x >> np.uint64(61))  # x mod (2**61 - 1), since 2**61 = 1 there
                if x >= _PRIME:
                    x -= _PRIME
                x &= _MASK32
                if x < out[d, k]:
                    out[d, k] = x


@jit
def _min_affine32(hv: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for d in range(out.shape[0]):
        for i in range(offsets[d], offsets[d + 1]):
            h = np.uint64(hv[i])  # MurmurHash3's fmix32, in uint64 cut to 32 bits after each product
            h ^= h >> np.uint64(16)
            h = (h * np.uint64(0x85EBCA6B)) & _MASK32
            h ^= h >> np.uint64(13)
            h = (h * np.uint64(0xC2B2AE35)) & _MASK32
            h ^= h >> np.uint64(16)
            for k in range(a.shape[0]):
                x = (a[k] * h + b[k]) & _MASK32
                if x < out[d, k]:
                    out[d, k] = x


class MinHasher:
    """Signatures of many documents at once, ``(docs, num_perm)`` uint32.

    >>> m = MinHasher(MinHashConfig(num_perm=16, hash="sha1"))
    >>> sig = m.signatures(["人民日报社论", "人民日报社评", ""])
    >>> sig.shape, int((sig[0] == sig[1]).sum()) > 0, bool((sig[2] == EMPTY).all())
    ((3, 16), True, True)
    """

    def __init__(self, config: MinHashConfig | None = None, batch: int = 4096):
        self.config = config or MinHashConfig()
        self.batch = batch  # documents hashed per step (bounds the shingle arrays' memory)
        c = self.config
        self.a, self.b = permutations(c.num_perm, c.seed, c.scheme)

    def shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes uint32, offsets int64): document i's shingles hash to hashes[offsets[i]:offsets[i+1]]
        (under "sha1" each distinct shingle once, under "fast" every occurrence)."""
        c = self.config
        return (_sha1_hashes if c.hash == "sha1" else _fast_hashes)(texts, c.ngram, c.unit)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text: the minimum of each permutation over the text's shingle hashes."""
        check_texts(texts)
        out = np.full((len(texts), self.config.num_perm), EMPTY, dtype=np.uint32)
        kernel = _min_legacy if self.config.scheme == "legacy" else _min_affine32
        with progress(total=len(texts), desc="minhash", unit="doc", disable=len(texts) <= self.batch) as bar:
            for lo in range(0, len(texts), self.batch):
                hv, offsets = self.shingle_hashes(texts[lo:lo + self.batch])
                kernel(hv, offsets, self.a, self.b, out[lo:lo + self.batch])
                bar.update(len(offsets) - 1)
        return out


def check_texts(texts: Sequence[str]) -> None:
    """Raise InputError unless `texts` is a sequence of strings (naming the first that is not)."""
    if isinstance(texts, (str, bytes)):
        raise InputError("texts must be a list of strings, got a single string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"texts[{i}] must be a str, got {type(t).__name__}")


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal values: the MinHash estimate of Jaccard similarity (row by row for 2-D input).

    >>> float(jaccard_estimate(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])))
    0.75
    """
    return (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=-1)
