"""Ready-made models, so that segmenting or tagging needs no set-up (as with jieba):
`default_segmenter()` is the perceptron segmenter and `default_tagger()` the perceptron POS tagger,
both with their default configs, trained on the pfr1998 train split. Each is trained on first use (about
20 seconds for the segmenter, a minute and a half for the tagger), kept in the user's model cache (`llmlab.core.cache`:
``$LLMLAB_HOME``, default ``~/.cache/llmlab``) and loaded from there afterwards. `cut` segments with
the default segmenter, `cut_and_tag` with both; `load_userdict` and `add_word` give them a user's words,
and `extract_tags` and `textrank` give a text's keywords (jieba's functions of those names).

The cached directories are named by the feature set their model computes, so a newer llmlab whose
features differ trains a fresh model instead of loading one it cannot use.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from llmlab.core.cache import cached_model
from llmlab.core.errors import InputError
from llmlab.text.base import Segmenter, load_segmenter
from llmlab.text.keywords import TEXTRANK_TAGS
from llmlab.text.pos import PosTagger, load_tagger


def segmenter_name() -> str:
    """The cache directory name of the default segmenter."""
    from llmlab.text.features import FEATURE_SET

    return f"seg-perceptron-pfr1998-fs{FEATURE_SET}"


def tagger_name() -> str:
    """The cache directory name of the default POS tagger."""
    from llmlab.text.pos_perceptron import CLUSTER_FEATURE_SET

    return f"pos-perceptron-pfr1998-fs{CLUSTER_FEATURE_SET}"


def _train_segmenter() -> Segmenter:
    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.perceptron import PerceptronSegmenter

    return PerceptronSegmenter.train(pfr1998_words("train"))


def _train_tagger() -> PosTagger:
    from llmlab.data.corpora import pfr1998
    from llmlab.text.pos_perceptron import PerceptronTagger

    return PerceptronTagger.train(pfr1998("train"))


T = TypeVar("T")


def _once(load: Callable[[], T]) -> Callable[[], T]:
    """`load` run by its first caller only, its result kept for the process. Threads that call while it runs
    wait for that result: `functools.lru_cache` let each of them load its own copy and kept the last, so
    words one thread's `add_word` gave its copy were lost. ``cache_clear()`` forgets it (tests)."""
    lock, kept = threading.Lock(), []

    @functools.wraps(load)
    def get() -> T:
        if not kept:
            with lock:
                if not kept:
                    kept.append(load())
        return kept[0]

    get.cache_clear = kept.clear  # type: ignore[attr-defined]
    get.loaded = lambda: bool(kept)  # type: ignore[attr-defined]
    return get


@_once
def default_segmenter() -> Segmenter:
    """The perceptron segmenter trained on pfr1998 train (loaded once per process)."""
    return cached_model(segmenter_name(), _train_segmenter, load_segmenter,
                        "default segmenter (perceptron, pfr1998 train split, about 20 seconds)")


@_once
def default_tagger() -> PosTagger:
    """The perceptron POS tagger trained on pfr1998 train (loaded once per process)."""
    return cached_model(tagger_name(), _train_tagger, load_tagger,
                        "default POS tagger (perceptron, pfr1998 train split, about a minute and a half)")


def load_userdict(source, force: bool = False) -> None:
    """A user dictionary for this process's default models (jieba's ``load_userdict``): a file of
    ``word [count] [tag]`` lines (its path, or the file open, as jieba takes it), or (word, count-or-None,
    tag-or-None) triples or (word, count-or-None) pairs. The words go into the default segmenter's
    lexicon (with `force`, they are always cut whole: `Segmenter.add_user_dict`), and the words with a
    tag get it from the default tagger (`PosTagger.add_user_tags`; loading it, or training it on first
    use). A count of 0 takes the word out of the segmenter's lexicon (jieba's ``del_word``). Every entry
    is checked before either model changes."""
    from llmlab.text.lexicon import split_deletions

    entries = _user_entries(source)
    words = [(w, c) for w, c, _ in entries]
    split_deletions(words)  # bad words and counts, and a word both added and taken out, refused here
    tags = [(w, t) for w, _, t in entries if t is not None]
    if tags:  # checked against the tagset before the segmenter changes
        default_tagger().add_user_tags(tags)
    default_segmenter().add_user_dict(words, force)


def _user_entries(source) -> list[tuple[str, int | None, str | None]]:
    """`load_userdict`'s (word, count, tag) entries of a path, an open file or an iterable of entries."""
    from llmlab.text.lexicon import read_user_entries, user_entries_of_text

    if isinstance(source, (str, os.PathLike)):
        return read_user_entries(source)
    where = f"user dictionary {str(getattr(source, 'name', 'file'))!r}"
    if hasattr(source, "read"):  # an open file, text or binary
        data = source.read()
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError as e:
            raise InputError(f"{where} is not UTF-8 (byte {e.start}: {e.reason})") from None
        if not isinstance(text, str):
            raise InputError(f"{where}: read() gave {type(text).__name__}, not text")
        return user_entries_of_text(text.removeprefix("\ufeff"), where)
    if isinstance(source, (bytes, dict)) or not isinstance(source, Iterable):
        raise InputError(f"a user dictionary is a file path, an open file, or (word, count[, tag]) entries; got "
                         f"{type(source).__name__}")
    entries = []
    for e in source:
        if not (isinstance(e, (tuple, list)) and len(e) in (2, 3) and isinstance(e[0], str)
                and (len(e) == 2 or e[2] is None or isinstance(e[2], str))):
            raise InputError(f"user dictionary entries are (word, count or None[, tag or None]), got {e!r:.80}")
        entries.append((e[0], e[1], e[2] if len(e) == 3 else None))
    return entries


def add_word(word: str, count: int | None = None, tag: str | None = None, force: bool = False) -> None:
    """`load_userdict` of one word (jieba's ``add_word``)."""
    load_userdict([(word, count, tag)], force)


def del_word(word: str) -> None:
    """`Segmenter.del_word` on the default segmenter (jieba's ``del_word``)."""
    default_segmenter().del_word(word)


def suggest_freq(segment: str | Sequence[str], tune: bool = False) -> int:
    """`Segmenter.suggest_freq` on the default segmenter's lexicon (jieba's ``suggest_freq``)."""
    return default_segmenter().suggest_freq(segment, tune)


def cut_and_tag(text: str) -> list[tuple[str, str]]:
    """(word, tag) pairs of `text` by the default segmenter and tagger (jieba's ``posseg.lcut``;
    `pos.cut_and_tag`); the words join back to `text`."""
    from llmlab.text.pos import cut_and_tag as with_models

    return with_models(default_segmenter(), default_tagger(), text)


def extract_tags(text: str, top_k: int | None = 20, with_weight: bool = False,
                 allow_tags: Iterable[str] | None = None) -> list:
    """jieba's ``analyse.extract_tags`` on the default models: the `top_k` words of `text` (None: all) by
    tf-idf against the pfr1998 idf table (`keywords.tfidf_keywords`), as words or, with `with_weight`,
    (word, weight) pairs; with `allow_tags`, only words the default tagger gives one of those tags."""
    from llmlab.text.keywords import tfidf_keywords

    ranked = tfidf_keywords(cut_and_tag(text) if allow_tags else cut(text), None, top_k, allow_tags)
    return ranked if with_weight else [w for w, _ in ranked]


def textrank(text: str, top_k: int | None = 20, with_weight: bool = False,
             allow_tags: Iterable[str] | None = TEXTRANK_TAGS) -> list:
    """jieba's ``analyse.textrank`` on the default models: the `top_k` words of `text` (None: all) by
    TextRank over the words with `allow_tags` (None: every word; `keywords.textrank_keywords`), as words
    or, with `with_weight`, (word, weight) pairs."""
    from llmlab.text.keywords import textrank_keywords

    ranked = textrank_keywords(cut_and_tag(text) if allow_tags else cut(text), top_k, allow_tags)
    return ranked if with_weight else [w for w, _ in ranked]


def cut(text: str) -> list[str]:
    """`text` segmented by the default segmenter; the words join back to `text`."""
    return default_segmenter().cut(text)


def cut_for_search(text: str) -> list[str]:
    """The default segmenter's search mode (`Segmenter.cut_for_search`, jieba's ``cut_for_search``)."""
    return default_segmenter().cut_for_search(text)


def cut_all(text: str) -> list[str]:
    """The default segmenter's full mode (`Segmenter.cut_all`, jieba's ``cut(text, cut_all=True)``)."""
    return default_segmenter().cut_all(text)


def tokenize(text: str, mode: str = "default") -> list[tuple[str, int, int]]:
    """The default segmenter's words with offsets (`Segmenter.tokenize`, jieba's ``tokenize``)."""
    return default_segmenter().tokenize(text, mode)


__all__ = ["add_word", "cut", "cut_all", "cut_and_tag", "cut_for_search", "default_segmenter", "default_tagger",
           "del_word", "extract_tags", "load_userdict", "segmenter_name", "suggest_freq", "tagger_name", "textrank",
           "tokenize"]
