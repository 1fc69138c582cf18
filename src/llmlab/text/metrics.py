"""SIGHAN-style segmentation scores: precision, recall and F1 over word spans, plus OOV / IV recall;
and tagging accuracy.

A word is correct when the prediction has a word with the same character span. OOV recall is the
recall over gold words absent from the training vocabulary (the hard part of segmentation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.core.io import read_lines
from llmlab.text.base import normalize_text


def word_spans(words: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each word.

    >>> word_spans(["中国", "人"])
    [(0, 2), (2, 3)]
    """
    spans, i = [], 0
    for w in words:
        spans.append((i, i + len(w)))
        i += len(w)
    return spans


@dataclass(frozen=True)
class SegScores:
    precision: float  # correct words / predicted words
    recall: float  # correct words / gold words
    f1: float  # harmonic mean of precision and recall
    oov_recall: float | None  # recall over gold words not in the training vocabulary (None: no vocabulary or no
    # such word)
    iv_recall: float | None  # recall over gold words in the training vocabulary (None: no vocabulary or no such word)
    n_gold: int  # gold words
    n_pred: int  # predicted words
    n_correct: int  # predicted words whose span matches a gold word
    n_oov: int = 0  # gold words not in the training vocabulary (0 without one)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _rate(a: int, b: int) -> float | None:
    """a / b, or None (undefined) when there is nothing to count."""
    return a / b if b else None


def _check_words(n_gold: int, what: str = "gold") -> None:
    if n_gold == 0:
        raise InputError(f"{what} holds no words: nothing to score")


def _words_of(train_words: Iterable[str] | None) -> set[str] | None:
    """The training words, width-normalised (None stays None)."""
    if isinstance(train_words, str):  # its characters would be the vocabulary
        raise InputError("train_words is a collection of words, not one string")
    return {normalize_text(w) for w in train_words} if train_words is not None else None


def _pair_of(i: int, g, p) -> None:
    """Refuse a sentence given as a string: its characters would be taken for its words (or tags)."""
    if isinstance(g, str) or isinstance(p, str):
        raise InputError(f"sentence {i}: sentences are lists of words (split a segmented line on its spaces), "
                         "not strings")


def seg_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
               train_words: Iterable[str] | None = None) -> SegScores:
    """Score predicted segmentations against gold ones, sentence by sentence.

    Sentences must hold the same characters (whitespace between words ignored). A word is out of
    vocabulary when its width-normalised form (`normalize_text`) is not among the training words'.

    >>> s = seg_scores([["中国", "人民"]], [["中国", "人", "民"]], train_words={"中国"})
    >>> round(s.precision, 3), s.recall, round(s.f1, 3), s.oov_recall, s.iv_recall
    (0.333, 0.5, 0.4, 0.0, 1.0)
    """
    if len(gold) != len(pred):
        raise InputError(f"gold has {len(gold)} sentences but the prediction has {len(pred)}")
    vocab = _words_of(train_words)
    n_gold = n_pred = n_correct = n_oov = n_oov_ok = n_iv = n_iv_ok = 0
    for i, (g, p) in enumerate(zip(gold, pred), 1):
        _pair_of(i, g, p)
        if "".join(g) != "".join(p):
            raise InputError(f"sentence {i}: gold and prediction hold different characters "
                             f"({''.join(g)[:30]!r} vs {''.join(p)[:30]!r})")
        gs, ps = word_spans(g), set(word_spans(p))
        n_gold, n_pred = n_gold + len(gs), n_pred + len(ps)
        for w, span in zip(g, gs):
            ok = span in ps
            n_correct += ok
            if vocab is not None:
                if normalize_text(w) in vocab:
                    n_iv, n_iv_ok = n_iv + 1, n_iv_ok + ok
                else:
                    n_oov, n_oov_ok = n_oov + 1, n_oov_ok + ok
    _check_words(n_gold)
    p, r = _ratio(n_correct, n_pred), _ratio(n_correct, n_gold)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return SegScores(p, r, f1, _rate(n_oov_ok, n_oov), _rate(n_iv_ok, n_iv), n_gold, n_pred, n_correct, n_oov)


_TAGGED = re.compile(r".+/[A-Za-z]{1,4}")


def read_segmented(path: str | os.PathLike, what: str = "segmented file") -> list[list[str]]:
    """One sentence per line, words separated by whitespace. A file whose tokens nearly all look
    like ``word/TAG`` (a POS-tagged corpus given by mistake) is an error, not words ending in "/v".

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "tagged.txt"
    >>> _ = f.write_text("迈向/v 充满/v 希望/n 的/u 新/a 世纪/n " * 4, encoding="utf-8")
    >>> read_segmented(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    llmlab.core.errors.InputError: segmented file ... looks POS-tagged (word/TAG tokens such as '迈向/v'), ...
    """
    sents = [line.split() for line in read_lines(path, what)]
    check_untagged(sents, f"{what} {str(path)!r}")
    return sents


def check_untagged(sents: Sequence[Sequence[str]], what: str) -> None:
    """InputError if nearly all of the first 2,000 words look like ``word/TAG``: a POS-tagged corpus
    given where words are wanted (words such as "1/2" or "TCP/IP" alone do not count)."""
    sample = [w for s in sents[:2000] for w in s][:2000]
    if len(sample) >= 20 and sum(map(bool, map(_TAGGED.fullmatch, sample))) >= 0.9 * len(sample):
        raise InputError(f"{what} looks POS-tagged (word/TAG tokens such as {sample[0]!r}), "
                         "where words separated by spaces are wanted: strip the /TAG suffixes "
                         "(or train a tagger with `llmlab pos train`)")


def read_tagged(path: str | os.PathLike, what: str = "tagged file") -> list[list[tuple[str, str]]]:
    """One sentence per line of ``word/TAG`` tokens; a token without ``/TAG`` is an error naming it."""
    out = []
    for i, line in enumerate(read_lines(path, what), 1):
        pairs = []
        for tok in line.split():
            word, sep, tag = tok.rpartition("/")
            if not sep or not word or not tag:
                raise InputError(f"{what} {str(path)!r} line {i}: token {tok!r} is not word/TAG")
            pairs.append((word, tag))
        out.append(pairs)
    return out


def tag_accuracy(gold: Sequence[Sequence[tuple[str, str]]], pred: Sequence[Sequence[str]],
                 train_words: Iterable[str] | None = None) -> dict:
    """Tag accuracy with gold segmentation, overall and on words unseen in training (None without
    training words, or when every gold word was seen); words compare width-normalised, as the taggers
    see them ("ＧＤＰ" is "GDP").

    >>> tag_accuracy([[("他", "r"), ("跑", "v")]], [["r", "n"]], train_words={"他"})
    {'accuracy': 0.5, 'unknown_accuracy': 0.0, 'n': 2, 'n_unknown': 1}
    """
    if len(gold) != len(pred):
        raise InputError(f"gold has {len(gold)} sentences but the prediction has {len(pred)}")
    vocab = _words_of(train_words) or set()
    n = ok = n_unk = ok_unk = 0
    for i, (g, p) in enumerate(zip(gold, pred), 1):
        _pair_of(i, g, p)
        if len(g) != len(p):
            raise InputError(f"sentence {i}: {len(g)} gold words but {len(p)} predicted tags")
        for (w, t), pt in zip(g, p):
            n, ok = n + 1, ok + (t == pt)
            if train_words is not None and normalize_text(w) not in vocab:
                n_unk, ok_unk = n_unk + 1, ok_unk + (t == pt)
    _check_words(n)
    return {"accuracy": ok / n, "unknown_accuracy": _rate(ok_unk, n_unk), "n": n, "n_unknown": n_unk}


def seg_tag_scores(gold: Sequence[Sequence[tuple[str, str]]],
                   pred: Sequence[Sequence[tuple[str, str]]]) -> dict:
    """Joint segmentation + tagging F1: a word counts when its span and its tag are both right.

    >>> seg_tag_scores([[("中国", "ns"), ("人", "n")]], [[("中国", "ns"), ("人", "v")]])["f1"]
    0.5
    """
    if len(gold) != len(pred):
        raise InputError(f"gold has {len(gold)} sentences but the prediction has {len(pred)}")
    n_gold = n_pred = n_ok = 0
    for i, (g, p) in enumerate(zip(gold, pred), 1):
        _pair_of(i, g, p)
        if "".join(w for w, _ in g) != "".join(w for w, _ in p):
            raise InputError(f"sentence {i}: gold and prediction hold different characters")
        gs = {(span, t) for span, (_, t) in zip(word_spans(w for w, _ in g), g)}
        ps = {(span, t) for span, (_, t) in zip(word_spans(w for w, _ in p), p)}
        n_gold, n_pred, n_ok = n_gold + len(gs), n_pred + len(ps), n_ok + len(gs & ps)
    _check_words(n_gold)
    prec, rec = _ratio(n_ok, n_pred), _ratio(n_ok, n_gold)
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}
