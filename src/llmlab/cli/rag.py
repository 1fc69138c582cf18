"""llmlab rag: index documents for BM25, search the index, and answer a question from it with a model."""

from __future__ import annotations

import argparse
import sys

from llmlab.cli.common import (
    add_command,
    add_dataclass_flags,
    add_group,
    dataclass_overrides,
    finite_float,
    refuse_unapplied,
)
from llmlab.core.io import json_text


def register(sub) -> None:
    from llmlab.generate.config import GenerationConfig
    from llmlab.generate.retrieval import IndexConfig

    g = add_group(sub, "rag", "retrieval-augmented generation: BM25 index, search, grounded answers")

    p = add_command(g, "index", "cut documents into passages and write their BM25 index", _index)
    p.add_argument("docs", metavar="DOCS", help="a text file (a document per line; a hit's doc is its 0-based line), "
                                                "a .jsonl file (see --field) or a built-in corpus (see --split)")
    p.add_argument("-o", "--output", required=True, metavar="INDEX",
                   help="index folder (new, empty or an earlier index): index.json and postings.safetensors")
    p.add_argument("--field", default="text", help="the string field of each JSONL record that holds the document")
    p.add_argument("--split", default=None, help="split of a built-in corpus (default: train)")
    add_dataclass_flags(p, IndexConfig)

    p = add_command(g, "search", "print the best passages for a query as JSONL (one line per hit)", _search)
    p.add_argument("--index", required=True, help="index folder from `llmlab rag index`")
    p.add_argument("query", nargs="?", metavar="QUERY", help="query text; without it, one query per stdin line")
    p.add_argument("-k", type=int, default=5, help="hits per query")

    p = add_command(g, "ask", "answer a question from retrieved passages; print answer, citations and grounding "
                              "as JSON", _ask)
    p.add_argument("--index", required=True, help="index folder from `llmlab rag index`")
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("-k", type=int, default=5, help="passages to retrieve (those that fit the context go in the prompt)")
    p.add_argument("--n", type=int, default=2, help="grounding counts n-grams of this many characters / words")
    p.add_argument("--threshold", type=finite_float, default=0.5,
                   help="the answer is grounded when at least this share of its n-grams is in the passages")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_dataclass_flags(p, GenerationConfig)


def _index(args: argparse.Namespace) -> int:
    from llmlab.cli.common import split_unless_file
    from llmlab.core.io import check_folder
    from llmlab.data.corpora import CORPORA
    from llmlab.data.records import read_documents
    from llmlab.generate.retrieval import INDEX_FILES, BM25Index, IndexConfig

    given = dataclass_overrides(args, IndexConfig)
    cfg = IndexConfig(**given)
    refuse_unapplied(cfg, given)  # --epsilon beside an idf other than okapi: saved and never used
    check_folder(args.output, INDEX_FILES, "index folder")  # before the work
    split = split_unless_file(None if args.docs in CORPORA else args.docs, args.split, "train", "DOCS")
    docs = read_documents(args.docs, args.field, split)
    index = BM25Index.build(docs.texts, cfg)
    index.save(args.output)
    print(f"{len(docs)} documents, {len(index)} passages, {len(index.vocab)} terms -> {args.output}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_stdout, line_batches
    from llmlab.generate.retrieval import BM25Index

    if args.query is not None and not args.query.strip():  # as `rag ask` refuses an empty question
        raise InputError("the query is empty: give the text to search for (or none, to read queries from stdin)")
    if args.query is None:
        check_not_stdout(None)
    index = BM25Index.load(args.index)
    batches = [[args.query]] if args.query is not None else line_batches(None, size=256)
    for batch in batches:
        for query, hits in zip(batch, index.search_batch(batch, args.k)):
            for rank, h in enumerate(hits, 1):
                print(json_text({"query": query, "rank": rank, "score": h.score, "index": h.index, "doc": h.doc,
                                  "start": h.start, "end": h.end, "text": h.text}, ensure_ascii=False))
        sys.stdout.flush()  # each batch as it is done (from a terminal: each query)
    return 0


def _ask(args: argparse.Namespace) -> int:
    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.generate.config import GenerationConfig
    from llmlab.generate.rag import answer, check_grounding
    from llmlab.generate.retrieval import BM25Index

    given = dataclass_overrides(args, GenerationConfig)
    cfg = GenerationConfig(**given)
    refuse_unapplied(cfg, given)  # before the index and model load
    check_grounding(args.n, args.threshold)  # likewise, not after the answer is generated
    index = BM25Index.load(args.index)
    model, tok = load_any_model(args.model, device=args.device)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    result = answer(model, tok, args.question, index, args.k, cfg, args.n)
    print(json_text(result.to_dict(args.threshold), ensure_ascii=False, indent=2))
    return 0
