"""Chinese word segmentation and part-of-speech tagging, torch-free.

Segmenters (all trainable from segmented sentences, all lossless): maximum matching
(`llmlab.text.matching`), word lattices with unigram / k-best / bigram paths (`llmlab.text.lattice`),
a B/M/E/S HMM (`llmlab.text.hmm`) and an averaged-perceptron tagger (`llmlab.text.perceptron`, which a
saved model can also be trained further from: ``train(init=...)``). POS taggers live in
`llmlab.text.pos`, metrics in `llmlab.text.metrics`. Dependency parsing: CoNLL-U (`llmlab.text.conllu`),
tree decoders (`llmlab.text.dep_decode`), graph- and transition-based parsers (`llmlab.text.dep_graph`,
`llmlab.text.dep_transition`), scores (`llmlab.text.dep_eval`) and a generated treebank
(`llmlab.text.treebank`).

`cut`, `default_segmenter` and `default_tagger` (`llmlab.text.default`) are ready-made models, trained
once on pfr1998 and cached; `cut_for_search`, `cut_all` and `tokenize` are jieba's search mode, full
mode and offsets on the default segmenter (every segmenter has them as methods); `cut_and_tag` segments
and tags with both models; `load_userdict`, `add_word`, `del_word` and `suggest_freq` give them a user's
words; `extract_tags` and `textrank` give a text's keywords (`llmlab.text.keywords`: TF-IDF and
TextRank), as jieba's functions of those names do. `llmlab.text.newwords` finds words in raw text
without a dictionary (frequency, cohesion, branching entropy). `llmlab.text.script` reads traditional
characters as simplified ones, so the models trained on simplified text cut and tag traditional text.
"""

from llmlab.core.lazy import lazy_exports
from llmlab.text.base import KINDS, Segmenter, load_segmenter, segmenter_class

__getattr__, _defaults = lazy_exports(__name__, {name: "llmlab.text.default"
                                                 for name in ("add_word", "cut", "cut_all", "cut_and_tag",
                                                              "cut_for_search", "default_segmenter", "default_tagger",
                                                              "del_word", "extract_tags", "load_userdict",
                                                              "suggest_freq", "textrank", "tokenize")})
__all__ = ["KINDS", "Segmenter", "load_segmenter", "segmenter_class", *_defaults]
