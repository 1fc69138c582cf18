"""Word vectors and what one does with them: cosine similarity, nearest neighbours, analogies, the
word2vec text format, and evaluation on word-similarity and analogy lists (topics 75-77).

>>> wv = WordVectors(("king", "queen", "man", "woman"),
...                  np.array([[1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=np.float32))
>>> round(wv.similarity("king", "man"), 4), wv.analogy("king", "man", "woman", topn=1)[0][0]
(0.7071, 'queen')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_path, check_readable, line_batches, read_text, split_lines


def word_problem(word) -> str | None:
    """Why `word` cannot be a word of the word2vec text format, or None. Its rows are ``word v1 .. vd``,
    cut at a space, one per line: a word holding " " or a newline would read back as other words or
    lines (gensim's reader splits the same way), and an empty one is no word. Any other character,
    a tab or an ideographic space (U+3000) included, is read back whole.

    >>> word_problem("北京\u3000市"), word_problem("a b"), word_problem("")
    (None, 'holds a space', 'is empty')
    """
    if not isinstance(word, str):
        return f"is a {type(word).__name__}, not a str"
    if not word:
        return "is empty"
    if " " in word:
        return "holds a space"
    if "\n" in word:
        return "holds a newline"
    return None


@dataclass(frozen=True, eq=False)
class WordVectors:
    words: tuple[str, ...]  # row i of `vectors` belongs to words[i]
    vectors: np.ndarray  # (V, d) float32
    _index: dict = field(init=False, repr=False, compare=False)
    _unit: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        v = np.asarray(self.vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != len(self.words):
            raise InputError(f"vectors must be (len(words), dim) = ({len(self.words)}, d), got {v.shape}")
        if len(set(self.words)) != len(self.words):
            seen: set[str] = set()
            again = next(w for w in self.words if w in seen or seen.add(w))
            raise InputError(f"words must be unique; {again!r} appears more than once")
        for w in self.words:
            if (problem := word_problem(w)) is not None:
                raise InputError(f"word {w!r} {problem}: the word2vec text format cannot hold it")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        object.__setattr__(self, "vectors", v)
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})
        object.__setattr__(self, "_unit", v / np.where(norms > 0, norms, 1.0))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def index(self, word: str) -> int:
        if word not in self._index:
            raise InputError(f"word {word!r} is not in the vocabulary ({len(self)} words)")
        return self._index[word]

    def vector(self, word: str) -> np.ndarray:
        return self.vectors[self.index(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine of the angle between the vectors of `a` and `b`."""
        return float(self._unit[self.index(a)] @ self._unit[self.index(b)])

    def most_similar(self, positive: Sequence[str] | str, negative: Sequence[str] | str = (), topn: int = 10):
        """The `topn` words closest (cosine) to the mean of unit `positive` minus unit `negative` vectors,
        the query words themselves left out (as gensim's ``most_similar``)."""
        positive = [positive] if isinstance(positive, str) else positive  # one word, as gensim takes it
        negative = [negative] if isinstance(negative, str) else negative
        if topn < 1:
            raise InputError(f"topn must be >= 1, got {topn}")
        rows = [self.index(w) for w in positive] + [self.index(w) for w in negative]
        if not rows:
            raise InputError("most_similar needs at least one word")
        signs = np.array([1.0] * len(positive) + [-1.0] * len(negative), dtype=np.float32)
        q = (self._unit[rows] * signs[:, None]).mean(0)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        scores = self._unit @ q
        scores[rows] = -np.inf
        k = min(topn, len(self) - len(set(rows)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in top]

    def analogy(self, a: str, b: str, c: str, topn: int = 1):
        """Words closest to a - b + c (e.g. king - man + woman -> queen), 3CosAdd."""
        return self.most_similar([a, c], [b], topn)

    def save_word2vec(self, path: str | Path) -> None:
        """The word2vec text format: a ``V d`` header, then ``word v1 .. vd`` per line (gensim reads it). Nine
        significant digits give each float32 back exactly (six changed vectors by up to 5e-7, and neighbours)."""
        lines = [f"{len(self)} {self.dim}"]
        for w, row in zip(self.words, self.vectors):
            lines.append(w + " " + " ".join(f"{x:.9g}" for x in row.tolist()))
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load_word2vec(cls, path: str | Path) -> WordVectors:
        """Vectors in the word2vec text format (what `save_word2vec`, gensim, the original C tool and
        fastText write; their trailing space on each line is allowed). Rows are cut at spaces only, as
        gensim cuts them, so a word may hold any other character (`word_problem`). Blank lines after the
        header's count of rows are ignored (gensim reads no further); any other line there is refused,
        since the count would then be wrong."""
        p = check_readable(path, "word2vec file")
        lines = (line for batch in line_batches(p, "word2vec file") for line in batch)
        header = next(lines, "").split()
        if len(header) != 2 or not all(h.isascii() and h.isdigit() for h in header):
            raise InputError(f"{p}: first line must be 'n_words dim', got {' '.join(header)!r}")
        n, d = map(int, header)
        words, rows, first = [], [], {}
        for lineno, line in enumerate(lines, 2):
            if len(words) == n:
                if line.strip():
                    raise InputError(f"{p}:{lineno}: header says {n} words, but the file goes on: {line[:40]!r}")
                continue
            parts = line.rstrip(" ").split(" ")
            if len(parts) != d + 1:
                raise InputError(f"{p}:{lineno}: expected a word and {d} numbers, got {len(parts) - 1}")
            if not parts[0]:
                raise InputError(f"{p}:{lineno}: the word is empty (the line starts with a space)")
            try:
                row = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise InputError(f"{p}:{lineno}: the values of {parts[0]!r} are not all numbers") from None
            if not np.isfinite(row).all():
                raise InputError(f"{p}:{lineno}: the vector of {parts[0]!r} holds NaN or infinity")
            if first.setdefault(parts[0], lineno) != lineno:
                raise InputError(f"{p}:{lineno}: {parts[0]!r} has a vector already, on line {first[parts[0]]}")
            words.append(parts[0])
            rows.append(row)
        if len(words) != n:
            raise InputError(f"{p}: header says {n} words, file has {len(words)}")
        return cls(tuple(words), np.stack(rows) if rows else np.zeros((0, d), np.float32))


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank.

    >>> ranks(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    uniq, inv = np.unique(x, return_inverse=True)
    return (np.bincount(inv, weights=r) / np.bincount(inv))[inv]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of the tie-averaged ranks).

    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 12)
    0.8
    """
    if len(x) != len(y) or len(x) < 2:
        raise InputError(f"spearman needs two equal-length lists of >= 2 values, got {len(x)} and {len(y)}")
    rx, ry = ranks(np.asarray(x)), ranks(np.asarray(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def read_pairs(name_or_path: str) -> list[tuple[str, str, float]]:
    """Word-similarity pairs ``word1<TAB>word2<TAB>score`` from a file or a built-in list (``zh``, ``en``)."""
    rows = []
    for line in _read_list(name_or_path, "similarity"):
        parts = line.split("\t")
        try:
            if len(parts) != 3:
                raise ValueError
            rows.append((parts[0], parts[1], float(parts[2])))
        except ValueError:
            raise InputError(f"similarity line must be 'word1<TAB>word2<TAB>score', got {line!r}") from None
    return rows


def read_analogies(name_or_path: str) -> list[tuple[str, str, str, str]]:
    """Analogy questions ``a b c d`` (a is to b as c is to d) from a file or a built-in list."""
    out = []
    for line in _read_list(name_or_path, "analogy"):
        parts = line.split()
        if len(parts) != 4:
            raise InputError(f"analogy line must have 4 words, got {line!r}")
        out.append(tuple(parts))
    return out


def _read_list(name_or_path: str, kind: str) -> list[str]:
    if name_or_path in ("zh", "en"):
        suffix = "tsv" if kind == "similarity" else "txt"
        text = resources.files("llmlab.classic").joinpath(f"data/{kind}_{name_or_path}.{suffix}").read_text("utf-8")
    else:
        text = read_text(name_or_path, f"{kind} list")
    return [ln for ln in split_lines(text) if ln.strip() and not ln.startswith("#")]


def evaluate_similarity(wv: WordVectors, pairs: Sequence[tuple[str, str, float]]) -> dict:
    """Spearman correlation between human scores and cosine similarities on the pairs both words of
    which are in the vocabulary (gensim's ``evaluate_word_pairs`` convention)."""
    used = [(a, b, s) for a, b, s in pairs if a in wv and b in wv]
    if len(used) < 2:
        raise InputError(f"only {len(used)} of {len(pairs)} pairs have both words in the vocabulary")
    sims = [wv.similarity(a, b) for a, b, _ in used]
    return {"spearman": spearman([s for *_, s in used], sims), "pairs": len(used), "oov_pairs": len(pairs) - len(used)}


def evaluate_analogies(wv: WordVectors, questions: Sequence[tuple[str, str, str, str]]) -> dict:
    """Share of questions a:b = c:d where the word closest to b - a + c (question words excluded) is d."""
    used = [q for q in questions if all(w in wv for w in q)]
    if not used:
        raise InputError(f"none of the {len(questions)} analogy questions has all its words in the vocabulary")
    right = sum(wv.most_similar([b, c], [a], topn=1)[0][0] == d for a, b, c, d in used)
    return {"accuracy": right / len(used), "questions": len(used), "oov_questions": len(questions) - len(used)}


def onehot_vs_distributed(wv: WordVectors, pairs: Sequence[tuple[str, str, float]]) -> dict:
    """Topic 77: one-hot codes are V-dimensional, all but one entry zero, and every two distinct words
    are orthogonal (cosine 0), so they carry no similarity; dense vectors are small and full, and their
    cosines follow human judgements (spearman over `pairs`)."""
    used = [(a, b, s) for a, b, s in pairs if a in wv and b in wv]
    sims = np.array([wv.similarity(a, b) for a, b, _ in used])
    rng = np.random.default_rng(0)
    rand = rng.integers(0, len(wv), size=(min(1000, len(wv) ** 2), 2))
    rand = rand[rand[:, 0] != rand[:, 1]]
    rand_cos = np.einsum("ij,ij->i", wv._unit[rand[:, 0]], wv._unit[rand[:, 1]])
    top = sorted(used, key=lambda r: -r[2])[: max(1, len(used) // 4)]
    return {
        "onehot": {"dim": len(wv), "nonzero_share": 1 / len(wv), "cosine_any_two_words": 0.0, "spearman": None},
        "distributed": {
            "dim": wv.dim,
            "nonzero_share": float((wv.vectors != 0).mean()),
            "mean_cosine_similar_pairs": float(np.mean([wv.similarity(a, b) for a, b, _ in top])) if top else None,
            "mean_cosine_random_pairs": float(rand_cos.mean()),
            "spearman": spearman([s for *_, s in used], sims) if len(used) >= 2 else None,
        },
    }
