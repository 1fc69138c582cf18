"""llmlab eval: BLEU, chrF, ROUGE, diversity and preference rankings from text files."""

from __future__ import annotations

import argparse
import sys

from llmlab.cli.common import (
    add_command,
    add_dataclass_flags,
    add_group,
    dataclass_overrides,
    refuse_unapplied,
    split_unless_file,
)
from llmlab.core.io import json_text


def register(sub) -> None:
    from llmlab.evaluate.bleu import BleuConfig
    from llmlab.evaluate.chrf import ChrfConfig
    from llmlab.evaluate.ranking import BTConfig

    g = add_group(sub, "eval", "score text: BLEU, chrF, ROUGE, diversity, preference rankings")
    p = add_command(g, "bleu", "corpus BLEU (sacrebleu-compatible) of a hypothesis file against references", run_bleu)
    _add_files(p)
    add_dataclass_flags(p, BleuConfig)
    p = add_command(g, "chrf", "corpus chrF / chrF++ (sacrebleu-compatible); --word-order 2 for chrF++", run_chrf)
    _add_files(p)
    add_dataclass_flags(p, ChrfConfig)
    p = add_command(g, "rouge", "mean ROUGE P/R/F (rouge-score-compatible on English; CJK by characters)", run_rouge)
    _add_files(p)
    p.add_argument("--types", default="rouge1,rouge2,rougeL,rougeLsum", help="comma-separated rouge types")
    p.add_argument("--stem", action="store_true", help="Porter-stem English words (rouge-score's use_stemmer)")
    p.add_argument("--tokenize", default="auto", choices=["auto", "english", "char", "words"],
                   help="auto: CJK text by characters (or --seg-model words), else rouge-score's English tokenizer")
    p.add_argument("--seg-model", default=None, metavar="DIR", help="llmlab segmenter for Chinese words")
    p = add_command(g, "diversity", "distinct-n, rep-n and self-BLEU of generated texts (one per line)", run_diversity)
    p.add_argument("file", help="text file, one generation per line")
    p.add_argument("--units", default="auto", choices=["auto", "words", "chars"], help="n-gram units")
    p.add_argument("--self-bleu-lines", type=int, default=500, help="self-BLEU uses the first N lines (cost N^2)")
    p = add_command(g, "ppl", "perplexity and bits per character of a text file (or built-in corpus split) "
                    "under a saved model", run_ppl)
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("input", help="a text file (one text per line) or a built-in corpus name")
    p.add_argument("--split", choices=("train", "dev", "test"), help="split of a built-in corpus (default: test)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--stride", type=int, default=None, metavar="N",
                   help="a line longer than the context is read in windows N tokens apart, so each token beyond the "
                        "first window sees at least context - N tokens before it (default: the context, windows side "
                        "by side; smaller is closer to unlimited context and costs context / N forwards)")
    p = add_command(g, "arithmetic", "greedy exact match of a chat model (llmlab sft) on distinct arithmetic "
                    "questions of the test split, asked in its chat template", run_arithmetic)
    p.add_argument("--model", required=True, help="chat model directory (runs/NAME/model of llmlab sft, rl, dpo)")
    p.add_argument("--problems", type=int, default=300, metavar="N",
                   help="distinct questions answered (all of the split's, when it holds fewer)")
    p.add_argument("--max-digits", type=int, default=5, help="operands have 2..this many digits")
    p.add_argument("--ops", default="+-*", help="operators, a subset of +-*")
    p.add_argument("--split", choices=("dev", "test"), default="test", help="split of the arithmetic corpus")
    p.add_argument("--max-new-tokens", type=int, default=12, metavar="N", help="most tokens per answer")
    p.add_argument("--tools", action="store_true",
                   help="answer through the agent loop (its calculator runs the calls; llmlab sft --data "
                        "arithmetic-tools). A model that can write calls gets the longest call's tokens on top of "
                        "--max-new-tokens, with or without the loop")
    p.add_argument("--soft-prompt", default=None, metavar="DIR", help="a prompt folder (llmlab sft --prompt-tuning)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p = add_command(g, "rank", "Bradley-Terry ranking with bootstrap intervals from pairwise preferences", run_rank)
    p.add_argument("file", help='JSONL: {"winner": A, "loser": B} or {"a": A, "b": B, "winner": "a"|"b"|"tie"}')
    add_dataclass_flags(p, BTConfig)


def _add_files(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", nargs="+", required=True, metavar="FILE", help="reference file(s), one line per segment")
    p.add_argument("--hyp", required=True, metavar="FILE", help="hypothesis file, one line per segment")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _lines(path: str, what: str) -> list[str]:
    """Lines split on newlines only (not the other Unicode line breaks); a file without a line is an
    error, a file of blank lines is that many empty segments (a system may output nothing)."""
    from llmlab.core.errors import InputError
    from llmlab.core.io import read_text, split_lines

    text = read_text(path, what)
    if not text:
        raise InputError(f"{what} {path!r} is empty")
    return split_lines(text)


def _hyps_refs(args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    """Hypothesis and reference lines without trailing whitespace, as sacrebleu's command line reads them
    (it matters to chrF with --whitespace)."""
    from llmlab.core.errors import InputError

    hyps = [line.rstrip() for line in _lines(args.hyp, "hypothesis file")]
    refs = [[line.rstrip() for line in _lines(r, "reference file")] for r in args.ref]
    for path, r in zip(args.ref, refs):
        if len(r) != len(hyps):
            raise InputError(f"reference file {path!r} has {len(r)} lines but hypothesis file {args.hyp!r} "
                             f"has {len(hyps)}")
    return hyps, refs


def run_bleu(args: argparse.Namespace) -> int:
    from llmlab.evaluate.bleu import BleuConfig, bleu_signature, corpus_bleu

    given = dataclass_overrides(args, BleuConfig)
    cfg = BleuConfig(**given)
    refuse_unapplied(cfg, given)
    hyps, refs = _hyps_refs(args)
    score, sig = corpus_bleu(hyps, refs, cfg), bleu_signature(cfg, len(refs))
    if args.json:
        print(json_text({"name": "BLEU", "score": score.score, "signature": sig, "bp": score.bp,
                          "precisions": score.precisions, "sys_len": score.sys_len, "ref_len": score.ref_len}))
    else:
        print(score.format(sig))
    return 0


def run_chrf(args: argparse.Namespace) -> int:
    from llmlab.evaluate.chrf import ChrfConfig, chrf_signature, corpus_chrf

    cfg = ChrfConfig(**dataclass_overrides(args, ChrfConfig))
    hyps, refs = _hyps_refs(args)
    score, sig = corpus_chrf(hyps, refs, cfg), chrf_signature(cfg, len(refs))
    name = f"chrF{cfg.beta:g}" + "+" * cfg.word_order
    print(json_text({"name": name, "score": score, "signature": sig}) if args.json else f"{name}|{sig} = {score:.2f}")
    return 0


def run_rouge(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.evaluate.rouge import RougeConfig, corpus_rouge

    cfg = RougeConfig(rouge_types=tuple(t.strip() for t in args.types.split(",") if t.strip()),
                      use_stemmer=args.stem, tokenize=args.tokenize)
    cut = None
    if args.seg_model and cfg.tokenize not in ("auto", "words"):  # english and char never read its words
        raise InputError(f"--seg-model applies to --tokenize auto and words (Chinese words), not {cfg.tokenize}: "
                         "leave it out")
    if args.seg_model:
        from llmlab.text import load_segmenter

        cut = load_segmenter(args.seg_model).cut
    hyps, refs = _hyps_refs(args)
    scores = corpus_rouge(hyps, refs, cfg, cut)
    if args.json:
        print(json_text({k: s._asdict() for k, s in scores.items()}))
    else:
        for k, s in scores.items():
            print(f"{k:10s} P = {s.precision:.4f}  R = {s.recall:.4f}  F = {s.fmeasure:.4f}")
    return 0


def run_diversity(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.evaluate.diversity import distinct_n, rep_n, self_bleu

    texts = [t for t in _lines(args.file, "text file") if t.strip()]
    if not texts:
        raise InputError(f"text file {args.file!r} has no text, only blank lines")
    if args.self_bleu_lines < 2:
        raise InputError(f"--self-bleu-lines must be >= 2, got {args.self_bleu_lines}")
    for n in (1, 2, 3, 4):
        reps = [rep_n(t, n, args.units) for t in texts]
        print(f"distinct-{n} = {distinct_n(texts, n, args.units):.4f}   mean rep-{n} = {sum(reps) / len(reps):.4f}")
    if len(texts) >= 2:
        head = texts[:args.self_bleu_lines]
        print(f"self-BLEU = {self_bleu(head):.2f} (first {len(head)} lines)")
    return 0


def run_rank(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import jsonl_lines
    from llmlab.evaluate.ranking import BTConfig, bradley_terry, comparisons_from_records

    given = dataclass_overrides(args, BTConfig)
    cfg = BTConfig(**given)
    refuse_unapplied(cfg, given)  # --seed or --confidence without intervals
    numbered = list(jsonl_lines(args.file, "preferences file"))  # (line, record): errors name the line
    if not numbered:
        raise InputError(f"preferences file {args.file!r} is empty")
    lines, records = zip(*numbered)
    r = bradley_terry(comparisons_from_records(records, lines, f"preferences file {args.file!r} line"), cfg)
    ci = f"{int(cfg.confidence * 100)}% CI" if cfg.n_bootstrap else ""  # no intervals: no header for them
    print(f"{'rank':>4}  {'player':20s} {'elo':>8}  {ci:>17}  {'games':>6}")
    for i, name in enumerate(r.players):
        interval = f"[{r.ci_low[i]:7.1f}, {r.ci_high[i]:7.1f}]" if r.ci_low is not None else ""
        print(f"{i + 1:>4}  {name:20s} {r.elo[i]:8.1f}  {interval:>17}  {r.n_games[i]:>6}")
    return 0


def run_arithmetic(args: argparse.Namespace) -> int:
    from llmlab.adapt.chat import load_chat_template
    from llmlab.adapt.sft import arithmetic_exact_match
    from llmlab.adapt.tools import check_can_call
    from llmlab.cli.common import arithmetic_questions, load_any_model
    from llmlab.core.errors import InputError

    problems = arithmetic_questions(args, args.split)
    model, tok = load_any_model(args.model, soft_prompt=args.soft_prompt)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    if args.tools:
        check_can_call(tok)
    r = arithmetic_exact_match(model, tok, load_chat_template(args.model), problems, args.max_new_tokens, args.tools)
    n, acc = len(problems), r["accuracy"]
    out = {"exact_match": acc, "right": round(acc * n), "problems": n, "stderr": (acc * (1 - acc) / n) ** 0.5,
           "call_rate": r["call_rate"], "argument_rate": r["argument_rate"]}
    if args.json:
        print(json_text(out))
        return 0
    print(f"exact match {acc:.3f} ({out['right']} of {n} distinct {args.split} questions; standard error "
          f"{out['stderr']:.3f})" + (f"  calls {r['call_rate']:.3f}" if args.tools else ""))
    for q, gold, text in r["samples"]:
        print(f"  {q}{text!r}  (gold {gold})")
    return 0


def run_ppl(args: argparse.Namespace) -> int:
    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.core.progress import progress
    from llmlab.data import corpus_text
    from llmlab.data.corpora import CORPORA
    from llmlab.evaluate.lm import corpus_bits_per_char, corpus_perplexity
    from llmlab.models.scoring import text_start, token_logprobs
    from llmlab.tokenizers.base import UNK

    split = split_unless_file(None if args.input in CORPORA else args.input, args.split, "test", "a text")
    model, tok = load_any_model(args.model, device=args.device)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    texts = [t for t in corpus_text(args.input, split) if t]
    if not texts:
        raise InputError(f"{args.input!r} holds no non-empty lines to score")
    ids = [tok.encode(t) for t in texts]
    # each line is scored from where texts start and must predict its own EOS, as in training
    scores = [token_logprobs(model, x + [tok.eos_id], start_id=text_start(tok)[0], stride=args.stride)
              for x in progress(ids, desc="score", unit="line")]
    n_tokens = sum(len(s) for s in scores)
    ppl = corpus_perplexity(scores)
    bpc = corpus_bits_per_char(scores, [t + "\n" for t in texts])
    unk = tok.token_to_id(UNK)  # None: a byte-level tokenizer, which has no unknown token
    n_unk = 0 if unk is None else sum(x.count(unk) for x in ids)
    print(f"lines {len(texts)}  tokens {n_tokens}  unknown {n_unk}  perplexity {ppl:.3f}  bits/char {bpc:.4f}")
    if n_unk:
        pct = 100 * n_unk / n_tokens  # two significant digits below 0.1%: a share that is there never reads 0.0%
        share = f"{pct:.1f}%" if pct >= 0.1 else f"{pct:.2g}%"
        print(f"warning: {n_unk} of {n_tokens} tokens ({share}) are <unk>, which the model predicts as "
              "one symbol whatever the text was: the perplexity and bits/char understate how hard the text is",
              file=sys.stderr)
    return 0
