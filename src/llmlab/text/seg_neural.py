"""A neural B/M/E/S segmenter: a BiLSTM over character, character-bigram and lexicon-match embeddings.

Each character is the concatenation of its embedding, those of the bigrams it ends and begins
(width-normalised, `normalize_text`; bigrams seen fewer than ``bigram_min_count`` times share one
unknown id, a run's edges one edge id), and, per lexicon, embeddings of the lengths of the longest
word that begins at, ends at and covers it (`llmlab.text.lexmatch`, the perceptron's lexicon
features). The lexicons are the training words, jackknifed as the perceptron's are (a training
sentence sees only the other folds' words, so the network learns how far a match on unseen text can
be trusted), and the accessor-variety pseudo-words of the training text. A bidirectional LSTM
(`llmlab.text.neural`) reads the run and a linear layer gives each character's B/M/E/S scores;
training minimises cross-entropy with Adam, and the best epoch is chosen by F1 on held-out training
sentences (every ``holdout``-th). Cutting is Viterbi over the log-probabilities with only the legal
B/M/E/S transitions, so every output is a well-formed segmentation.

This is the design of Chen et al. (2015), "Long Short-Term Memory Neural Networks for Chinese Word
Segmentation", with the bigram inputs that Pei, Ge & Chang (2014) and Ma, Ganchev & Weiss (2018),
"State-of-the-art Chinese Word Segmentation with Bi-LSTMs", found to matter most, and dictionary
matches as in Zhang, Zhang & Fu (2018), "Neural Networks Incorporating Dictionaries for Chinese Word
Segmentation". On pfr1998 the matches lift held-out F1 after one epoch from 0.954 to 0.965; with
the default config (4 epochs, about 15 minutes on one thread) the network alone scores test F1
0.9559 (OOV recall 0.642), dev 0.9709, against the perceptron's 0.9595 (0.638) and 0.9738. It cuts
about 77,000 characters a second (`bench/segmentation.py`, two threads), a thirteenth of the
perceptron's speed: its use is `llmlab.text.seg_hybrid`, where it adds what the perceptron's window
misses.

With ``pretrain`` (the default) the character and bigram embeddings start from PPMI-SVD vectors of
the training text (`llmlab.text.clusters.word_vectors`): what a unit's neighbours say about it,
which the tagging loss alone learns slowly for rare ones.

A run longer than `WINDOW` characters is scored in windows that see `MARGIN` characters either side
(the LSTM's memory in practice is far shorter), so memory stays bounded on any input.

The segmenter owns its lexicon (the training words; `add_user_dict` adds a user's words, which then
reach the lexicon features), as the perceptron does.

A saved segmenter can be trained further on new text (`NeuralSegmenter.train(init=...)`, ``llmlab seg
train --init-model``): its network is the start, and the characters and bigrams it never saw join
the vocabularies at the unknown one's embedding (`llmlab.text.neural.grown`).

torch is imported inside the functions that need it, so ``llmlab.text`` stays torch-free. Loading a
saved segmenter reads numpy arrays; torch is first imported when it cuts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import read_safetensors, write_safetensors
from llmlab.core.modes import eval_mode
from llmlab.core.threads import threads_for, torch_threads
from llmlab.text.accessor import AccessorVariety
from llmlab.text.base import check_sentences, normalize_text
from llmlab.text.bmes import decode_runs, encode_tags
from llmlab.text.features import codes_of
from llmlab.text.lexicon import DictSegmenter, Lexicon
from llmlab.text.lexmatch import MAX_SPAN, SpanIndex
from llmlab.text.metrics import seg_scores
from llmlab.text.neural import (
    check_training,
    fit_epochs,
    grown,
    holdout_split,
    length_buckets,
    make_bilstm,
    run_bilstm,
    start_at_vectors,
    with_weights,
)
from llmlab.text.perceptron import check_kept, jackknife_matchers

log = logging.getLogger(__name__)
WEIGHTS_FILE = "neural.safetensors"
PAD, UNK, EDGE = 0, 1, 2  # ids 0 and 1 of both vocabularies; 2: the bigram across a run's edge
PREDICT_CHARS = 20_000  # characters per forward pass when cutting
WINDOW, MARGIN = 4_000, 200  # a longer run is scored WINDOW characters at a time, seeing MARGIN more either side
NO_TRANS = np.zeros((4, 4))  # log-probabilities need no transition scores: Viterbi only keeps tags legal


@dataclass(frozen=True)
class NeuralSegmenterConfig:
    epochs: int = 4  # passes over the training sentences; >= 1 (on pfr1998 held-out F1 peaks at 3-4)
    char_dim: int = 100  # character embedding size; >= 1
    bigram_dim: int = 100  # bigram embedding size; >= 1
    bigram_min_count: int = 2  # bigrams seen fewer times in training share the unknown id; >= 1
    hidden: int = 150  # LSTM size per direction; >= 1
    layers: int = 1  # stacked bidirectional LSTM layers (dropout between them); >= 1
    dropout: float = 0.2  # on the inputs and on the LSTM outputs; in [0, 1)
    lexicon_features: bool = True  # embed the longest training-lexicon words beginning at, ending at, covering a char
    folds: int = 10  # jackknife for the lexicon features (1 = off; at most one fold per training sentence is used)
    av_lexicon: bool = True  # the same features from accessor-variety pseudo-words of the raw training text
    av_min: int = 3  # a pseudo-word's min(left, right) accessor variety is at least this
    av_max_n: int = 5  # pseudo-words have 2..av_max_n characters
    span_dim: int = 16  # embedding size of each lexicon-match length; >= 1
    pretrain: bool = True  # character and bigram embeddings start from PPMI-SVD vectors of the training text
    batch_size: int = 16  # sentences per step, bucketed by length; >= 1
    lr: float = 2e-3  # Adam learning rate; > 0
    decay: float = 0.6  # learning rate factor per epoch after decay_from epochs; in (0, 1]
    decay_from: int = 3  # epochs at the full learning rate; >= 0
    clip: float = 5.0  # gradient norm clip; > 0
    holdout: int = 20  # every holdout-th training sentence is held out to pick the best epoch; 0 = none (last)
    seed: int = 0  # initial weights, dropout, batch order
    threads: int = 1  # torch CPU threads while training (restored after); 0 = leave torch as it is

    def __post_init__(self):
        for name in ("epochs", "char_dim", "bigram_dim", "bigram_min_count", "hidden", "layers", "batch_size",
                     "folds", "span_dim", "av_min"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("pretrain", "lexicon_features", "av_lexicon"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not 2 <= self.av_max_n <= MAX_SPAN:
            raise InputError(f"av_max_n (longest pseudo-word) must be in 2..{MAX_SPAN}, got {self.av_max_n}")
        check_training(self)


# the settings that shape a neural segmenter's network and inputs: one trained further (`train(init=...)`) keeps them
NET_SETTINGS = ("char_dim", "bigram_dim", "hidden", "layers", "lexicon_features", "av_lexicon", "av_min", "av_max_n",
                "span_dim")

def bigrams(text: str) -> list[str]:
    """The len(text) + 1 bigrams around the characters of `text`: bigram i ends at character i and
    bigram i + 1 begins there; the first and the last cross the edges ("" stands for them).

    >>> bigrams("中国人")
    ['', '中国', '国人', '']
    """
    return ["", *(text[i : i + 2] for i in range(len(text) - 1)), ""]


def n_lexicons(config: NeuralSegmenterConfig) -> int:
    """How many lexicons feed match features: the training words, the pseudo-words, both or none."""
    return int(config.lexicon_features) + int(config.av_lexicon)


def _build_net(config: NeuralSegmenterConfig, n_chars: int, n_bigrams: int):
    """The torch module: (char ids (B, L), bigram ids (B, L + 1), match lengths (B, L, 3 * lexicons),
    lengths) -> B/M/E/S logits (B, L, 4)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            c = config
            self.char = nn.Embedding(n_chars, c.char_dim, padding_idx=PAD)
            self.bigram = nn.Embedding(n_bigrams, c.bigram_dim, padding_idx=PAD)
            # per lexicon: the longest word beginning at, ending at, covering the character (0: none)
            self.spans = nn.ModuleList(nn.Embedding(MAX_SPAN + 1, c.span_dim) for _ in range(3 * n_lexicons(c)))
            d_in = c.char_dim + 2 * c.bigram_dim + len(self.spans) * c.span_dim
            self.rnn = make_bilstm(d_in, c.hidden, c.layers)
            self.drop = nn.Dropout(c.dropout)
            self.out = nn.Linear(2 * c.hidden, 4)

        def forward(self, chars, bigram_ids, spans, lengths):
            b = self.bigram(bigram_ids)  # (B, L + 1, D): the bigram before and after each character
            x = [self.char(chars), b[:, :-1], b[:, 1:], *(e(spans[:, :, k]) for k, e in enumerate(self.spans))]
            x = self.drop(torch.cat(x, 2))
            return self.out(self.drop(run_bilstm(self.rnn, x, lengths, self.drop)))

    return Net()


def _batch(rows: list[tuple[np.ndarray, ...]]):
    """Padded tensors (char ids (B, L), bigram ids (B, L + 1), match lengths (B, L, F), gold tags (B, L)
    with -100 padding), and the lengths."""
    import torch

    lengths = [len(r[0]) for r in rows]
    n, f = max(lengths), rows[0][2].shape[1]
    chars, bis, spans = (np.zeros((len(rows), n), np.int64), np.zeros((len(rows), n + 1), np.int64),
                         np.zeros((len(rows), n, f), np.int64))
    gold = np.full((len(rows), n), -100, np.int64)
    for b, (c, bi, sp, g) in enumerate(rows):
        chars[b, : len(c)], bis[b, : len(bi)], spans[b, : len(c)], gold[b, : len(g)] = c, bi, sp, g
    return (*(torch.from_numpy(a) for a in (chars, bis, spans, gold)), lengths)


class NeuralSegmenter(DictSegmenter):
    """BiLSTM B/M/E/S segmenter; `log_probs_runs` gives per-character tag log-probabilities (B, M, E, S).
    It owns its lexicon (training plus user words) and, with ``config.av_lexicon``, the pseudo-words
    (`av_words`: word -> accessor variety, fixed at training)."""

    kind = "neural"

    def __init__(self, chars: list[str], bigram_list: list[str], weights: dict[str, np.ndarray], lexicon: Lexicon,
                 config: NeuralSegmenterConfig | None = None, av_words: dict[str, int] | None = None,
                 info: dict | None = None):
        super().__init__(lexicon)
        if chars[:2] != ["<pad>", "<unk>"] or bigram_list[:3] != ["<pad>", "<unk>", ""]:
            raise InputError("neural segmenter vocabularies must start with <pad>, <unk> (bigrams: then the edge '')")
        self.chars, self.bigram_list, self.weights = chars, bigram_list, weights
        self.config = config or NeuralSegmenterConfig()
        if self.config.av_lexicon != (av_words is not None):
            raise InputError("a neural segmenter with av_lexicon needs its pseudo-words (av_words), one without none")
        self.av_words = av_words
        self.info = info or {}  # training facts saved with the model: best epoch, held-out F1
        self._char_id = {c: i for i, c in enumerate(chars)}
        self._bigram_id = {b: i for i, b in enumerate(bigram_list)}
        self._net = None
        self._lexicon_index: tuple[tuple[int, int], SpanIndex] | None = None
        self._av_index = SpanIndex(av_words) if av_words is not None else None

    def matchers(self) -> list[SpanIndex]:
        """The lexicons' matchers, in the network's order (the lexicon's rebuilt when its words change)."""
        out = []
        if self.config.lexicon_features:
            key = (id(self.lexicon), self.lexicon.version)  # any change to the words
            if self._lexicon_index is None or self._lexicon_index[0] != key:
                self._lexicon_index = (key, SpanIndex(self.lexicon.counts))
            out.append(self._lexicon_index[1])
        return out + ([self._av_index] if self._av_index is not None else [])

    def net(self):
        """The torch module in eval mode, built from `weights` on first use."""
        if self._net is None:
            self._net = with_weights(_build_net(self.config, len(self.chars), len(self.bigram_list)), self.weights)
        return self._net

    def _row(self, text: str, matchers: Sequence[SpanIndex], tags: Sequence[int] | None = None
             ) -> tuple[np.ndarray, ...]:
        """(char ids, bigram ids, match lengths (n, 3 per matcher), gold tags or zeros) of a width-normalised text."""
        c = np.array([self._char_id.get(ch, UNK) for ch in text], np.int64)
        b = np.array([self._bigram_id.get(x, UNK) for x in bigrams(text)], np.int64)
        codes = codes_of(text)
        spans = np.concatenate([np.zeros((len(text), 0), np.int64), *(m.spans(codes)[:, :3] for m in matchers)], 1)
        return c, b, spans, np.asarray(tags if tags is not None else np.zeros(len(text)), np.int64)

    def log_probs_runs(self, runs: Sequence[str]) -> list[np.ndarray]:
        """(len(run), 4) float32 B/M/E/S log-probabilities of each run, in batches of similar lengths."""
        pieces = [(i, a, b, lo, hi) for i, r in enumerate(runs) for a, b, lo, hi in _windows(len(r))]
        texts = [normalize_text(runs[i][lo:hi]) for i, _, _, lo, hi in pieces]
        matchers = self.matchers()
        scored = _predict(self.net(), [self._row(t, matchers) for t in texts])
        out = [[] for _ in runs]
        for (i, a, b, lo, _), lp in zip(pieces, scored):
            out[i].append(lp[a - lo : b - lo])
        return [np.concatenate(parts) if parts else np.zeros((0, 4), np.float32) for parts in out]

    def _cut_run(self, run: str) -> list[str]:
        return self._cut_runs([run])[0]

    def _cut_runs(self, runs: list[str]) -> list[list[str]]:
        if not runs:
            return []
        return decode_runs(runs, np.concatenate(self.log_probs_runs(runs)), NO_TRANS)

    @classmethod
    def train(cls, sentences: Iterable[Iterable[str]], config: NeuralSegmenterConfig | None = None,
              init: NeuralSegmenter | None = None) -> NeuralSegmenter:
        """Learn from segmented sentences.

        With `init`, training goes on from that segmenter, on `sentences` alone (as
        `PerceptronSegmenter.train` does with its ``init``): its network is the start. Characters and
        bigrams it never saw join the vocabularies, each starting as the unknown one, so the start
        cuts every text as `init` does. Its pseudo-words and forced words stay, the new words join its
        lexicon, and `config` may change only the training settings, not the network's shape or its
        lexicon features (`NET_SETTINGS`; None keeps all of `init`'s settings; ``pretrain`` has no
        effect, the start being `init`'s embeddings)."""
        if init is not None and not isinstance(init, NeuralSegmenter):
            raise InputError(f"training goes on from a neural segmenter, got {type(init).__name__}")
        config = config or (init.config if init is not None else NeuralSegmenterConfig())
        sents = check_sentences(sentences)
        if init is not None:
            check_kept(config, init.config, NET_SETTINGS, "segmenter")
        with torch_threads(config.threads):
            seg = cls._train(sents, config, init)
        if init is not None and init.forced:
            seg.force_words(init.forced.words)
        return seg

    @classmethod
    def _train(cls, sents: list[list[str]], config: NeuralSegmenterConfig, init: NeuralSegmenter | None = None
               ) -> NeuralSegmenter:
        import torch

        torch.manual_seed(config.seed)
        kept, held = holdout_split(sents, config.holdout)  # holdout >= 2: the first sentence is always kept
        texts = [normalize_text("".join(s)) for s in kept]
        counts = Counter(b for t in texts for b in bigrams(t)[1:-1])
        chars = ["<pad>", "<unk>", *dict.fromkeys(ch for t in texts for ch in t)]
        bigram_list = ["<pad>", "<unk>", "", *(b for b, n in counts.items() if n >= config.bigram_min_count)]
        av_words, known = None, Counter()
        if init is not None:  # its units keep their ids, new ones follow
            chars = list(dict.fromkeys(init.chars + chars))
            bigram_list = list(dict.fromkeys(init.bigram_list + bigram_list))
            av_words, known = init.av_words, Counter(init.lexicon.counts)
        elif config.av_lexicon:
            av_words = AccessorVariety(texts).words(config.av_min, config.av_max_n)
            log.info("%d accessor-variety pseudo-words", len(av_words))
        # held-out sentences are scored against the kept ones' words (and the start's), as new text will be
        seg = cls(chars, bigram_list, {}, Lexicon(known + Counter(w for s in kept for w in s)), config, av_words)
        start = None
        if init is not None:
            start = grown(init.weights, {"char.weight": len(chars), "bigram.weight": len(bigram_list)},
                          {name: init.weights[name][UNK] for name in ("char.weight", "bigram.weight")})
        seg._net = _fit(seg, kept, held, texts, np.random.default_rng(config.seed), start)
        seg.weights = {k: v.detach().numpy().copy() for k, v in seg._net.state_dict().items()}
        seg.lexicon = Lexicon(known + Counter(w for s in sents for w in s))  # then every training word serves
        return seg

    def _state(self, directory: Path) -> dict:
        write_safetensors(directory / WEIGHTS_FILE, self.weights)
        state = {"config": config_to_dict(self.config), "chars": self.chars, "bigrams": self.bigram_list,
                 "lexicon": self.lexicon.to_dict(), "weights_file": WEIGHTS_FILE, "info": self.info}
        return state | ({"av_words": self.av_words} if self.av_words is not None else {})

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> NeuralSegmenter:
        weights = read_safetensors(directory / state.get("weights_file", WEIGHTS_FILE), "segmenter weights")
        seg = cls(state["chars"], state["bigrams"], weights, Lexicon.from_dict(state["lexicon"]),
                  config_from_dict(NeuralSegmenterConfig, state["config"]), state.get("av_words"), state.get("info"))
        seg.net()  # now: weights that do not fit the config and vocabularies fail on load, not when cutting
        return seg


def _windows(n: int) -> list[tuple[int, int, int, int]]:
    """(start, end, seen from, seen to) of the pieces a run of `n` characters is scored in: one piece
    up to `WINDOW` characters, else `WINDOW`-character pieces each seeing `MARGIN` more either side.

    >>> _windows(5), _windows(9000)
    ([(0, 5, 0, 5)], [(0, 4000, 0, 4200), (4000, 8000, 3800, 8200), (8000, 9000, 7800, 9000)])
    """
    if n <= WINDOW:
        return [(0, n, 0, n)]
    return [(a, min(n, a + WINDOW), max(0, a - MARGIN), min(n, a + WINDOW + MARGIN)) for a in range(0, n, WINDOW)]


def _predict(net, rows: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """Log-probabilities (n_i, 4) float32 of each row in eval mode, batches of about `PREDICT_CHARS`
    characters of similar lengths."""
    import torch

    out: list[np.ndarray] = [np.zeros((0, 4), np.float32)] * len(rows)
    live = [i for i, r in enumerate(rows) if len(r[0])]
    longest = max((len(rows[i][0]) for i in live), default=1)
    with eval_mode(net), torch.no_grad():
        for chunk in length_buckets([len(rows[i][0]) for i in live], max(1, PREDICT_CHARS // longest)):
            idx = [live[j] for j in chunk]
            chars, bis, spans, _, lengths = _batch([rows[i] for i in idx])
            with threads_for(sum(lengths)):
                lp = torch.log_softmax(net(chars, bis, spans, lengths), -1).numpy()
            for b, i in enumerate(idx):
                out[i] = lp[b, : lengths[b]].copy()
    return out


def training_rows(seg: NeuralSegmenter, kept: list[list[str]], texts: list[str]) -> list[tuple[np.ndarray, ...]]:
    """`NeuralSegmenter._row` of each training sentence with its gold tags; the training-word matches of
    sentence i come from the words of the other folds (its fold: i % folds, as `jackknife_matchers`)."""
    folds = jackknife_matchers(kept, seg.lexicon, seg.config.folds, 1) if seg.config.lexicon_features else [None]
    return [seg._row(t, [m for m in (folds[i % len(folds)], seg._av_index) if m is not None], encode_tags(s))
            for i, (t, s) in enumerate(zip(texts, kept))]


def _fit(seg: NeuralSegmenter, kept: list[list[str]], held: list[list[str]], texts: list[str],
         rng: np.random.Generator, start: dict[str, np.ndarray] | None = None):
    """Train the network on `kept` (`texts`: their normalised text), from the weights `start` if given;
    returns it (eval mode) at its best epoch by F1 on `held` (the last without)."""
    c = seg.config
    rows = training_rows(seg, kept, texts)
    net = _build_net(c, len(seg.chars), len(seg.bigram_list))
    if start is not None:
        with_weights(net, start)
    elif c.pretrain:
        start_at_vectors([net.char.weight], seg._char_id, [list(t) for t in texts], 2, c.seed, "characters")
        start_at_vectors([net.bigram.weight], seg._bigram_id, [bigrams(t)[1:-1] for t in texts],
                         c.bigram_min_count, c.seed, "bigrams")
    seg._net = net
    buckets = length_buckets([len(r[0]) for r in rows], c.batch_size)

    def batch(indices):
        chars, bis, spans, gold, lengths = _batch([rows[i] for i in indices])
        return net(chars, bis, spans, lengths), gold, lengths

    def held_f1():
        return seg_scores(held, seg.cut_lines(["".join(s) for s in held])).f1 if held else float("nan")

    net, epoch, f1 = fit_epochs(net, c, buckets, batch, held_f1, len(held), rng, "neural segmenter", "F1", log)
    seg.info = {"epoch": epoch, "holdout_f1": f1 if held else None, "holdout_sentences": len(held)}
    return net
