"""BPE (vocab 8000): llmlab vs Hugging Face tokenizers vs sentencepiece, on Chinese and English.

Corpora: the raw pfr1998 text (People's Daily 1998, train split; dev+test held out for encoding) and
English prose from Python's own reference documentation (``pydoc_data.topics``, shipped with the
stdlib; first 90% of lines for training, the rest for encoding).

For each corpus it prints training wall time and encoding throughput (MB of UTF-8 per second,
single thread; "cold cache" is a fresh tokenizer's first pass, in a process that has already loaded
the compiled merge kernel: that one-off second or so is not counted) with ratios (llmlab / peer: time
ratio > 1 means llmlab is slower, throughput ratio < 1 means slower). llmlab and HF use the same
pre-tokenization (GPT-4 regex + byte level), and the script checks that their merges are identical.
sentencepiece splits text its own way (whitespace pieces, no byte-level regex), so its figures are
for scale only. Last, the textbook trainer that recounts every pair after each merge is timed on the
first merges and compared with llmlab's trainer. Then Unigram training (--unigram-lines of pfr1998 to
--unigram-vocab pieces): llmlab beside HF's UnigramTrainer (same GPT-4 regex split) and sentencepiece
(its own splitting: scale only).

    .venv/bin/python bench/tokenizer.py [--vocab-size 8000] [--pattern gpt4] [--naive-merges 20]

HF runs single-threaded unless RAYON_NUM_THREADS is set (e.g. RAYON_NUM_THREADS=2 for two cores).
sentencepiece comes with the bench extra (`make bench` installs it); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF single-threaded for encoding and training figures


def corpora() -> dict[str, tuple[list[str], list[str]]]:
    from pydoc_data.topics import topics

    from llmlab.data.corpora import pfr1998_text

    english = [ln for k in sorted(topics) for ln in topics[k].splitlines() if ln.strip()]
    cut = int(len(english) * 0.9)
    return {
        "pfr1998 (Chinese)": (pfr1998_text("train"), pfr1998_text("dev") + pfr1998_text("test")),
        "pydoc topics (English)": (english[:cut], english[cut:]),
    }


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def hf_train(texts, vocab_size, pattern):
    import tokenizers as hf
    from llmlab.tokenizers.base import SPECIAL_TOKENS
    from llmlab.tokenizers.pretokenize import PATTERNS
    Regex, models, pre_tokenizers, trainers = hf.Regex, hf.models, hf.pre_tokenizers, hf.trainers
    tok = hf.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERNS[pattern]), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def sentencepiece():
    """The sentencepiece module, or None (with a note) where it is not installed."""
    try:
        import sentencepiece as spm
    except ImportError:
        print("  sentencepiece not installed (pip install -e '.[bench]'): its rows are skipped")
        return None
    return spm


def spm_train(spm, texts, vocab_size):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, model_type="bpe",
                                   vocab_size=vocab_size, character_coverage=1.0, byte_fallback=True,
                                   num_threads=1, minloglevel=2, max_sentence_length=100000,
                                   input_sentence_size=0, hard_vocab_limit=False)
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def mbps(encode, texts):
    nbytes = sum(len(t.encode()) for t in texts)
    _, dt = timed(lambda: [encode(t) for t in texts])
    return nbytes / dt / 1e6


def row(name, ours, peer, unit, higher_is_better):
    ratio = ours / peer
    word = ("llmlab faster" if ratio > 1 else "llmlab slower") if higher_is_better else \
        ("llmlab slower" if ratio > 1 else "llmlab faster")
    print(f"  {name:<34} llmlab {ours:8.2f} {unit:<5} peer {peer:8.2f} {unit:<5} llmlab/peer {ratio:5.2f} ({word})")


def bench_corpus(name, train, held, args):
    from llmlab.tokenizers import BPETokenizer

    nbytes = sum(len(t.encode()) for t in train)
    print(f"\n== {name}: train {len(train)} lines, {nbytes / 1e6:.2f} MB; encode {len(held)} held-out lines ==")
    ours, t_ours = timed(BPETokenizer.train, train, args.vocab_size, pattern=args.pattern)
    hf, t_hf = timed(hf_train, train, args.vocab_size, args.pattern)
    spm = sentencepiece()
    sp, t_sp = timed(spm_train, spm, train, args.vocab_size) if spm else (None, None)
    same = ours.to_hf_json()["model"]["merges"] == [list(m) for m in json.loads(hf.to_str())["model"]["merges"]]
    print(f"  merges identical to HF BpeTrainer: {same} ({len(ours.merges)} merges)")
    print(f"  ids identical to HF on the held-out lines: {[hf.encode(t).ids for t in held] == ours.encode_batch(held)}")
    row("train time, HF tokenizers", t_ours, t_hf, "s", False)
    if sp:
        row("train time, sentencepiece (bpe)", t_ours, t_sp, "s", False)
    fresh = BPETokenizer.from_hf_json(ours.to_hf_json())  # empty cache: a cold first pass
    cold = mbps(fresh.encode, held)
    warm = mbps(fresh.encode, held)
    hf_mbps = mbps(lambda t: hf.encode(t).ids, held)
    row("encode, cold cache vs HF", cold, hf_mbps, "MB/s", True)
    row("encode, warm cache vs HF", warm, hf_mbps, "MB/s", True)
    if sp:
        row("encode, cold cache vs sentencepiece", cold, mbps(sp.encode, held), "MB/s", True)


def bench_naive(train, args):
    """The textbook trainer on the same pre-token counts: measured in full on a slice of the corpus,
    and on the whole corpus for its first merges (extrapolated linearly to the full vocabulary; the
    naive cost per merge falls a little as words shrink, so this overstates it somewhat)."""
    from llmlab.tokenizers.base import SPECIAL_TOKENS
    from llmlab.tokenizers.bpe_train import train_bpe, train_bpe_naive
    from llmlab.tokenizers.pretokenize import PreTokenizer
    from llmlab.tokenizers.subword import count_pieces

    print("\n== naive recount-per-merge trainer vs llmlab (same pre-token counts, no pre-tokenization) ==")
    small = count_pieces(train[: args.naive_lines], PreTokenizer(args.pattern))
    (_, m1), t_naive = timed(train_bpe_naive, small, args.naive_vocab, SPECIAL_TOKENS)
    (_, m2), t_fast = timed(train_bpe, small, args.naive_vocab, SPECIAL_TOKENS)
    print(f"  first {args.naive_lines} lines to vocab {args.naive_vocab} ({len(m1)} merges): same merges {m1 == m2}")
    row("train time, naive, measured", t_fast, t_naive, "s", False)
    counts = count_pieces(train, PreTokenizer(args.pattern))
    size = len(SPECIAL_TOKENS) + 256 + args.naive_merges
    _, t_naive = timed(train_bpe_naive, counts, size, SPECIAL_TOKENS)
    _, t_full = timed(train_bpe, counts, args.vocab_size, SPECIAL_TOKENS)
    est = t_naive / args.naive_merges * (args.vocab_size - size + args.naive_merges)
    print(f"  whole corpus: naive {t_naive:.1f} s for {args.naive_merges} merges -> about {est:.0f} s for vocab "
          f"{args.vocab_size}; llmlab {t_full:.2f} s: {est / t_full:.0f}x faster")


def bench_unigram(train, args):
    from llmlab.tokenizers import train_tokenizer
    from llmlab.tokenizers.pretokenize import PATTERNS

    lines = train[: args.unigram_lines]
    print(f"\n== unigram training: {len(lines)} pfr1998 lines to {args.unigram_vocab} pieces ==")
    ours, t_ours = timed(train_tokenizer, "unigram", lines, args.unigram_vocab)
    hf = __import__("tokenizers")
    tok = hf.Tokenizer(hf.models.Unigram())
    tok.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(PATTERNS["gpt4"]), "isolated")
    trainer = hf.trainers.UnigramTrainer(vocab_size=args.unigram_vocab, special_tokens=["<unk>"], unk_token="<unk>",
                                         show_progress=False)
    _, t_hf = timed(tok.train_from_iterator, lines, trainer)
    row("training time vs HF UnigramTrainer", t_ours, t_hf, "s", False)
    spm = sentencepiece()
    if spm is None:
        return
    _, t_sp = timed(spm.SentencePieceTrainer.train, sentence_iterator=iter(lines), model_writer=io.BytesIO(),
                    model_type="unigram", vocab_size=args.unigram_vocab, hard_vocab_limit=False, num_threads=1,
                    minloglevel=2)
    row("training time vs sentencepiece", t_ours, t_sp, "s", False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--pattern", default="gpt4", choices=("gpt2", "gpt4"))
    ap.add_argument("--naive-merges", type=int, default=20, help="naive merges timed on the whole corpus")
    ap.add_argument("--naive-lines", type=int, default=1000,
                    help="corpus slice the naive trainer runs in full (0: skip the naive comparison)")
    ap.add_argument("--naive-vocab", type=int, default=1000, help="vocab size of that full naive run")
    ap.add_argument("--unigram-lines", type=int, default=5000, help="pfr1998 lines for unigram training (0: skip)")
    ap.add_argument("--unigram-vocab", type=int, default=4000)
    args = ap.parse_args()
    threads = os.environ["RAYON_NUM_THREADS"]
    print(f"BPE vocab {args.vocab_size}, pre-tokenizer {args.pattern}; RAYON_NUM_THREADS={threads}")
    data = corpora()
    for name, (train, held) in data.items():
        bench_corpus(name, train, held, args)
    if args.naive_lines > 0:
        bench_naive(data["pfr1998 (Chinese)"][0], args)
    if args.unigram_lines > 0:
        bench_unigram(data["pfr1998 (Chinese)"][0], args)


if __name__ == "__main__":
    main()
