"""Adding special tokens (chat roles for fine-tuning) or characters (a tool's syntax) to a trained tokenizer,
keeping every old id.

New tokens take the ids after the last one, so a model's existing embedding rows keep their meaning and
only new rows are needed (`llmlab.adapt.chat.add_chat_tokens` grows the model to match). The result is
built from the tokenizer's own ``tokenizer.json`` document with the new tokens appended to its vocabulary
and listed as special ``added_tokens``, so the saved file loads in Hugging Face ``tokenizers`` with the
same ids and HF finds the new tokens in text as ``encode(text, allowed_special=...)`` does here.

A character tokenizer becomes a word-level one that splits every character (the `WordLevelLoader` form
of a character file with added tokens): the same ids for all text, plus the new tokens.

Characters (`with_characters`) are the other kind of new token: ordinary text, not specials. A tool call
such as ``[calc(1+2)→`` is text the model writes and the agent loop reads and writes back (``3]``), so
its characters must encode from text like any other; a special ``]`` would not (specials are found only
where allowed), and the loop's ``encode("3]")`` would give ``<unk>``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import Tokenizer


def _added(token: str, i: int) -> dict:
    return {"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def with_special_tokens(tok: Tokenizer, tokens: Iterable[str]) -> Tokenizer:
    """`tok` with the special `tokens` it lacks appended at ids vocab_size, vocab_size + 1, ...

    A token it already has as a special token keeps its id; one that is an ordinary token (a character,
    a merged piece) is refused, since text would then reach that id two ways.

    >>> from llmlab.tokenizers import CharTokenizer
    >>> tok = CharTokenizer.train(["abca"])
    >>> chat = with_special_tokens(tok, ["<|user|>", "<|end|>"])
    >>> chat.token_to_id("<|user|>"), chat.token_to_id("<|end|>"), chat.encode("cab") == tok.encode("cab")
    (7, 8, True)
    """
    from llmlab.tokenizers.char import CharTokenizer
    from llmlab.tokenizers.whitespace import WhitespaceTokenizer

    doc = copy.deepcopy(tok.to_hf_json())  # a tokenizer may hand out its own tables in it
    specials = {a["content"] for a in doc["added_tokens"]} | set(getattr(tok, "itos", [])[:4])
    new = []
    for t in dict.fromkeys(tokens):
        if not isinstance(t, str) or not t:
            raise InputError(f"special tokens must be non-empty strings, got {t!r}")
        if tok.token_to_id(t) is None:
            new.append(t)
        elif t not in specials:
            raise InputError(f"{t!r} is an ordinary token of this tokenizer; a special token must be new")
    if not new:
        return tok
    model, n = doc["model"], tok.vocab_size
    if model.get("type") == "Unigram":
        raise InputError("a unigram tokenizer keeps its special tokens at the first ids, so none can be added "
                         "after training: train it with special_tokens=... (e.g. the chat roles) instead")
    if isinstance(tok, CharTokenizer):  # the four specials become added tokens too, as in a word-level file
        doc["added_tokens"] = [_added(s, i) for i, s in enumerate(tok.itos[:4])]
    for k, t in enumerate(new):
        model["vocab"][t] = n + k
        doc["added_tokens"].append(_added(t, n + k))
    if isinstance(tok, CharTokenizer):
        model.pop("llmlab", None)
        return WhitespaceTokenizer.from_hf_json(doc)
    out = type(tok).from_hf_json(doc)
    segmenter = getattr(getattr(tok, "pretok", None), "segmenter", None)  # Python code: the document has no room
    return out if segmenter is None else out.with_segmenter(segmenter)


def with_characters(tok: Tokenizer, chars: Iterable[str]) -> Tokenizer:
    """`tok` able to write each of `chars`: those it cannot (they encode to ``<unk>``) become ordinary
    tokens at ids vocab_size, vocab_size + 1, ..., found in text like any character, so old ids never move.

    Only a tokenizer that splits text into single characters can take a character after training (a
    character tokenizer, or one with added special tokens); any other that lacks one is refused. A
    byte-level BPE lacks none.

    >>> from llmlab.tokenizers import CharTokenizer
    >>> tok = with_characters(CharTokenizer.train(["12+3"]), "[+]")
    >>> tok.encode("[1+2]"), tok.vocab_size
    ([8, 5, 4, 6, 9], 10)
    """
    from llmlab.tokenizers.char import CHAR_SPLIT, CharTokenizer
    from llmlab.tokenizers.whitespace import WhitespaceTokenizer

    new = [c for c in dict.fromkeys(chars) if tok.count_unknown(c)]
    if any(len(c) != 1 for c in new):
        raise InputError(f"with_characters takes single characters, got {[c for c in new if len(c) != 1]}")
    if not new:
        return tok
    if isinstance(tok, CharTokenizer):
        return CharTokenizer(tok.itos + new)
    doc = copy.deepcopy(tok.to_hf_json())
    if not (isinstance(tok, WhitespaceTokenizer) and doc["pre_tokenizer"] == CHAR_SPLIT):
        raise InputError(f"the tokenizer cannot write {''.join(new)!r}, and a {type(tok).__name__} cannot take new "
                         "characters after training (only a character tokenizer can): train it on text that "
                         "holds them")
    n = tok.vocab_size
    for k, c in enumerate(new):  # ordinary entries (not added_tokens): the character split finds them in text
        doc["model"]["vocab"][c] = n + k
    return WhitespaceTokenizer.from_hf_json(doc)
