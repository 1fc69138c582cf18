"""Corpus BLEU, chrF and ROUGE on 100k sentence pairs: llmlab vs sacrebleu and rouge-score.

Prints, per metric, both scores, their difference and both CPU times with the speed ratio
(reference time / llmlab time: > 1 means llmlab is faster). English pairs are generated (Zipfian
vocabulary, punctuation, numbers; the hypothesis is a noisy copy of the reference); Chinese pairs are
the pfr1998 sentences with character-level noise.

    .venv/bin/python bench/metrics.py [--pairs 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time


def english_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocab = ["".join(rng.choice(letters[: rng.randint(6, 26)]) for _ in range(rng.randint(1, 9)))
             for _ in range(20000)]
    vocab += ["running", "organization", "happily", "generalizations", "it's", "U.S.", "e-mail", "3.14", "1,000"]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    punct = [",", ".", "!", "?", ";", ":", "(", ")", "\"", "-", "&amp;"]
    refs, hyps = [], []
    for _ in range(n):
        words = rng.choices(vocab, weights, k=rng.randint(5, 35))
        words = [w if rng.random() > 0.1 else w + rng.choice(punct) for w in words]
        words[0] = words[0].capitalize()
        refs.append(" ".join(words) + ".")
        hyp = [w for w in words if rng.random() > 0.15]
        for _ in range(rng.randint(0, 3)):
            hyp.insert(rng.randint(0, len(hyp)), rng.choices(vocab, weights)[0])
        hyps.append(" ".join(hyp) + rng.choice([".", "", " ."]))
    return hyps, refs


def chinese_pairs(seed: int) -> tuple[list[str], list[str]]:
    from llmlab.data.corpora import pfr1998_text

    rng = random.Random(seed)
    refs = [s for split in ("train", "dev", "test") for s in pfr1998_text(split) if s.strip()]
    hyps = ["".join(c for c in s if rng.random() > 0.15) for s in refs]
    return hyps, refs


def timed(fn):
    """(result, CPU seconds of this process): the machine may be shared, so wall time is noisier."""
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def row(name: str, ours, theirs, ratio: bool = True) -> None:
    (a, ta), (b, tb) = ours, theirs
    speed = f"{tb / ta:7.2f}x" if ratio else "    n/a (reference scores no tokens)"
    print(f"{name:34s} {a:12.6f} {b:12.6f} {abs(a - b):9.2e} {ta:9.2f}s {tb:9.2f}s {speed}", flush=True)


def bench_sacrebleu(hyps, refs, label: str, tokenizers: tuple[str, ...]) -> None:
    from sacrebleu.metrics import BLEU, CHRF

    from llmlab.evaluate.bleu import BleuConfig, corpus_bleu
    from llmlab.evaluate.chrf import ChrfConfig, corpus_chrf

    for tok in tokenizers:
        cfg, theirs = BleuConfig(tokenize=tok), BLEU(tokenize=tok, force=True)
        row(f"BLEU tok={tok} ({label})", timed(lambda c=cfg: corpus_bleu(hyps, [refs], c).score),
            timed(lambda m=theirs: m.corpus_score(hyps, [refs]).score))
    row(f"chrF ({label})", timed(lambda: corpus_chrf(hyps, [refs])),
        timed(lambda: CHRF().corpus_score(hyps, [refs]).score))
    row(f"chrF++ ({label})", timed(lambda: corpus_chrf(hyps, [refs], ChrfConfig(word_order=2))),
        timed(lambda: CHRF(word_order=2).corpus_score(hyps, [refs]).score))


def bench_rouge(hyps, refs, label: str, stem: bool, types=("rouge1", "rouge2", "rougeL"), ratio=True) -> None:
    from rouge_score.rouge_scorer import RougeScorer as Theirs

    from llmlab.evaluate.rouge import RougeConfig, RougeScorer

    def ours():
        scorer = RougeScorer(RougeConfig(rouge_types=types, use_stemmer=stem))
        return [scorer.score(r, h) for h, r in zip(hyps, refs)]

    def theirs():
        scorer = Theirs(list(types), use_stemmer=stem)
        return [scorer.score(r, h) for h, r in zip(hyps, refs)]

    (a, ta), (b, tb) = timed(ours), timed(theirs)
    for t in types:
        mean_a = sum(s[t].fmeasure for s in a) / len(a)
        mean_b = sum(s[t].fmeasure for s in b) / len(b)
        name = f"{t} F{' stem' if stem else ''} ({label})"
        if t == types[0]:
            row(name + " [all types]", (mean_a, ta), (mean_b, tb), ratio)
        else:
            print(f"{name:34s} {mean_a:12.6f} {mean_b:12.6f} {abs(mean_a - mean_b):9.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import sacrebleu

    print(f"sacrebleu {sacrebleu.__version__}; English pairs: {args.pairs}; generating...", flush=True)
    hyps, refs = english_pairs(args.pairs, args.seed)
    print(f"{'metric':34s} {'llmlab':>12s} {'reference':>12s} {'|diff|':>9s} {'llmlab cpu':>10s} {'ref cpu':>10s}"
          f" {'speedup':>8s}")
    bench_sacrebleu(hyps, refs, "en", ("13a", "intl", "char"))
    bench_rouge(hyps, refs, "en", stem=False)
    bench_rouge(hyps, refs, "en", stem=True)
    half = args.pairs // 10
    bench_rouge(["\n".join(hyps[i:i + 3]) for i in range(0, half, 3)],
                ["\n".join(refs[i:i + 3]) for i in range(0, half, 3)], "en 3-sent docs", False, ("rougeLsum",))
    zh_hyps, zh_refs = chinese_pairs(args.seed)
    print(f"Chinese pairs (pfr1998): {len(zh_hyps)}")
    bench_sacrebleu(zh_hyps, zh_refs, "zh", ("zh", "char"))
    bench_rouge(zh_hyps, zh_refs, "zh: llmlab chars, rouge-score 0", stem=False, types=("rouge1", "rougeL"),
                ratio=False)


if __name__ == "__main__":
    main()
