"""Word lattices: the DAG of all lexicon words in a sentence, and paths through it.

``dag[i]`` lists the ends ``j`` of the words ``text[i:j]``; where no word starts, a one-character edge
(a unit of several code points, `base.UNIT_RUN`, always has its edge), so every sentence has a path.
As in jieba, a character that only begins words is not cut off alone. Best path by unigram probability (max
product, right-to-left like jieba), the k best paths (N-shortest), and the best path under a bigram
word model. `score_segmentation` exposes the classic ranking principles for candidate cuts.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.text.base import check_sentences, normalize_text, same_cuts, split_spaces
from llmlab.text.lexicon import DictSegmenter, Lexicon, lexicon_from_dictionary

BOS, EOS = "<s>", "</s>"


def build_dag(text: str, lexicon: Lexicon) -> list[list[int]]:
    """Ends of every lexicon word starting at each position, or the fallback one-character edge where
    none does (jieba's rule: "研" below begins words and is not one, so it is never a word alone). A
    unit of several code points (`base.UNIT_RUN`: a Latin-letter / digit run, a Cyrillic word, an emoji
    sequence, ...) always has its edge and is one: no word ends inside it, so no path reaches a
    position inside it, and such a position has no edges (giving each its own edge to the unit's end
    made long runs quadratic).

    >>> build_dag("研究生", Lexicon({"研究": 1, "研究生": 1}))
    [[2, 3], [2], [3]]
    >>> build_dag("ab12中", Lexicon({"中": 1}))
    [[4], [], [], [], [5]]
    """
    ends, offsets = lexicon.scan_index().dag(text)  # a compiled scan (`lexscan`)
    return [ends[offsets[i]:offsets[i + 1]] for i in range(len(text))]


def full_spans(text: str, lexicon: Lexicon) -> list[tuple[str, int, int]]:
    """jieba's full mode, with offsets: ``(word, start, end)`` of every lexicon word in `text`, by start
    and then length. Where words of two or more characters start (`build_dag`), all of them; elsewhere
    the position's one-character word (or unit), unless a word found earlier covers it. Whitespace runs
    are words of their own. The same words as ``jieba.cut(text, cut_all=True)`` on Chinese text.

    >>> [w for w, _, _ in full_spans("研究生命", Lexicon({"研究": 1, "研究生": 1, "生命": 1, "命": 1}))]
    ['研究', '研究生', '生命']
    """
    out: list[tuple[str, int, int]] = []
    at = 0
    for piece in split_spaces(text):
        if piece[0].isspace():
            out.append((piece, at, at + len(piece)))
        else:
            covered = 0  # end of the last word given
            for i, ends in enumerate(build_dag(normalize_text(piece), lexicon)):
                if len(ends) == 1 and i >= covered:  # one edge, and no earlier word covers i: its word
                    out.append((piece[i:ends[0]], at + i, at + ends[0]))
                    covered = ends[0]
                    continue
                for j in ends:  # several edges, or one where i is covered: the words of 2+ characters
                    if j > i + 1:
                        out.append((piece[i:j], at + i, at + j))
                        covered = j
        at += len(piece)
    return out


def dag_best_path(text: str, dag: list[list[int]], logp: Callable[[str], float]) -> list[str]:
    """Max-product path: right-to-left DP of ``route[i] = max_j logp(text[i:j]) + route[j]``.

    Ties go to the longer word.

    >>> lp = {"研究": -1.0, "研究生": -1.5, "生命": -1.0, "命": -3.0, "研": -3.0, "究": -3.0, "生": -3.0}
    >>> text = "研究生命"
    >>> dag_best_path(text, [[1, 2, 3], [2], [3, 4], [4]], lambda w: lp[w])
    ['研究', '生命']
    """
    n = len(text)
    route: list[tuple[float, int]] = [(0.0, 0)] * (n + 1)
    for i in range(n - 1, -1, -1):
        edges = dag[i]
        if len(edges) == 1:
            j = edges[0]
            route[i] = (logp(text[i:j]) + route[j][0], j)
        else:  # a position without edges is one no path reaches
            route[i] = max(((logp(text[i:j]) + route[j][0], j) for j in edges), default=(-math.inf, n))
    return _follow(text, route)


def best_path(text: str, lexicon: Lexicon) -> list[str]:
    """``dag_best_path(text, build_dag(text, lexicon), lexicon.logp)`` in one right-to-left pass that
    scores each word as the prefix scan finds it, without building the DAG: the unigram segmenter's
    hot path (jieba's algorithm, compiled: `lexscan`).

    >>> best_path("研究生命起源", Lexicon({"研究": 5, "研究生": 1, "生命": 5, "起源": 5}))
    ['研究', '生命', '起源']
    """
    ends = lexicon.scan_index().best_ends(text)  # a compiled scan (`lexscan`)
    return [text[a:b] for a, b in zip([0, *ends], ends)]


def _follow(text: str, route: list[tuple[float, int]]) -> list[str]:
    words, i = [], 0
    while i < len(text):
        j = route[i][1]
        words.append(text[i:j])
        i = j
    return words


def k_best_paths(
    text: str, dag: list[list[int]], weight: Callable[[str], float], k: int
) -> list[tuple[float, list[str]]]:
    """The `k` highest-scoring paths (score = sum of edge weights), best first.

    With ``weight = lambda w: -1`` this is the classic N-shortest-paths method (fewest words first).

    >>> [w for _, w in k_best_paths("研究生", [[1, 2, 3], [2], [3]], lambda w: -1.0, 3)]
    [['研究生'], ['研究', '生'], ['研', '究', '生']]
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    n = len(text)
    # best[i]: up to k (score, j, rank in best[j]) for paths from i to the end, best first
    best: list[list[tuple[float, int, int]]] = [[] for _ in range(n + 1)]
    best[n] = [(0.0, n, -1)]
    for i in range(n - 1, -1, -1):
        cands = []
        for j in dag[i]:
            w = weight(text[i:j])
            cands.extend((w + s, j, r) for r, (s, _, _) in enumerate(best[j]))
        best[i] = heapq.nlargest(k, cands, key=lambda c: (c[0], c[1]))
    out = []
    for score, j, r in best[0]:
        words, i = [text[0:j]], j
        while i < n:
            _, j2, r2 = best[i][r]
            words.append(text[i:j2])
            i, r = j2, r2
        out.append((score, words) if n else (score, []))
    return out


def _score(c: tuple) -> float:
    return c[0]


def bigram_k_best(
    text: str, dag: list[list[int]], logp: Callable[[str, str], float], k: int
) -> list[tuple[float, list[str]]]:
    """The `k` best paths under a bigram model ``logp(prev, word)`` with ``<s>`` / ``</s>`` at the ends,
    best first: a k-best Viterbi over (end position, start of the last word) states.

    >>> lp = {("<s>", "ab"): -1.0, ("ab", "</s>"): -1.0, ("<s>", "a"): -0.5, ("a", "b"): -0.5, ("b", "</s>"): -2.0}
    >>> bigram_k_best("ab", [[1, 2], [2]], lambda v, w: lp[v, w], 2)
    [(-2.0, ['ab']), (-3.0, ['a', 'b'])]
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    n = len(text)
    if n == 0:
        return [(0.0, [])]
    # best[j][i]: the (at most) k best (score, start of the previous word, its rank there) over paths
    # covering text[:j] whose last word is text[i:j]; ties keep the first found
    best: list[dict[int, list[tuple[float, int, int]]]] = [{} for _ in range(n + 1)]
    best[0][-1] = [(0.0, -1, -1)]
    for i in range(n):
        if not best[i]:  # no path reaches i (inside a unit)
            continue
        for h, paths in best[i].items():
            prev = text[h:i] if h >= 0 else BOS
            for j in dag[i]:
                w = logp(prev, text[i:j])
                best[j].setdefault(i, []).extend((s + w, h, r) for r, (s, _, _) in enumerate(paths))
        for j in dag[i]:
            if len(best[j][i]) > k:
                best[j][i] = heapq.nlargest(k, best[j][i], key=_score)
    ends = [(s + logp(text[i:n], EOS), i, r) for i, paths in best[n].items() for r, (s, _, _) in enumerate(paths)]
    out = []
    for score, i, r in heapq.nlargest(k, ends, key=_score):
        words, j = [], n
        while j > 0:
            words.append(text[i:j])
            _, h, r = best[j][i][r]
            j, i = i, h
        out.append((score, words[::-1]))
    return out


@dataclass(frozen=True)
class SegmentationScore:
    """The classic principles for ranking candidate cuts; lower `key` is better."""

    n_words: int  # fewer words is better
    n_single: int  # fewer one-character words is better
    n_oov: int  # fewer out-of-lexicon multi-character words is better
    logp: float  # unigram log probability of the whole cut, higher is better

    @property
    def key(self) -> tuple[int, int, int, float]:
        return (self.n_oov, self.n_words, self.n_single, -self.logp)


def score_segmentation(words: Sequence[str], lexicon: Lexicon) -> SegmentationScore:
    """Score one candidate segmentation.

    >>> score_segmentation(["研究生", "命", "起源"], Lexicon({"研究生": 1, "起源": 1, "生命": 1})).n_single
    1
    """
    return SegmentationScore(
        n_words=len(words),
        n_single=sum(len(w) == 1 for w in words),
        n_oov=sum(len(w) > 1 and w not in lexicon for w in words),
        logp=sum(lexicon.logp(w) for w in words),
    )


def rank_segmentations(candidates: Iterable[Sequence[str]],
                       lexicon: Lexicon) -> list[tuple[SegmentationScore, list[str]]]:
    """Candidates with their scores, best first (fewest OOV, words, single chars; then likeliest)."""
    scored = [(score_segmentation(c, lexicon), list(c)) for c in candidates]
    return sorted(scored, key=lambda p: p[0].key)


@dataclass(frozen=True)
class LatticeConfig:
    min_count: int = 1  # training words seen fewer times stay out of the lexicon
    bigram_weight: float = 0.7  # bigram model: weight of P(w | prev) against P(w), in [0, 1)

    def __post_init__(self):
        if self.min_count < 1:
            raise InputError(f"min_count must be >= 1, got {self.min_count}")
        if not 0.0 <= self.bigram_weight < 1.0:
            raise InputError(f"bigram_weight must be in [0, 1), got {self.bigram_weight}")


class UnigramSegmenter(DictSegmenter):
    """Best DAG path under unigram word probabilities, plus k-best paths and candidate scoring.

    >>> seg = UnigramSegmenter(Lexicon({"研究": 5, "研究生": 1, "生命": 5, "起源": 5}))
    >>> seg.cut("研究生命起源")
    ['研究', '生命', '起源']
    >>> [words for _, words in seg.k_best("研究生命", 2)]
    [['研究', '生命'], ['研究生', '命']]
    """

    kind = "unigram"

    def __init__(self, lexicon: Lexicon, config: LatticeConfig | None = None):
        super().__init__(lexicon)
        self.config = config or LatticeConfig()

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: LatticeConfig | None = None):
        config = config or LatticeConfig()
        return cls(Lexicon.from_sentences(check_sentences(sentences), config.min_count), config)

    @classmethod
    def from_dictionary(cls, source, config: LatticeConfig | None = None):
        """Words and counts from a dictionary alone (`lexicon_from_dictionary`), no training text. With
        jieba's ``dict.txt`` it cuts Chinese as ``jieba.cut(text, HMM=False)`` does.

        >>> seg = UnigramSegmenter.from_dictionary([("研究", 5), ("研究生", 1), ("生命", 5), ("起源", None)])
        >>> seg.cut("研究生命起源")
        ['研究', '生命', '起源']
        """
        config = config or LatticeConfig()
        return cls(lexicon_from_dictionary(source, config.min_count), config)

    def _cut_run(self, run: str) -> list[str]:
        norm = normalize_text(run)  # what the lexicon holds; the words are cut from the run itself
        words = self._best_path(norm)
        return words if norm == run else same_cuts(run, words)

    def _best_path(self, run: str) -> list[str]:
        """Words of a width-normalised run."""
        return best_path(run, self.lexicon)

    def k_best(self, text: str, k: int = 5, by: str = "prob") -> list[tuple[float, list[str]]]:
        """The k best cuts of `text`: by unigram probability, or by="words" for the classic N-shortest
        paths (each word costs 1). Whitespace and forced words (`force_words`) are cut as `cut` cuts
        them, each a word of its own scoring 0 (every cut has them); the runs between are cut
        independently, and a cut's score is the sum of theirs."""
        if by not in ("prob", "words"):
            raise InputError(f"by must be 'prob' or 'words', got {by!r}")
        best: list[tuple[float, list[str]]] = [(0.0, [])]
        for piece in split_spaces(text):
            for part, fixed in [(piece, True)] if piece[0].isspace() else self.forced.split(piece):
                if fixed:
                    best = [(score, [*words, part]) for score, words in best]
                else:  # the k best sums (sorted() is stable, and so is nlargest: ties keep path order)
                    runs = self._run_k_best(part, k, by)
                    best = heapq.nlargest(k, ((s + t, [*ws, *vs]) for s, ws in best for t, vs in runs), key=_score)
        return best

    def _run_k_best(self, run: str, k: int, by: str) -> list[tuple[float, list[str]]]:
        """The k best cuts of a run without whitespace."""
        weight = self.lexicon.logp if by == "prob" else (lambda w: -1.0)
        norm = normalize_text(run)
        return [(score, same_cuts(run, words)) for score, words in k_best_paths(norm, build_dag(norm, self.lexicon),
                                                                                 weight, k)]

    def score(self, words: Sequence[str]) -> SegmentationScore:
        return score_segmentation(words, self.lexicon)

    def _state(self, directory: Path) -> dict:
        return {"config": config_to_dict(self.config), "lexicon": self.lexicon.to_dict()}

    @classmethod
    def _from_state(cls, state: dict, directory: Path):
        return cls(Lexicon.from_dict(state["lexicon"]), config_from_dict(LatticeConfig, state["config"]))


def bigram_best_path(text: str, dag: list[list[int]], logp: Callable[[str, str], float]) -> list[str]:
    """The best path of `bigram_k_best` (k = 1, ties kept alike: the first found), without its
    per-state lists and heaps: `BigramSegmenter`'s cut.

    >>> lp = {("<s>", "ab"): -1.0, ("ab", "</s>"): -1.0, ("<s>", "a"): -0.5, ("a", "b"): -0.5, ("b", "</s>"): -2.0}
    >>> bigram_best_path("ab", [[1, 2], [2]], lambda v, w: lp[v, w])
    ['ab']
    """
    n = len(text)
    if n == 0:
        return []
    # best[j][i]: the best (score, start of the previous word) over paths covering text[:j] ending in text[i:j]
    best: list[dict[int, tuple[float, int]]] = [{} for _ in range(n + 1)]
    best[0][-1] = (0.0, -1)
    for i in range(n):
        for h, (s, _) in best[i].items():  # none where no path reaches i (inside a unit)
            prev = text[h:i] if h >= 0 else BOS
            for j in dag[i]:
                score, old = s + logp(prev, text[i:j]), best[j].get(i)
                if old is None or score > old[0]:
                    best[j][i] = (score, h)
    end, top = -1, -math.inf
    for i, (s, _) in best[n].items():
        score = s + logp(text[i:n], EOS)
        if end < 0 or score > top:
            end, top = i, score
    words, j, i = [], n, end
    while j > 0:
        words.append(text[i:j])
        j, i = i, best[j][i][1]
    return words[::-1]


class BigramSegmenter(UnigramSegmenter):
    """Best DAG path under an interpolated bigram word model:
    ``P(w | v) = a * c(v, w) / c(v) + (1 - a) * P_unigram(w)``, with ``<s>`` and ``</s>`` at the ends."""

    kind = "bigram"

    def __init__(self, lexicon: Lexicon, bigrams: dict[tuple[str, str], int], config: LatticeConfig | None = None):
        super().__init__(lexicon, config)
        self.following: dict[str, dict[str, int]] = {}  # v -> w -> c(v, w): no tuple to hash per lookup
        for (v, w), c in bigrams.items():
            self.following.setdefault(v, {})[w] = c
        self.history = {v: sum(ws.values()) for v, ws in self.following.items()}  # c(v)
        self._scan = None

    @property
    def bigrams(self) -> dict[tuple[str, str], int]:
        """(v, w) -> c(v, w), the training counts."""
        return {(v, w): c for v, ws in self.following.items() for w, c in ws.items()}

    @classmethod
    def from_dictionary(cls, source, config: LatticeConfig | None = None):
        raise InputError("a bigram segmenter learns word pairs from segmented text: train it on a corpus "
                         "(a dictionary alone makes a unigram one)")

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: LatticeConfig | None = None):
        sents = check_sentences(sentences)
        uni = UnigramSegmenter.train(sents, config)
        bigrams: Counter = Counter()
        for s in sents:
            seq = [BOS, *map(normalize_text, s), EOS]  # width-normalised, as the lexicon's words
            bigrams.update(zip(seq, seq[1:]))
        return cls(uni.lexicon, dict(bigrams), uni.config)

    def logp(self, prev: str, word: str) -> float:
        """``log P(word | prev)`` (`prev` may be ``<s>``, `word` ``</s>``)."""
        return self._logp(normalize_text(prev), normalize_text(word))  # <s> and </s> are ASCII: unchanged

    def _logp(self, prev: str, word: str) -> float:
        """`logp` of width-normalised words (the lattice's)."""
        a = self.config.bigram_weight
        following = self.following.get(prev)
        p_bi = following.get(word, 0) / self.history[prev] if following else 0.0
        p_uni = math.exp(self.lexicon.log_probs[word]) if word != EOS else 1.0 / max(len(self.lexicon), 1)
        return math.log(a * p_bi + (1 - a) * p_uni)

    def _best_path(self, run: str) -> list[str]:
        """`bigram_best_path` of the run, compiled (`lexscan.BigramIndex`)."""
        ends, _ = self.scan_index().best_ends(run)
        return [run[a:b] for a, b in zip([0, *ends], ends)]

    def scan_index(self):
        """The model as the compiled best path reads it (built on first use, and again after the lexicon
        changes)."""
        scan = self.lexicon.scan_index()
        if self._scan is None or self._scan.scan is not scan:
            from llmlab.text.lexscan import BigramIndex

            self._scan = BigramIndex(scan, self.following, self.config.bigram_weight, 1.0 / max(len(self.lexicon), 1),
                                     BOS, EOS)
        return self._scan

    def _run_k_best(self, run: str, k: int, by: str) -> list[tuple[float, list[str]]]:
        """The k best cuts of a run under the bigram model (score: the log probability of
        ``<s> w1 ... wn </s>``, each run a sentence of its own as in `cut`), or by="words"."""
        if by != "prob":
            return super()._run_k_best(run, k, by)
        norm = normalize_text(run)
        paths = bigram_k_best(norm, build_dag(norm, self.lexicon), self._logp, k)
        return [(score, same_cuts(run, words)) for score, words in paths]

    def _state(self, directory: Path) -> dict:
        state = super()._state(directory)
        state["bigrams"] = [[v, w, c] for (v, w), c in self.bigrams.items()]
        return state

    @classmethod
    def _from_state(cls, state: dict, directory: Path):
        bigrams: Counter = Counter()
        for v, w, c in state["bigrams"]:  # models saved before words were width-normalised merge their forms
            bigrams[normalize_text(v), normalize_text(w)] += int(c)
        return cls(Lexicon.from_dict(state["lexicon"]), dict(bigrams), config_from_dict(LatticeConfig, state["config"]))
