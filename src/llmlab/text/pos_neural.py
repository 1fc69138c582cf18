"""A BiLSTM POS tagger over word embeddings and character features (a CNN over each word's characters).

Each word is the concatenation of its word embedding (training words seen at least ``min_count``
times, normalised with `normalize_text`; others share one unknown id), a max-pooled CNN over its
character embeddings (the first and last three characters of a longer word), embeddings of its
first and last characters and of its length (capped). A bidirectional LSTM (``layers`` deep) reads
the sentence and a linear layer gives each word's tag scores; training minimises cross-entropy with
Adam. Word dropout replaces a training word by the unknown id with probability
``word_dropout + 0.25 / (0.25 + count)``, so rare words teach the character features what unknown
words look like. The best epoch is chosen on held-out training sentences (every ``holdout``-th).

With ``pretrain`` (the default) the word and character embeddings start from PPMI-SVD vectors of
the training text (`llmlab.text.clusters.word_vectors` of the words, and of the characters in running
text; about 20 s): what a unit's neighbours say about it, which the tagging loss alone learns slowly
for rare ones. On pfr1998 word vectors lift the tagger alone from test 0.9593 to 0.9629 and dev
0.9650 to 0.9669 (8 epochs); held-out accuracy still rises after 8 epochs, and the default 12 give
test 0.9630, dev 0.9673; character vectors then bring it to test 0.9650, dev 0.9686 (about 15 minutes
for the 12 epochs on one thread; the default's later retraining in `pos train --algo hybrid`: 0.9646,
0.9692). A wider LSTM (256) or a second tagger averaged in did not help the hybrid below.

The bidirectional LSTM is `llmlab.text.neural`'s (fused per-direction LSTMs over padded batches).
A saved tagger can be trained further on new text (`NeuralTagger.train(init=...)`, ``llmlab pos train
--init-model``): new words and characters start at the unknown one's embedding, a new tag with no weights.

Alone it is about as accurate as the perceptron (test 0.9640, dev 0.9703) and makes different errors:
`llmlab.text.pos_hybrid` adds its log-probabilities to the perceptron's emissions.

torch is imported inside the functions that need it (the network is built by `_build_net`), so
``llmlab.text`` stays torch-free: the same exception DESIGN.md makes for word2vec. Loading a saved
tagger reads numpy arrays; torch is first imported when it tags.
"""

from __future__ import annotations

import logging
import re
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
from llmlab.text.base import SPACED_WORD_CHAR, normalize_text
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
from llmlab.text.perceptron import check_kept
from llmlab.text.pos import PosTagger, check_tagged, tag_mask

log = logging.getLogger(__name__)
WEIGHTS_FILE = "neural.safetensors"
PAD, UNK = 0, 1  # ids 0 and 1 of the word and character vocabularies
PREDICT_BATCH = 32  # sentences per forward pass when tagging (the fused LSTM kernel slows down on bigger batches)


@dataclass(frozen=True)
class NeuralTaggerConfig:
    epochs: int = 12  # passes over the training sentences; >= 1
    word_dim: int = 100  # word embedding size; >= 1
    char_dim: int = 50  # character embedding size (CNN input, first and last character); >= 1
    filters: int = 100  # character CNN filters; >= 1
    width: int = 3  # character CNN window; odd, >= 1
    max_chars: int = 6  # characters the CNN sees: a longer word shows its first and last max_chars // 2; >= 2
    length_dim: int = 10  # embedding size of the word length (capped at max_chars); >= 1
    hidden: int = 150  # LSTM size per direction; >= 1
    layers: int = 1  # stacked bidirectional LSTM layers (dropout between them); >= 1
    dropout: float = 0.25  # on the word inputs and on the LSTM outputs; in [0, 1)
    word_dropout: float = 0.05  # base rate of replacing a known training word by the unknown id; in [0, 1)
    min_count: int = 2  # training words seen fewer times get the unknown id; >= 1
    pretrain: bool = True  # word and character embeddings start from PPMI-SVD vectors of the training text
    batch_size: int = 16  # sentences per step, bucketed by length; >= 1
    lr: float = 3e-3  # Adam learning rate; > 0
    decay: float = 0.6  # learning rate factor per epoch after decay_from epochs; in (0, 1]
    decay_from: int = 6  # epochs at the full learning rate; >= 0
    clip: float = 5.0  # gradient norm clip; > 0
    holdout: int = 20  # every holdout-th training sentence is held out to pick the best epoch; 0 = none (last)
    seed: int = 0  # initial weights, dropout, batch order
    threads: int = 1  # torch CPU threads while training (restored after); 0 = leave torch as it is

    def __post_init__(self):
        for name in ("epochs", "word_dim", "char_dim", "filters", "width", "length_dim", "hidden", "layers",
                     "min_count", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % 2 == 0:
            raise InputError(f"width must be odd, got {self.width}")
        if self.max_chars < 2:
            raise InputError(f"max_chars must be >= 2, got {self.max_chars}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        check_training(self)


# the settings that shape a neural tagger's network: one trained further (`train(init=...)`) keeps them
NET_SETTINGS = ("word_dim", "char_dim", "filters", "width", "max_chars", "length_dim", "hidden", "layers")

def latin_stand_in(ch: str) -> str:
    """What an unknown character is read as: a letter or digit of another script written with spaces
    (Cyrillic, Greek, Hangul, ...; pfr1998's foreign words are all Latin) as "A", "a" or "0", so that
    such a word looks foreign rather than like an unknown symbol; "" for any other character.

    >>> [latin_stand_in(c) for c in "ДдΩ٣서中。a"]
    ['A', 'a', 'A', '0', 'a', '', '', '']
    """
    if ch.isascii() or not SPACED_WORD_CHAR.match(ch):
        return ""
    return "0" if ch.isdecimal() else "A" if ch.isupper() else "a"


def char_table(words: Sequence[str], char_ids: dict[str, int], max_chars: int) -> tuple[np.ndarray, ...]:
    """Character features of normalised words: (chars (U, max_chars) ids, 0-padded; a longer word keeps
    its first and last max_chars // 2), first char id, last char id, length capped at max_chars; an
    empty word is all padding. An unknown character takes the id of its `latin_stand_in`, if known.

    >>> [a.tolist() for a in char_table(["ab", ""], {"a": 2, "b": 3}, 4)]
    [[[2, 3, 0, 0], [0, 0, 0, 0]], [2, 0], [3, 0], [2, 0]]
    """
    chars = np.zeros((len(words), max_chars), np.int64)
    first, last, length = (np.zeros(len(words), np.int64) for _ in range(3))
    half = max_chars // 2
    for i, w in enumerate(words):
        c = [char_ids.get(ch) or char_ids.get(latin_stand_in(ch), UNK) for ch in w]
        if not c:
            continue
        first[i], last[i], length[i] = c[0], c[-1], min(len(c), max_chars)
        if len(c) > max_chars:
            c = c[:half] + c[len(c) - half:]
        chars[i, : len(c)] = c
    return chars, first, last, length


def _build_net(config: NeuralTaggerConfig, n_words: int, n_chars: int, n_tags: int):
    """The torch module: (word ids (B, L), type ids (B, L), lengths, char table) -> tag logits (B, L, K)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            c = config
            self.word = nn.Embedding(n_words, c.word_dim, padding_idx=PAD)
            self.char = nn.Embedding(n_chars, c.char_dim, padding_idx=PAD)
            self.first, self.last = nn.Embedding(n_chars, c.char_dim), nn.Embedding(n_chars, c.char_dim)
            self.length = nn.Embedding(c.max_chars + 1, c.length_dim)
            self.conv = nn.Conv1d(c.char_dim, c.filters, c.width, padding=c.width // 2)
            d_in = c.word_dim + c.filters + 2 * c.char_dim + c.length_dim
            self.rnn = make_bilstm(d_in, c.hidden, c.layers)
            self.drop = nn.Dropout(c.dropout)
            self.out = nn.Linear(2 * c.hidden, n_tags)

        def char_rep(self, chars, first, last, length):  # chars (U, M) -> (U, filters + 2 char_dim + length_dim)
            h = torch.relu(self.conv(self.char(chars).transpose(1, 2)))  # (U, filters, M)
            # padding to 0 is a masked max-pool: relu outputs are >= 0 (and an empty word gets all zeros)
            h = h.masked_fill((chars == PAD).unsqueeze(1), 0.0).max(2).values  # (U, filters)
            return torch.cat([h, self.first(first), self.last(last), self.length(length)], 1)

        def forward(self, words, types, lengths, table):
            uniq, inv = torch.unique(types, return_inverse=True)  # only the types in this batch
            rep = self.char_rep(*(t[uniq] for t in table))[inv]  # (B, L, D_char)
            x = self.drop(torch.cat([self.word(words), rep], 2))  # (B, L, D_in)
            return self.out(self.drop(self.bilstm(x, lengths)))  # (B, L, K)

        def bilstm(self, x, lengths):  # (B, L, D_in) padded -> (B, L, 2H); rows past a sentence's end are junk
            return run_bilstm(self.rnn, x, lengths, self.drop)

    return Net()


def _batch(rows: list[tuple[np.ndarray, ...]]):
    """Padded (word ids, type ids, gold tags with -100 padding) torch tensors (B, L) and the lengths."""
    import torch

    lengths = [len(r[0]) for r in rows]
    out = [np.zeros((len(rows), max(lengths)), np.int64) for _ in range(2)] + [
        np.full((len(rows), max(lengths)), -100, np.int64)]
    for b, r in enumerate(rows):
        for a, x in zip(out, r):
            a[b, : len(x)] = x
    return *(torch.from_numpy(a) for a in out), lengths


class NeuralTagger(PosTagger):
    """BiLSTM-CNN tagger; `log_probs` gives per-word tag log-probabilities (columns in `tags` order).

    Tags are each word's most probable tag (no transition model: the BiLSTM sees the whole sentence).
    """

    kind = "neural"

    def __init__(self, tags: list[str], words: list[str], chars: list[str], weights: dict[str, np.ndarray],
                 config: NeuralTaggerConfig | None = None, info: dict | None = None):
        self.tags, self.words, self.chars, self.weights = tags, words, chars, weights
        self.config = config or NeuralTaggerConfig()
        self.info = info or {}  # training facts saved with the model: best epoch, held-out accuracy
        self._word_id = {w: i for i, w in enumerate(words)}
        self._char_id = {c: i for i, c in enumerate(chars)}
        self._net = None

    def net(self):
        """The torch module in eval mode, built from `weights` on first use."""
        if self._net is None:
            net = _build_net(self.config, len(self.words), len(self.chars), len(self.tags))
            self._net = with_weights(net, self.weights)
        return self._net

    def _word_ids(self, norm: Sequence[str]) -> np.ndarray:
        """Word ids of already normalised words (`normalize_text`)."""
        return np.array([self._word_id.get(w, UNK) for w in norm], np.int64)

    def log_probs_sentences(self, sentences: Iterable[Sequence[str]]) -> list[np.ndarray]:
        """(n, K) float32 tag log-probabilities for each sentence, in batches of similar lengths."""
        sents = [list(s) for s in sentences]
        out: list[np.ndarray] = [np.zeros((0, len(self.tags)), np.float32)] * len(sents)
        live = [i for i, s in enumerate(sents) if s]
        for chunk in length_buckets([len(sents[i]) for i in live], PREDICT_BATCH):
            idx = [live[j] for j in chunk]
            norm = [[normalize_text(w) for w in sents[i]] for i in idx]
            types = {w: k for k, w in enumerate(dict.fromkeys(w for s in norm for w in s))}
            table = char_table(list(types), self._char_id, self.config.max_chars)
            rows = [(self._word_ids(s), np.array([types[w] for w in s]), np.zeros(len(s))) for s in norm]
            for i, lp in zip(idx, _predict(self.net(), rows, table)):
                out[i] = lp
        return out

    def log_probs(self, words: Sequence[str]) -> np.ndarray:
        """(n, K) float32 tag log-probabilities of one sentence."""
        return self.log_probs_sentences([words])[0]

    def _tag(self, words: list[str]) -> list[str]:
        return self._tag_sentences([words])[0]

    def _tag_sentences(self, sentences: list[list[str]]) -> list[list[str]]:
        sents, user = sentences, self.user_tag_ids()
        return [[self.tags[i] for i in (lp + tag_mask(s, user, len(self.tags)) if user else lp).argmax(1)]
                for s, lp in zip(sents, self.log_probs_sentences(sents))]

    @classmethod
    def train(cls, sentences, config: NeuralTaggerConfig | None = None, init: NeuralTagger | None = None
              ) -> NeuralTagger:
        """Learn from tagged sentences.

        With `init`, training goes on from that tagger, on `sentences` alone (as
        `PerceptronTagger.train` does with its ``init``): its network is the start. Words (seen
        ``min_count`` times in `sentences`) and characters it never had join the vocabularies, each
        starting as the unknown one; a new tag starts with no weights and the lowest bias. `config`
        may change only the training settings, not the network's shape (`NET_SETTINGS`; None keeps
        all of `init`'s settings; ``pretrain`` has no effect, the start being `init`'s embeddings)."""
        if init is not None and not isinstance(init, NeuralTagger):
            raise InputError(f"training goes on from a neural tagger, got {type(init).__name__}")
        config = config or (init.config if init is not None else NeuralTaggerConfig())
        sents = check_tagged(sentences)
        if init is not None:
            check_kept(config, init.config, NET_SETTINGS, "tagger")
        with torch_threads(config.threads):
            return cls._train(sents, config, init)

    @classmethod
    def _train(cls, sents, config: NeuralTaggerConfig, init: NeuralTagger | None = None) -> NeuralTagger:
        import torch

        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        tags = sorted({t for s in sents for _, t in s})
        kept, held = holdout_split(sents, config.holdout)  # holdout >= 2: the first sentence is always kept
        counts = Counter(normalize_text(w) for s in kept for w, _ in s)
        words = ["<pad>", "<unk>", *(w for w, c in counts.items() if c >= config.min_count)]
        chars = ["<pad>", "<unk>", *dict.fromkeys(ch for w in counts for ch in w)]
        start = None
        if init is not None:  # its units and tags keep their ids, new ones follow
            tags, words, chars = (list(dict.fromkeys(a + b)) for a, b in
                                  ((init.tags, tags), (init.words, words), (init.chars, chars)))
            w = init.weights
            rows = {"word.weight": len(words), "out.weight": len(tags), "out.bias": len(tags),
                    **{f"{name}.weight": len(chars) for name in ("char", "first", "last")}}
            fills = {name: w[name][UNK] for name in rows if not name.startswith("out.")}
            start = grown(w, rows, {**fills, "out.weight": 0.0, "out.bias": w["out.bias"].min()})
        tagger = cls(tags, words, chars, {}, config)
        tagger._net = _fit(tagger, kept, held, counts, rng, start)
        tagger.weights = {k: v.detach().numpy().copy() for k, v in tagger._net.state_dict().items()}
        return tagger

    def _state(self, directory: Path) -> dict:
        write_safetensors(directory / WEIGHTS_FILE, self.weights)
        return {"config": config_to_dict(self.config), "tags": self.tags, "words": self.words, "chars": self.chars,
                "weights_file": WEIGHTS_FILE, "info": self.info}

    @classmethod
    def _from_state(cls, state: dict, directory: Path) -> NeuralTagger:
        path = directory / state.get("weights_file", WEIGHTS_FILE)
        config = {"pretrain": False, **state["config"]}  # saved before `pretrain` existed: trained without it
        tagger = cls(state["tags"], state["words"], state["chars"],
                     per_direction_names(read_safetensors(path, "POS tagger weights")),
                     config_from_dict(NeuralTaggerConfig, config), state.get("info"))
        tagger.net()  # now: weights that do not fit the config and vocabularies fail on load, not when tagging
        return tagger


def per_direction_names(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`weights` with those of one bidirectional nn.LSTM (how taggers were saved before) renamed to the
    per-direction LSTMs of `_build_net`; other names unchanged.

    >>> list(per_direction_names({"lstm.weight_ih_l1_reverse": 0, "lstm.bias_hh_l0": 0, "out.bias": 0}))
    ['rnn.3.weight_ih_l0', 'rnn.0.bias_hh_l0', 'out.bias']
    """
    out = {}
    for name, value in weights.items():
        m = re.fullmatch(r"lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?", name)
        out[f"rnn.{2 * int(m[2]) + bool(m[3])}.{m[1]}_l0" if m else name] = value
    return out


def _predict(net, rows: list[tuple[np.ndarray, ...]], table: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """Log-probabilities (n_i, K) float32 of each row (word ids, type ids, tags) in one eval-mode pass."""
    import torch

    with eval_mode(net), torch.no_grad(), threads_for(sum(len(r[0]) for r in rows)):
        w, ty, _, lengths = _batch(rows)
        lp = torch.log_softmax(net(w, ty, lengths, tuple(map(torch.from_numpy, table))), -1).numpy()  # (B, L, K)
    return [lp[b, :n].copy() for b, n in enumerate(lengths)]


def _fit(tagger: NeuralTagger, kept: list, held: list, counts: Counter, rng: np.random.Generator,
         start: dict[str, np.ndarray] | None = None):
    """Train the network on `kept`, from the weights `start` if given; returns it (eval mode) at its best
    epoch on `held` (the last without)."""
    import torch

    c, tid = tagger.config, {t: i for i, t in enumerate(tagger.tags)}
    norm_kept, norm_held = ([[normalize_text(w) for w, _ in s] for s in data] for data in (kept, held))
    types = {w: i for i, w in enumerate(dict.fromkeys(w for s in norm_kept + norm_held for w in s))}
    table = tuple(map(torch.from_numpy, char_table(list(types), tagger._char_id, c.max_chars)))

    def rows(data, norm):
        return [(tagger._word_ids(n), np.array([types[w] for w in n]), np.array([tid[t] for _, t in s]))
                for s, n in zip(data, norm)]

    train_rows, held_rows = rows(kept, norm_kept), rows(held, norm_held)
    # word dropout probability per training word (0 for words already unknown)
    drop_p = [np.where(r[0] > UNK, c.word_dropout + 0.25 / (0.25 + np.array([counts[w] for w in n])), 0.0)
              for r, n in zip(train_rows, norm_kept)]
    net = _build_net(c, len(tagger.words), len(tagger.chars), len(tagger.tags))
    if start is not None:
        with_weights(net, start)
    elif c.pretrain:
        _pretrain(net, tagger, norm_kept)
    buckets = length_buckets([len(r[0]) for r in train_rows], c.batch_size)

    def batch(indices):
        w, ty, gold, lengths = _batch([(np.where(rng.random(len(drop_p[i])) < drop_p[i], UNK, train_rows[i][0]),
                                        *train_rows[i][1:]) for i in indices])
        return net(w, ty, lengths, table), gold, lengths  # logits (B, L, K)

    net, epoch, acc = fit_epochs(net, c, buckets, batch, lambda: _accuracy(net, held_rows, table), len(held_rows),
                                 rng, "neural tagger", "accuracy", log)
    tagger.info = {"epoch": epoch, "holdout_accuracy": acc if held_rows else None, "holdout_sentences": len(held_rows)}
    return net


def _pretrain(net, tagger: NeuralTagger, norm: list[list[str]]) -> None:
    """Start the embeddings of the words and characters that have PPMI-SVD vectors at those vectors:
    words' from `word_vectors` of the (normalised) training sentences `norm`, characters' (all three
    character tables) from `word_vectors` of the characters in running text."""
    c = tagger.config
    start_at_vectors([net.word.weight], tagger._word_id, norm, c.min_count, c.seed, "words")
    start_at_vectors([net.char.weight, net.first.weight, net.last.weight], tagger._char_id,
                      [list("".join(s)) for s in norm], c.min_count, c.seed, "characters")


def _accuracy(net, rows: list, table) -> float:
    """Share of the words of `rows` whose most probable tag is the gold one (nan without rows)."""
    right = total = 0
    for chunk in length_buckets([len(r[0]) for r in rows], PREDICT_BATCH):
        batch = [rows[i] for i in chunk]
        for lp, r in zip(_predict(net, batch, tuple(t.numpy() for t in table)), batch):
            right += int((lp.argmax(1) == r[2]).sum())
            total += len(r[2])
    return right / total if total else float("nan")
