"""Compare segmenters on one test set: F1, OOV recall and speed, plus the ambiguity and OOV cases
that separate them.

An ambiguity case is a stretch where forward and backward maximum matching disagree (both are
dictionary-consistent readings of the same characters); an OOV case is a gold word missing from the
training vocabulary. For each case the report shows how each segmenter cut it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmlab.core.jit import INTERPRET_BUDGET, interpreted
from llmlab.text.base import Segmenter
from llmlab.text.metrics import seg_scores, word_spans


@dataclass(frozen=True)
class SegmenterResult:
    name: str  # the segmenter's label in the report
    precision: float  # word precision
    recall: float  # word recall
    f1: float  # word F1
    oov_recall: float | None  # recall over gold words absent from training
    chars_per_s: float  # segmentation speed through `cut_lines` (all test lines in one call)
    cuts: list[list[str]]  # the segmentation of every test sentence


def evaluate_segmenter(name: str, seg: Segmenter, gold: Sequence[Sequence[str]],
                       train_words: set[str] | None = None) -> SegmenterResult:
    """Cut every gold sentence's text (one `cut_lines` call, as `llmlab seg cut` does) and score it."""
    texts = ["".join(s) for s in gold]
    with interpreted(INTERPRET_BUDGET + 1):  # compiled kernels: loading numba stays out of the timing too
        seg.cut("预热")  # one-off set-up (the perceptron builds its lexicon matcher) stays out of the timing
    t0 = time.perf_counter()
    cuts = seg.cut_lines(texts)
    dt = max(time.perf_counter() - t0, 1e-9)
    s = seg_scores(gold, cuts, train_words)
    return SegmenterResult(name, s.precision, s.recall, s.f1, s.oov_recall, sum(map(len, texts)) / dt, cuts)


def disagreements(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans where two cuts of the same text disagree (maximal, between shared boundaries).

    >>> disagreements(["研究生", "命", "起源"], ["研究", "生命", "起源"])
    [(0, 4)]
    """
    ba = {e for _, e in word_spans(a)}
    bb = {e for _, e in word_spans(b)}
    shared = sorted((ba & bb) | {0})
    out = []
    for lo, hi in zip(shared, shared[1:]):
        inner_a = {e for e in ba if lo < e < hi}
        inner_b = {e for e in bb if lo < e < hi}
        if inner_a != inner_b:
            out.append((lo, hi))
    return out


def _cut_in(words: Sequence[str], lo: int, hi: int) -> str:
    return " ".join(w for w, (s, e) in zip(words, word_spans(words)) if s < hi and e > lo)


def ambiguity_cases(gold, fmm_cuts, bmm_cuts, results: Sequence[SegmenterResult], limit: int = 10) -> list[dict]:
    """Stretches where forward and backward maximum matching disagree, with every segmenter's cut."""
    cases = []
    for i, (g, f, b) in enumerate(zip(gold, fmm_cuts, bmm_cuts)):
        for lo, hi in disagreements(f, b):
            if len(cases) >= limit:  # checked first: a limit of 0 gives none
                return cases
            text = "".join(g)[lo:hi]
            cases.append({"text": text, "gold": _cut_in(g, lo, hi),
                          **{r.name: _cut_in(r.cuts[i], lo, hi) for r in results}})
    return cases


def oov_cases(gold, train_words: set[str], results: Sequence[SegmenterResult], limit: int = 10) -> list[dict]:
    """Gold words absent from training, with every segmenter's cut of them."""
    cases = []
    for i, g in enumerate(gold):
        for w, (lo, hi) in zip(g, word_spans(g)):
            if w not in train_words and len(w) > 1:
                if len(cases) >= limit:  # checked first: a limit of 0 gives none
                    return cases
                cases.append({"text": w, "gold": w, **{r.name: _cut_in(r.cuts[i], lo, hi) for r in results}})
    return cases


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """A Markdown table of `rows` (dicts) over `columns`; floats get 4 decimals.

    >>> print(markdown_table([{"a": 0.5, "b": "x"}], ["a", "b"]))
    | a | b |
    |---|---|
    | 0.5000 | x |
    """
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def format_report(results: Sequence[SegmenterResult], ambiguity: list[dict], oov: list[dict]) -> str:
    """The whole comparison as Markdown."""
    rows = [{"segmenter": r.name, "P": r.precision, "R": r.recall, "F1": r.f1, "OOV recall": r.oov_recall,
             "chars/s": f"{r.chars_per_s:,.0f}"} for r in results]
    names = [r.name for r in results]
    parts = ["## Segmenters", markdown_table(rows, ["segmenter", "P", "R", "F1", "OOV recall", "chars/s"])]
    if ambiguity:
        parts += ["## Ambiguity cases (forward vs backward matching disagree)",
                  markdown_table(ambiguity, ["text", "gold", *names])]
    if oov:
        parts += ["## OOV cases (gold words unseen in training)", markdown_table(oov, ["text", *names])]
    return "\n\n".join(parts) + "\n"
