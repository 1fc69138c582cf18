"""Chinese word segmentation on pfr1998 test: llmlab's segmenters beside jieba (and THULAC where it
installs), F1, OOV recall and chars/s, with ratios to jieba's default mode; with --pkuseg, also
pkuseg trained on the same train split (its released models are downloads).

All segmenters cut the same test sentences (the gold words joined). llmlab's models train on the
train split (the perceptron in about 20 seconds, the POS perceptron in about 1.5 minutes; pass
--perceptron-model DIR / --pos-model DIR to reuse saved ones).
Speed: the best of --repeat rounds over the whole test text, each round timing every system of a
table once in turn, after one warm-up call each; `cut` is called line by line for everyone. The
perceptron is also timed through `cut_lines` (the same lines, scored in batches), the way a file is
segmented by `llmlab seg cut`.

With --jieba-dict a second perceptron is trained with jieba's word list (its installed dict.txt) as
an external feature dictionary: an "open" result in SIGHAN terms, since it uses a resource beyond
the training split (as pkuseg and THULAC do with their dictionaries); the plain one is "closed".
Where jieba is installed, "llmlab unigram (jieba's dict.txt)" is the unigram segmenter built from
jieba's word list alone (`seg train --dict-only`): jieba's own algorithm without its HMM, so its
row against "jieba (no HMM)" compares two implementations of one method on one dictionary; a table
after the main one does the same for jieba's search and full modes (`cut_for_search`, `cut_all`).
An accuracy table cuts the test split written in traditional characters, with and without
`llmlab.text.script.to_simplified` (`seg cut --t2s`), beside the peers. Another gives every
segmenter the unseen test words as a user dictionary (an oracle, what a perfect domain dictionary
could bring, not a result on the split): in its lexicon (`seg cut --user-dict`) and forced whole
(`--force-words`), beside jieba with the same words added (`jieba.add_word`); where spacy_pkuseg
installs, it also checks the forced matches against pkuseg's own user-dictionary pre-split.
--seg-neural-model DIR / --seg-hybrid-model DIR add saved BiLSTM and perceptron + BiLSTM segmenters
(`llmlab seg train --algo neural|hybrid`; training takes about half an hour, so the bench only loads them).
--pos adds the POS taggers (gold segmentation) and the joint word+tag F1 after segmentation, each
tagger also on the test words in traditional characters and with an oracle user dictionary (the
unseen test words with their test tags, `pos tag --user-dict`: what a perfect domain dictionary
could bring, not a result on the split); with
--hybrid (or --hybrid-model DIR) also the perceptron + BiLSTM hybrid (its training takes about twenty minutes).
A last POS table segments and tags the raw test text with the perceptron segmenter and each tagger,
beside jieba.posseg and THULAC (pkuseg's POS model is a download), scored by word+tag F1 on the tags'
first letters, the classes the three tag sets share.

Start-up: a last table times fresh processes that load a model and cut (or tag) one line, beside
one that imports jieba, runs `jieba.initialize()` and cuts the same line (THULAC too where it
installs, pkuseg with --pkuseg-model): the median wall time and CPU time (user + sys, the steadier
figure on a shared machine) of --load-repeat runs after one warm-up, with the CPU ratio to jieba's.
The perceptron segmenter is the one loaded or trained above (saved to a temporary folder if need
be), the POS tagger the one of --pos-model; --load-only prints just this table (it needs
--perceptron-model).

    .venv/bin/python bench/segmentation.py [--perceptron-model DIR] [--save-perceptron DIR]
        [--jieba-dict] [--dict-model DIR] [--save-dict-model DIR] [--pos] [--pos-model DIR]
        [--hybrid] [--hybrid-model DIR] [--pkuseg | --pkuseg-model DIR] [--save-pkuseg DIR]
        [--seg-neural-model DIR] [--seg-hybrid-model DIR] [--load-only] [--load-repeat N]
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata

LOAD_LINE = "迈向充满希望的新世纪"  # the line each fresh process cuts (its words, for the tagger)


def best_time(fn, repeat: int) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def timed_outputs(systems: dict, texts: list[str], repeat: int):
    """(name, output on `texts`, chars/s) of each system: one warm-up call on two texts each, then
    `repeat` rounds that each time every system once in turn (THULAC, the slowest by far, in the first
    round only), each system's best round kept. A machine whose speed drifts during the bench moves
    every system's figures alike, so the ratios between them hold."""
    n_chars = sum(map(len, texts))
    for fn in systems.values():
        fn(texts[:2])
    best: dict[str, tuple[object, float]] = {}
    for r in range(repeat):
        for name, fn in systems.items():
            if r and "THULAC" in name:
                continue
            out, dt = best_time(lambda fn=fn: fn(texts), 1)
            if name not in best or dt < best[name][1]:
                best[name] = (out, dt)
    for name, (out, dt) in best.items():
        yield name, out, n_chars / dt


def ratio(value: float, base: tuple | None, column: int, digits: int) -> str:
    """`value` over the base row's `column`, as "1.23x" ("-" without a base row)."""
    return f"{value / base[column]:.{digits}f}x" if base else "-"


def peers(texts: list[str]) -> dict:
    """name -> function(list of texts) -> list of word lists, for the peers that load offline."""
    out = {}
    try:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        out["jieba (default, HMM)"] = lambda xs: [jieba.lcut(x) for x in xs]
        out["jieba (no HMM)"] = lambda xs: [jieba.lcut(x, HMM=False) for x in xs]
    except ImportError:
        print("jieba not installed")
    try:
        import thulac

        th = thulac.thulac(seg_only=True)
        out["THULAC (python)"] = lambda xs: [th.cut(x, text=True).split(" ") if x else [] for x in xs]
    except Exception as e:  # noqa: BLE001 - a peer that fails to load is reported, not fatal
        print(f"THULAC unavailable: {e!r:.120}")
    return out


def pkuseg_peer(train, dev, model_dir: str | None, save_dir: str | None, iters: int):
    """pkuseg trained on the same train split (closed, no user dictionary): `spacy_pkuseg`, the
    maintained fork that ships wheels. Its released models download on first use, which a bench may
    not do, so it trains one here unless given a saved one: 20 iterations took an hour on a 2-core
    machine (each about 2 minutes of training on one core, then a pass over `dev`, which its trainer
    scores after every iteration). It keeps the last model, as llmlab's perceptron does."""
    import contextlib
    import os
    import tempfile

    import spacy_pkuseg

    if not model_dir:
        model_dir = save_dir or tempfile.mkdtemp(prefix="pkuseg-")
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for name, sents in (("train", train), ("dev", dev)):
                files.append(os.path.join(tmp, f"{name}.txt"))
                with open(files[-1], "w", encoding="utf-8") as f:
                    f.writelines(" ".join(s) + "\n" for s in sents)
            os.makedirs(model_dir, exist_ok=True)
            log = os.path.join(model_dir, "train.log")
            t = time.perf_counter()
            with open(log, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f):
                spacy_pkuseg.train(*files, model_dir, train_iter=iters)
            print(f"trained pkuseg ({iters} iterations) in {time.perf_counter() - t:.0f}s, log in {log}")
    pk = spacy_pkuseg.pkuseg(model_dir, user_dict=None)
    return lambda xs: [pk.cut(x) for x in xs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perceptron-model", help="saved perceptron segmenter to load instead of training")
    ap.add_argument("--save-perceptron", help="save the trained perceptron here")
    ap.add_argument("--epochs", type=int, default=10, help="perceptron epochs when training")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs; the best counts")
    ap.add_argument("--pos", action="store_true", help="also score the POS taggers (training takes minutes)")
    ap.add_argument("--pos-model", help="saved perceptron POS tagger to load instead of training")
    ap.add_argument("--save-pos-model", help="save the trained perceptron POS tagger here")
    ap.add_argument("--hybrid", action="store_true", help="with --pos: also train the perceptron+neural hybrid")
    ap.add_argument("--hybrid-model", help="with --pos: saved hybrid POS tagger to score (instead of training one)")
    ap.add_argument("--jieba-dict", action="store_true", help="also train a perceptron with jieba's dictionary")
    ap.add_argument("--dict-model", help="saved perceptron-with-dictionary segmenter to load instead of training")
    ap.add_argument("--save-dict-model", help="save the trained perceptron-with-dictionary segmenter here")
    ap.add_argument("--pkuseg", action="store_true",
                    help="also train pkuseg on the train split and score it (about an hour)")
    ap.add_argument("--pkuseg-model", help="saved pkuseg model directory to score instead of training one")
    ap.add_argument("--save-pkuseg", help="train pkuseg into this directory (kept)")
    ap.add_argument("--pkuseg-iters", type=int, default=20, help="pkuseg training iterations (its default: 20)")
    ap.add_argument("--seg-neural-model", help="saved BiLSTM segmenter (`seg train --algo neural`) to score")
    ap.add_argument("--seg-hybrid-model", help="saved perceptron + BiLSTM segmenter (`seg train --algo hybrid`)")
    ap.add_argument("--load-only", action="store_true", help="only the start-up table (needs --perceptron-model)")
    ap.add_argument("--load-repeat", type=int, default=5, help="fresh processes per start-up row; the median counts")
    args = ap.parse_args()
    if args.load_only:
        if not args.perceptron_model:
            ap.error("--load-only needs --perceptron-model DIR")
        bench_load(args.perceptron_model, args.pos_model, args.pkuseg_model, args.load_repeat)
        return

    from llmlab.data.corpora import pfr1998_words
    from llmlab.text.base import load_segmenter, segmenter_class
    from llmlab.text.hmm import HmmConfig
    from llmlab.text.lattice import LatticeConfig
    from llmlab.text.matching import MatchConfig
    from llmlab.text.metrics import seg_scores
    from llmlab.text.perceptron import PerceptronConfig

    train, gold = pfr1998_words("train"), pfr1998_words("test")
    texts = ["".join(s) for s in gold]
    n_chars = sum(map(len, texts))
    vocab = {w for s in train for w in s}
    print(f"pfr1998: {len(train)} train sentences; test {len(gold)} sentences, {n_chars} chars, "
          f"OOV rate {sum(w not in vocab for s in gold for w in s) / sum(map(len, gold)):.4f}")

    configs = {"fmm": MatchConfig("forward"), "bmm": MatchConfig("backward"), "bimm": MatchConfig("bidirectional"),
               "unigram": LatticeConfig(), "bigram": LatticeConfig(), "hmm": HmmConfig()}
    systems, segmenters = {}, {}
    for kind, cfg in configs.items():
        seg, dt = best_time(lambda kind=kind, cfg=cfg: segmenter_class(kind).train(train, cfg), 1)
        print(f"trained llmlab {kind} in {dt:.1f}s")
        systems[f"llmlab {kind}"] = lambda xs, seg=seg: [seg.cut(x) for x in xs]
        if kind in ("unigram", "hmm"):
            segmenters[kind] = seg
    if args.perceptron_model:
        perc = load_segmenter(args.perceptron_model)
    else:
        config = PerceptronConfig(epochs=args.epochs)
        perc, dt = best_time(lambda: segmenter_class("perceptron").train(train, config), 1)
        print(f"trained llmlab perceptron in {dt:.1f}s")
        if args.save_perceptron:
            perc.save(args.save_perceptron)
    perc.cut("预热")  # builds the lexicon matcher once
    systems["llmlab perceptron (cut)"] = lambda xs: [perc.cut(x) for x in xs]
    systems["llmlab perceptron (cut_lines)"] = perc.cut_lines
    segmenters["perceptron"] = perc
    if args.jieba_dict or args.dict_model:
        dseg = load_segmenter(args.dict_model) if args.dict_model else train_with_jieba_dict(train, args.epochs)
        if args.save_dict_model:
            dseg.save(args.save_dict_model)
        dseg.cut("预热")
        systems["llmlab perceptron+jieba dict (cut)"] = lambda xs: [dseg.cut(x) for x in xs]
        systems["llmlab perceptron+jieba dict (cut_lines)"] = dseg.cut_lines
        segmenters["perceptron+jieba dict"] = dseg
    for flag, name in ((args.seg_neural_model, "neural"), (args.seg_hybrid_model, "hybrid")):
        if flag:
            seg = load_segmenter(flag)
            systems[f"llmlab {name} (cut_lines)"] = seg.cut_lines
            segmenters[name] = seg
    systems.update(peers(texts))
    if "jieba (no HMM)" in systems:
        useg = jieba_dict_unigram()
        systems["llmlab unigram (jieba's dict.txt)"] = lambda xs: [useg.cut(x) for x in xs]
    if args.pkuseg or args.pkuseg_model:
        try:
            systems["pkuseg (trained on train)"] = pkuseg_peer(train, pfr1998_words("dev"), args.pkuseg_model,
                                                               args.save_pkuseg, args.pkuseg_iters)
        except ImportError:
            print("pkuseg not installed (pip install spacy-pkuseg, or the project's [bench] extra)")

    rows = []
    for name, cuts, cps in timed_outputs(systems, texts, args.repeat):
        cuts = [[w for w in c if w] for c in cuts]
        if any("".join(c) != t for c, t in zip(cuts, texts)):
            print(f"warning: {name} does not give back its input exactly")
        s = seg_scores(gold, cuts, vocab)
        rows.append((name, s.precision, s.recall, s.f1, s.oov_recall, cps))
    base = dict((r[0], r) for r in rows).get("jieba (default, HMM)")
    print(f"\n{'segmenter':42s} {'P':>7s} {'R':>7s} {'F1':>7s} {'OOV-R':>7s} {'chars/s':>11s} "
          f"{'F1 vs jieba':>11s} {'speed vs jieba':>14s}")
    for name, p, r, f1, oov, cps in rows:
        print(f"{name:42s} {p:7.4f} {r:7.4f} {f1:7.4f} {oov:7.4f} {cps:11,.0f} {ratio(f1, base, 3, 3):>11s} "
              f"{ratio(cps, base, 5, 2):>14s}")
    if "jieba (no HMM)" in systems:
        bench_modes(useg, texts, args.repeat)
    bench_traditional(perc, gold, train, {k: f for k, f in systems.items() if k in ("jieba (default, HMM)",
                                                                                    "THULAC (python)")})
    bench_user_words(segmenters, gold, vocab)
    if args.pos:
        bench_pos(args, {k: v for k, v in segmenters.items() if k not in ("unigram", "hmm")})
    with tempfile.TemporaryDirectory() as tmp:
        seg_dir = args.perceptron_model or args.save_perceptron or perc.save(f"{tmp}/perceptron")
        bench_load(str(seg_dir), args.pos_model, args.pkuseg_model, args.load_repeat)


def fresh_process(cmd: list[str], stdin: str) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one run of `cmd` in a new process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, input=stdin.encode(), capture_output=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def bench_load(seg_dir: str, pos_dir: str | None, pkuseg_dir: str | None, repeat: int) -> None:
    """The start-up table (see the module docstring)."""
    line, words = LOAD_LINE, ["迈向", "充满", "希望", "的", "新", "世纪"]
    quiet_jieba = "import jieba, logging; jieba.setLogLevel(logging.WARNING)"
    runs = {"jieba: import, initialize(), lcut": (f"{quiet_jieba}; jieba.initialize(); jieba.lcut({line!r})", "")}
    try:
        import thulac  # noqa: F401 - only whether it installs

        runs["THULAC: thulac(seg_only=True).cut"] = (f"import thulac; thulac.thulac(seg_only=True).cut({line!r})", "")
    except Exception:  # noqa: BLE001 - a peer that fails to load is left out
        pass
    if pkuseg_dir:
        runs["pkuseg: pkuseg(DIR).cut"] = (f"import spacy_pkuseg as p; p.pkuseg({pkuseg_dir!r}).cut({line!r})", "")
    runs["llmlab: load_segmenter(DIR).cut"] = (
        f"from llmlab.text.base import load_segmenter; load_segmenter({seg_dir!r}).cut({line!r})", "")
    runs["llmlab seg cut --model DIR"] = (["seg", "cut", "--model", seg_dir], line + "\n")
    if pos_dir:
        runs["llmlab: load_tagger(DIR).tag"] = (
            f"from llmlab.text.pos import load_tagger; load_tagger({pos_dir!r}).tag({words!r})", "")
        runs["llmlab pos tag --model DIR"] = (["pos", "tag", "--model", pos_dir], " ".join(words) + "\n")
    print(f"\nStart-up: a fresh process loads and cuts (tags) one line; median of {repeat} runs, CPU = user + sys")
    print(f"{'process':42s} {'wall s':>7s} {'CPU s':>7s} {'CPU vs jieba':>12s}")
    jieba_cpu = None
    for name, (what, stdin) in runs.items():
        cmd = [sys.executable, "-c", what] if isinstance(what, str) else [sys.executable, "-m", "llmlab", *what]
        try:
            fresh_process(cmd, stdin)  # warm-up: file caches, jieba's prefix-dict cache
        except subprocess.CalledProcessError as e:
            print(f"{name:42s} failed: {e.stderr.decode()[-200:]!r}")
            continue
        walls, cpus = zip(*(fresh_process(cmd, stdin) for _ in range(repeat)))
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        jieba_cpu = cpu if name.startswith("jieba") else jieba_cpu
        ratio = f"{cpu / jieba_cpu:.2f}x" if jieba_cpu else "-"
        print(f"{name:42s} {wall:7.2f} {cpu:7.2f} {ratio:>12s}")


def jieba_dict_path() -> str:
    import os

    import jieba

    return os.path.join(os.path.dirname(jieba.__file__), "dict.txt")


def jieba_dict_unigram():
    from llmlab.text.lattice import UnigramSegmenter

    seg, dt = best_time(lambda: UnigramSegmenter.from_dictionary(jieba_dict_path()), 1)
    print(f"built llmlab unigram from jieba's dict.txt ({len(seg.lexicon)} words) in {dt:.1f}s")
    return seg


def bench_modes(useg, texts: list[str], repeat: int) -> None:
    """jieba's three modes on jieba's own dictionary: llmlab's unigram segmenter built from dict.txt
    (`cut`, `cut_for_search`, `cut_all`) beside jieba without its HMM, line by line: the share of lines
    given exactly jieba's words, and of lines given jieba's Chinese words (those of Han characters
    only; around digits and Latin letters the two differ by design: llmlab keeps a number whole, jieba
    cuts a full-width one character by character), chars/s and the speed ratio."""
    import re

    import jieba

    han = re.compile("[\u4e00-\u9fa5]+")
    n_chars = sum(map(len, texts))
    modes = {"default": (useg.cut, lambda x: jieba.lcut(x, HMM=False)),
             "search": (useg.cut_for_search, lambda x: jieba.lcut_for_search(x, HMM=False)),
             "full": (useg.cut_all, lambda x: jieba.lcut(x, cut_all=True))}
    print(f"\n{'mode (jieba dict.txt, no HMM)':30s} {'same lines':>10s} {'same Chinese':>12s} {'llmlab chars/s':>15s} "
          f"{'jieba chars/s':>14s} {'speed vs jieba':>14s}")
    for mode, (ours, theirs) in modes.items():
        pair = {"llmlab": lambda xs, ours=ours: [ours(x) for x in xs],
                "jieba": lambda xs, theirs=theirs: [theirs(x) for x in xs]}
        (_, a, ca), (_, b, cb) = timed_outputs(pair, texts, repeat)
        ta, tb = n_chars / ca, n_chars / cb
        same = sum(x == y for x, y in zip(a, b)) / len(texts)
        chinese = sum([w for w in x if han.fullmatch(w)] == [w for w in y if han.fullmatch(w)]
                      for x, y in zip(a, b)) / len(texts)
        print(f"{mode:30s} {same:10.4f} {chinese:12.4f} {n_chars / ta:15,.0f} {n_chars / tb:14,.0f} {tb / ta:13.2f}x")


def bench_traditional(perc, gold, train, loaded_peers: dict) -> None:
    """The test split in traditional characters (`llmlab.text.script.to_traditional`: one traditional
    form per character, a stand-in for real traditional text): the perceptron reading it as it is and
    through `to_simplified` (`seg cut --t2s`), beside jieba and THULAC where they load (THULAC also with
    its own T2S, whose simplified output is laid back on the input: it keeps each line's length).
    `loaded_peers`: the main table's jieba and THULAC functions, not loaded again."""
    from llmlab.text.base import same_cuts
    from llmlab.text.metrics import seg_scores
    from llmlab.text.script import to_simplified, to_traditional

    trad = [[to_traditional(w) for w in s] for s in gold]
    texts = ["".join(s) for s in trad]
    vocab = {to_traditional(w) for s in train for w in s}
    n_changed = sum(a != b for s, t in zip(gold, texts) for a, b in zip("".join(s), t))
    systems = {"llmlab perceptron, as it is": perc.cut_lines,
               "llmlab perceptron, --t2s": lambda xs: [same_cuts(x, w) for x, w in
                                                      zip(xs, perc.cut_lines([to_simplified(x) for x in xs]))]}
    systems.update(loaded_peers)
    try:
        import thulac

        th = thulac.thulac(seg_only=True, T2S=True)
        systems["THULAC (python), T2S"] = lambda xs: [same_cuts(x, th.cut(x, text=True).split(" ")) if x else []
                                                      for x in xs]
    except Exception as e:  # noqa: BLE001 - a peer that fails to load is reported, not fatal
        print(f"THULAC unavailable: {e!r:.120}")
    print(f"\nthe test split in traditional characters ({n_changed / sum(map(len, texts)):.1%} of its characters "
          f"changed)\n{'segmenter':42s} {'F1':>7s} {'OOV-R':>7s}")
    for name, fn in systems.items():
        s = seg_scores(trad, [[w for w in c if w] for c in fn(texts)], vocab)
        print(f"{name:42s} {s.f1:7.4f} {s.oov_recall:7.4f}")


def bench_user_words(segmenters: dict, gold, vocab: set[str]) -> None:
    """F1 and OOV recall with the unseen test words as a user dictionary: as it is, in the lexicon,
    and forced whole; jieba beside them; the forced matches against pkuseg's pre-split."""
    import copy
    import itertools
    from collections import Counter

    from llmlab.text.base import ForcedWords, normalize_text, unit_spans
    from llmlab.text.metrics import seg_scores

    norm_vocab = {normalize_text(w) for w in vocab}
    words = sorted({w for s in gold for w in s if normalize_text(w) not in norm_vocab})
    texts = ["".join(s) for s in gold]
    print(f"\nthe {len(words)} unseen test words as a user dictionary (an oracle), F1 / OOV recall:")
    print(f"{'segmenter':28s} {'without':>15s} {'--user-dict':>15s} {'--force-words':>15s}")

    def score(cuts) -> str:
        s = seg_scores(gold, cuts, vocab)
        return f"{s.f1:.4f} / {s.oov_recall:.3f}"

    for name, seg in segmenters.items():
        cols = [score(seg.cut_lines(texts))]
        if getattr(seg, "lexicon", None) is not None:
            soft = copy.deepcopy(seg)
            soft.add_user_dict([(w, None) for w in words])
            cols.append(score(soft.cut_lines(texts)))
        else:
            cols.append("no lexicon")
        forced = copy.deepcopy(seg)
        forced.force_words(words)
        cols.append(score(forced.cut_lines(texts)))
        print(f"{'llmlab ' + name:28s} " + " ".join(f"{c:>15s}" for c in cols))
    try:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tk = jieba.Tokenizer()
        before = score([tk.lcut(x) for x in texts])
        for w in words:
            tk.add_word(w)
        print(f"{'jieba (default, HMM)':28s} {before:>15s} {score([tk.lcut(x) for x in texts]):>15s}")
    except ImportError:
        pass
    try:
        import spacy_pkuseg
    except ImportError:
        return
    ours, theirs, known = ForcedWords(words), spacy_pkuseg.Preprocesser(words), set(words)
    why: Counter = Counter()
    for x in texts:
        pieces, forced, _ = theirs.solve(x)
        if [p for p, _ in ours.split(x)] == pieces:
            why["the same"] += 1
            continue
        cuts = list(itertools.accumulate(map(len, pieces)))
        inside = {k for a, b in unit_spans(x) for k in range(a + 1, b)}
        why["pkuseg forces a piece that is no user word"] += any(f and p not in known for p, f in zip(pieces, forced))
        why["pkuseg cuts inside a number or Latin word"] += any(c in inside for c in cuts)
    print(f"forced matches against pkuseg's Preprocesser, lines: {dict(why)}")


def train_with_jieba_dict(train, epochs: int):
    from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter, read_dictionary

    dictionary = read_dictionary(jieba_dict_path())
    seg, dt = best_time(lambda: PerceptronSegmenter.train(train, PerceptronConfig(epochs=epochs), dictionary), 1)
    print(f"trained llmlab perceptron+jieba dict ({len(dictionary)} dictionary words) in {dt:.1f}s")
    return seg


def user_tags_of_unseen_words(test, vocab: set[str]) -> list[tuple[str, str]]:
    """(word, its most frequent test tag) for each test word whose width-normalised form is not in
    `vocab` (the normalised training words): an oracle user dictionary."""
    from collections import Counter

    from llmlab.text.base import normalize_text

    seen: dict[str, Counter] = {}
    for s in test:
        for w, t in s:
            if normalize_text(w) not in vocab:
                seen.setdefault(w, Counter())[t] += 1
    return [(w, c.most_common(1)[0][0]) for w, c in seen.items()]


def bench_pos(args, segmenters: dict) -> None:
    from llmlab.data.corpora import pfr1998
    from llmlab.text.base import normalize_text
    from llmlab.text.metrics import seg_tag_scores, tag_accuracy
    from llmlab.text.pos import cut_and_tag, cut_and_tag_lines, load_tagger, tagger_class
    from llmlab.text.script import to_simplified, to_traditional

    train, test = pfr1998("train"), pfr1998("test")
    vocab = {w for s in train for w, _ in s}
    words = [[w for w, _ in s] for s in test]
    saved = {"perceptron": args.pos_model, "hybrid": args.hybrid_model}
    kinds = ["hmm", "perceptron"] + (["hybrid"] if args.hybrid or args.hybrid_model else [])
    systems = {}  # name -> function(texts) -> (word, tag) lists, for the table beside the peers
    print("\nPOS tagging, pfr1998 test with gold segmentation")
    for name in kinds:
        if saved.get(name):
            tagger, trained = load_tagger(saved[name]), "loaded"
        else:
            tagger, dt = best_time(lambda name=name: tagger_class(name).train(train), 1)
            trained = f"train {dt:.0f}s"
            if name == "perceptron" and args.save_pos_model:
                tagger.save(args.save_pos_model)
        pred, tt = best_time(lambda tagger=tagger: tagger.tag_sentences(words), 1)
        acc = tag_accuracy(test, pred, vocab)
        print(f"llmlab {name:10s} accuracy {acc['accuracy']:.4f}  unknown-word accuracy "
              f"{acc['unknown_accuracy']:.4f}  {trained}  {sum(map(len, words)) / tt:,.0f} words/s")
        trad = [[to_traditional(w) for w in ws] for ws in words]
        as_is, t2s = (tag_accuracy(test, tagger.tag_sentences(x))["accuracy"]
                      for x in (trad, [[to_simplified(w) for w in ws] for ws in trad]))
        print(f"    the test words in traditional characters: accuracy {as_is:.4f} as they are, {t2s:.4f} with --t2s")
        texts = ["".join(ws) for ws in words]
        for seg_name, segmenter in segmenters.items():
            joint = seg_tag_scores(test, cut_and_tag_lines(segmenter, tagger, texts))
            print(f"    after {seg_name} segmentation: word+tag P {joint['precision']:.4f} "
                  f"R {joint['recall']:.4f} F1 {joint['f1']:.4f}")
        if name != "hmm":  # before the oracle's tags below change the tagger
            seg = segmenters["perceptron"]
            systems[f"llmlab perceptron + {name} tagger (cut_and_tag)"] = \
                lambda xs, seg=seg, tagger=tagger: [cut_and_tag(seg, tagger, x) for x in xs]
            systems[f"llmlab perceptron + {name} tagger (cut_and_tag_lines)"] = \
                lambda xs, seg=seg, tagger=tagger: cut_and_tag_lines(seg, tagger, xs)
        oracle = user_tags_of_unseen_words(test, {normalize_text(w) for w in vocab})
        tagger.add_user_tags(oracle)  # then every unseen word is tagged as the user says
        acc = tag_accuracy(test, tagger.tag_sentences(words), vocab)
        print(f"    with the {len(oracle)} unseen test words and their test tags as user tags (an upper bound on "
              f"a domain dictionary): accuracy {acc['accuracy']:.4f}")
    bench_pos_peers(test, {**systems, **pos_peers()}, args.repeat)


def coarse(tag: str) -> str:
    """A tag's first letter in lower case: the classes PKU's, jieba's and THULAC's tag sets share (n noun,
    v verb, a adjective, m numeral, q measure word, w punctuation, ...), not their subclasses."""
    return tag[:1].lower()


def jieba_coarse(word: str, flag: str) -> str:
    """jieba.posseg's flag as `coarse`: its x is punctuation (PKU's w) or other symbols and Latin text, and
    eng a Latin word (PKU's nx, a noun)."""
    if flag == "x":
        return "w" if all(unicodedata.category(c)[0] in "PS" for c in word) else "n"
    return "n" if flag == "eng" else coarse(flag)


def pos_peers() -> dict:
    """name -> function(list of texts) -> lists of (word, coarse tag), for the taggers that load offline
    (pkuseg's POS model is a download)."""
    out = {}
    try:
        import jieba
        import jieba.posseg as pseg

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        out["jieba.posseg (default, HMM)"] = lambda xs: [[(p.word, jieba_coarse(p.word, p.flag)) for p in pseg.cut(x)]
                                                         for x in xs]
    except ImportError:
        print("jieba not installed")
    try:
        import thulac

        th = thulac.thulac()
        out["THULAC (python)"] = lambda xs: [[(w, coarse(t)) for w, t in th.cut(x)] if x else [] for x in xs]
    except Exception as e:  # noqa: BLE001 - a peer that fails to load is reported, not fatal
        print(f"THULAC unavailable: {e!r:.120}")
    return out


def bench_pos_peers(test, systems: dict, repeat: int) -> None:
    """Segmentation and tagging from raw text, each system's own way, scored by word+tag F1 on the tags'
    first letters (`coarse`): the tag sets differ in their subclasses and conventions, not in these
    (n, v, a, d, m, q, r, p, c, u, w, ...), and the peers cannot tag given words."""
    from llmlab.text.metrics import seg_tag_scores

    gold = [[(w, coarse(t)) for w, t in s] for s in test]
    texts = ["".join(w for w, _ in s) for s in test]
    rows = []
    for name, out, cps in timed_outputs(systems, texts, repeat):
        out = [[(w, coarse(t)) for w, t in s if w] for s in out]
        keep = [i for i, (s, t) in enumerate(zip(out, texts)) if "".join(w for w, _ in s) == t]
        if len(keep) < len(texts):
            print(f"warning: {name} does not give back its input exactly; its lines are left out")
        joint = seg_tag_scores([gold[i] for i in keep], [out[i] for i in keep])
        rows.append((name, joint["precision"], joint["recall"], joint["f1"], cps))
    base = dict((r[0], r) for r in rows).get("jieba.posseg (default, HMM)")
    print(f"\nsegmentation + tagging from raw text, word+tag on the tags' first letters (n, v, a, m, w, ...)"
          f"\n{'system':56s} {'P':>7s} {'R':>7s} {'F1':>7s} {'chars/s':>11s} {'F1 vs jieba':>11s} "
          f"{'speed vs jieba':>14s}")
    for name, p, r, f1, cps in rows:
        print(f"{name:56s} {p:7.4f} {r:7.4f} {f1:7.4f} {cps:11,.0f} {ratio(f1, base, 3, 3):>11s} "
              f"{ratio(cps, base, 4, 2):>14s}")


if __name__ == "__main__":
    main()
