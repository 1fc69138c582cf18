"""Training byte-level BPE fast: count each pair once, then update counts only where a merge happens.

The corpus is reduced to its distinct pre-tokens with their counts. All their bytes sit in one flat
array linked as per-word lists, and each pair remembers where it occurs. Merging a pair visits only its
own occurrences and adjusts the counts of the pairs beside them; a heap with lazy deletion yields the
next most frequent pair. The total cost is about the number of merge events, not merges x corpus.

Tie rule (the same as Hugging Face's ``BpeTrainer``): the most frequent pair wins; among equally
frequent pairs, the one with the smaller (left id, right id) wins. Ids follow HF's order: special
tokens, then the 256 bytes in the order of their printable stand-ins, then merged tokens as created.
So with the same pre-tokenization and vocab size both trainers give the same vocabulary and merges.
One deliberate difference: a merge whose result would spell a special token is skipped (HF would
reuse the special token's id); the GPT-2 and GPT-4 patterns never let that happen, since they cut
``<|`` away from the letters after it.

`train_bpe_naive` is the textbook loop (recount every pair after each merge), kept as a reference.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.progress import progress as progress_bar
from llmlab.tokenizers.bpe import merge, pair_counts
from llmlab.tokenizers.pretokenize import byte_alphabet, bytes_to_token

log = logging.getLogger(__name__)


def initial_vocab(specials: Sequence[str], vocab_size: int) -> list[bytes]:
    """Special tokens then the byte alphabet; checks that `vocab_size` leaves room for both."""
    floor = len(specials) + 256
    if vocab_size < floor:
        raise InputError(f"vocab_size {vocab_size} is below the byte alphabet: a byte-level BPE needs at "
                         f"least {floor} ({len(specials)} special tokens + 256 bytes)")
    return [s.encode() for s in specials] + [bytes([b]) for b in byte_alphabet()]


VECTOR_MIN = 48  # merges with at least this many occurrences are applied with array operations


class _Corpus:
    """Distinct words as linked symbol lists in flat numpy arrays, with pair counts and positions.

    Pair (a, b) is keyed as ``a * base + b`` with `base` above every id (small ints hash fastest).
    Around an occurrence (p, a, b, q) of a merged pair, pairs (p, a) and (b, q) lose the word's count
    and (p, new), (new, q) gain it. A merge with many occurrences does this with array operations,
    one dictionary update per distinct neighbour; one with few walks them in a plain loop.
    """

    def __init__(self, word_counts: Mapping[str, int], byte_id: list[int], base: int, vector_min: int = VECTOR_MIN):
        words = [w.encode() for w in word_counts]
        keep = [k for k, w in enumerate(words) if len(w) >= 2]  # a single byte has no pair to merge
        lengths = np.array([len(words[k]) for k in keep], dtype=np.int64)
        counts_arr = np.fromiter(word_counts.values(), dtype=np.int64, count=len(words))[keep]
        data = np.frombuffer(b"".join(words[k] for k in keep), dtype=np.uint8)
        ends = np.cumsum(lengths)
        # Each word is followed by a separator slot (-1), which is never part of a pair.
        self.sym = np.insert(np.asarray(byte_id, dtype=np.int64)[data], ends, -1)
        self.weight = np.repeat(counts_arr, lengths + 1)
        n = len(self.sym)
        sep = ends + np.arange(len(ends))  # separator positions in `sym`
        self.nxt, self.prv = np.arange(1, n + 1), np.arange(-1, n - 1)
        self.nxt[sep], self.nxt[sep - 1] = -1, -1
        self.prv[sep], self.prv[np.minimum(sep + 1, n - 1)] = -1, -1  # prv[0] is -1 already; n may be 0
        self.base, self.vector_min = base, vector_min
        self.counts: dict[int, int] = {}
        self.where: dict[int, list] = {}  # pair -> chunks of left positions (arrays or lists; may be stale)
        left = np.flatnonzero(self.nxt[:-1] >= 0)  # positions that start a pair
        self._gain(self.sym[left] * base + self.sym[left + 1], self.weight[left], left)

    def merge(self, key: int, new: int) -> list[int]:
        """Merge every occurrence of pair `key` into `new`; returns the pairs whose count grew."""
        chunks = self.where.pop(key, [])
        self.counts.pop(key, None)
        if not chunks:
            return []
        i = np.unique(np.concatenate(chunks).astype(np.int64, copy=False))
        if len(i) >= self.vector_min:
            return self._merge_vector(key, new, i)
        return self._merge_loop(key, new, i.tolist())

    def _merge_loop(self, key: int, new: int, positions: list[int]) -> list[int]:
        base = self.base
        a, b = divmod(key, base)
        sym, nxt, prv, counts, where = self.sym, self.nxt, self.prv, self.counts, self.where
        s_at, n_at, p_at, w_at = sym.item, nxt.item, prv.item, self.weight.item
        grown = []
        for i in positions:  # sorted: left to right, like `merge`
            j = n_at(i)
            if j < 0 or s_at(i) != a or s_at(j) != b:
                continue  # stale position
            w, p, q = w_at(i), p_at(i), n_at(j)
            if p >= 0:
                sp = s_at(p)
                old, nk = sp * base + a, sp * base + new
                if old != key:
                    counts[old] -= w
                counts[nk] = counts.get(nk, 0) + w
                where.setdefault(nk, []).append([p])
                grown.append(nk)
            if q >= 0:
                sq = s_at(q)
                old, nk = b * base + sq, new * base + sq
                if old != key:
                    counts[old] -= w
                counts[nk] = counts.get(nk, 0) + w
                where.setdefault(nk, []).append([i])
                grown.append(nk)
                prv[q] = i
            sym[i], sym[j], nxt[i] = new, -2, q
        return grown

    def _merge_vector(self, key: int, new: int, i: np.ndarray) -> list[int]:
        """The same updates as `_merge_loop`, with arrays. When q starts the next occurrence, the
        pair between the two becomes (new, new), counted once (from the left occurrence)."""
        base, sym, nxt, prv = self.base, self.sym, self.nxt, self.prv
        a, b = divmod(key, base)
        i, j = self._occurrences(a, b, i)
        if len(i) == 0:
            return []
        w, p, q = self.weight[i], prv[i], nxt[j]
        has_p = p >= 0
        has_p[has_p] = ~_member(p[has_p], j)  # a left neighbour that is the previous occurrence's b
        has_q = q >= 0
        p_sym, q_sym = sym[p[has_p]], sym[q[has_q]]
        q_new = np.where(_member(q[has_q], i), new, q_sym)
        lost = np.concatenate([p_sym * base + a, b * base + q_sym])
        keep = lost != key  # the merged pair itself is already gone
        self._gain(lost[keep], -np.concatenate([w[has_p], w[has_q]])[keep])
        grown = self._gain(np.concatenate([p_sym * base + new, new * base + q_new]),
                           np.concatenate([w[has_p], w[has_q]]), np.concatenate([p[has_p], i[has_q]]))
        sym[i], sym[j] = new, -2
        nxt[i] = q
        prv[q[has_q]] = i[has_q]
        return grown

    def _occurrences(self, a: int, b: int, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of candidate left positions `i` (sorted), those still holding (a, b), without overlap."""
        j = self.nxt[i]
        ok = (j >= 0) & (self.sym[i] == a)
        i, j = i[ok], j[ok]
        ok = self.sym[j] == b
        i, j = i[ok], j[ok]
        if a == b and len(i) > 1:  # runs like "aaaa": take pairs left to right without overlap
            keep, last = [], -1
            for k, (ii, jj) in enumerate(zip(i.tolist(), j.tolist())):
                if ii != last:
                    keep.append(k)
                    last = jj
            i, j = i[keep], j[keep]
        return i, j

    def _gain(self, keys: np.ndarray, weights: np.ndarray, positions: np.ndarray | None = None) -> list[int]:
        """Add `weights` to the counts of `keys` (and `positions` to their lists); returns the keys."""
        if len(keys) == 0:
            return []
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        uniq = ordered[starts].tolist()
        counts = self.counts
        for k, w in zip(uniq, np.add.reduceat(weights[order], starts).tolist()):
            counts[k] = counts.get(k, 0) + w
        if positions is not None:
            at, where = positions[order], self.where
            bounds = starts.tolist() + [len(keys)]
            for k, lo, hi in zip(uniq, bounds, bounds[1:]):
                if k in where:
                    where[k].append(at[lo:hi])
                else:
                    where[k] = [at[lo:hi]]
        return uniq


def _member(x: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """Which entries of `x` occur in the sorted array `sorted_ref`."""
    idx = np.minimum(np.searchsorted(sorted_ref, x), len(sorted_ref) - 1)
    return sorted_ref[idx] == x


def train_bpe(word_counts: Mapping[str, int], vocab_size: int, specials: Sequence[str],
              min_frequency: int = 0, vector_min: int = VECTOR_MIN) -> tuple[list[bytes], list[tuple[int, int]]]:
    """Vocabulary (bytes per id) and merges (id pairs, in order) learned from pre-token counts."""
    vocab = initial_vocab(specials, vocab_size)
    if not word_counts:
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    ids = {tok: i for i, tok in enumerate(vocab) if i >= len(specials)}
    special_spellings = set(specials)
    banned: set[int] = set()  # pairs that would spell a special token: counted as any pair, never merged
    corpus = _Corpus(word_counts, [ids[bytes([b])] for b in range(256)], base=max(vocab_size, len(vocab)) + 1,
                     vector_min=vector_min)
    counts = corpus.counts
    heap = [(-c, k) for k, c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    bar = progress_bar(total=vocab_size - len(vocab), desc="bpe merges")
    while len(vocab) < vocab_size and heap:
        neg, key = heapq.heappop(heap)
        if key in banned:
            continue
        c = counts.get(key, 0)
        if c != -neg:  # stale entry: requeue with the current count
            if c > 0:
                heapq.heappush(heap, (-c, key))
            continue
        if c < max(min_frequency, 1):
            break
        a, b = divmod(key, corpus.base)
        joined = vocab[a] + vocab[b]
        if bytes_to_token(joined) in special_spellings:
            banned.add(key)  # never build a token spelled like a special token
            continue
        new = ids.get(joined)
        if new is None:
            new = ids[joined] = len(vocab)
            vocab.append(joined)
            bar.update(1)
        merges.append((a, b))
        for k in set(corpus.merge(key, new)):
            if counts[k] > 0:
                heapq.heappush(heap, (-counts[k], k))
    bar.close()
    log.debug("bpe: %d merges, vocab %d", len(merges), len(vocab))
    return vocab, merges


def train_bpe_naive(word_counts: Mapping[str, int], vocab_size: int, specials: Sequence[str]
                    ) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The textbook trainer: after each merge, recount every pair of every word. Same tie rule.

    >>> vocab, merges = train_bpe_naive({"aaab": 2}, 258, [])  # (a,a) x4; then (a,b) and (aa,a) tie x2
    >>> [vocab[i] for pair in merges for i in pair]
    [b'a', b'a', b'a', b'b']
    """
    vocab = initial_vocab(specials, vocab_size)
    ids = {tok: i for i, tok in enumerate(vocab) if i >= len(specials)}
    if not word_counts:
        raise InputError("the training corpus is empty (no text to learn a vocabulary from)")
    words = [([ids[bytes([b])] for b in w.encode()], c) for w, c in word_counts.items()]
    merges: list[tuple[int, int]] = []
    banned: set[tuple[int, int]] = set()  # pairs that would spell a special token
    while len(vocab) < vocab_size:
        stats: dict[tuple[int, int], int] = {}
        for w, c in words:
            pair_counts(w, stats, c)
        for pair in banned:
            stats.pop(pair, None)
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))
        joined = vocab[pair[0]] + vocab[pair[1]]
        if bytes_to_token(joined) in specials:
            banned.add(pair)
            continue
        new = ids.get(joined)
        if new is None:
            new = ids[joined] = len(vocab)
            vocab.append(joined)
        merges.append(pair)
        words = [(merge(w, pair, new), c) for w, c in words]
    return vocab, merges
