"""`llmlab data`: clean, dedup, datasheet, select and mix from the command line."""

import json
import re

import pytest

from llmlab.cli import main
from llmlab.data.clean import quality_reasons
from llmlab.data.corpora import corpus_text

NEWS = corpus_text("pfr1998", "dev")
GOOD = next(t for t in NEWS if len(t) > 120 and not quality_reasons(t))  # a paragraph every rule keeps
ID = "11010519491231002X"  # a valid PRC resident identity number (check digit X)


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def records(path):
    return [json.loads(x) for x in lines(path)]


def summary(capsys):
    return json.loads(capsys.readouterr().out)


def test_clean_keeps_fields_scrubs_personal_data_and_says_why_it_drops(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    docs = [{"id": 1, "text": GOOD + f"联系邮箱 someone@example.com，身份证 {ID}。"},
            {"id": 2, "text": "太短了。"},
            {"id": 3, "text": GOOD + "\u200b\x07  \t"}]
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    out, removed = tmp_path / "out.jsonl", tmp_path / "removed.jsonl"
    assert main(["data", "clean", str(src), "-o", str(out), "--removed", str(removed)]) == 0
    s = summary(capsys)
    assert (s["documents"], s["kept"], s["dropped"]) == (3, 2, 1)
    assert s["pii_scrubbed"] == {"EMAIL": 1, "ID_CN": 1}
    kept = records(out)
    assert [r["id"] for r in kept] == [1, 3]
    assert kept[0]["text"] == GOOD + "联系邮箱 <EMAIL>，身份证 <ID_CN>。"
    assert kept[1]["text"] == GOOD  # zero-width space, bell and trailing whitespace gone
    gone = records(removed)
    assert [(g["index"], g["record"]) for g in gone] == [(1, docs[1])]
    assert "min_words" in gone[0]["reasons"]


def test_clean_rules_can_be_relaxed_and_pii_dropped(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(f"太短了。\n{GOOD} 身份证 {ID}\n{GOOD}\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert main(["data", "clean", str(src), "-o", str(out), "--pii", "drop", "--off", "min_words",
                 "--off", "min_stop_words"]) == 0
    assert lines(out) == ["太短了。", GOOD]
    assert summary(capsys)["dropped_by_rule"] == {"pii": 1}
    assert main(["data", "clean", str(src), "-o", str(out), "--no-quality", "--pii", "keep"]) == 0
    assert lines(out) == lines(src)
    assert main(["data", "clean", str(src), "-o", str(out), "--no-quality", "--pii-kinds", "EMAIL", "PHONE"]) == 0
    assert lines(out) == lines(src)  # the identity number is not among the kinds asked for


def test_dedup_drops_exact_and_near_copies_keeping_the_first(tmp_path, capsys):
    near = GOOD[:60] + "某" + GOOD[61:]  # one character changed
    other = next(t for t in NEWS if len(t) > 120 and t[:30] != GOOD[:30])
    src = tmp_path / "in.txt"
    src.write_text("\n".join([GOOD, other, GOOD, near, "  " + other + " "]) + "\n", encoding="utf-8")
    out, removed = tmp_path / "out.txt", tmp_path / "removed.jsonl"
    assert main(["data", "dedup", str(src), "-o", str(out), "--removed", str(removed)]) == 0
    assert lines(out) == [GOOD, other]
    s = summary(capsys)
    assert (s["kept"], s["exact_duplicates"], s["near_duplicates"]) == (2, 2, 1)
    assert [(r["index"], r["reason"], r["duplicate_of"]) for r in records(removed)] == [
        (2, "exact", 0), (3, "near", 0), (4, "exact", 1)]
    assert main(["data", "dedup", str(src), "-o", str(out), "--exact-only"]) == 0
    assert lines(out) == [GOOD, other, near]


def test_datasheet_reports_the_measured_profile_and_the_open_questions(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(f"{GOOD}\n{GOOD}\n写信到 a@b.org\n\n", encoding="utf-8")
    out = tmp_path / "sheet.md"
    assert main(["data", "datasheet", str(src), "-o", str(out), "--name", "toy"]) == 0
    assert summary(capsys) == {"input": str(src), "documents": 4, "datasheet": str(out)}  # says what went where
    md = out.read_text(encoding="utf-8")
    assert md.startswith("# Datasheet: toy")
    for section in ("Motivation", "Composition", "Collection process", "Uses", "Distribution", "Maintenance"):
        assert f"## {section}" in md
    assert "| documents | 4 |" in md and "| exact duplicates | 1 (25.0%) |" in md
    assert "| empty documents | 1 (25.0%) |" in md and "EMAIL 1" in md
    assert main(["data", "datasheet", "pfr1998", "--split", "test", "--no-near"]) == 0
    assert "| documents | 975 |" in capsys.readouterr().out


def test_select_and_mix(tmp_path, capsys):
    reviews = corpus_text("sentiment", "dev")[:60]
    pool, domain = tmp_path / "pool.txt", tmp_path / "domain.txt"
    pool.write_text("\n".join(NEWS[:300] + reviews) + "\n", encoding="utf-8")
    domain.write_text("\n".join(corpus_text("sentiment", "train")[::40]) + "\n", encoding="utf-8")
    out, scores = tmp_path / "sel.txt", tmp_path / "scores.jsonl"
    assert main(["data", "select", str(pool), "--domain", str(domain), "--keep", "60", "-o", str(out),
                 "--scores", str(scores)]) == 0
    picked = lines(out)
    assert len(picked) == 60 and sum(p in reviews for p in picked) >= 50
    s = records(scores)
    assert len(s) == 360 and picked[0] == (NEWS[:300] + reviews)[min(s, key=lambda r: r["score"])["index"]]
    capsys.readouterr()

    mixed = tmp_path / "mix.txt"
    assert main(["data", "mix", "--domain", str(out), "--general", "pfr1998", "--share", "0.25", "--by", "docs",
                 "-o", str(mixed)]) == 0
    got = lines(mixed)
    assert len(got) == 240 and sorted(g for g in got if g in picked) == sorted(picked)
    assert summary(capsys)["domain_share_by_docs"] == 0.25


@pytest.mark.parametrize("argv, message", [
    (["clean", "IN", "-o", "OUT.txt", "--removed", "R.txt"], "--removed"),
    (["dedup", "IN", "--split", "dev", "-o", "OUT.txt"], "--split"),
    (["clean", "IN.jsonl", "-o", "OUT.txt"], "would lose"),
    (["mix", "--domain", "IN.jsonl", "--general", "IN", "--share", "0.5", "-o", "OUT.txt"], "both be .jsonl"),
    (["mix", "--domain", "IN", "--general", "IN", "--share", "1.5", "-o", "OUT.txt"], r"share must be in \(0, 1\)"),
    (["clean", "IN", "-o", "OUT.txt", "--off", "max_nothing"], "max_nothing"),
    (["clean", "IN", "-o", "OUT.txt", "--pii-kinds", "SSN"], "unknown PII kind"),
    # two outputs in one file: the removed documents replaced the kept ones (or the scores the selection)
    (["clean", "IN.jsonl", "-o", "R.jsonl", "--removed", "R.jsonl"], "--removed and -o name the same file"),
    (["dedup", "IN.jsonl", "-o", "R.jsonl", "--removed", "R.x/../R.jsonl"], "--removed and -o name the same file"),
    (["select", "IN", "--domain", "IN", "--keep", "1", "-o", "OUT.txt", "--scores", "OUT.txt"],
     "--scores and -o name the same file"),
    # settings that nothing would use are refused, not ignored
    (["dedup", "IN", "-o", "OUT.txt", "--exact-only", "--threshold", "0.5"], "--threshold sets the near-duplicate"),
    (["dedup", "IN", "-o", "OUT.txt", "--exact-only", "--num-perm", "64"], "--num-perm sets the near-duplicate"),
    (["datasheet", "IN", "-o", "OUT.md", "--no-near", "--threshold", "0.5"], "which --no-near skips"),
    (["clean", "IN", "-o", "OUT.txt", "--no-quality", "--min-words", "3"], "--min-words sets a quality rule"),
    (["clean", "IN", "-o", "OUT.txt", "--off", "min_words", "--min-words", "3"], "that --off min_words switches"),
    (["clean", "IN", "-o", "OUT.txt", "--pii", "keep", "--pii-kinds", "EMAIL"], "--pii keep leaves all of it"),
    (["clean", "IN", "-o", "OUT.txt", "--no-quality", "--off", "min_words"], "--off applies to the quality rules"),
    # an output that is an input would destroy it
    (["select", "IN", "--domain", "IN", "--keep", "1", "-o", "OUT.txt", "--scores", "IN"],
     "--scores .* is the same file as the input"),
    (["select", "IN", "--domain", "IN.dom", "--keep", "1", "-o", "IN.dom"], "-o .* is the same file as --domain"),
    (["dedup", "IN.jsonl", "-o", "OUT.jsonl", "--removed", "IN.jsonl"], "--removed .* is the same file as the input"),
    (["dedup", "IN.jsonl", "-o", "IN.jsonl"], "-o .* is the same file as the input"),
    (["datasheet", "IN", "-o", "IN"], "-o .* is the same file as the input"),
    (["mix", "--domain", "IN.dom", "--general", "IN", "--share", "0.5", "-o", "IN"], "same file as --general"),
    # a lone surrogate (text cut inside a character) is no text: refused before the work, naming the line
    (["dedup", "IN.cut.jsonl", "-o", "OUT.jsonl"], r"IN\.cut\.jsonl' line 2 holds a lone surrogate"),
    (["clean", "IN.cut.jsonl", "-o", "OUT.jsonl"], r"IN\.cut\.jsonl' line 2 holds a lone surrogate"),
    (["clean", "IN.key.jsonl", "-o", "OUT.jsonl"], r"IN\.key\.jsonl' line 1 holds a lone surrogate"),
    # a lone carriage return that --newlines would make a line break in a line of a text file
    (["clean", "IN.cr", "-o", "OUT.txt", "--no-quality"], r"line 2 of .* holds a carriage return"),
])
def test_bad_input_is_named_and_writes_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "IN").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "IN.dom").write_text("a\n", encoding="utf-8")
    (tmp_path / "IN.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    (tmp_path / "IN.cut.jsonl").write_text('{"text": "a"}\n{"text": "a \\ud83d"}\n', encoding="utf-8")
    (tmp_path / "IN.key.jsonl").write_text('{"text": "a", "meta": {"\\udc00": [1]}}\n', encoding="utf-8")
    (tmp_path / "IN.cr").write_text("a\r\nb\rc\n", encoding="utf-8", newline="")  # "\r\n" ends a line: fine
    inputs = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    argv = [str(tmp_path / a) if a.startswith(("IN", "OUT", "R.")) else a for a in argv]
    assert main(["data", *argv]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not any(p.name.startswith(("OUT", "R.")) for p in tmp_path.iterdir())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == inputs  # no input touched


def test_an_output_linked_to_an_input_is_refused_and_one_linked_elsewhere_written_through(tmp_path, capsys,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    (tmp_path / "in.txt").write_text(f"{GOOD}\n{GOOD}\n", encoding="utf-8")
    (tmp_path / "to_in.txt").symlink_to("in.txt")
    assert main(["data", "dedup", "./in.txt", "-o", "to_in.txt"]) == 2
    assert "is the same file as the input" in capsys.readouterr().err
    (tmp_path / "store" / "real.txt").write_text("old\n", encoding="utf-8")
    (tmp_path / "out.txt").symlink_to("store/real.txt")
    assert main(["data", "dedup", "in.txt", "-o", "out.txt"]) == 0
    assert (tmp_path / "out.txt").is_symlink() and lines(tmp_path / "store" / "real.txt") == [GOOD]


def test_clean_counts_the_personal_data_it_finds_where_it_searches(tmp_path, capsys):
    src, out = tmp_path / "pii.txt", tmp_path / "out.txt"
    src.write_text(f"{GOOD} 邮箱 a@example.com b@example.com 身份证 {ID}\n太短了 c@example.com\n{GOOD}\n",
                   encoding="utf-8")
    assert main(["data", "clean", str(src), "-o", str(out), "--pii", "drop"]) == 0
    s = summary(capsys)  # found in every document, the one dropped as too short too
    assert s["pii_found"] == {"EMAIL": 3, "ID_CN": 1} and s["dropped_by_rule"]["pii"] == 2
    assert lines(out) == [GOOD]
    assert main(["data", "clean", str(src), "-o", str(out)]) == 0
    assert summary(capsys)["pii_scrubbed"] == {"EMAIL": 2, "ID_CN": 1}  # the documents written only
    assert main(["data", "clean", str(src), "-o", str(out), "--no-quality", "--pii", "keep"]) == 0
    assert "pii_found" not in summary(capsys)  # keep searches nothing: no count, not a false zero
    assert lines(out) == lines(src)


def test_jsonl_suffix_in_any_case_holds_records(tmp_path, capsys):
    src, out = tmp_path / "B.JSONL", tmp_path / "K.Jsonl"
    src.write_text('{"id": 1, "text": "a b"}\n{"id": 2, "text": "a b"}\n', encoding="utf-8")
    assert main(["data", "dedup", str(src), "-o", str(out), "--exact-only"]) == 0
    assert summary(capsys)["kept"] == 1
    assert records(out) == [{"id": 1, "text": "a b"}]


def test_clean_makes_a_lone_carriage_return_a_line_break_only_where_it_can_be_written(tmp_path, capsys):
    src = tmp_path / "cr.txt"
    src.write_bytes(b"a\rb\r\nc\n")
    assert main(["data", "clean", str(src), "-o", str(tmp_path / "o.jsonl"), "--no-quality"]) == 0
    assert [r["text"] for r in records(tmp_path / "o.jsonl")] == ["a\nb", "c"]
    assert main(["data", "clean", str(src), "-o", str(tmp_path / "o.txt"), "--no-quality", "--no-newlines"]) == 0
    assert (tmp_path / "o.txt").read_bytes() == b"a\rb\nc\n"
