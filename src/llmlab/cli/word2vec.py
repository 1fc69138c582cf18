"""``llmlab word2vec``: train word vectors, query neighbours and analogies, evaluate."""

from __future__ import annotations

from llmlab.cli.common import add_command, add_dataclass_flags, add_group, dataclass_overrides, split_unless_file


def register(sub) -> None:
    from llmlab.classic.word2vec import Word2VecConfig

    g = add_group(sub, "word2vec", "word vectors: train, similar, analogy, eval")

    p = add_command(g, "train", "train skip-gram or CBOW vectors; write the word2vec text format", _train)
    p.add_argument("--corpus", default="pfr1998", help="built-in corpus or a text file (words separated by spaces)")
    # None when not given: a split beside a file is refused, not ignored
    p.add_argument("--split", choices=("train", "dev", "test"), help="split of a built-in corpus (default: train)")
    p.add_argument("--unit", default="word", choices=("word", "char"), help="vectors for words or characters")
    p.add_argument("-o", "--output", required=True, help="vectors file to write (word2vec text format)")
    add_dataclass_flags(p, Word2VecConfig)

    p = add_command(g, "similar", "nearest neighbours by cosine similarity", _similar)
    p.add_argument("--vectors", required=True, help="word2vec text file")
    p.add_argument("words", nargs="+", help="query words")
    p.add_argument("--topn", type=int, default=10, help="neighbours per word")

    p = add_command(g, "analogy", "a - b + c: words closest to vec(a) - vec(b) + vec(c)", _analogy)
    p.add_argument("--vectors", required=True, help="word2vec text file")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("c")
    p.add_argument("--topn", type=int, default=5, help="answers to show")

    p = add_command(g, "eval", "Spearman on a similarity list, accuracy on an analogy list, one-hot comparison",
                    _eval)
    p.add_argument("--vectors", required=True, help="word2vec text file")
    p.add_argument("--lang", default="zh", help="built-in lists: zh (pfr1998 words) or en")
    p.add_argument("--pairs", help="similarity list file (word1<TAB>word2<TAB>score) instead of the built-in")
    p.add_argument("--analogies", help="analogy file (a b c d per line) instead of the built-in")


def _train(args) -> int:
    from llmlab.classic.ngram import corpus_sentences
    from llmlab.classic.word2vec import Word2VecConfig, train_word2vec
    from llmlab.core.io import check_not_input, check_output
    from llmlab.data.corpora import CORPORA

    config = Word2VecConfig(**dataclass_overrides(args, Word2VecConfig))
    file = None if args.corpus in CORPORA else args.corpus
    split = split_unless_file(file, args.split, "train", "--corpus")
    check_output(args.output, "vectors file")  # before training, not after
    check_not_input(args.output, {"--corpus": file}, "-o")
    wv, stats = train_word2vec(corpus_sentences(args.corpus, split, args.unit), config)
    wv.save_word2vec(args.output)
    print(f"{len(wv)} vectors of dimension {wv.dim} -> {args.output} "
          f"({stats.words} words in {stats.seconds:.1f}s, {stats.words_per_second:.0f} words/s)")
    return 0


def _load(path: str):
    from llmlab.classic.vectors import WordVectors

    return WordVectors.load_word2vec(path)


def _similar(args) -> int:
    wv = _load(args.vectors)
    for w in args.words:
        print(w + ": " + "  ".join(f"{n} {s:.3f}" for n, s in wv.most_similar(w, topn=args.topn)))
    return 0


def _analogy(args) -> int:
    wv = _load(args.vectors)
    for w, s in wv.analogy(args.a, args.b, args.c, topn=args.topn):
        print(f"{w}\t{s:.3f}")
    return 0


def _eval(args) -> int:
    from llmlab.classic.vectors import (
        evaluate_analogies,
        evaluate_similarity,
        onehot_vs_distributed,
        read_analogies,
        read_pairs,
    )
    from llmlab.core.io import json_text

    wv = _load(args.vectors)
    pairs = read_pairs(args.pairs or args.lang)
    out = {"similarity": evaluate_similarity(wv, pairs),
           "analogy": evaluate_analogies(wv, read_analogies(args.analogies or args.lang)),
           "onehot_vs_distributed": onehot_vs_distributed(wv, pairs)}
    print(json_text(out, ensure_ascii=False, indent=1))
    return 0
