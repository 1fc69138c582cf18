"""``llmlab tokenizer``: train a tokenizer, encode / decode lines, show how a text splits."""

from __future__ import annotations

import sys
from pathlib import Path

from llmlab.cli.common import add_command, add_group, split_unless_file

ALGOS = ("bpe", "unigram", "wordpiece", "whitespace", "char")


def register(sub) -> None:
    g = add_group(sub, "tokenizer", "subword tokenizers: train, encode, decode, show")

    p = add_command(g, "train", "learn a vocabulary and write a Hugging Face tokenizer.json", _train)
    p.add_argument("--algo", choices=ALGOS, default="bpe", help="tokenization algorithm")
    p.add_argument("--vocab-size", type=int, required=True, help="tokens in the vocabulary, special ones included")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="text files (one document a line; .jsonl: the 'text' field) or built-in corpus names")
    # None when not given: a split that applies to no input (all files) is refused, not ignored
    p.add_argument("--split", choices=("train", "dev", "test"), help="split of the built-in corpora (default: train)")
    # None when not given: a pattern given for an algo that has no pre-tokenizer is refused, not ignored
    p.add_argument("--pattern", help="pre-tokenizer: gpt2, gpt4 or a regex (bpe, unigram, wordpiece; default: gpt4)")
    p.add_argument("--special-token", action="append", default=[], metavar="TOKEN",
                   help="an extra special token, e.g. a chat role (repeatable)")
    p.add_argument("-o", "--output", required=True, help="tokenizer.json to write (or a directory)")

    p = add_command(g, "encode", "read lines on stdin, write each line's ids separated by spaces", _encode)
    p.add_argument("--tokenizer", required=True, help="tokenizer.json (or the directory holding it)")
    p.add_argument("--allow-special", action="store_true",
                   help="let special-token spellings in the text stand for the special tokens")

    p = add_command(g, "decode", "read lines of space-separated ids on stdin, write each line's text", _decode)
    p.add_argument("--tokenizer", required=True, help="tokenizer.json (or the directory holding it)")

    p = add_command(g, "show", "show how a text splits into characters, bytes, pre-tokens and tokens", _show)
    p.add_argument("text", help="the text to split")
    p.add_argument("--tokenizer", help="tokenizer.json to split with (default: only characters, bytes, pre-tokens)")
    p.add_argument("--pattern", help="pre-tokenizer to show when no tokenizer is given (default: gpt4; a "
                   "tokenizer splits by its own)")


def _train(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_folder, check_not_input, check_output, is_stdout
    from llmlab.data.corpora import CORPORA, corpus_text
    from llmlab.tokenizers.base import tokenizer_file
    from llmlab.tokenizers.factory import train_tokenizer

    files = [name for name in args.input if name not in CORPORA]
    split = split_unless_file(files[0] if len(files) == len(args.input) else None, args.split, "train", "--input")
    out = tokenizer_file(args.output)
    check_output(out, "tokenizer output")  # before training, not after
    if out != Path(args.output):  # a folder: its own (tokenizer.json, from an earlier train), not a model's
        check_folder(args.output, (out.name,), "tokenizer folder")
    for name in files:
        check_not_input(out, {"--input": name}, "-o")
    texts: list[str] = []
    for name in args.input:
        texts.extend(corpus_text(name, split))
    if args.pattern is not None and args.algo in ("char", "whitespace"):
        raise InputError(f"--pattern sets the pre-tokenizer of bpe, unigram and wordpiece; a {args.algo} tokenizer "
                         "splits by its own rule")
    kw = {} if args.algo in ("char", "whitespace") else {"pattern": args.pattern or "gpt4"}
    if args.special_token and args.algo == "char":
        raise InputError("a char tokenizer has a fixed set of special tokens: --special-token needs "
                         "bpe, unigram, wordpiece or whitespace")
    if args.special_token:
        kw["special_tokens"] = args.special_token
    tok = train_tokenizer(args.algo, texts, args.vocab_size, **kw)
    tok.save(args.output)
    print(f"{args.algo}: {tok.vocab_size} tokens from {len(texts)} lines -> {args.output}",
          file=sys.stderr if is_stdout(args.output) else sys.stdout)  # not inside the output
    return 0


def _encode(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.tokenizers.base import load_tokenizer
    from llmlab.tokenizers.subword import SubwordTokenizer

    check_not_stdout(None)
    tok = load_tokenizer(args.tokenizer)
    if args.allow_special and not isinstance(tok, SubwordTokenizer):
        raise InputError(f"--allow-special needs a bpe, unigram, wordpiece or whitespace tokenizer, "
                         f"{args.tokenizer!r} is a {type(tok).__name__}")
    for [text] in line_batches(None, size=1):  # a line at a time, as it comes; any text but "\n" round-trips
        ids = tok.encode(text, allowed_special="all") if args.allow_special else tok.encode(text)
        print(" ".join(map(str, ids)), flush=True)  # a program waiting for this line's ids gets them
    return 0


def _decode(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.tokenizers.base import load_tokenizer

    check_not_stdout(None)
    tok = load_tokenizer(args.tokenizer)
    for n, [line] in enumerate(line_batches(None, size=1), 1):  # a line at a time, as `_encode`
        fields = line.split()
        if not all(x.isascii() and x.isdigit() for x in fields):  # int() would take "１２" or "-1"
            shown = line.strip()
            shown = repr(shown) if len(shown) <= 80 else f"{shown[:80]!r}... ({len(shown)} characters)"
            raise InputError(f"stdin line {n}: expected ids (ASCII digits) separated by spaces, got {shown}")
        # int() refuses over 4300 digits (a ValueError); no vocabulary is near 19 digits anyway
        if long := next((x for x in fields if len(x) > 18), None):
            raise InputError(f"stdin line {n}: token id {long[:18]}... ({len(long)} digits) is outside the vocabulary")
        try:
            print(tok.decode([int(x) for x in fields]), flush=True)  # a program waiting for this line's text gets it
        except InputError as e:
            raise InputError(f"stdin line {n}: {e}") from None
    return 0


def _show(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.tokenizers.base import load_tokenizer
    from llmlab.tokenizers.pretokenize import PreTokenizer

    text = args.text
    try:
        data = text.encode()
    except UnicodeEncodeError:  # the shell passed bytes that are not UTF-8 (kept as lone surrogates)
        raise InputError(f"the text to show is not UTF-8: {text.encode('utf-8', 'surrogateescape')!r}") from None
    # load what can fail before printing anything: a refusal leaves no half answer on stdout
    if args.tokenizer is not None and args.pattern is not None:
        raise InputError("--pattern shows a pre-tokenizer alone; with --tokenizer the text splits by the tokenizer's "
                         "own pre-tokenizer")
    pattern = args.pattern or "gpt4"
    tok = None if args.tokenizer is None else load_tokenizer(args.tokenizer)
    pretok = PreTokenizer(pattern) if tok is None else None
    print(f"characters ({len(text)}): " + " ".join(repr(c) for c in text))
    print(f"UTF-8 bytes ({len(data)}): " + " ".join(f"{b:02x}" for b in data))
    if tok is None:
        pieces = pretok(text)
        print(f"pre-tokens, {pattern} ({len(pieces)}): " + " ".join(repr(p) for p in pieces))
        return 0
    if hasattr(tok, "pretok"):
        pieces = tok.pretok(text)
        print(f"pre-tokens ({len(pieces)}): " + " ".join(repr(p) for p in pieces))
    ids = tok.encode(text)
    shown = [_token_text(tok, i) for i in ids]
    print(f"tokens ({len(ids)}): " + " ".join(shown))
    print("ids: " + " ".join(map(str, ids)))
    n = max(len(ids), 1)
    print(f"{len(data) / n:.2f} bytes per token, {len(text) / n:.2f} characters per token")
    return 0


def _token_text(tok, i: int) -> str:
    """A token as the text it stands for; a byte-level fragment of a character shows its bytes."""
    raw = tok.decode_bytes([i]) if hasattr(tok, "decode_bytes") else tok.decode([i]).encode()
    try:
        return repr(raw.decode())
    except UnicodeDecodeError:
        return repr(raw)
