"""Task scoring: exact match, numeric match (for arithmetic), and multiple choice by log-likelihood the
way benchmark harnesses score it (the choice whose continuation the model finds most likely)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

from llmlab.core.errors import InputError

# a sign only where it cannot be an operator (not after a digit, letter or closing bracket: "2-3" ends in 3);
# thousands commas only in groups of three ("1,234", while "1,2" is two numbers); a fraction "3/4", while in
# a longer chain of slashes ("2024/11/30") the last field is the number
_NUMBER = re.compile(r"""
    (?P<sign>(?<![\w.)\]])[-+−])?
    (?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)
    (?P<exp>[eE][-+]?\d+)?
    (?P<slashes>(?:/\d+)+)?""", re.VERBOSE)
NORMALIZATIONS = ("sum", "mean", "chars")


def normalize_answer(text: str, lowercase: bool = True) -> str:
    """NFKC, trimmed, inner whitespace collapsed to one space, optionally lowercased.

    >>> normalize_answer("  The  ANSWER\\t")
    'the answer'
    """
    if not isinstance(text, str):
        raise InputError(f"an answer must be a string, got {type(text).__name__}")
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.lower() if lowercase else text


def exact_match(pred: str, gold: str, lowercase: bool = True) -> bool:
    """Equal after normalize_answer.

    >>> exact_match("Paris ", "paris"), exact_match("Paris", "Lyon")
    (True, False)
    """
    return normalize_answer(pred, lowercase) == normalize_answer(gold, lowercase)


def parse_number(text: str) -> float | None:
    """The last number written in `text`, else None: thousands commas, a minus sign (ASCII or U+2212, and
    full-width forms), decimals, exponents and simple fractions are read; a dash between numbers is not a sign,
    and n/0 is no number.

    >>> parse_number("12+30=42"), parse_number("answer: -1,234.5"), parse_number("none")
    (42.0, -1234.5, None)
    >>> parse_number("pages 2-3"), parse_number("3/4 of it"), parse_number("1,2"), parse_number("x = -2e3")
    (3.0, 0.75, 2.0, -2000.0)
    """
    found = list(_NUMBER.finditer(unicodedata.normalize("NFKC", text)))
    if not found:
        return None
    m = found[-1]
    fields = (m["slashes"] or "").split("/")[1:]
    if len(fields) > 1:
        return float(fields[-1])
    value = float(m["num"].replace(",", "") + (m["exp"] or ""))
    if fields:
        if int(fields[0]) == 0:
            return None  # n/0 is no number
        value /= int(fields[0])
    return -value if m["sign"] in ("-", "−") else value


def numeric_match(pred: str, gold: str | float, rel_tol: float = 0.0, abs_tol: float = 1e-9) -> bool:
    """Whether the last number in `pred` equals `gold` within tolerance; False when `pred` has none.

    >>> numeric_match("the sum is 4690.", "4690"), numeric_match("46 90", 4690)
    (True, False)
    """
    want = float(gold) if not isinstance(gold, str) else parse_number(gold)
    if want is None:
        raise InputError(f"gold answer {gold!r} holds no number")
    got = parse_number(pred)
    return got is not None and math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)


def accuracy(preds: Sequence[str], golds: Sequence[str], metric: str = "exact") -> float:
    """Share of predictions matching their gold answers; metric is "exact" or "numeric".

    >>> accuracy(["1+1=2", "3"], ["2", "4"], metric="numeric")
    0.5
    """
    if len(preds) != len(golds):
        raise InputError(f"{len(preds)} predictions for {len(golds)} gold answers")
    if not preds:
        raise InputError("accuracy of zero items is undefined")
    fn = {"exact": exact_match, "numeric": numeric_match}.get(metric)
    if fn is None:
        raise InputError(f"metric must be 'exact' or 'numeric', got {metric!r}")
    return sum(fn(p, g) for p, g in zip(preds, golds)) / len(preds)


def choice_scores(choice_logprobs: Sequence[Sequence[float]], normalize: str = "sum",
                  choice_texts: Sequence[str] | None = None) -> list[float]:
    """A score per choice from its continuation's per-token log-probs.

    "sum" is the total log-likelihood; "mean" divides by the token count; "chars" divides by the
    continuation's character count (lm-eval-harness's acc_norm divides by bytes; characters keep Chinese
    choices comparable).

    >>> choice_scores([[-1.0, -1.0], [-1.5]], "sum"), choice_scores([[-1.0, -1.0], [-1.5]], "mean")
    ([-2.0, -1.5], [-1.0, -1.5])
    """
    if normalize not in NORMALIZATIONS:
        raise InputError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if not choice_logprobs:
        raise InputError("need at least one choice")
    if normalize == "chars" and (choice_texts is None or len(choice_texts) != len(choice_logprobs)):
        raise InputError("normalize='chars' needs choice_texts, one per choice")
    out = []
    for i, lps in enumerate(choice_logprobs):
        if not lps:
            raise InputError(f"choice {i} has no tokens")
        total = math.fsum(lps)
        if normalize == "mean":
            total /= len(lps)
        elif normalize == "chars":
            total /= max(1, len(choice_texts[i]))
        out.append(total)
    return out


def choose(choice_logprobs: Sequence[Sequence[float]], normalize: str = "sum",
           choice_texts: Sequence[str] | None = None) -> int:
    """Index of the best-scoring choice (the first on ties).

    >>> choose([[-1.0, -1.0], [-1.5]]), choose([[-1.0, -1.0], [-1.5]], "mean")
    (1, 0)
    """
    scores = choice_scores(choice_logprobs, normalize, choice_texts)
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def multiple_choice_accuracy(items: Sequence[Sequence[Sequence[float]]], gold: Sequence[int],
                             normalize: str = "sum", texts: Sequence[Sequence[str]] | None = None) -> float:
    """Accuracy over questions, each given as per-choice log-prob lists, against gold choice indices.

    >>> multiple_choice_accuracy([[[-1.0], [-2.0]], [[-3.0], [-0.5]]], [0, 0])
    0.5
    """
    if len(items) != len(gold):
        raise InputError(f"{len(items)} questions for {len(gold)} gold indices")
    if not items:
        raise InputError("accuracy of zero questions is undefined")
    right = 0
    for q, (choices, g) in enumerate(zip(items, gold)):
        if not 0 <= g < len(choices):
            raise InputError(f"question {q}: gold index {g} is outside its {len(choices)} choices")
        right += choose(choices, normalize, texts[q] if texts is not None else None) == g
    return right / len(items)
