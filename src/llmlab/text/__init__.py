"""Chinese word segmentation and part-of-speech tagging, torch-free.

Segmenters (all trainable from segmented sentences, all lossless): maximum matching
(`llmlab.text.matching`), word lattices with unigram / k-best / bigram paths (`llmlab.text.lattice`),
a B/M/E/S HMM (`llmlab.text.hmm`) and an averaged-perceptron tagger (`llmlab.text.perceptron`).
POS taggers live in `llmlab.text.pos`, metrics in `llmlab.text.metrics`.
"""

from llmlab.text.base import KINDS, Segmenter, load_segmenter, segmenter_class

__all__ = ["KINDS", "Segmenter", "load_segmenter", "segmenter_class"]
