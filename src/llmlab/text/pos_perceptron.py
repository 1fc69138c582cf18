"""A structured averaged-perceptron POS tagger with word-window, character and suffix features.

Features per word: the words at offsets -2..2, word bigrams around it, its first and last one to
three characters, its middle, its length and character-type shape, and the neighbours' edge
characters alone and with the word. These character features are what tag unknown words. Tags are
decoded with tag-bigram and tag-trigram weights (second-order Viterbi over each word's best few tags,
`llmlab.text.pos.viterbi2`). Decoding and each training epoch are compiled loops (`llmlab.core.jit`)
over the segmenter's exact feature index (`llmlab.text.hashindex`). By default three perceptrons
trained in different sentence orders (``ensemble``) are summed into one linear model: on pfr1998 that
lifts test accuracy from 0.9613 to 0.9628 and dev from 0.9684 to 0.9695, for three times the training
time (about 1.5 minutes on 2 cores); tagging costs the same.

Word clusters (``clusters``, on by default) add what the word identity cannot give a rare word: the
ids of its distributional cluster (`llmlab.text.clusters`: words clustered by their left and right
neighbours in the training sentences, at 1024 and 128 clusters) and of its neighbours', alone, in
pairs and with its last character (`cluster_keys`). On pfr1998 (ensemble of 3) they lift test
accuracy from 0.9628 to 0.9640 (unknown words 0.7462 to 0.7588) and dev from 0.9695 to 0.9703, for
about 40% more training time (about 20 s of clustering, the rest in the extra templates). The table
is saved beside the weights (`clusters.tsv`); models saved without clusters (feature set 2) load and
tag as before.
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_text, read_safetensors, read_text, write_safetensors
from llmlab.core.jit import interpreted, interpreting, jit
from llmlab.core.progress import progress
from llmlab.text.base import SPACED_WORD_CHAR, checked_array, normalize_text
from llmlab.text.clusters import word_clusters
from llmlab.text.features import DIGIT, LATIN, OTHER, RARE, mix, type_table
from llmlab.text.hashindex import FeatureIndex, SparseRows
from llmlab.text.perceptron import check_kept, score_rows, subtract_average, update_rows
from llmlab.text.pos import PosTagger, check_tagged, tag_mask, viterbi, viterbi2, viterbi2_kernel, viterbi_kernel

log = logging.getLogger(__name__)
WEIGHTS_FILE = "weights.safetensors"
CLUSTERS_FILE = "clusters.tsv"
FEATURE_SET = 2  # version of `word_keys`' templates, saved with each model; bump it when they change
CLUSTER_FEATURE_SET = 3  # saved instead by a model with word clusters: FEATURE_SET's templates + `cluster_keys`'
_BOS, _EOS, _RARE = 0x1_0000_0001, 0x1_0000_0002, 0x1_0000_0003  # beyond any crc32 value
_W0 = 2  # column of the word-identity template in `word_keys`
_WORD_TEMPLATES = 24  # templates of `word_keys`; the template ids of `cluster_keys` follow them
_NO_CLUSTER, _EDGE = 0xFFFF_FFFF, 0xFFFF_FFFE  # an unknown or rare word's cluster; beyond a sentence edge


def _h(s: str) -> int:
    return zlib.crc32(s.encode("utf-8", "surrogatepass"))


def _char_type(ch: str, table: np.ndarray) -> int:
    """`features.type_table`'s type, with letters and digits of other scripts written with spaces
    (Cyrillic, Greek, Hangul, ...; none in pfr1998) typed as Latin letters and digits.

    >>> [_char_type(c, type_table()) for c in "a1Дд٣😀"] == [LATIN, DIGIT, LATIN, LATIN, DIGIT, RARE]
    True
    """
    o = ord(ch)
    t = int(table[o]) if o < 0x10000 else RARE
    if t in (OTHER, RARE) and SPACED_WORD_CHAR.match(ch):
        return DIGIT if ch.isdecimal() else LATIN
    return t


def _shape(word: str, table: np.ndarray) -> int:
    """Char-type code of the first and last characters and the length (capped at 6); 0 for ''."""
    if not word:
        return 0
    return (_char_type(word[0], table) * 10 + _char_type(word[-1], table)) * 10 + min(len(word), 6)


@functools.lru_cache(maxsize=1 << 16)  # the words of a text repeat: most are looked up, not hashed again
def _word_hashes(word: str) -> tuple[int, ...]:
    """What `word_keys` reads from a word alone: the hashes of its width-normalised form, of its first
    and last one, two and three characters and of its middle, and its `_shape`."""
    w = normalize_text(word)
    inner = w[1:-1] if len(w) > 2 else ""  # the middle of a 3-4 character name or term
    # slices, not w[0]: an empty word has none
    return (_h(w), _h(w[:1]), _h(w[-1:]), _h(w[:2]), _h(w[-2:]), _h(w[:3]), _h(w[-3:]), _h(inner),
            _shape(w, type_table()))


def word_keys(words: Sequence[str], rare: np.ndarray | None = None) -> np.ndarray:
    """(n, T) uint64 feature keys for each word of a sentence; words flagged in `rare` (bool, n) show
    one shared identity, so only their characters and context tell them apart.

    >>> k = word_keys(["他", "跑"])
    >>> k.shape, bool((k[0] != word_keys(["他", "走"])[0]).any())
    ((2, 24), True)
    """
    n = len(words)
    own = np.array([_word_hashes(w) for w in words], dtype=np.uint64).reshape(n, 9).T
    ids = np.full(n + 4, _BOS, dtype=np.uint64)  # two edge ids each side
    ids[2 : n + 2], ids[n + 2 :] = own[0], _EOS
    if rare is not None:
        ids[2 : n + 2][rare] = _RARE
    first, last, first2, last2, first3, last3, inner, shape = own[1:]
    edge_l = np.concatenate([[_BOS], last[:-1]]).astype(np.uint64)  # last char of the previous word
    edge_r = np.concatenate([first[1:], [_EOS]]).astype(np.uint64)  # first char of the next word
    w = [ids[k : k + n] for k in range(5)]  # offsets -2..2
    s32 = np.uint64(32)
    feats = [*w, (w[1] << s32) ^ w[2], (w[2] << s32) ^ w[3], (w[1] << s32) ^ w[3], first, last, first2, last2,
             shape, (last << s32) ^ shape, edge_l, edge_r,
             first3, last3, (first << s32) ^ last, (first << s32) ^ shape, inner,
             (w[2] << s32) ^ edge_l, (w[2] << s32) ^ edge_r, (w[0] << s32) ^ w[1]]
    return mix(np.stack(feats)).T.copy()


def cluster_keys(words: Sequence[str], clusters: dict[str, tuple[int, ...]], levels: int,
                 rare: np.ndarray | None = None) -> np.ndarray:
    """(n, 7 + 3 * (levels - 1)) uint64 feature keys from the words' cluster ids (`word_clusters`;
    `clusters` maps normalised words to one id per level, finest first). Finest level: the word's
    cluster, the previous and next words', (previous, this), (this, next), (this, last character) and
    (previous, next); each coarser level: the word's cluster and its neighbours'. Words missing from
    `clusters` or flagged in `rare` share one "no cluster" id, as they share one identity in `word_keys`.

    >>> k = cluster_keys(["他", "跑"], {"他": (3, 0), "跑": (5, 1)}, 2)
    >>> k.shape, bool(k[0, 0] == cluster_keys(["他", "走"], {"他": (3, 0)}, 2)[0, 0])
    ((2, 10), True)
    """
    norm = [normalize_text(w) for w in words]
    n = len(norm)
    ids = np.array([clusters.get(w, (_NO_CLUSTER,) * levels) for w in norm], dtype=np.uint64).reshape(n, levels)
    if rare is not None:
        ids[rare] = _NO_CLUSTER
    edge = np.full((1, levels), _EDGE, dtype=np.uint64)
    prev, nxt = np.concatenate([edge, ids[:-1]]), np.concatenate([ids[1:], edge])  # (n, levels)
    last = np.array([_word_hashes(w)[2] for w in words], dtype=np.uint64)  # its last character's hash
    s32 = np.uint64(32)
    c, p, x = ids[:, 0], prev[:, 0], nxt[:, 0]
    rows = [c, p, x, (p << s32) ^ c, (c << s32) ^ x, (c << s32) ^ last, (p << s32) ^ x]
    for j in range(1, levels):
        rows += [ids[:, j], prev[:, j], nxt[:, j]]
    return mix(np.stack(rows), first=_WORD_TEMPLATES).T.copy()  # template ids after word_keys'



def tagger_keys(words: Sequence[str], clusters: dict[str, tuple[int, ...]] | None, levels: int,
                rare: np.ndarray | None = None) -> np.ndarray:
    """`word_keys`, then `cluster_keys` when there is a cluster table (None: a model without clusters)."""
    keys = word_keys(words, rare)
    if clusters is None:
        return keys
    return np.concatenate([keys, cluster_keys(words, clusters, levels, rare)], axis=1)


def save_clusters(path: Path, clusters: dict[str, tuple[int, ...]], sizes: Sequence[int]) -> None:
    """Write the cluster table as UTF-8 text: a header line, then one word per line with its ids, tab-separated."""
    lines = [f"# llmlab word clusters 1, sizes {' '.join(map(str, sizes))}: word, then one id per size"]
    lines += ["\t".join([w, *map(str, ids)]) for w, ids in clusters.items()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def load_clusters(path: Path, levels: int) -> dict[str, tuple[int, ...]]:
    """The table `save_clusters` wrote, or an InputError naming the file and line."""
    text = read_text(path, "word cluster file")
    lines = text.split("\n")
    if not lines[0].startswith("# llmlab word clusters 1,"):
        raise InputError(f"word cluster file {str(path)!r} does not start with '# llmlab word clusters 1,'")
    table = _clusters_in_one_scan(text, lines, levels)
    return table if table is not None else _clusters_by_line(lines, path, levels)


def _clusters_in_one_scan(text: str, lines: list[str], levels: int) -> dict[str, tuple[int, ...]] | None:
    """`load_clusters`' table by one regular-expression scan when every line after the header is a word
    and its `levels` ids; None when some line is not (`_clusters_by_line` then names it)."""
    found = re.findall("^([^\t\n]*)" + "\t([0-9]+)" * levels + "$", text, re.MULTILINE)  # the header has no tab
    if levels < 1 or len(found) != len(lines) - 1 - lines.count(""):
        return None
    return {m[0]: tuple(map(int, m[1:])) for m in found}


def _clusters_by_line(lines: list[str], path: Path, levels: int) -> dict[str, tuple[int, ...]]:
    out = {}
    for i, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        if len(parts) != levels + 1 or not all(x.isascii() and x.isdigit() for x in parts[1:]):
            if line:
                raise InputError(f"word cluster file {str(path)!r}, line {i}: expected a word and {levels} ids")
            continue
        out[parts[0]] = tuple(int(x) for x in parts[1:])
    return out


def build_tagdict(sents, tid: dict[str, int], min_count: int) -> dict[str, list[int]]:
    """Tag ids seen with each word seen at least `min_count` times (empty when min_count is 0); words
    are width-normalised, as the features see them ("ＧＤＰ" and "GDP" are one word).

    >>> build_tagdict([[("的", "u"), ("的", "u")], [("了", "u")], [("ＧＤＰ", "nx"), ("GDP", "nx")]],
    ...               {"u": 0, "nx": 1}, 2)
    {'的': [0], 'GDP': [1]}
    """
    if min_count == 0:
        return {}
    counts: Counter = Counter()
    seen: dict[str, set[int]] = {}
    for s in sents:
        for w, t in s:
            w = normalize_text(w)
            counts[w] += 1
            seen.setdefault(w, set()).add(tid[t])
    return {w: sorted(seen[w]) for w, c in counts.items() if c >= min_count}


@dataclass(frozen=True)
class PerceptronTaggerConfig:
    epochs: int = 8  # passes over the training sentences
    min_feature_count: int = 1  # features seen fewer times in training get no weight
    tagdict_min_count: int = 0  # words seen this often may only take tags seen with them (0 = off)
    order: int = 2  # tag history: 1 = tag bigrams, 2 = tag trigrams too (second-order Viterbi)
    beam: int = 6  # order 2: tags considered per word, its best by emission score (cost grows as beam^3)
    rare_count: int = 0  # training words seen at most this often hide their identity (like unknown words), so the
    # character features learn unknown words (helps small data; no gain on pfr1998); at tagging a word without an
    # identity weight counts as rare. 0 = off
    seed: int = 0  # shuffling order of the sentences each epoch
    ensemble: int = 3  # perceptrons trained in different sentence orders (seeds seed, seed + 1, ...), their
    # averaged weights summed into one model: a linear ensemble that costs this many trainings
    clusters: tuple[int, ...] = (1024, 128)  # k-means sizes of distributional word clusters built from the
    # training words (`llmlab.text.clusters`, finest first), features of each word and its neighbours; () = off

    def __post_init__(self):
        if self.rare_count < 0:
            raise InputError(f"rare_count must be >= 0, got {self.rare_count}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.ensemble < 1:
            raise InputError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.min_feature_count < 1:
            raise InputError(f"min_feature_count must be >= 1, got {self.min_feature_count}")
        if self.tagdict_min_count < 0:
            raise InputError(f"tagdict_min_count must be >= 0, got {self.tagdict_min_count}")
        if self.order not in (1, 2):
            raise InputError(f"order must be 1 or 2, got {self.order}")
        if self.beam < 1:
            raise InputError(f"beam must be >= 1, got {self.beam}")
        if any(not isinstance(k, int) or k < 2 for k in self.clusters):
            raise InputError(f"clusters must be cluster counts >= 2, got {self.clusters}")


def _decode(em: np.ndarray, trans: np.ndarray, trans3: np.ndarray, start: np.ndarray,
            config: PerceptronTaggerConfig) -> list[int]:
    if config.order == 2:
        return viterbi2(em, trans, trans3, start, config.beam)
    return viterbi(em, trans, start)


@jit
def _train_epoch(slots: np.ndarray, starts: np.ndarray, golds: np.ndarray, banned: np.ndarray, order: np.ndarray,
                 second_order: bool, beam: int, w: np.ndarray, u: np.ndarray, tables: tuple,
                 step: int) -> tuple[int, int]:
    """One perceptron pass over the sentences in `order` (sentence i is rows starts[i]:starts[i + 1]
    of `slots`, `golds` and, when the tag dictionary is on, `banned`): decode; where the tags are
    wrong, add the gold features and tag n-grams and subtract the predicted ones. `tables` is
    (trans, trans_u, start, start_u, trans3, trans3_u). Returns the next step and the wrong tags."""
    tr, tr_u, st, st_u, t3, t3_u = tables
    k = w.shape[1]
    wrong = 0
    for i in order:
        a, n = starts[i], starts[i + 1] - starts[i]
        em = score_rows(w, slots, a, n)
        if banned.shape[0]:
            for x in range(n):
                for t in range(k):
                    if banned[a + x, t]:
                        em[x, t] -= 1e6
        pred = np.zeros(n, np.int64)
        if second_order and n >= 2:
            viterbi2_kernel(em, tr, t3, st, beam, pred)
        else:
            viterbi_kernel(em, tr, st, pred)
        gold = golds[a : a + n]
        bad = update_rows(w, u, slots, a, gold, pred, step)
        if bad:  # the whole sentence's tag n-grams: equal ones cancel
            wrong += bad
            st[gold[0]] += 1.0
            st[pred[0]] -= 1.0
            st_u[gold[0]] += step
            st_u[pred[0]] -= step
            for x in range(1, n):
                tr[gold[x - 1], gold[x]] += 1.0
                tr[pred[x - 1], pred[x]] -= 1.0
                tr_u[gold[x - 1], gold[x]] += step
                tr_u[pred[x - 1], pred[x]] -= step
                if second_order and x >= 2:
                    t3[gold[x - 2], gold[x - 1], gold[x]] += 1.0
                    t3[pred[x - 2], pred[x - 1], pred[x]] -= 1.0
                    t3_u[gold[x - 2], gold[x - 1], gold[x]] += step
                    t3_u[pred[x - 2], pred[x - 1], pred[x]] -= step
        step += 1
    return step, wrong


def _train_pass(slots: np.ndarray, starts: np.ndarray, golds: np.ndarray, banned: np.ndarray, index: FeatureIndex,
                K: int, config: PerceptronTaggerConfig, seed: int, begin: tuple[np.ndarray, ...] | None = None):
    """One averaged perceptron over `config.epochs` passes in the sentence order drawn from `seed`,
    starting from `begin` (weights, trans, start, trans3: `_begin`) or from zeros: its (weights, trans,
    start, trans3), averaged over all steps."""
    if begin is None:  # zeros, which numpy leaves unwritten until an update touches them
        begin = (np.zeros((index.size + 1, K), np.float32), np.zeros((K, K)), np.zeros(K), np.zeros((K, K, K)))
    else:
        begin = tuple(a.copy() for a in begin)
    w, tr, st, t3 = begin
    u = np.zeros(w.shape)
    tables = (tr, np.zeros(tr.shape), st, np.zeros(st.shape), t3, np.zeros(t3.shape))
    rng, step = np.random.default_rng(seed), 1
    for epoch in progress(range(config.epochs), desc=f"epochs (seed {seed})"):
        step, wrong = _train_epoch(slots, starts, golds, banned, rng.permutation(len(starts) - 1), config.order == 2,
                                   config.beam, w, u, tables, step)
        log.info("epoch %d: %d wrongly tagged training words", epoch + 1, wrong)
    subtract_average(w, u, step)
    w[index.missing] = 0.0
    tr, tr_u, st, st_u, t3, t3_u = tables
    return w, tr - tr_u / step, st - st_u / step, t3 - t3_u / step


# the settings that decide a tagger's features and decoding: a tagger trained further keeps them
TAGGER_SETTINGS = ("clusters", "order", "rare_count", "tagdict_min_count")


def _begin(init: PerceptronTagger, index: FeatureIndex, tags: list[str], members: int) -> tuple:
    """Where each of `members` perceptrons starts when training goes on from `init`: its weights and tag
    n-gram weights (its features' rows in `index`, its tags' columns among `tags`) divided among them,
    zeros elsewhere."""
    k = len(tags)
    w, tr, st, t3 = np.zeros((index.size + 1, k), np.float32), np.zeros((k, k)), np.zeros(k), np.zeros((k, k, k))
    at = np.array([tags.index(t) for t in init.tags], dtype=np.int64)
    w[np.ix_(index.rows(init.index.keys), at)] = init.weights[: init.index.size] / members
    tr[np.ix_(at, at)] = init.trans / members
    st[at] = init.start / members
    t3[np.ix_(at, at, at)] = init.trans3 / members
    return w, tr, st, t3


class PerceptronTagger(PosTagger):
    """Structured averaged perceptron over PKU tags with first-order transitions.

    >>> data = [[("他", "r"), ("跑", "v")], [("我", "r"), ("走", "v")], [("书", "n")]] * 3
    >>> PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=3)).tag(["我", "跑"])
    ['r', 'v']
    """

    kind = "perceptron"

    def __init__(self, tags: list[str], index: FeatureIndex, weights: np.ndarray | SparseRows, trans: np.ndarray,
                 start: np.ndarray, config: PerceptronTaggerConfig | None = None,
                 tagdict: dict[str, list[int]] | None = None, trans3: np.ndarray | None = None,
                 clusters: dict[str, tuple[int, ...]] | None = None):
        self.tags, self.index = tags, index
        # a loaded tagger keeps its weights sparse until something needs the whole table (`weights`)
        self._weights, self._sparse = (None, weights) if isinstance(weights, SparseRows) else (weights, None)
        self.clusters = clusters  # normalised word -> cluster id per size of config.clusters; None: no cluster features
        k = len(tags)
        self.tagdict: dict[str, list[int]] = {}  # width-normalised keys (models saved before had raw ones)
        for w, ids in (tagdict or {}).items():
            if any(not isinstance(i, int) or not 0 <= i < k for i in ids):
                raise ValueError(f"tag dictionary entry {w!r} holds tag ids outside 0..{k - 1}")
            key = normalize_text(w)
            self.tagdict[key] = sorted({*self.tagdict.get(key, ()), *ids})
        self.trans, self.start = checked_array("trans", trans, (k, k)), checked_array("start", start, (k,))
        self.config = config or PerceptronTaggerConfig()
        self.trans3 = np.zeros((k, k, k)) if trans3 is None else checked_array("trans3", trans3, (k, k, k))

    @property
    def weights(self) -> np.ndarray:
        """(features + 1, tags) float32 weights; the last row, for unknown features, is zeros."""
        if self._weights is None:
            self._weights, self._sparse = self._sparse.dense(), None
        return self._weights

    def _weight_rows(self, slots: np.ndarray) -> np.ndarray:
        """``weights[slots]``: from the sparse table for a small job run interpreted (building the dense
        table would cost more than the job), from the dense one otherwise (three times faster a word)."""
        if self._weights is None and interpreting():
            return self._sparse.take(slots)
        return self.weights[slots]

    def _keys(self, words: Sequence[str], rare: np.ndarray | None = None) -> np.ndarray:
        return tagger_keys(words, self.clusters, len(self.config.clusters), rare)

    def _tag(self, words: list[str]) -> list[str]:
        with interpreted(2 * len(words)):  # a sentence or two: the kernels' Python source, without numba
            return self.decode(self.emissions(words))

    def _tag_sentences(self, sentences: list[list[str]]) -> list[list[str]]:
        with interpreted(2 * sum(map(len, sentences))):  # decided for the whole batch
            return [self._tag(s) for s in sentences]

    def emissions(self, words: Sequence[str]) -> np.ndarray:
        """(n, K) float64 emission scores of a sentence's words (tag-dictionary bans included)."""
        if not words:
            return np.zeros((0, len(self.tags)))
        slots = self.index.lookup(self._keys(words))
        if self.config.rare_count:
            # unknown, or rare in training (no identity weight; zero rows are not saved): tag it as training did
            rare = ~self._weight_rows(slots[:, _W0]).any(axis=1)
            if rare.any():
                slots = self.index.lookup(self._keys(words, rare))
        em = self._weight_rows(slots).sum(axis=1).astype(np.float64)
        em += tag_mask(words, self.tagdict, len(self.tags), first=self.user_tag_ids())  # the user's tags win
        return em

    def decode(self, em: np.ndarray) -> list[str]:
        """The best tags for emissions `em` (n, K) under this tagger's tag n-gram weights."""
        if not len(em):
            return []
        return [self.tags[i] for i in _decode(em, self.trans, self.trans3, self.start, self.config)]

    @classmethod
    def train(cls, sentences, config: PerceptronTaggerConfig | None = None,
              init: PerceptronTagger | None = None) -> PerceptronTagger:
        """Learn from tagged sentences. With `init`, training goes on from that tagger instead of from
        zero, on `sentences` alone (as `PerceptronSegmenter.train` does with its `init`): its weights
        and tag n-gram weights are the start (each member of the ensemble starts from its share of
        them, so the sum starts from the tagger), new features and tags start at zero, its word
        clusters stay, its tag dictionary takes the new words' tags. `config` may change only epochs,
        seed, ensemble, beam and min_feature_count (None keeps all of its settings)."""
        if init is not None and not isinstance(init, PerceptronTagger):
            raise InputError(f"training goes on from a perceptron tagger, got {type(init).__name__}")
        config = config or (init.config if init is not None else PerceptronTaggerConfig())
        sents = check_tagged(sentences)
        if init is not None:
            check_kept(config, init.config, TAGGER_SETTINGS, "tagger")
        tags = sorted({t for s in sents for _, t in s} | set(init.tags if init is not None else ()))
        tid = {t: i for i, t in enumerate(tags)}
        clusters = init.clusters if init is not None else None
        if config.clusters and init is None:
            # clustering seed fixed: the table depends on the data only, so `seed` (sentence order) changes the
            # perceptron alone and the members of an ensemble, each with its own seed, share one table
            clusters = word_clusters([[normalize_text(w) for w, _ in s] for s in sents], config.clusters, seed=0)
            # a word holding a tab or line break could not be written to clusters.tsv: it gets no cluster
            clusters = {w: ids for w, ids in clusters.items() if not any(c in w for c in "\t\n\r")}
        levels = len(config.clusters)
        counts = Counter(w for s in sents for w, _ in s)
        keys = [tagger_keys([w for w, _ in s], clusters, levels,
                            np.array([counts[w] <= config.rare_count for w, _ in s]))
                for s in progress(sents, desc="features")]
        uniq, counts = np.unique(np.concatenate([k.ravel() for k in keys]), return_counts=True)
        kept = uniq[counts >= config.min_feature_count]
        index = FeatureIndex(kept if init is None else np.concatenate([init.index.keys, kept]))
        starts = np.concatenate([[0], np.cumsum([len(s) for s in sents])])
        slots = index.lookup(np.concatenate(keys))  # (words, templates)
        del keys
        golds = np.array([tid[t] for s in sents for _, t in s], dtype=np.int64)
        tagdict = build_tagdict(sents, tid, config.tagdict_min_count)
        begin = None if init is None else _begin(init, index, tags, config.ensemble)
        if init is not None:  # its words' tags, as ids of the new tag list, and the new words'
            for w, ids in init.tagdict.items():
                tagdict[w] = sorted({*tagdict.get(w, ()), *(tid[init.tags[i]] for i in ids)})
        banned = np.zeros((0, len(tags)), dtype=bool)
        if tagdict:
            banned = np.concatenate([tag_mask([w for w, _ in s], tagdict, len(tags)) < 0 for s in sents])
        total: tuple = ()
        for r in range(config.ensemble):  # the members' averaged weights summed: still one linear model
            part = _train_pass(slots, starts, golds, banned, index, len(tags), config, config.seed + r, begin)
            if total:
                for a, b in zip(total, part):
                    a += b  # in place: no third table as large as the weights
            else:
                total = part
            del part  # before the next member's tables are made
        w, tr, st, t3 = total
        return cls(tags, index, w, tr, st, config, tagdict, t3, clusters)

    def _state(self, directory: Path) -> dict:
        # sparse: about 7% of the (feature, tag) weights are non-zero, so (row, column, value) triplets
        # take a sixth of the dense rows' space
        rows, cols = np.nonzero(self.weights[: self.index.size])
        nz, rows = np.unique(rows, return_inverse=True)
        values = self.weights[nz[rows], cols]
        cols = cols.astype(np.int16 if len(self.tags) < 2**15 else np.int32)
        write_safetensors(directory / WEIGHTS_FILE, {"keys": self.index.keys[nz].view(np.int64),
                                                     "rows": rows.astype(np.int32), "cols": cols, "values": values})
        state = {"config": config_to_dict(self.config), "feature_set": FEATURE_SET, "tags": self.tags,
                 "trans": self.trans.tolist(), "start": self.start.tolist(), "trans3": self.trans3.tolist(),
                 "tagdict": self.tagdict, "weights_file": WEIGHTS_FILE}
        if self.clusters is not None:
            save_clusters(directory / CLUSTERS_FILE, self.clusters, self.config.clusters)
            state.update(feature_set=CLUSTER_FEATURE_SET, clusters_file=CLUSTERS_FILE)
        return state

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> PerceptronTagger:
        feature_set = state.get("feature_set", 1)
        if feature_set not in (FEATURE_SET, CLUSTER_FEATURE_SET):
            raise InputError(f"POS tagger in {str(directory)!r} uses feature set {feature_set}, this llmlab computes "
                             f"feature sets {FEATURE_SET} and {CLUSTER_FEATURE_SET} (with word clusters): "
                             "retrain it with `llmlab pos train`")
        config = config_from_dict(PerceptronTaggerConfig, {"clusters": [], **state["config"]})  # older: none
        clusters = None
        if feature_set == CLUSTER_FEATURE_SET:
            clusters = load_clusters(directory / state.get("clusters_file", CLUSTERS_FILE), len(config.clusters))
        path = directory / state.get("weights_file", WEIGHTS_FILE)
        arrays = read_safetensors(path, "POS tagger weights", ("keys",))
        if "weights" not in arrays and not {"rows", "cols", "values"} <= arrays.keys():
            raise InputError(f"POS tagger weights {str(path)!r} hold neither dense rows nor sparse triplets")
        keys = arrays["keys"].view(np.uint64)
        index = FeatureIndex(keys)
        shape = (index.size + 1, len(state["tags"]))
        if "weights" in arrays:  # saved before the sparse triplets: dense rows
            weights = np.zeros(shape, np.float32)
            weights[index.rows(keys)] = arrays["weights"]
        else:
            weights = SparseRows(*shape, index.rows(keys)[arrays["rows"]], arrays["cols"], arrays["values"])
        return cls(state["tags"], index, weights, np.array(state["trans"]), np.array(state["start"]), config,
                   state.get("tagdict"), state.get("trans3"), clusters)
