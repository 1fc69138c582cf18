"""``llmlab seg keywords | newwords | idf``: what the segmenters' words serve, keywords of a text
(TF-IDF, TextRank) and their idf tables, and words a lexicon lacks, found in raw text."""

from __future__ import annotations

import sys

from llmlab.cli.common import add_command
from llmlab.cli.seg import add_force_words, load_with_user_dict, training_sentences


def register(g) -> None:
    """The commands of this module in the ``seg`` group `g`."""
    p = add_command(g, "keywords", "keywords of the input, by TF-IDF or TextRank (jieba.analyse's methods): one "
                    "line of words, best first (--per-line: one for each input line)", _keywords)
    p.add_argument("--method", choices=("tfidf", "textrank"), default="tfidf",
                   help="tfidf: count times inverse document frequency; textrank: PageRank over the graph of words "
                   "that occur near each other")
    p.add_argument("-k", "--top-k", type=int, default=20, help="keywords to give (0: all)")
    p.add_argument("--weights", action="store_true", help="write each keyword as word/weight")
    p.add_argument("--per-line", action="store_true", help="each input line is a document of its own")
    p.add_argument("--input", help="read this file instead of stdin")
    p.add_argument("--model", help="segmenter directory; default: the default perceptron (as `seg cut`)")
    p.add_argument("--user-dict", help="user dictionary added to the segmenter (`word [count] [tag]` lines; a count of "
                   "0 takes the word out)")
    add_force_words(p)
    p.add_argument("--allow-tags", help="only words with these POS tags, comma-separated (textrank's default: "
                   "ns,n,vn,v; tfidf's: any word, untagged; an empty value: any word)")
    p.add_argument("--pos-model", help="tagger directory for --allow-tags; default: the default perceptron tagger "
                   "(as `pos tag`)")
    p.add_argument("--idf", help="tfidf: idf table (jieba's `word idf` lines, as `seg idf` writes); default: "
                   "built from the pfr1998 train split")
    p.add_argument("--stop-words", help="file of further stop words, one per line")
    p.add_argument("--window", type=int, help="textrank: words fewer than this many tokens apart are linked "
                   "(default 5)")

    p = add_command(g, "newwords", "words found in raw text by frequency, cohesion and freedom (no dictionary, no "
                    "labels): one per line, best first", _newwords)
    p.add_argument("--input", help="read this file instead of stdin (each line a text; strings never span lines)")
    p.add_argument("-k", "--top-k", type=int, default=50, help="words to give (0: all)")
    p.add_argument("--rank", choices=("combined", "count", "entropy", "cohesion", "av"), default="combined",
                   help="combined: ln(count) x freedom x cohesion; or one measure alone")
    p.add_argument("--max-n", type=int, default=4, help="longest string considered (characters)")
    p.add_argument("--min-count", type=int, default=5, help="fewest occurrences")
    p.add_argument("--known", help="leave out these words (a word list or user dictionary: the first field of "
                   "each line, unless its count is 0)")
    p.add_argument("--model", help="leave out the words of this segmenter's lexicon")
    p.add_argument("--scores", action="store_true", help="tab-separated columns after each word: count, cohesion, "
                   "left and right entropy, left and right accessor variety")

    p = add_command(g, "idf", "write an idf table (jieba's `word idf` lines) from a corpus, one document per "
                    "non-blank line", _idf)
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--train", dest="train_file", help="segmented file (words separated by spaces), a document per "
                   "line; default: the pfr1998 train split")
    p.add_argument("--split", choices=("train", "dev", "test"), help="pfr1998 split to count (default: train)")
    p.add_argument("--input", help="raw text instead, a document per line, cut by --model (as `seg cut`)")
    p.add_argument("--model", help="with --input: segmenter directory; default: the default perceptron")



def _top_k(args) -> int | None:
    """``-k``: how many words to give, None for all (0)."""
    from llmlab.core.errors import InputError

    if args.top_k < 0:
        raise InputError(f"--top-k must be >= 0 (0: all), got {args.top_k}")
    return args.top_k or None


def _keywords(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import line_batches
    from llmlab.text.default import default_tagger
    from llmlab.text.keywords import (
        STOP_WORDS,
        TEXTRANK_TAGS,
        IdfTable,
        read_stop_words,
        textrank_keywords,
        tfidf_keywords,
    )
    from llmlab.text.lexicon import read_user_entries
    from llmlab.text.pos import SPACE_TAG, cut_and_tag_lines, load_tagger

    textrank, top_k = args.method == "textrank", _top_k(args)
    if args.allow_tags is None:
        tags = TEXTRANK_TAGS if textrank else None
    else:
        tags = tuple(t for t in args.allow_tags.split(",") if t) or None
    if args.idf and textrank:
        raise InputError("--idf is for --method tfidf: TextRank reads no idf")
    if args.window is not None and not textrank:
        raise InputError("--window is for --method textrank")
    if args.pos_model and tags is None:
        raise InputError("--pos-model tags the words for --allow-tags (or --method textrank), and neither is given")
    stop = STOP_WORDS | read_stop_words(args.stop_words) if args.stop_words else STOP_WORDS
    window = 5 if args.window is None else args.window
    if textrank:
        def rank(tokens):
            return textrank_keywords(tokens, top_k, tags, window=window, stop_words=stop)
    else:
        idf = IdfTable.read(args.idf) if args.idf else None

        def rank(tokens):
            return tfidf_keywords(tokens, idf, top_k, tags, stop)
    rank([])  # bad settings are refused before any model loads or any input is read
    user = read_user_entries(args.user_dict) if args.user_dict else None  # read once, for both models
    tagger = None
    if tags is not None:
        tagger = load_tagger(args.pos_model) if args.pos_model else default_tagger()
        unknown = sorted(set(tags) - set(tagger.tags))
        if unknown:
            raise InputError(f"--allow-tags: {' '.join(unknown)} not among the tagger's tags: "
                             f"{' '.join(sorted(tagger.tags))}")
        if user:  # the user's tags decide what --allow-tags keeps, as in jieba (`pos tag --user-dict`)
            tagger.add_user_tags([(w, t) for w, _, t in user if t is not None])
    seg = load_with_user_dict(args.model, None if user is None else [(w, c) for w, c, _ in user],
                              force=bool(args.force_words))

    def write(ranked) -> None:
        sys.stdout.write(" ".join(f"{w}/{x:.6g}" if args.weights else w for w, x in ranked) + "\n")

    document: list = []
    for lines in line_batches(args.input):
        rows = seg.cut_lines(lines) if tagger is None else cut_and_tag_lines(seg, tagger, lines)
        if args.per_line:
            for tokens in rows:
                write(rank(tokens))
        else:  # one document; a line break takes a token's place, as in the text jieba would read
            for tokens in rows:
                document.extend(tokens)
                document.append("\n" if tagger is None else ("\n", SPACE_TAG))
    if not args.per_line:
        write(rank(document))
    return 0


def _idf(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import check_not_input, check_output, line_batches
    from llmlab.text.keywords import IdfTable

    check_output(args.output)  # before any text is read or cut
    check_not_input(args.output, {"--train": args.train_file, "--input": args.input}, "-o")
    if args.input:
        for flag, value in (("--train", args.train_file), ("--split", args.split)):
            if value is not None:
                raise InputError(f"{flag} does not apply with --input: the documents are --input's lines")
        seg = load_with_user_dict(args.model, None)
        # a document is a line with a word, as read_segmented reads --train: blank lines are no documents
        documents = (words for lines in line_batches(args.input) for words in seg.cut_lines(lines)
                     if not all(w.isspace() for w in words))
    elif args.model:
        raise InputError("--model cuts --input's raw text; a --train file or pfr1998 split is cut already")
    else:
        documents = training_sentences(args)
    table = IdfTable.from_documents(documents)
    if not len(table):
        raise InputError("the corpus holds no words: no idf table to write")
    table.save(args.output)
    print(f"wrote idf of {len(table):,} words to {args.output}", file=sys.stderr)
    return 0


def _newwords(args) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import rereadable_lines
    from llmlab.text.base import load_segmenter
    from llmlab.text.lexicon import read_user_dict, split_deletions
    from llmlab.text.newwords import discover

    top_k = _top_k(args)
    known: set[str] = set()
    if args.known:
        known.update(w for w, _ in split_deletions(read_user_dict(args.known, "known-word file"))[0])
    if args.model:
        seg = load_segmenter(args.model)
        if getattr(seg, "lexicon", None) is None:
            raise InputError(f"--model: the {seg.kind!r} segmenter in {args.model!r} has no lexicon to leave out")
        known.update(seg.lexicon.counts)
    discover([], top_k, rank=args.rank, max_n=args.max_n, min_count=args.min_count)  # settings first
    # the text is read once per string length, never held: standard input or a pipe is spooled to a temporary file
    with rereadable_lines(args.input) as texts:
        found = discover(texts, top_k, known, args.rank, args.max_n, args.min_count)
    for c in found:
        extra = (f"\t{c.count}\t{c.cohesion:.4f}\t{c.left_entropy:.4f}\t{c.right_entropy:.4f}\t{c.left_av}\t"
                 f"{c.right_av}") if args.scores else ""
        sys.stdout.write(c.word + extra + "\n")
    return 0
