"""Hashed character-window features for B/M/E/S tagging, computed for whole batches of texts at once.

Each character position gets one feature per template: the (width-normalised) characters at
offsets -2..2, the bigrams around it, a trigram, the character types of the window (digit, Latin,
Han, Chinese numeral, date/unit character, punctuation, other), reduplication flags and, when a
lexicon is given (a `SpanIndex` of width-normalised words), the lengths of the longest lexicon
words that begin, end and cover the position and its neighbours; an external dictionary (say
jieba's word list) adds the same templates again, weighted on their own, as pkuseg and THULAC do, and
so does a pseudo-lexicon of accessor-variety words from raw text (`llmlab.text.accessor`).
A template id and its values are hashed into a 64-bit key (`llmlab.text.hashindex` maps keys to rows).
Training materialises every key (`padded_keys`); cutting makes, looks up and adds up each
character's keys in one compiled pass (`emission_scores`), the same sums without the key array.
Changing any template changes every key: bump `FEATURE_SET` so old models fail to load clearly.
"""

from __future__ import annotations

import functools

import numpy as np

from llmlab.core.jit import interpreting, jit
from llmlab.text.hashindex import FeatureIndex, probe
from llmlab.text.lexmatch import SpanIndex

BOS_CODE, EOS_CODE = 0x110001, 0x110002  # beyond Unicode, so never a real character
PAD = 2  # window half-width
FEATURE_SET = 2  # version of the templates below; saved with each model
BASE_TEMPLATES = 14  # window templates per character
SPAN_TEMPLATES = 7  # templates per lexicon (training words, external dictionary, AV pseudo-words)

OTHER, DIGIT, LATIN, HAN, NUMERAL, DATE, PUNCT, RARE = range(8)
_NUMERALS = "〇一二三四五六七八九十百千万亿零两几半"
_DATE = "年月日时分秒点号"
_PUNCT = "，。、；：？！“”‘’（）《》〈〉【】『』「」—…·－～"

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_SHIFT21 = np.uint64(21)


@functools.cache
def type_table() -> np.ndarray:
    """Character type for every BMP code point (uint8, 65536 entries, read-only); built on first use,
    not at import, and shared."""
    t = np.full(0x10000, OTHER, dtype=np.uint8)
    t[0x4E00:0xA000] = HAN
    t[0x3400:0x4DC0] = HAN
    t[ord("0") : ord("9") + 1] = DIGIT
    t[ord("A") : ord("Z") + 1] = LATIN
    t[ord("a") : ord("z") + 1] = LATIN
    for lo, hi in ((33, 48), (58, 65), (91, 97), (123, 127)):
        t[lo:hi] = PUNCT
    for chars, kind in ((_PUNCT, PUNCT), (_NUMERALS, NUMERAL), (_DATE, DATE)):
        t[[ord(c) for c in chars]] = kind
    t.flags.writeable = False
    return t


@jit
def _width_normalised(x: np.uint64) -> np.uint64:
    """Full-width ASCII forms -> ASCII, U+3000 -> space; other code points as they are."""
    if 0xFF01 <= x <= 0xFF5E:
        return x - np.uint64(0xFEE0)
    return np.uint64(0x20) if x == 0x3000 else x


@jit
def _type_of(x: np.uint64, table: np.ndarray) -> np.uint64:
    return np.uint64(table[x]) if x < 0x10000 else np.uint64(RARE)


@jit
def _normalised_codes(raw: np.ndarray) -> np.ndarray:
    out = np.empty(raw.shape[0], np.uint64)
    for i in range(raw.shape[0]):
        out[i] = _width_normalised(np.uint64(raw[i]))
    return out


@jit
def _types(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    out = np.empty(codes.shape[0], np.uint64)
    for i in range(codes.shape[0]):
        out[i] = _type_of(codes[i], table)
    return out


def codes_of(text: str) -> np.ndarray:
    """Width-normalised code points as uint64 (full-width ASCII forms -> ASCII, U+3000 -> space).

    >>> codes_of("Ａ1中").tolist()
    [65, 49, 20013]
    """
    return _normalised_codes(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))


def types_of(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Character types for codes (astral-plane characters are RARE).

    >>> types_of(codes_of("1a中二年，😀"), type_table()).tolist()
    [1, 2, 3, 4, 5, 6, 7]
    """
    codes = np.asarray(codes, dtype=np.uint64)
    return _types(codes.ravel(), table).reshape(codes.shape)


@jit
def _mix(value: np.uint64, template: int) -> np.uint64:
    h = value * _M1 + np.uint64(template + 1) * _M2
    h ^= h >> np.uint64(31)
    h *= _M3
    h ^= h >> np.uint64(29)
    return h | np.uint64(1)


@jit
def _mix_all(values: np.ndarray, first: int) -> np.ndarray:
    out = np.empty_like(values)
    for t in range(values.shape[0]):
        for j in range(values.shape[1]):
            out[t, j] = _mix(values[t, j], first + t)
    return out


def mix(values: np.ndarray, first: int = 0) -> np.ndarray:
    """64-bit keys for (T, n) uint64 values whose row index plus `first` is the template id; never 0
    (0 = empty).

    >>> keys = mix(np.array([[7, 7], [7, 8]], dtype=np.uint64))
    >>> bool(keys[0, 0] == keys[0, 1]), bool(keys[0, 0] != keys[1, 0]), bool((keys != 0).all())
    (True, True, True)
    """
    return _mix_all(np.ascontiguousarray(values, dtype=np.uint64), first)


def feature_keys(text: str, table: np.ndarray, lexicon: SpanIndex | None = None,
                 dictionary: SpanIndex | None = None, pseudo: SpanIndex | None = None) -> np.ndarray:
    """(n, T) uint64 feature keys, one per template, for each character of `text`.

    >>> keys = feature_keys("中国人", type_table())
    >>> keys.shape, bool((feature_keys("人", type_table())[0] != keys[2]).any())  # context differs
    ((3, 14), True)
    """
    return feature_keys_many([text], table, lexicon, dictionary, pseudo)


def feature_keys_many(texts: list[str], table: np.ndarray, lexicon: SpanIndex | None = None,
                      dictionary: SpanIndex | None = None, pseudo: SpanIndex | None = None) -> np.ndarray:
    """`feature_keys` of several texts at once (rows concatenated): each text is padded on its own,
    so a text's keys do not depend on its neighbours; one numpy pass serves a whole batch.

    >>> many = feature_keys_many(["中国", "人"], type_table())
    >>> one = np.concatenate([feature_keys("中国", type_table()), feature_keys("人", type_table())])
    >>> bool((many == one).all())
    True
    """
    keys, cols = padded_keys(texts, table, lexicon, dictionary, pseudo)
    return keys[:, cols].T.copy()


@jit
def _char_keys(c: np.ndarray, t: np.ndarray, spans: np.ndarray, j: int, out: np.ndarray) -> None:
    """The keys of scored column `j` (padded position j + PAD) into `out` (T,): BASE_TEMPLATES window
    templates over the padded codes `c` and types `t`, then SPAN_TEMPLATES per lexicon in `spans`
    (k, len(c), 4)."""
    s21, ten = np.uint64(21), np.uint64(10)
    w0, w1, w2, w3, w4 = c[j], c[j + 1], c[j + 2], c[j + 3], c[j + 4]
    y0, y1, y2, y3, y4 = t[j], t[j + 1], t[j + 2], t[j + 3], t[j + 4]
    v = (w0, w1, w2, w3, w4,  # the characters at offsets -2..2
         (w0 << s21) | w1, (w1 << s21) | w2, (w2 << s21) | w3, (w3 << s21) | w4,  # the bigrams
         (w1 << s21) | w3, (((w1 << s21) | w2) << s21) | w3,  # the skip bigram and the centred trigram
         (y1 * ten + y2) * ten + y3, (((y0 * ten + y1) * ten + y2) * ten + y3) * ten + y4,  # type windows
         np.uint64(w2 == w1) + np.uint64(2) * np.uint64(w2 == w3) + np.uint64(4) * np.uint64(w2 == w0))
    for r in range(BASE_TEMPLATES):
        out[r] = _mix(v[r], r)
    for k in range(spans.shape[0]):
        sp = spans[k]
        sb, se, sm, sf = np.uint64(sp[j + PAD, 0]), np.uint64(sp[j + PAD, 1]), np.uint64(sp[j + PAD, 2]), \
            np.uint64(sp[j + PAD, 3])
        before, after = np.uint64(sp[j + PAD - 1, 1]), np.uint64(sp[j + PAD + 1, 0])
        u = ((sb * ten + se) * ten + sm,  # the longest words beginning, ending at and covering it
             (sb << s21) | w2, (se << s21) | w2, (sm << s21) | w2,  # each with the character
             sb * ten + sf,  # the begin length with its frequency bin
             before * ten + after,  # a word ending just before, a word beginning just after: B/S vs M/E
             ((sb * ten + se) * ten + before) * ten + after)
        base = BASE_TEMPLATES + SPAN_TEMPLATES * k
        for r in range(SPAN_TEMPLATES):
            out[base + r] = _mix(u[r], base + r)


@jit
def _window_keys(c: np.ndarray, t: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(T, m) keys of every column (m = len(c) - 2 * PAD), `_char_keys` for each."""
    m = c.shape[0] - 2 * PAD
    out = np.empty((BASE_TEMPLATES + SPAN_TEMPLATES * spans.shape[0], m), np.uint64)
    row = np.empty(out.shape[0], np.uint64)
    for j in range(m):
        _char_keys(c, t, spans, j, row)
        out[:, j] = row
    return out


@jit
def _scored(c: np.ndarray, t: np.ndarray, spans: np.ndarray, cols: np.ndarray, table: np.ndarray, shift: np.uint64,
            missing: int, weights: np.ndarray) -> np.ndarray:
    """(len(cols), k) sums of the `weights` rows of each scored column's keys (rows found in a
    `FeatureIndex`'s table), templates added in order, without a key array."""
    out = np.zeros((cols.shape[0], weights.shape[1]), np.float64)
    keys = np.empty(BASE_TEMPLATES + SPAN_TEMPLATES * spans.shape[0], np.uint64)
    for i in range(cols.shape[0]):
        _char_keys(c, t, spans, cols[i], keys)
        for r in range(keys.shape[0]):
            row = probe(table, shift, keys[r], missing)
            for j in range(weights.shape[1]):
                out[i, j] += weights[row, j]
    return out


@jit
def _layout(raw: np.ndarray, lens: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded codes and types of texts whose code points `raw` are concatenated (`lens` each): each
    text width-normalised as by `codes_of`, between PAD BOS and PAD EOS slots (types 8 and 9), and
    the column (padded position - PAD) of each real character."""
    size = raw.shape[0] + 2 * PAD * lens.shape[0]
    c, t = np.empty(size, np.uint64), np.empty(size, np.uint64)
    cols = np.empty(raw.shape[0], np.int64)
    p = i = 0
    for n in lens:
        for _ in range(PAD):
            c[p], t[p] = BOS_CODE, 8
            p += 1
        for _ in range(n):
            x = _width_normalised(np.uint64(raw[i]))
            c[p], t[p] = x, _type_of(x, table)
            cols[i] = p - PAD
            p += 1
            i += 1
        for _ in range(PAD):
            c[p], t[p] = EOS_CODE, 9
            p += 1
    return c, t, cols


def _padded(texts: list[str], table: np.ndarray, lexicon: SpanIndex | None, dictionary: SpanIndex | None,
            pseudo: SpanIndex | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Padded codes, types, lexicon spans (one (size, 4) block per lexicon given, in the order
    lexicon, dictionary, pseudo) and the column of each real character."""
    raw = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    c, t, cols = _layout(raw, np.array([len(x) for x in texts], dtype=np.int64), table)
    matchers = [x for x in (lexicon, dictionary, pseudo) if x is not None]  # padding never matches a word
    spans = np.zeros((len(matchers), len(c), 4), np.int64)
    for matcher, out in zip(matchers, spans):
        matcher.spans(c, out)
    return c, t, spans, cols


def padded_keys(texts: list[str], table: np.ndarray, lexicon: SpanIndex | None = None,
                dictionary: SpanIndex | None = None, pseudo: SpanIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T, m) keys over the padded layout (each text with PAD slots either side; m counts the pads
    between texts too) and the column of each real character. The fast path: score all m columns,
    then pick the real ones. `lexicon` (training words, with jackknife folds in training),
    `dictionary` (an external word list) and `pseudo` (accessor-variety pseudo-words,
    `llmlab.text.accessor`) feed separate templates, in that order among those given."""
    c, t, spans, cols = _padded(texts, table, lexicon, dictionary, pseudo)
    return _window_keys(c, t, spans), cols


def emission_scores(texts: list[str], table: np.ndarray, index: FeatureIndex, weights: np.ndarray,
                    lexicon: SpanIndex | None = None, dictionary: SpanIndex | None = None,
                    pseudo: SpanIndex | None = None) -> np.ndarray:
    """(characters of all texts, weights' columns) float64: for each character, the `weights` rows of
    its `padded_keys` (rows found by `index`; an unknown key's is the zero row ``index.missing``) added
    template by template, each character's keys made and looked up in one compiled pass. Run
    interpreted (`llmlab.core.jit.interpreted`), it takes the key array's way instead, the same sums
    in the same order: `padded_keys` and a binary search over the index's sorted keys need no hash
    table, which a one-line job would spend more time filling than using."""
    c, t, spans, cols = _padded(texts, table, lexicon, dictionary, pseudo)
    if interpreting():
        rows = index.lookup(_window_keys(c, t, spans)[:, cols])  # (T, characters)
        out = np.zeros((len(cols), weights.shape[1]))
        for r in rows:  # float32 rows added into float64 one template at a time, as `_scored` does
            out += weights[r]
        return out
    return _scored(c, t, spans, cols, index.table, index.shift, index.missing, weights)
