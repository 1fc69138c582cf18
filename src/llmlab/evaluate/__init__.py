"""Evaluation metrics (topics 19, 53, 55, 2), torch-free: BLEU and chrF as sacrebleu computes them,
ROUGE as rouge-score computes it (and on Chinese), perplexity and bits per character, diversity,
task accuracy, Bradley-Terry rankings, out-of-domain detection and per-slice disparity.

Modules: bleu, bleu_tokenize, chrf, rouge, porter, lm, diversity, tasks, ranking, ood, slices.
"""

from llmlab.evaluate.bleu import BleuConfig, BleuScore, bleu_signature, corpus_bleu, sentence_bleu
from llmlab.evaluate.chrf import ChrfConfig, chrf_signature, corpus_chrf, sentence_chrf
from llmlab.evaluate.diversity import distinct_n, rep_n, self_bleu
from llmlab.evaluate.lm import bits_per_char, corpus_bits_per_char, corpus_perplexity, text_perplexity
from llmlab.evaluate.porter import porter_stem
from llmlab.evaluate.rouge import RougeConfig, RougeScorer, corpus_rouge
from llmlab.evaluate.tasks import accuracy, choose, exact_match, multiple_choice_accuracy, numeric_match

__all__ = [
    "BleuConfig", "BleuScore", "ChrfConfig", "RougeConfig", "RougeScorer", "accuracy", "bits_per_char",
    "bleu_signature", "chrf_signature", "choose", "corpus_bits_per_char", "corpus_bleu", "corpus_chrf",
    "corpus_perplexity", "corpus_rouge", "distinct_n", "exact_match", "multiple_choice_accuracy",
    "numeric_match", "porter_stem", "rep_n", "self_bleu", "sentence_bleu", "sentence_chrf", "text_perplexity",
]  # fmt: skip
