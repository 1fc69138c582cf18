"""Segmenting a large file with worker processes: `llmlab seg cut --jobs N` beside jieba's
`enable_parallel(N)`, each run as a fresh process from start to written output, so process start,
model loading and the workers' start count; each system's parallel output is checked against its own
output in one process.

The file is pfr1998's raw train split written `--repeats` times (17,535 lines, 1.67M characters each).
llmlab cuts with the perceptron segmenter (`--model DIR`; default: the default model, trained on first
use); jieba with its default mode (HMM). Wall time, best of `--repeat` runs.

    .venv/bin/python bench/parallel_cut.py [--model DIR] [--jobs 2] [--repeats 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JIEBA = """
import sys, jieba
jieba.setLogLevel(60)
jieba.initialize()
if int(sys.argv[2]) > 1:
    jieba.enable_parallel(int(sys.argv[2]))
text = open(sys.argv[1], encoding="utf-8").read()
out = " ".join(jieba.cut(text)).replace(" \\n ", "\\n")
open(sys.argv[3], "w", encoding="utf-8").write(out)
"""


def best_time(argv: list[str], repeat: int, stdout: str | None) -> float:
    """Seconds of the fastest of `repeat` runs of `argv` (its standard output to the file `stdout`)."""
    best = float("inf")
    for _ in range(repeat):
        with open(stdout or os.devnull, "w", encoding="utf-8") as f:
            t = time.perf_counter()
            subprocess.run(argv, check=True, stdout=f)
            best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="llmlab segmenter directory (default: the default perceptron)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="copies of the train split in the file")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each command (best is kept)")
    args = ap.parse_args()

    from llmlab.data.corpora import pfr1998_text

    lines = pfr1998_text("train") * args.repeats
    llmlab = [str(Path(sys.executable).with_name("llmlab")), "seg", "cut"] + (["--model", args.model] if args.model
                                                                              else [])
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "raw.txt"
        src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        n = sum(map(len, lines))
        print(f"{len(lines):,} lines, {n:,} characters; {os.cpu_count()} CPU cores; best of {args.repeat}\n")
        print(f"{'system':34s} {'seconds':>8s} {'chars/s':>11s} {'vs 1 process':>13s} {'same output':>12s}")
        for name, command in (("llmlab seg cut", lambda j, out: [*llmlab, "--input", str(src), "-j", str(j)]),
                              ("jieba", lambda j, out: [sys.executable, "-c", JIEBA, str(src), str(j), out])):
            if name == "jieba":
                try:
                    import jieba  # noqa: F401
                except ImportError:
                    print("jieba is not installed (make bench): no peer rows")
                    continue
            serial = None
            for jobs in (1, args.jobs):
                out = str(Path(d) / f"{name.split()[0]}-{jobs}.txt")
                seconds = best_time(command(jobs, out), args.repeat, None if name == "jieba" else out)
                serial = serial or (seconds, out)
                same = "yes" if filecmp.cmp(serial[1], out, shallow=False) else "NO"
                label = f"{name}, {jobs} process" + ("es" if jobs > 1 else "")
                print(f"{label:34s} {seconds:8.2f} {n / seconds:11,.0f} {serial[0] / seconds:12.2f}x {same:>12s}")


if __name__ == "__main__":
    main()
