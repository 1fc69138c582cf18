"""Errors, atomic file IO, config helpers and progress: the bottom layer, no torch."""

from llmlab.core.errors import InputError, LlmlabError
from llmlab.core.io import (
    atomic_write_bytes,
    atomic_write_text,
    json_text,
    read_jsonl,
    read_lines,
    strict_json,
    write_jsonl,
)

__all__ = [
    "InputError",
    "LlmlabError",
    "atomic_write_bytes",
    "atomic_write_text",
    "json_text",
    "read_jsonl",
    "read_lines",
    "strict_json",
    "write_jsonl",
]
