"""``llmlab data``: clean, deduplicate, describe, select and mix training corpora (topics 14, 24, 42).

Every command reads a text file (a document per line), a ``.jsonl`` file (the ``--field`` of each
record) or a built-in corpus, and writes what it keeps atomically; what it drops, with the reason,
goes to ``--removed FILE`` (JSONL), so nothing is lost without a trace.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmlab.cli.common import add_command, add_dataclass_flags, add_group, dataclass_overrides, finite_float
from llmlab.core.io import json_text

SPLITS = ("train", "dev", "test")


def register(sub) -> None:
    from llmlab.data.clean import CleanConfig, QualityConfig

    g = add_group(sub, "data", "corpus tools: clean, dedup, datasheet, select, mix")

    p = add_command(g, "clean", "normalise text, drop documents failing quality rules, scrub personal data", _clean)
    _io_flags(p)
    p.add_argument("--no-quality", action="store_true", help="keep every document (normalise and scrub only)")
    p.add_argument("--off", action="append", default=[], metavar="RULE",
                   help="switch off one quality rule (a flag's name below, e.g. min_words); repeatable")
    p.add_argument("--normal-form", choices=("NFC", "NFKC", "none"),
                   help="Unicode normal form (default: NFC; NFKC also folds full-width forms)")
    p.add_argument("--pii", choices=("scrub", "drop", "keep"), default="scrub",
                   help="personal data: replace each match by <KIND>, drop the document, or leave it")
    p.add_argument("--pii-kinds", nargs="+", metavar="KIND", default=None,
                   help="only these kinds of personal data (EMAIL ID_CN CARD IP PHONE; default: all)")
    add_dataclass_flags(p, CleanConfig, skip=("normalize",))
    add_dataclass_flags(p, QualityConfig)

    p = add_command(g, "dedup", "drop exact and near-duplicate documents (MinHash + LSH), keeping the first", _dedup)
    _io_flags(p)
    _near_flags(p)
    p.add_argument("--exact-only", action="store_true", help="drop exact duplicates only")
    # the near-duplicate settings default to None: given beside --exact-only, they are refused, not ignored
    p.add_argument("--num-perm", type=int, help="MinHash permutations (default: 128)")
    p.add_argument("--ngram", type=int, help="shingle length, in --unit (default: 5)")
    p.add_argument("--unit", choices=("char", "word"), help="shingles of characters or words (default: char)")
    p.add_argument("--seed", type=int, help="MinHash permutations' seed (default: 1)")
    p.add_argument("--hash", choices=("fast", "sha1"),
                   help="shingle hash: compiled, or datasketch's sha1_hash32 (same signatures as datasketch; "
                   "default: fast)")

    p = add_command(g, "datasheet", "measure a corpus and write its datasheet (Markdown) with the open questions",
                    _datasheet)
    _input_flags(p)
    p.add_argument("-o", "--output", help="Markdown file to write (default: print it)")
    p.add_argument("--name", help="the corpus's name in the title (default: the input)")
    p.add_argument("--no-near", action="store_true", help="skip counting near-duplicates")
    _near_flags(p)

    p = add_command(g, "select", "the pool documents most like a domain sample (Moore-Lewis cross-entropy "
                                 "difference of two n-gram models)", _select)
    _input_flags(p)
    p.add_argument("--domain", required=True, help="domain sample: text or .jsonl file, or built-in corpus")
    p.add_argument("-o", "--output", required=True, help="the selected documents, most domain-like first")
    keep = p.add_mutually_exclusive_group(required=True)
    keep.add_argument("--keep", type=int, help="how many documents to select")
    keep.add_argument("--keep-fraction", type=finite_float, help="what fraction of the pool to select, in (0, 1]")
    p.add_argument("--order", type=int, default=3, help="n-gram order of both models")
    p.add_argument("--unit", choices=("char", "word"), default="char", help="model characters or words")
    p.add_argument("--scores", help="also write every pool document's score (JSONL: index, score)")
    p.add_argument("--seed", type=int, default=0, help="which pool documents train the general model")

    p = add_command(g, "mix", "mix a domain corpus into general text at a share (continued pretraining)", _mix)
    p.add_argument("--domain", required=True, help="domain corpus: text or .jsonl file, or built-in corpus")
    p.add_argument("--general", required=True, help="general corpus: text or .jsonl file, or built-in corpus")
    p.add_argument("--split", choices=SPLITS, help="split of a built-in corpus (default: train)")
    p.add_argument("--field", default="text", help="the text field of .jsonl records")
    p.add_argument("--share", type=finite_float, required=True, help="the domain's share of the mix, in (0, 1)")
    p.add_argument("--by", choices=("chars", "docs"), default="chars", help="measure the share in characters or "
                                                                             "documents")
    p.add_argument("-o", "--output", required=True, help="the mixed corpus (.jsonl records or text lines)")
    p.add_argument("--seed", type=int, default=0, help="which general documents are drawn, and the order")


def _input_flags(p) -> None:
    p.add_argument("input", help="text file (a document per line), .jsonl file, or built-in corpus name")
    p.add_argument("--split", choices=SPLITS, help="split of a built-in corpus (default: train)")
    p.add_argument("--field", default="text", help="the text field of .jsonl records")


def _io_flags(p) -> None:
    _input_flags(p)
    p.add_argument("-o", "--output", required=True, help="what is kept: a .jsonl file (records) or a text file")
    p.add_argument("--removed", help="also write what is dropped, with why, to this .jsonl file")


def _near_flags(p) -> None:
    p.add_argument("--threshold", type=finite_float,
                   help="near-duplicates: estimated Jaccard similarity of the shingle sets, in (0, 1) (default: 0.8)")


NEAR_FLAGS = ("threshold", "num_perm", "ngram", "unit", "seed", "hash")  # dedup's near-duplicate settings


def _near_settings(args, skipped_by: str) -> dict:
    """The near-duplicate settings given (the rest keep `near_duplicates`' defaults); refused when the
    `skipped_by` flag is on, which skips near-duplicates."""
    from llmlab.core.errors import InputError

    given = {k: getattr(args, k) for k in NEAR_FLAGS if getattr(args, k, None) is not None}
    if given and getattr(args, skipped_by.lstrip("-").replace("-", "_")):
        flag = "--" + next(iter(given)).replace("_", "-")
        raise InputError(f"{flag} sets the near-duplicate search, which {skipped_by} skips")
    return given


def _read(source: str, args, flag: str = "input"):
    from llmlab.cli.common import split_unless_file
    from llmlab.data.corpora import CORPORA
    from llmlab.data.records import read_documents

    split = split_unless_file(None if source in CORPORA else source, args.split, "train", flag)
    return read_documents(source, args.field, split)


INPUT_FLAGS = {"input": "the input", "domain": "--domain", "general": "--general"}  # the files a command reads


def _inputs(args) -> dict:
    """The input files of a command (flag -> path) that an output must not name (`check_not_input`); a
    built-in corpus's name is no file, even where a file of that name lies (`_read` reads the corpus)."""
    from llmlab.data.corpora import CORPORA

    return {flag: getattr(args, k) for k, flag in INPUT_FLAGS.items() if getattr(args, k, None) not in (None, *CORPORA)}


def _check_outputs(args, docs) -> None:
    """Refuse unwritable outputs before the work (the kept documents' form, the removed file's), an output
    that is an input file (it would be destroyed), and two outputs named to the same file: the second
    written would replace the first."""
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_input, check_output
    from llmlab.data.records import check_writable_as, is_jsonl

    check_writable_as(docs, check_output(args.output))
    removed = getattr(args, "removed", None)
    if removed and not is_jsonl(check_output(removed, "--removed file")):
        raise InputError(f"--removed {removed!r}: dropped documents are written as records, to a .jsonl file")
    named = {"-o": args.output, "--removed": removed, "--scores": getattr(args, "scores", None)}
    seen: dict[Path, str] = {}
    for flag, path in ((f, p) for f, p in named.items() if p):
        check_not_input(path, _inputs(args), flag)
        if (key := Path(path).resolve()) in seen:
            raise InputError(f"{flag} and {seen[key]} name the same file {path!r}: one would replace the other")
        seen[key] = flag


def _write_removed(path: str | None, docs, dropped: list[tuple[int, dict]]) -> None:
    """JSONL of dropped documents: index (0-based, in the input), what was found, and the record."""
    from llmlab.core.io import write_jsonl

    if path:
        write_jsonl(path, [{"index": i, **why, "record": docs.record(i)} for i, why in dropped])


def _clean(args) -> int:
    import dataclasses

    from llmlab.core.errors import InputError
    from llmlab.data.clean import CleanConfig, QualityConfig, clean_text, quality_reasons
    from llmlab.data.pii import KINDS, check_kinds, scrub_pii

    form = {} if args.normal_form is None else {"normalize": None if args.normal_form == "none" else args.normal_form}
    clean_cfg = CleanConfig(**dataclass_overrides(args, CleanConfig), **form)
    rules = {f.name for f in dataclasses.fields(QualityConfig)}
    for rule in args.off:
        if rule not in rules:
            raise InputError(f"--off {rule!r}: not a quality rule; the rules are {sorted(rules)}")
    if args.off and args.no_quality:
        raise InputError("--off applies to the quality rules, which --no-quality switches off all together: "
                         "leave it out")
    set_rules = dataclass_overrides(args, QualityConfig)  # settings given: refused where nothing would use them
    for rule in set_rules:
        flag = "--" + rule.replace("_", "-")
        if args.no_quality:
            raise InputError(f"{flag} sets a quality rule, and --no-quality keeps every document")
        if rule in args.off:
            raise InputError(f"{flag} sets the rule that --off {rule} switches off: give one")
    if args.pii_kinds and args.pii == "keep":
        raise InputError("--pii-kinds picks the personal data to scrub or drop; --pii keep leaves all of it")
    quality_cfg = QualityConfig(**(set_rules | dict.fromkeys(args.off)))
    kinds = args.pii_kinds or KINDS
    check_kinds(kinds)  # an unknown kind is refused before the corpus is read
    docs = _read(args.input, args)
    _check_outputs(args, docs)
    _check_carriage_returns(args, docs, clean_cfg)
    texts, kept, dropped = [], [], []
    failed, pii_total = {}, {}
    for i, text in enumerate(docs.texts):
        text = clean_text(text, clean_cfg)
        reasons = [] if args.no_quality else quality_reasons(text, quality_cfg)
        scrubbed, found = scrub_pii(text, kinds) if args.pii != "keep" else (text, {})
        if args.pii == "drop" and found:
            reasons.append("pii")
        if args.pii == "drop" or not reasons:  # drop: what was found in every document; scrub: what was replaced
            for k, n in found.items():         # in the documents written
                pii_total[k] = pii_total.get(k, 0) + n
        for r in reasons:
            failed[r] = failed.get(r, 0) + 1
        if reasons:
            dropped.append((i, {"reasons": reasons}))
            continue
        kept.append(i)
        texts.append(scrubbed if args.pii == "scrub" else text)
    out = docs.select(kept).with_texts(texts)
    out.write(args.output)
    _write_removed(args.removed, docs, dropped)
    summary = {"input": docs.source, "documents": len(docs), "kept": len(out), "dropped": len(dropped),
               "dropped_by_rule": dict(sorted(failed.items(), key=lambda kv: -kv[1]))}
    if args.pii != "keep":  # keep searches nothing, so it has nothing to count
        summary["pii_scrubbed" if args.pii == "scrub" else "pii_found"] = pii_total
    _print_summary(summary, args)
    return 0


def _print_summary(summary: dict, args) -> None:
    """A command's JSON summary line: on stdout, or on stderr when one of its outputs is stdout
    (``-o /dev/stdout``), where the line would land inside the output."""
    from llmlab.core.io import is_stdout

    outputs = (getattr(args, name, None) for name in ("output", "removed", "scores"))
    print(json_text(summary, ensure_ascii=False), file=sys.stderr if is_stdout(*outputs) else sys.stdout)


def _check_carriage_returns(args, docs, clean_cfg) -> None:
    """Refuse before the work a line of a text file holding a lone carriage return when the output is a text
    file too: --newlines makes it a line break, and the cleaned document could not be one line of the output
    (only "\\n" ends a line, so "\\r" alone stays inside its line when read; see `split_lines`)."""
    from llmlab.core.errors import InputError
    from llmlab.data.records import is_jsonl

    if not clean_cfg.newlines or docs.records is not None or is_jsonl(args.output):
        return
    for i, t in enumerate(docs.texts):
        if "\r" in t:
            raise InputError(f"line {i + 1} of {docs.source!r} holds a carriage return, which --newlines makes a "
                             f"line break, so it cannot be one line of {args.output!r}: write a .jsonl file, or "
                             "give --no-newlines")


def _dedup(args) -> int:
    from llmlab.data.dedup import exact_duplicates, near_duplicates

    near_settings = _near_settings(args, "--exact-only")
    docs = _read(args.input, args)
    _check_outputs(args, docs)
    exact = exact_duplicates(docs.texts)
    first = exact.cluster.tolist()  # each document's first exact copy
    kept = [i for i in range(len(docs)) if first[i] == i]
    n_exact_kept = len(kept)
    dropped = [(i, {"reason": "exact", "duplicate_of": first[i]}) for i in range(len(docs)) if first[i] != i]
    n_near = 0
    if not args.exact_only:
        near = near_duplicates([docs.texts[i] for i in kept], **near_settings)
        rep = near.cluster.tolist()
        dropped += [(kept[j], {"reason": "near", "duplicate_of": kept[rep[j]]}) for j in range(len(kept))
                    if rep[j] != j]
        n_near = sum(rep[j] != j for j in range(len(kept)))
        kept = [kept[j] for j in range(len(kept)) if rep[j] == j]
    docs.select(kept).write(args.output)
    _write_removed(args.removed, docs, sorted(dropped))
    _print_summary({"input": docs.source, "documents": len(docs), "kept": len(kept),
                    "exact_duplicates": len(docs) - n_exact_kept, "near_duplicates": n_near}, args)
    return 0


def _datasheet(args) -> int:
    from llmlab.core.io import atomic_write_text, check_not_input, check_output
    from llmlab.data.datasheet import datasheet_markdown, profile_corpus

    if args.output:
        check_output(args.output)
        check_not_input(args.output, _inputs(args), "-o")
    near_settings = _near_settings(args, "--no-near")
    docs = _read(args.input, args)
    text = datasheet_markdown(profile_corpus(docs.texts, near=not args.no_near, **near_settings),
                              args.name or docs.source)
    if args.output:
        atomic_write_text(args.output, text)  # a line like the other commands' summaries: what went where
        _print_summary({"input": docs.source, "documents": len(docs), "datasheet": args.output}, args)
    else:
        print(text)
    return 0


def _select(args) -> int:
    from llmlab.classic.ngram import NgramConfig
    from llmlab.classic.selection import keep_count, moore_lewis_scores, most_domain_like
    from llmlab.core.io import check_output, write_jsonl

    pool, domain = _read(args.input, args), _read(args.domain, args, "--domain")
    _check_outputs(args, pool)
    if args.scores:
        check_output(args.scores, "--scores file")
    k = keep_count(args.keep if args.keep is not None else args.keep_fraction, len(pool))
    scores = moore_lewis_scores(pool.texts, domain.texts, NgramConfig(order=args.order, unit=args.unit), args.seed)
    picked = most_domain_like(scores, k)
    pool.select(picked.tolist()).write(args.output)
    if args.scores:  # the scores the selection used, not a second training of the models
        write_jsonl(args.scores, [{"index": i, "score": float(s)} for i, s in enumerate(scores)])
    _print_summary({"pool": pool.source, "domain": domain.source, "documents": len(pool),
                    "selected": len(picked)}, args)
    return 0


def _mix(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.data.mix import domain_share, mix_plan
    from llmlab.data.records import Documents

    domain, general = _read(args.domain, args, "--domain"), _read(args.general, args, "--general")
    if (domain.records is None) != (general.records is None):
        raise InputError(f"--domain {domain.source!r} and --general {general.source!r} must both be .jsonl "
                         "records or both hold lines")
    docs = Documents(domain.texts + general.texts,
                     None if domain.records is None else domain.records + general.records, args.field, "mix")
    _check_outputs(args, docs)
    plan = mix_plan(domain.texts, general.texts, args.share, args.by, args.seed)
    offset = {"domain": 0, "general": len(domain)}
    docs.select([offset[c] + i for c, i in plan]).write(args.output)
    _print_summary({"domain": domain.source, "general": general.source, "documents": len(plan),
                    "from_domain": sum(c == "domain" for c, _ in plan),
                    f"domain_share_by_{args.by}": round(domain_share(plan, domain.texts, general.texts, args.by), 4)},
                   args)
    return 0
