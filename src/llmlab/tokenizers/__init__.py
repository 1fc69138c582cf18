"""Tokenizers behind one interface, saved as Hugging Face ``tokenizer.json``. No torch."""

from llmlab.tokenizers.base import SPECIAL_TOKENS, Tokenizer, load_tokenizer
from llmlab.tokenizers.bpe import BPETokenizer
from llmlab.tokenizers.char import CharTokenizer
from llmlab.tokenizers.factory import ALGOS, train_tokenizer
from llmlab.tokenizers.pretokenize import PreTokenizer
from llmlab.tokenizers.truncation import fit_prompt, pad, truncate, truncate_pair
from llmlab.tokenizers.unigram import UnigramTokenizer
from llmlab.tokenizers.whitespace import WhitespaceTokenizer
from llmlab.tokenizers.wordpiece import WordPieceTokenizer

__all__ = [
    "ALGOS", "SPECIAL_TOKENS", "BPETokenizer", "CharTokenizer", "PreTokenizer", "Tokenizer", "UnigramTokenizer",
    "WhitespaceTokenizer", "WordPieceTokenizer", "fit_prompt", "load_tokenizer", "pad", "train_tokenizer",
    "truncate", "truncate_pair",
]
