"""Corpus documents as the data tools read and write them (llmlab.data.records)."""

import json

import pytest

from llmlab.core.errors import InputError
from llmlab.data.corpora import corpus_text
from llmlab.data.records import Documents, check_writable_as, read_documents


def test_lines_round_trip_exactly(tmp_path):
    lines = ["第一行", "", "  spaced  ", "tab\there", "emoji 👩‍💻", "cr\rinside"]
    src = tmp_path / "in.txt"
    src.write_bytes("".join(x + "\n" for x in lines).encode())
    docs = read_documents(str(src))
    assert docs.texts == lines and docs.records is None
    docs.write(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_bytes() == src.read_bytes()


def test_records_keep_their_other_fields(tmp_path):
    recs = [{"id": 1, "body": "一", "meta": {"url": "x"}}, {"id": 2, "body": "二"}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n\n", encoding="utf-8")
    docs = read_documents(str(src), field="body")
    assert docs.texts == ["一", "二"]
    docs.select([1, 0]).with_texts(["B", "A"]).write(tmp_path / "out.jsonl")
    got = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == [{"id": 2, "body": "B"}, {"id": 1, "body": "A", "meta": {"url": "x"}}]
    assert recs[0]["body"] == "一"  # the records read are not changed


def test_lines_may_become_records_but_records_never_lines(tmp_path):
    docs = Documents(["a", "b"], source="x.txt")
    docs.write(tmp_path / "o.jsonl")
    assert [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [{"text": "a"}, {"text": "b"}]
    recs = Documents(["a"], [{"text": "a", "id": 3}], source="r.jsonl")
    with pytest.raises(InputError, match="would lose"):
        recs.write(tmp_path / "o.txt")
    with pytest.raises(InputError, match="line break"):
        check_writable_as(Documents(["a\nb"]), tmp_path / "o.txt")
    assert not (tmp_path / "o.txt").exists()


def test_built_in_corpus_and_errors(tmp_path):
    assert read_documents("pfr1998", split="test").texts == corpus_text("pfr1998", "test")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2 is not a record with a string field 'text'"):
        read_documents(str(bad))
    bad.write_text('{"text": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_documents(str(bad))
    with pytest.raises(InputError, match="does not exist"):
        read_documents(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="3 texts for 2 records"):
        Documents(["a", "b", "c"], [{}, {}])
