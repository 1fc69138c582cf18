"""ARPA back-off files, the text format SRILM, KenLM and most toolkits read and write.

Each line of section ``\\k-grams:`` is ``log10 p(w | h)  h w  [log10 bow(h w)]``. A reader scores with
``p(w | h) = p_arpa(h w)`` when ``h w`` is listed, else ``bow(h) * p(w | h minus its first word)``.
Our interpolated models already have that shape (the back-off weight of h is its interpolation
weight), so the file holds exactly the model's probabilities: `kenlm.Model` gives the same log10
sentence scores (tested), and reading the file back gives the same model.

ARPA has no field for the unit a model counts in; `write_arpa` puts it in a comment line before
``\\data\\`` (``# llmlab n-gram model: unit=char``, a form KenLM accepts) and `read_arpa` reads it
back, so a character model stays one. Files without it are word models.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from llmlab.classic.ngram import NgramConfig, NgramModel
from llmlab.classic.ngram_counts import NgramTables, lookup
from llmlab.classic.smoothing import NgramParams, uniform_base
from llmlab.classic.vocab import BOS, BOS_ID, EOS, UNK, Vocab
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_path, check_readable, read_lines

log = logging.getLogger(__name__)
LOG_ZERO = -99.0  # ARPA's "probability 0" (and <s>, which is never predicted); exactly this value
MISSING_UNK = -100.0  # log10 p of an unknown word when an ARPA file lists no <unk> (KenLM's substitute)
UNIT_COMMENT = "# llmlab n-gram model: unit="


def seen_probs(tables: NgramTables, params: NgramParams) -> list[np.ndarray]:
    """p(w | h) of every listed n-gram ``h w``, for each order (the levels applied bottom-up)."""
    suffix = tables.suffixes()
    out = [np.ones(1)]
    for k in range(1, tables.order + 1):
        lower = params.base[tables.word(1)] if k == 1 else out[k - 1][suffix[k]]
        if params.interpolate[k]:
            out.append(params.num[k] + params.bow[k - 1][tables.context(k)] * lower)
        else:
            out.append(params.num[k].copy())
    return out


def _log10(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x > 0, np.log10(np.maximum(x, 1e-300)), LOG_ZERO)


def ngram_strings(tables: NgramTables, tokens: tuple[str, ...]) -> list[list[str]]:
    """The space-joined words of every n-gram of every order (order 0: the empty string)."""
    out: list[list[str]] = [[""], list(tokens)]
    for k in range(2, tables.order + 1):
        prev = out[k - 1]
        out.append([prev[c] + " " + tokens[w] for c, w in zip(tables.context(k).tolist(), tables.word(k).tolist())])
    return out


def write_arpa(model: NgramModel, path: str | Path) -> None:
    """Write `model` as an ARPA file (atomically). A token that is empty or holds whitespace is refused
    before anything is written: an ARPA line's fields are cut at whitespace, so neither `read_arpa` nor
    KenLM could read the file back."""
    for token in model.vocab.tokens:
        if not token or any(ch.isspace() for ch in token):
            raise InputError(f"the model holds the token {token!r}, which an ARPA file cannot: its fields are cut "
                             "at whitespace, so it would be read back as other words (train on text split into "
                             "tokens without whitespace)")
    t, prm = model.tables, model.params
    probs = seen_probs(t, prm)
    names = ngram_strings(t, model.vocab.tokens)
    lines = [UNIT_COMMENT + model.config.unit, "", "\\data\\"]
    lines += [f"ngram {k}={len(t.keys[k])}" for k in range(1, t.order + 1)]
    for k in range(1, t.order + 1):
        lines += ["", f"\\{k}-grams:"]
        lp = _log10(probs[k])
        if k == 1:
            lp[BOS_ID] = LOG_ZERO
        has_bow = k < t.order
        bw = _log10(prm.bow[k]) if has_bow else None
        for i, name in enumerate(names[k]):
            if has_bow:
                lines.append(f"{lp[i]:.7g}\t{name}\t{bw[i]:.7g}")
            else:
                lines.append(f"{lp[i]:.7g}\t{name}")
    lines += ["", "\\end\\", ""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def _parse(path: Path) -> tuple[int, str, list[list[tuple[float, list[str], float]]]]:
    """Order, unit and the entries of each section; any text before ``\\data\\`` is a comment."""
    sections: list[list[tuple[float, list[str], float]]] = [[]]
    declared: dict[int, int] = {}
    k, unit, in_data = 0, "word", False
    for lineno, raw in enumerate(read_lines(path, "ARPA file"), 1):
        line = raw.strip()
        if not in_data:
            in_data = line == "\\data\\"
            if line.startswith(UNIT_COMMENT):
                unit = line[len(UNIT_COMMENT):]
            continue
        if not line:
            continue
        if line == "\\end\\":
            break
        try:
            if line.startswith("ngram ") and k == 0:
                a, _, b = line[6:].partition("=")
                declared[int(a)] = int(b)
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                k = int(line[1:-7])
                if k != len(sections):
                    raise InputError(f"{path}:{lineno}: section {line} is out of order")
                sections.append([])
                continue
            parts = line.split()
            if k == 0 or len(parts) not in (k + 1, k + 2):
                raise ValueError
            bow = float(parts[k + 1]) if len(parts) == k + 2 else 0.0
            sections[k].append((float(parts[0]), parts[1 : k + 1], bow))
        except ValueError:
            want = "'ngram K=COUNT'" if k == 0 else f"'log10p w1..w{k} [bow]'"
            raise InputError(f"{path}:{lineno}: expected {want}, got {line[:80]!r}") from None
    if not declared or len(sections) - 1 != max(declared):
        raise InputError(f"{path}: not an ARPA file (\\data\\ header and n-gram sections do not match)")
    for k, n in declared.items():
        if len(sections[k]) != n:
            raise InputError(f"{path}: header says {n} {k}-grams, file has {len(sections[k])}")
    return max(declared), unit, sections


def read_arpa(path: str | Path) -> NgramModel:
    """Load an ARPA file as an `NgramModel` (scoring and sampling; it has no counts to retrain)."""
    path = check_readable(path, "ARPA file")
    n, unit, sections = _parse(path)
    words = [e[1][0] for e in sections[1]]
    vocab = Vocab((UNK, BOS, EOS, *[w for w in dict.fromkeys(words) if w not in (UNK, BOS, EOS)]))
    V = len(vocab)
    keys, num, bow = [np.zeros(1, dtype=np.int64)], [np.zeros(0)], [np.zeros(1)]
    p1, b1 = np.zeros(V), np.ones(V)
    for lp, (w,), b in sections[1]:
        i = vocab.id(w)
        p1[i], b1[i] = (0.0 if lp == LOG_ZERO else 10.0**lp), 10.0**b
    p1[BOS_ID] = 0.0
    if UNK not in words:  # KenLM's rule: an unknown word then gets log10 p = -100, not zero
        log.warning("%s has no %s: unknown words get log10 probability %s, as in KenLM", path, UNK, MISSING_UNK)
        p1[vocab.id(UNK)] = 10.0**MISSING_UNK
    keys.append(np.arange(V, dtype=np.int64))
    num.append(p1)
    bow.append(b1)
    for k in range(2, n + 1):
        ids = np.array([vocab.encode(e[1]) for e in sections[k]], dtype=np.int64).reshape(-1, k)
        ctx = np.zeros(len(ids), dtype=np.int64)
        for j in range(k - 1):
            ctx = lookup(keys[j + 1], ctx * V + ids[:, j])
            if (ctx < 0).any():
                bad = " ".join(sections[k][int(np.flatnonzero(ctx < 0)[0])][1])
                raise InputError(f"{path}: the context of {k}-gram {bad!r} is not listed as a {k - 1}-gram")
        q = ctx * V + ids[:, k - 1]
        order = np.argsort(q, kind="stable")
        keys.append(q[order])
        lp = np.array([e[0] for e in sections[k]])[order]
        num.append(np.where(lp == LOG_ZERO, 0.0, 10.0**lp))
        bow.append(10.0 ** np.array([e[2] for e in sections[k]])[order])
    tables = NgramTables(V, tuple(keys))
    params = NgramParams(uniform_base(V), tuple(num), tuple(bow[:n]), (False,) * (n + 1))
    return NgramModel(NgramConfig(order=n, smoothing="arpa", unit=unit), vocab, tables, params, None)


def arpa_sentence_log10(model: NgramModel, sentence: list[str]) -> float:
    """log10 p(<s> sentence </s>), the number `kenlm.Model.score(" ".join(sentence))` reports."""
    return model.sentence_logprob(sentence) / math.log(10)
