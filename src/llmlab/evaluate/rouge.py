"""ROUGE-N, ROUGE-L and ROUGE-Lsum (Lin 2004) with precision, recall and F, giving rouge-score's numbers on
English (its tokenizer, its Porter stemmer, its summary-level LCS), and real numbers on Chinese.

rouge-score keeps only ``[a-z0-9]`` runs, so Chinese text becomes no tokens and scores a silent 0. Here
the tokenization is chosen per pair: ``auto`` uses rouge-score's rules unless the text holds CJK
characters, then one token per CJK character (or the words of a segmenter you pass, ``cut(str) ->
list[str]``). A text with letters or digits that tokenizes to nothing is an error, never a 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from llmlab.core.errors import InputError
from llmlab.evaluate.porter import porter_stem

TOKENIZE_MODES = ("auto", "english", "char", "words")
_EN_TOKEN = re.compile(r"[a-z0-9]+")
_HAN_KANA = r"\u2e80-\u2fdf\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK = re.compile(f"[{_HAN_KANA}\u3000-\u303f\uff00-\uffef]")  # ideographs, kana, CJK punctuation, full width
_CJK_TOKEN = re.compile(f"[{_HAN_KANA}]|[^\\W_{_HAN_KANA}]+")  # one token per ideograph/kana; other words whole


class Score(NamedTuple):
    precision: float
    recall: float
    fmeasure: float


@dataclass(frozen=True)
class RougeConfig:
    rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")  # rougeN (N=1..9), rougeL, rougeLsum
    use_stemmer: bool = False  # Porter-stem English tokens longer than 3 letters (rouge-score's rule)
    tokenize: str = "auto"  # auto (CJK detected -> char or segmenter words), english, char, words (needs cut)

    def __post_init__(self):
        if isinstance(self.rouge_types, str) or not self.rouge_types:
            raise InputError(f"rouge_types must be a non-empty tuple, got {self.rouge_types!r}")
        for t in self.rouge_types:
            if t not in ("rougeL", "rougeLsum") and not re.fullmatch(r"rouge[1-9]", t):
                raise InputError(f"unknown rouge type {t!r}: use rouge1..rouge9, rougeL or rougeLsum")
        if self.tokenize not in TOKENIZE_MODES:
            raise InputError(f"tokenize must be one of {TOKENIZE_MODES}, got {self.tokenize!r}")


def fmeasure(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def has_cjk(text: str) -> bool:
    """Whether `text` holds Chinese or Japanese characters, CJK punctuation or full-width forms.

    >>> has_cjk("abc"), has_cjk("今天 ok")
    (False, True)
    """
    return _CJK.search(text) is not None


def ngram_score(target: list[str], pred: list[str], n: int) -> Score:
    """ROUGE-N: clipped n-gram overlap over prediction (P) and target (R) n-gram counts.

    >>> ngram_score("the cat sat".split(), "the cat ran".split(), 1)
    Score(precision=0.6666666666666666, recall=0.6666666666666666, fmeasure=0.6666666666666666)
    """
    t = Counter(zip(*(target[i:] for i in range(n))))
    p = Counter(zip(*(pred[i:] for i in range(n))))
    inter = sum(min(t[g], p[g]) for g in t.keys() & p.keys())
    prec = inter / max(max(len(pred) - n + 1, 0), 1)
    rec = inter / max(max(len(target) - n + 1, 0), 1)
    return Score(prec, rec, fmeasure(prec, rec))


def lcs_rows(a: Sequence, b: Sequence) -> list[int]:
    """Bit-parallel LCS over `b` (Crochemore et al. 2001): after each token of `a`, a bit vector V_i
    whose zero bits below j count the LCS of a[:i] and b[:j].

    >>> [bin(v) for v in lcs_rows("ab", "ba")]
    ['0b11', '0b1', '0b10']
    """
    masks: dict = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v, rows = full, [full]
    for tok in a:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
        rows.append(v)
    return rows


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence.

    >>> lcs_length("ABCBDAB", "BDCABA")
    4
    """
    if not a or not b:
        return 0
    return len(b) - lcs_rows(a, b)[-1].bit_count()


def lcs_score(target: list[str], pred: list[str]) -> Score:
    """ROUGE-L: LCS length over prediction length (P) and target length (R)."""
    if not target or not pred:
        return Score(0.0, 0.0, 0.0)
    n = lcs_length(target, pred)
    prec, rec = n / len(pred), n / len(target)
    return Score(prec, rec, fmeasure(prec, rec))


def lcs_indices(ref: list[str], can: list[str]) -> list[int]:
    """Indices into `ref` of one LCS, read back with rouge-score's tie-breaking; table cells come from
    the bit-parallel rows: T[i][j] = j - popcount(V_i & (2^j - 1)).

    >>> lcs_indices("a b c d".split(), "a c x d".split())
    [0, 2, 3]
    """
    rows = lcs_rows(ref, can)
    i, j, out = len(ref), len(can), []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            i, j = i - 1, j - 1
            continue
        low = (1 << (j - 1)) - 1
        left = j - 1 - (rows[i] & low).bit_count()  # T[i][j-1]
        up = j - (rows[i - 1] & (low << 1 | 1)).bit_count()  # T[i-1][j]
        if left > up:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def summary_lcs_score(ref_sents: list[list[str]], can_sents: list[list[str]]) -> Score:
    """ROUGE-Lsum: union LCS of each reference sentence against all candidate sentences, each token
    counted at most as often as it occurs on both sides (ROUGE-1.5.5's rule)."""
    m, n = sum(map(len, ref_sents)), sum(map(len, can_sents))
    if not ref_sents or not can_sents or not m or not n:
        return Score(0.0, 0.0, 0.0)
    cnt_r = Counter(t for s in ref_sents for t in s)
    cnt_c = Counter(t for s in can_sents for t in s)
    hits = 0
    for r in ref_sents:
        union = sorted(set().union(*(lcs_indices(r, c) for c in can_sents)))
        for t in (r[i] for i in union):
            if cnt_c[t] > 0 and cnt_r[t] > 0:
                hits += 1
                cnt_c[t] -= 1
                cnt_r[t] -= 1
    prec, rec = hits / n, hits / m
    return Score(prec, rec, fmeasure(prec, rec))


def _english_drops_all(text: str) -> bool:
    return _EN_TOKEN.search(text.lower()) is None and any(c.isalnum() for c in text)


class RougeScorer:
    """Scores (target, prediction) pairs; owns its stem cache and optional segmenter.

    >>> RougeScorer(RougeConfig(rouge_types=("rouge1",))).score("今天天气好", "今天天气不好")["rouge1"].recall
    1.0
    """

    def __init__(self, cfg: RougeConfig | None = None, cut: Callable[[str], list[str]] | None = None):
        self.cfg = cfg or RougeConfig()
        if self.cfg.tokenize == "words" and cut is None:
            raise InputError("tokenize='words' needs a segmenter: pass cut=callable(str) -> list[str]")
        self.cut = cut
        self._stems: dict[str, str] = {}

    def _stem(self, tok: str) -> str:
        s = self._stems.get(tok)
        if s is None:
            s = self._stems[tok] = porter_stem(tok)
        return s

    def mode_for(self, *texts: str) -> str:
        """The tokenization `auto` resolves to for these texts: CJK text, or text whose letters and digits
        the English rules would all drop (Greek, full-width Latin), goes by characters (or segmenter words).

        >>> s = RougeScorer()
        >>> s.mode_for("a cat"), s.mode_for("a cat", "一只猫"), s.mode_for("αβγ")
        ('english', 'char', 'char')
        """
        if self.cfg.tokenize != "auto":
            return self.cfg.tokenize
        if any(has_cjk(t) or any(_english_drops_all(line) for line in t.split("\n")) for t in texts):
            return "words" if self.cut is not None else "char"
        return "english"

    def tokenize(self, text: str, mode: str) -> list[str]:
        """Tokens of `text` under `mode`; raises when letters or digits would all be dropped."""
        if mode == "english":
            toks = _EN_TOKEN.findall(text.lower())
        elif mode == "char":
            toks = _CJK_TOKEN.findall(text.lower())
        else:
            toks = [w.strip().lower() for w in self.cut(text)]
            toks = [w for w in toks if re.search(r"[^\W_]", w)]
        if self.cfg.use_stemmer:  # English words in any mode, as rouge-score stems them
            toks = [self._stem(t) if len(t) > 3 and _EN_TOKEN.fullmatch(t) else t for t in toks]
        if not toks and any(c.isalnum() for c in text):
            raise InputError(f"tokenize={mode!r} turns {text[:40]!r} into no tokens, so it would score 0: "
                             "use tokenize='char' (or 'words' with a segmenter) for this language")
        return toks

    def score(self, target: str, prediction: str) -> dict[str, Score]:
        """One Score per configured rouge type."""
        for name, text in (("target", target), ("prediction", prediction)):
            if not isinstance(text, str):
                raise InputError(f"{name} must be a string, got {type(text).__name__}")
        mode = self.mode_for(target, prediction)
        out: dict[str, Score] = {}
        t_toks = p_toks = None
        for rt in self.cfg.rouge_types:
            if rt == "rougeLsum":
                t_sents = [self.tokenize(s, mode) for s in target.split("\n") if s]
                p_sents = [self.tokenize(s, mode) for s in prediction.split("\n") if s]
                out[rt] = summary_lcs_score(t_sents, p_sents)
                continue
            if t_toks is None:
                t_toks, p_toks = self.tokenize(target, mode), self.tokenize(prediction, mode)
            out[rt] = lcs_score(t_toks, p_toks) if rt == "rougeL" else ngram_score(t_toks, p_toks, int(rt[5:]))
        return out

    def score_multi(self, targets: Sequence[str], prediction: str) -> dict[str, Score]:
        """Per type, the Score of the target with the best F (the first on ties), as rouge-score does."""
        if isinstance(targets, str) or not targets:
            raise InputError("targets must be a non-empty list of strings")
        scores = [self.score(t, prediction) for t in targets]
        return {k: max(scores, key=lambda s: s[k].fmeasure)[k] for k in self.cfg.rouge_types}


def corpus_rouge(preds: Sequence[str], refs: Sequence[Sequence[str | None]], cfg: RougeConfig | None = None,
                 cut: Callable[[str], list[str]] | None = None) -> dict[str, Score]:
    """Mean P, R and F over pairs; `refs` is a list of reference streams as long as `preds` (a None
    entry: fewer references there, as for BLEU and chrF).

    >>> corpus_rouge(["a b", "c d"], [["a b", "c e"]], RougeConfig(rouge_types=("rouge1",)))["rouge1"].fmeasure
    0.75
    """
    from llmlab.evaluate.bleu import check_streams

    preds, refs = check_streams(preds, refs)
    if not preds:
        raise InputError("need at least one prediction, got none")
    scorer = RougeScorer(cfg, cut)
    sums = {k: [0.0, 0.0, 0.0] for k in scorer.cfg.rouge_types}
    for i, pred in enumerate(preds):
        for k, s in scorer.score_multi([stream[i] for stream in refs if stream[i] is not None], pred).items():
            acc = sums[k]
            acc[0], acc[1], acc[2] = acc[0] + s.precision, acc[1] + s.recall, acc[2] + s.fmeasure
    return {k: Score(*(v / len(preds) for v in acc)) for k, acc in sums.items()}
