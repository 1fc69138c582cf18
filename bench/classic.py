"""Classic LMs on pfr1998 words: n-gram training + perplexity vs NLTK, word2vec vs gensim.

N-grams: interpolated Kneser-Ney trigrams. NLTK's KneserNeyInterpolated is far too slow for the whole
corpus (each probability loops over every higher-order n-gram), so it trains on the first
`--nltk-sentences` training sentences and scores the first `--nltk-tokens` dev tokens; its times are
scaled per token to the full corpus (this flatters NLTK: its per-token scoring cost grows with the
model). llmlab runs the full corpus, and also the same subset (same-size figure). On the subset,
llmlab's kn with discounts (0, 0.1, 0.1) must give NLTK's probabilities: the max difference is printed.
Also prints dev/test perplexity of 3-gram modified Kneser-Ney and writes the two-errors plot.

word2vec: the same settings for both (dim 100, window 5, 5 negatives or hierarchical softmax,
sample 1e-3, min_count 5, 5 epochs, one thread); words/s = corpus tokens x epochs / training
seconds. Quality: Spearman on llmlab's Chinese similarity list, accuracy on its analogy list, and a
few neighbour lists.

    .venv/bin/python bench/classic.py [--out runs/bench_classic] [--skip-word2vec | --only-word2vec]
        [--models sgns,cbow,hs]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_ngram(train, dev, test, args) -> None:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    from llmlab.classic.ngram import NgramConfig, NgramModel

    n_train = sum(len(s) + 1 for s in train)
    n_dev = sum(len(s) + 1 for s in dev)
    print(f"\n== n-gram: 3-gram interpolated Kneser-Ney, pfr1998 words: {len(train)} train sentences "
          f"({n_train} tokens), dev {n_dev} tokens", flush=True)
    cfg = NgramConfig(order=3, smoothing="kn")
    model, t_train = timed(lambda: NgramModel.train(train, cfg))
    ev, t_eval = timed(lambda: model.evaluate(dev))
    print(f"llmlab full corpus: train {t_train:.2f}s ({n_train / t_train:,.0f} tokens/s), dev perplexity "
          f"{ev['perplexity']:.2f} in {t_eval:.3f}s ({n_dev / t_eval:,.0f} tokens/s)")

    sub = train[: args.nltk_sentences]
    n_sub = sum(len(s) + 1 for s in sub)
    lm = KneserNeyInterpolated(3)
    _, t_fit = timed(lambda: lm.fit(*padded_everygram_pipeline(3, sub)))
    grams = [tuple(g) for s in dev for g in zip(["<s>", "<s>", *s], ["<s>", *s, "</s>"], [*s, "</s>", "</s>"])]
    grams = grams[: args.nltk_tokens]
    scores, t_score = timed(lambda: [lm.score(g[2], g[:2]) for g in grams])
    zero = sum(p == 0 for p in scores)
    print(f"NLTK subset: fit {len(sub)} sentences ({n_sub} tokens) in {t_fit:.2f}s ({n_sub / t_fit:,.0f} tokens/s); "
          f"scored {len(grams)} dev tokens in {t_score:.2f}s ({len(grams) / t_score:,.1f} tokens/s); "
          f"{zero} of them probability 0 -> NLTK perplexity {'inf' if zero else 'finite'}")
    small, t_small = timed(lambda: NgramModel.train(sub, cfg))
    print(f"llmlab same subset: train {t_small:.3f}s ({n_sub / t_small:,.0f} tokens/s)")
    nltk_full = n_train / (n_sub / t_fit) + n_dev / (len(grams) / t_score)
    ours_full = t_train + t_eval
    print(f"train+perplexity, full corpus: llmlab {ours_full:.2f}s, NLTK {nltk_full:,.0f}s (scaled per token) "
          f"-> llmlab {nltk_full / ours_full:,.0f}x faster")
    print(f"  training alone: {(n_sub / t_small) / (n_sub / t_fit):,.0f}x (same subset); "
          f"scoring alone: {(n_dev / t_eval) / (len(grams) / t_score):,.0f}x")
    print(f"  exactness: max |p_llmlab - p_nltk| = {_exactness(sub, dev):.2e} over 300 dev trigrams "
          "(llmlab kn with discounts 0/0.1/0.1; NLTK fed the same single-<s> n-grams)")

    mkn = NgramModel.train(train, NgramConfig(order=3, smoothing="modified_kn"))
    d, t = mkn.evaluate(dev), mkn.evaluate(test)
    print(f"3-gram modified KN: dev perplexity {d['perplexity']:.2f} ({d['n_oov']} OOV of {d['n_tokens']}), "
          f"test perplexity {t['perplexity']:.2f} ({t['n_oov']} OOV of {t['n_tokens']})")
    for sm in ("mle", "add_k", "absolute", "katz", "kn", "modified_kn"):
        for order in (2, 3, 4, 5):
            m = NgramModel.train(train, NgramConfig(order=order, smoothing=sm))
            print(f"  {sm:12s} order {order}: dev perplexity {m.evaluate(dev)['perplexity']:10.2f}", flush=True)
    return mkn


def _exactness(sub, dev) -> float:
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    from llmlab.classic.ngram import NgramConfig, NgramModel

    lm = KneserNeyInterpolated(3)
    lm.fit([list(everygrams(["<s>", *s, "</s>"], max_len=3)) for s in sub], [w for s in sub for w in s] + ["</s>"])
    ours = NgramModel.train(sub, NgramConfig(order=3, smoothing="kn", discounts=(0.0, 0.1, 0.1)))
    known = set(lm.vocab)
    grams = [g for s in dev for g in zip(["<s>", *s], [*s, "</s>"][:-1], s[1:] + ["</s>"])]
    grams = [g for g in grams if all(w in known for w in g)][:300]  # NLTK gives unknown words 0
    return max(abs(ours.prob(g[2], list(g[:2]), bos=False) - lm.score(g[2], g[:2])) for g in grams)


def bench_two_errors(model, dev, out: Path) -> None:
    from llmlab.classic.two_errors import plot_two_errors, two_errors_table

    lp, _ = model.token_logprobs(dev)
    table = two_errors_table(lp)
    out.mkdir(parents=True, exist_ok=True)
    plot_two_errors(table, out / "two_errors.png", title="3-gram modified KN, pfr1998 dev")
    print(f"\n== two errors (topic 18), baseline dev perplexity {table['baseline']:.1f}; plot {out / 'two_errors.png'}")
    for r in table["recall"]:
        if r["floor"] in (1e-4, 1e-16, 1e-64):
            print(f"  recall error on {r['fraction']:.1%} of tokens, p -> {r['floor']:.0e}: "
                  f"perplexity {r['perplexity']:.1f}")
    for r in table["precision"]:
        print(f"  precision error, {r['wasted']:.0%} of mass wasted: perplexity {r['perplexity']:.1f}")


def bench_word2vec(train, args) -> None:
    import numpy as np
    from gensim.models import Word2Vec

    from llmlab.classic.vectors import (
        WordVectors,
        evaluate_analogies,
        evaluate_similarity,
        onehot_vs_distributed,
        read_analogies,
        read_pairs,
    )
    from llmlab.classic.word2vec import Word2VecConfig, train_word2vec

    n_words = sum(len(s) for s in train)
    pairs, questions = read_pairs("zh"), read_analogies("zh")
    probes = ["北京", "经济", "足球", "春节", "父亲"]
    variants = {"sgns": ("skipgram", False), "cbow": ("cbow", False), "hs": ("skipgram", True)}
    for model, hs in (variants[m] for m in args.models.split(",")):
        lr, negative = (0.025 if model == "skipgram" else 0.05), (0 if hs else 5)
        cfg = Word2VecConfig(model=model, dim=100, window=5, negative=negative, hs=hs, sample=1e-3, min_count=5,
                             epochs=args.epochs, lr=lr, seed=0)
        how = "hierarchical softmax" if hs else "5 negatives"
        print(f"\n== word2vec {model}, {how}: {n_words} words x {cfg.epochs} epochs, dim 100, window 5, "
              f"one thread", flush=True)
        ours, stats = train_word2vec(train, cfg)
        g = Word2Vec(vector_size=100, window=5, min_count=5, sg=int(model == "skipgram"), negative=negative,
                     hs=int(hs), sample=1e-3, alpha=lr, epochs=cfg.epochs, workers=1, seed=0)
        g.build_vocab(train)
        t0 = time.perf_counter()
        g.train(train, total_examples=len(train), epochs=cfg.epochs)
        t_g = time.perf_counter() - t0
        theirs = WordVectors(tuple(g.wv.index_to_key), np.asarray(g.wv.vectors))
        wps_ours, wps_g = n_words * cfg.epochs / stats.seconds, n_words * cfg.epochs / t_g
        print(f"words/s: llmlab {wps_ours:,.0f}  gensim {wps_g:,.0f}  -> gensim/llmlab {wps_g / wps_ours:.2f}x")
        for name, wv in (("llmlab", ours), ("gensim", theirs)):
            s, a = evaluate_similarity(wv, pairs), evaluate_analogies(wv, questions)
            print(f"{name}: similarity spearman {s['spearman']:.3f} ({s['pairs']} pairs), "
                  f"analogy accuracy {a['accuracy']:.3f} ({a['questions']} questions)")
        cmp = onehot_vs_distributed(ours, pairs)
        o, d = cmp["onehot"], cmp["distributed"]
        print(f"one-hot: dim {o['dim']}, non-zero share {o['nonzero_share']:.1e}, cosine of any two words 0; "
              f"llmlab vectors: dim {d['dim']}, non-zero share {d['nonzero_share']:.2f}, mean cosine "
              f"{d['mean_cosine_similar_pairs']:.2f} on the most similar quarter of the list vs "
              f"{d['mean_cosine_random_pairs']:.2f} on random pairs")
        for w in probes:
            for name, wv in (("llmlab", ours), ("gensim", theirs)):
                print(f"  {name} {w}: " + " ".join(x for x, _ in wv.most_similar(w, topn=6)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_classic", help="folder for the two-errors plot")
    ap.add_argument("--nltk-sentences", type=int, default=1000, help="NLTK training subset")
    ap.add_argument("--nltk-tokens", type=int, default=300, help="dev tokens NLTK scores")
    ap.add_argument("--epochs", type=int, default=5, help="word2vec epochs")
    ap.add_argument("--skip-word2vec", action="store_true")
    ap.add_argument("--only-word2vec", action="store_true", help="skip the n-gram and two-errors parts")
    ap.add_argument("--models", default="sgns,cbow,hs", help="word2vec variants, comma-separated: sgns, cbow, hs")
    args = ap.parse_args()
    if bad := set(args.models.split(",")) - {"sgns", "cbow", "hs"}:
        ap.error(f"unknown --models {sorted(bad)}; choose from sgns, cbow, hs")

    from llmlab.data.corpora import pfr1998_words

    train = pfr1998_words("train")
    if not args.only_word2vec:
        dev, test = pfr1998_words("dev"), pfr1998_words("test")
        mkn = bench_ngram(train, dev, test, args)
        bench_two_errors(mkn, dev, Path(args.out))
        assert math.isfinite(mkn.evaluate(dev)["perplexity"])
    if not args.skip_word2vec:
        bench_word2vec(train, args)


if __name__ == "__main__":
    main()
