"""BM25 retrieval over passages (topic 3: the "R" of retrieval-augmented generation). Torch-free.

Documents are cut into passages (`split_passages`), each passage into terms (`cjk_terms` by default,
or any ``callable(str) -> list[str]``), and the terms go into an inverted index: for each term the
passages that hold it and how often, as numpy arrays (CSR: ``indptr``, ``post_doc``, ``post_tf``). A
query is scored by adding up the postings of its terms into one score array (Okapi BM25):

    score(q, p) = sum over query terms t of idf(t) * (tf * (k1 + 1) / (tf + k1 * (1 - b + b * |p| / avgdl)) + delta)

where tf is t's count in passage p (terms outside p add nothing), |p| the passage's length in terms
and a query term given twice counts twice. The idf is a parameter of the one scoring function:
``okapi`` is rank_bm25's BM25Okapi (log((N - n + 0.5) / (n + 0.5)), which is negative for a term in
more than half of the N passages; those get ``epsilon`` times the mean idf instead), ``lucene`` is
log(1 + (N - n + 0.5) / (n + 0.5)) (never negative), ``plus`` is BM25+'s log((N + 1) / n), used with
``delta`` 1 (Lv and Zhai's lower bound for a term that is present, however long the passage; rank_bm25's
BM25Plus adds it to passages without the term too).

>>> index = BM25Index.build(["北京是中国的首都。", "上海是中国最大的城市。", "长城在北京以北。"])
>>> [(h.index, h.text) for h in index.search("中国的首都", k=2)]
[(0, '北京是中国的首都。'), (1, '上海是中国最大的城市。')]
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llmlab.core.config import config_from_dict
from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_folder,
    atomic_write_json,
    existing_folder,
    read_json,
    read_safetensors,
    write_safetensors,
)
from llmlab.generate.passages import TOKENIZERS, check_passage_size, split_passages

log = logging.getLogger(__name__)

FORMAT = "llmlab-bm25-1"
INDEX_FILES = ("index.json", "postings.safetensors")  # what a save writes (and may replace)
IDF_KINDS = ("okapi", "lucene", "plus")


@dataclass(frozen=True)
class IndexConfig:
    k1: float = 1.5  # term-frequency saturation: how fast repeats of a term stop adding score
    b: float = 0.75  # length normalisation: 0 = none, 1 = scores scale fully with passage length / average
    epsilon: float = 0.25  # okapi idf: a term in over half the passages gets epsilon * mean idf (rank_bm25's)
    idf: str = "okapi"  # okapi (rank_bm25's BM25Okapi), lucene (never negative) or plus (BM25+, with delta 1)
    delta: float = 0.0  # added to each present term's tf part (BM25+'s lower bound; 0 = plain BM25)
    passage_chars: int = 300  # cut documents into passages of at most this many characters (0 = whole documents)
    overlap_chars: int = 50  # characters a passage shares with the one before; < passage_chars (unless that is 0)
    tokenizer: str = "cjk"  # terms: cjk (CJK characters + bigrams, lowercased words) or cut (llmlab.text.cut)

    # settings that only some indexes use (`llmlab.core.config.check_applies`), checked for the flags given on the
    # command line (`llmlab rag index`); the config takes them all, so an index saved with one still loads
    APPLIES = {
        "epsilon": (lambda c: c.idf == "okapi", "to the okapi idf (the floor of a term in over half the passages), "
                    "not {cfg.idf}"),
        "overlap_chars": (lambda c: c.passage_chars > 0, "when documents are cut into passages (--passage-chars > 0)"),
    }

    def __post_init__(self):
        if not 0 <= self.k1 < np.inf:
            raise InputError(f"k1 must be a finite number >= 0, got {self.k1}")
        if not 0 <= self.b <= 1:
            raise InputError(f"b must be in [0, 1], got {self.b}")
        if not (np.isfinite(self.epsilon) and np.isfinite(self.delta) and self.delta >= 0):
            raise InputError(f"epsilon must be finite and delta finite and >= 0, got {self.epsilon}, {self.delta}")
        if self.idf not in IDF_KINDS:
            raise InputError(f"idf must be one of {IDF_KINDS}, got {self.idf!r}")
        check_passage_size(self.passage_chars, self.overlap_chars, "passage_chars", "overlap_chars")
        if self.tokenizer not in TOKENIZERS and self.tokenizer != "custom":
            raise InputError(f"tokenizer must be one of {tuple(TOKENIZERS)}, got {self.tokenizer!r}")


@dataclass(frozen=True)
class Hit:
    index: int  # the passage's number in the index
    score: float  # its BM25 score for the query
    text: str  # the passage
    doc: int  # the document it was cut from (its position in the documents given to `build`)
    start: int  # character offsets of the passage in that document
    end: int


def idf_weights(df: np.ndarray, n: int, kind: str = "okapi", epsilon: float = 0.25) -> np.ndarray:
    """Inverse document frequency of terms found in `df` of `n` passages each (see the module docstring).

    >>> idf_weights(np.array([1, 3]), 4).round(3)  # log(3.5/1.5); log(1.5/3.5) < 0: floored to 0.25 * mean
    array([0.847, 0.   ])
    >>> idf_weights(np.array([1, 3]), 4, "lucene").round(3)
    array([1.204, 0.357])
    """
    df = np.asarray(df, dtype=np.float64)
    if kind == "plus":
        return np.log((n + 1) / df)
    if kind == "lucene":
        return np.log1p((n - df + 0.5) / (df + 0.5))
    idf = np.log(n - df + 0.5) - np.log(df + 0.5)
    if idf.size:
        idf[idf < 0] = epsilon * idf.mean()  # rank_bm25: the mean is over all terms, before the floor
    return idf


def tf_weights(tf: np.ndarray, length: np.ndarray, avgdl: float, k1: float, b: float, delta: float) -> np.ndarray:
    """The tf part of BM25 for postings with term count `tf` in passages of `length` terms.

    >>> tf_weights(np.array([1, 2]), np.array([4, 4]), avgdl=4.0, k1=1.5, b=0.75, delta=0.0).round(3)
    array([1.   , 1.429])
    """
    norm = k1 * (1 - b + b * length / avgdl) if avgdl > 0 else np.full(len(tf), k1)
    return tf * (k1 + 1) / (tf + norm) + delta


def top_k(scores: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the `k` highest scores (of those where `among` is True), best first; ties go to the
    lower index. np.argpartition finds them without sorting the whole array.

    >>> top_k(np.array([1.0, 3.0, 2.0, 3.0]), 3)
    array([1, 3, 2])
    """
    cand = np.flatnonzero(among) if among is not None else np.arange(len(scores))
    if len(cand) > k:
        s = scores[cand]
        kth = s[np.argpartition(-s, k - 1)[k - 1]]
        cand = cand[s >= kth]  # every tie at the boundary, so that the lower indices win below
    return cand[np.lexsort((cand, -scores[cand]))[:k]]


def build_postings(term_lists: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary, indptr, post_doc, post_tf): term ``vocab[t]`` occurs ``post_tf[j]`` times in passage
    ``post_doc[j]`` for j in ``indptr[t]:indptr[t + 1]``, passages in increasing order.

    >>> vocab, indptr, docs, tfs = build_postings([["a", "b", "a"], ["b"]])
    >>> vocab, indptr.tolist(), docs.tolist(), tfs.tolist()
    (['a', 'b'], [0, 1, 3], [0, 0, 1], [2, 1, 1])
    """
    vocab = list(dict.fromkeys(itertools.chain.from_iterable(term_lists)))  # in order of first use
    ids = {t: i for i, t in enumerate(vocab)}
    flat = np.fromiter(map(ids.__getitem__, itertools.chain.from_iterable(term_lists)), dtype=np.int64,
                       count=sum(map(len, term_lists)))
    doc = np.repeat(np.arange(len(term_lists)), [len(terms) for terms in term_lists])
    keys, tf = np.unique(flat * len(term_lists) + doc, return_counts=True)  # sorted by term, then passage
    term, post_doc = np.divmod(keys, max(len(term_lists), 1))
    indptr = np.searchsorted(term, np.arange(len(ids) + 1))
    return vocab, indptr.astype(np.int64), post_doc.astype(np.int64), tf.astype(np.int64)


class BM25Index:
    """Passages with their source spans, and the inverted index that scores them. Make one with
    `build` or `load`; the arrays are read-only in use."""

    def __init__(self, documents: list[str], spans: np.ndarray, vocab: list[str], indptr: np.ndarray,
                 post_doc: np.ndarray, post_tf: np.ndarray, lengths: np.ndarray, config: IndexConfig,
                 tokenize: Callable[[str], list[str]] | None = None):
        self.documents, self.spans, self.config = documents, spans, config  # spans: (P, 3) doc, start, end
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.indptr, self.post_doc, self.post_tf, self.lengths = indptr, post_doc, post_tf, lengths
        if tokenize is None and config.tokenizer == "custom":
            raise InputError("this index was built with a custom tokenizer: pass the same one as tokenize=")
        self.tokenize = tokenize or TOKENIZERS[config.tokenizer]
        n = len(spans)
        self.avgdl = float(lengths.sum()) / n
        self.idf = idf_weights(np.diff(indptr), n, config.idf, config.epsilon)  # (V,)
        self.weights = tf_weights(post_tf, lengths[post_doc], self.avgdl, config.k1, config.b, config.delta)

    @classmethod
    def build(cls, documents: Sequence[str], config: IndexConfig | None = None,
              tokenize: Callable[[str], list[str]] | None = None) -> BM25Index:
        """Index `documents` (cut into passages per `config`); `tokenize` replaces the config's tokenizer
        (the index then saves as "custom", and `load` needs the same callable again)."""
        config = config or IndexConfig()
        if tokenize is not None:
            config = IndexConfig(**{**asdict(config), "tokenizer": "custom"})
        elif config.tokenizer == "custom":
            raise InputError("tokenizer 'custom' needs the callable: pass it as tokenize=")
        fn = tokenize or TOKENIZERS[config.tokenizer]
        documents = list(documents)
        bad = next((i for i, d in enumerate(documents) if not isinstance(d, str)), None)
        if bad is not None:
            raise InputError(f"documents must be strings, got {type(documents[bad]).__name__} at {bad}")
        spans = [(i, s, e) for i, d in enumerate(documents)
                 for s, e in split_passages(d, config.passage_chars, config.overlap_chars)]
        if not spans:
            raise InputError(f"nothing to index: {len(documents)} documents, none with any text")
        terms = [fn(documents[i][s:e]) for i, s, e in spans]
        vocab, indptr, post_doc, post_tf = build_postings(terms)
        lengths = np.array([len(t) for t in terms], dtype=np.int64)
        log.debug("indexed %d documents as %d passages, %d distinct terms", len(documents), len(spans), len(vocab))
        return cls(documents, np.array(spans, dtype=np.int64).reshape(-1, 3), vocab, indptr, post_doc, post_tf,
                   lengths, config, tokenize)

    def __len__(self) -> int:
        return len(self.spans)

    def passage(self, i: int) -> str:
        doc, start, end = self.spans[i]
        return self.documents[doc][start:end]

    def get_scores(self, query: str) -> np.ndarray:
        """(P,) BM25 scores of every passage for `query` (rank_bm25's ``get_scores``)."""
        return self._scores(query)[0]

    def _scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(P,) scores, and (P,) True where the passage holds a term of `query`: each query term's
        postings added into one array (np.bincount), a term given twice counting twice."""
        ids = [self.vocab[t] for t in self.tokenize(query) if t in self.vocab]  # unknown terms add nothing
        cols, vals = [np.zeros(0, np.int64)], [np.zeros(0)]
        for t, count in zip(*np.unique(np.array(ids, dtype=np.int64), return_counts=True)):
            a, b = self.indptr[t], self.indptr[t + 1]
            cols.append(self.post_doc[a:b])
            vals.append(count * self.idf[t] * self.weights[a:b])
        cols = np.concatenate(cols)
        return np.bincount(cols, np.concatenate(vals), len(self)), np.bincount(cols, minlength=len(self)) > 0

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The best `k` passages holding at least one term of `query`, best first (ties: lower index)."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        scores, held = self._scores(query)
        return [self._hit(int(i), float(scores[i])) for i in top_k(scores, k, held)]

    def search_batch(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """`search` for each of `queries`, each scored on its own: scoring a batch into one (Q, P) array
        by one np.bincount was measured six times slower on pfr1998 (19k passages, 200 queries)."""
        if isinstance(queries, str):
            raise InputError("search_batch takes a list of queries; for one query use search")
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        return [self.search(q, k) for q in queries]

    def _hit(self, i: int, score: float) -> Hit:
        doc, start, end = (int(x) for x in self.spans[i])
        return Hit(i, score, self.documents[doc][start:end], doc, start, end)

    def save(self, directory: str | os.PathLike) -> Path:
        """``index.json`` (format, config, documents, vocabulary) and ``postings.safetensors`` (spans,
        lengths and postings), written as a whole folder (`atomic_folder`); no pickle."""
        arrays = dict(spans=self.spans, lengths=self.lengths, indptr=self.indptr, post_doc=self.post_doc,
                      post_tf=self.post_tf)
        with atomic_folder(directory, INDEX_FILES, "index folder") as tmp:
            write_safetensors(tmp / "postings.safetensors", arrays)
            atomic_write_json(tmp / "index.json", {"format": FORMAT, "config": asdict(self.config),
                                                   "documents": self.documents, "vocab": list(self.vocab)})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, tokenize: Callable[[str], list[str]] | None = None) -> BM25Index:
        """An index `save` wrote; `tokenize` must be given when it was built with a custom tokenizer."""
        d = existing_folder(directory, "index folder")
        path = str(d / "index.json")
        meta = read_json(path, "index file")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InputError(f"{path!r} is not a {FORMAT} index")
        config = config_from_dict(IndexConfig, meta.get("config"), what=path)  # names a field of the wrong type
        documents, vocab = meta.get("documents"), meta.get("vocab")
        if not isinstance(documents, list) or not all(isinstance(x, str) for x in documents):
            raise InputError(f"{path!r} is not a complete index: 'documents' must be a list of strings")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or len(set(vocab)) < len(vocab):
            raise InputError(f"{path!r} is not a complete index: 'vocab' must be a list of distinct strings")
        if config.tokenizer == "custom" and tokenize is None:
            raise InputError(f"index {str(d)!r} was built with a custom tokenizer: pass the same one as tokenize=")
        if config.tokenizer != "custom" and tokenize is not None:
            raise InputError(f"index {str(d)!r} was built with tokenizer {config.tokenizer!r}; it takes no tokenize=")
        a = read_safetensors(d / "postings.safetensors", "index postings",
                             ("spans", "lengths", "indptr", "post_doc", "post_tf"))
        spans, post_doc = a["spans"], a["post_doc"]
        if (len(a["indptr"]) != len(vocab) + 1 or len(a["lengths"]) != len(spans) or not len(spans)
                or spans.ndim != 2 or spans.shape[1] != 3  # rows (doc, start, end)
                or not 0 <= spans[:, 0].min() <= spans[:, 0].max() < len(documents)
                or (len(post_doc) and not 0 <= post_doc.min() <= post_doc.max() < len(spans))):
            raise InputError(f"index {str(d)!r}: postings do not match its vocabulary or passages")
        return cls(documents, a["spans"], vocab, a["indptr"], a["post_doc"], a["post_tf"],
                   a["lengths"], config, tokenize)
