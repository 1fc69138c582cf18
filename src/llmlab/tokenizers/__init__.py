"""Tokenizers behind one interface, saved as Hugging Face ``tokenizer.json``. No torch."""

from llmlab.tokenizers.base import SPECIAL_TOKENS, Tokenizer, load_tokenizer
from llmlab.tokenizers.char import CharTokenizer

__all__ = ["SPECIAL_TOKENS", "CharTokenizer", "Tokenizer", "load_tokenizer"]
