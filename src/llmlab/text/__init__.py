"""Chinese word segmentation and part-of-speech tagging, torch-free.

Segmenters (all trainable from segmented sentences, all lossless): maximum matching
(`llmlab.text.matching`), word lattices with unigram / k-best / bigram paths (`llmlab.text.lattice`),
a B/M/E/S HMM (`llmlab.text.hmm`) and an averaged-perceptron tagger (`llmlab.text.perceptron`).
POS taggers live in `llmlab.text.pos`, metrics in `llmlab.text.metrics`. `cut`, `default_segmenter`
and `default_tagger` (`llmlab.text.default`) are ready-made models, trained once on pfr1998 and cached.
"""

from llmlab.core.lazy import lazy_exports
from llmlab.text.base import KINDS, Segmenter, load_segmenter, segmenter_class

__getattr__, _defaults = lazy_exports(__name__, {name: "llmlab.text.default"
                                                 for name in ("cut", "default_segmenter", "default_tagger")})
__all__ = ["KINDS", "Segmenter", "load_segmenter", "segmenter_class", *_defaults]
