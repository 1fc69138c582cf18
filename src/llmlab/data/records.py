"""A corpus as the data tools read and write it: documents, and the records they came from.

The ``llmlab data`` commands filter, scrub and mix corpora. Each reads `Documents` from a text file
(one document per line), a JSONL file (one record per line, the document in a string field, ``text``
by default) or a built-in corpus, and writes the kept lines, or the kept records with every other
field untouched and the text field replaced by the cleaned text (lines may become records, never
the other way: that would lose the other fields).

>>> docs = Documents(["a b", "c"], records=[{"id": 1, "text": "a b"}, {"id": 2, "text": "c"}])
>>> docs.select([1]).with_texts(["C"]).records
[{'id': 2, 'text': 'C'}]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_text, jsonl_lines, read_lines, write_jsonl
from llmlab.data.corpora import CORPORA, corpus_text


@dataclass(frozen=True)
class Documents:
    texts: list[str]
    records: list[dict] | None = None  # the JSONL records the texts are the `field` of; None: a line per document
    field: str = "text"
    source: str = ""  # where they came from, for messages and reports

    def __post_init__(self):
        if self.records is not None and len(self.records) != len(self.texts):
            raise InputError(f"{len(self.texts)} texts for {len(self.records)} records")

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices: Sequence[int]) -> Documents:
        """The documents at `indices`, in that order."""
        texts = [self.texts[i] for i in indices]
        records = None if self.records is None else [self.records[i] for i in indices]
        return Documents(texts, records, self.field, self.source)

    def with_texts(self, texts: Sequence[str]) -> Documents:
        """The same documents with new texts (cleaned or scrubbed); records keep their other fields."""
        texts = list(texts)
        if len(texts) != len(self.texts):
            raise InputError(f"{len(texts)} new texts for {len(self.texts)} documents")
        records = None if self.records is None else [{**r, self.field: t} for r, t in zip(self.records, texts)]
        return Documents(texts, records, self.field, self.source)

    def record(self, i: int) -> dict:
        """Document `i` as a record (a text file's line becomes ``{field: line}``)."""
        return dict(self.records[i]) if self.records is not None else {self.field: self.texts[i]}

    def write(self, path: str | os.PathLike) -> None:
        """Write atomically: a ``.jsonl`` path gets records (a text file's lines become ``{field: line}``),
        any other path one line per document."""
        check_writable_as(self, path)
        if is_jsonl(path):
            write_jsonl(path, (self.record(i) for i in range(len(self))))
        else:
            atomic_write_text(path, "".join(line + "\n" for line in self.texts))


def is_jsonl(path: str | os.PathLike) -> bool:
    """Whether `path` names a JSONL file (records): its suffix is ``.jsonl`` in any case (``B.JSONL`` too)."""
    return Path(path).suffix.lower() == ".jsonl"


def read_documents(source: str, field: str = "text", split: str = "train") -> Documents:
    """Documents of a built-in corpus (its `split`), a ``.jsonl`` file (the string `field` of each
    record; blank lines skipped) or any other file (one document per line, empty lines included).

    >>> docs = read_documents("pfr1998", split="dev")
    >>> docs.source, docs.records, docs.texts[0][:6]
    ('pfr1998/dev', None, '●单程运行５')
    """
    if source in CORPORA:
        return Documents(corpus_text(source, split), None, field, f"{source}/{split}")
    if not is_jsonl(source):
        return Documents(read_lines(source, "corpus file"), None, field, source)
    records, texts = [], []
    for i, rec in jsonl_lines(source, "corpus file"):
        if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
            raise InputError(f"corpus file {source!r} line {i} is not a record with a string field {field!r}")
        records.append(rec)
        texts.append(rec[field])
    return Documents(texts, records, field, source)


def check_writable_as(docs: Documents, path: str | os.PathLike) -> None:
    """Refuse, before any work, an output that would lose something: records written as plain lines
    (their other fields), or a document holding a line break written as one line."""
    if is_jsonl(path):
        return
    if docs.records is not None:
        raise InputError(f"output {str(path)!r}: {docs.source!r} holds records, which a text file would lose; "
                         "write a .jsonl file")
    for i, t in enumerate(docs.texts):
        if "\n" in t:
            raise InputError(f"document {i + 1} holds a line break and cannot be one line of {str(path)!r}: "
                             "write a .jsonl file instead")
