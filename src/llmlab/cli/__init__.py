"""The ``llmlab`` command line: one module per command group, each exposing ``register(sub)``.

Command modules import their library code inside the handler, so ``llmlab --help`` starts fast and
the torch-free groups never load torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys

from llmlab import __version__
from llmlab.cli.common import HelpFormatter
from llmlab.core.errors import LlmlabError

# Module names under llmlab.cli, in the order `llmlab --help` lists them.
COMMANDS: tuple[str, ...] = (
    "seg",
    "pos",
    "parse",
    "pretrain",
    "sft",
    "rm",
    "rl",
    "dpo",
    "generate",
    "serve",
    "quantize",
    "rag",
    "speedrun",
    "memory",
    "plan",
    "optimizers",
    "extractors",
    "scaling",
    "extrapolation",
    "gradflow",
    "attention",
    "eval",
    "ngram",
    "word2vec",
    "tokenizer",
    "data",
    "probe",
)


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose command-line errors (a mistyped flag or value) are one line, as every other
    error is, with where to look: not argparse's usage block, which for a command of fifty flags buried
    the line that says what was wrong. Subcommands' parsers are of this class too (`add_subparsers`)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists what it takes)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="llmlab",
        description="The fundamentals of large language models, runnable.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--threads", type=_threads, metavar="N",
                        help="torch CPU threads (default: one per core); 1 is faster for small models and on a busy "
                        "machine, where threads on shared cores wait for each other (10x slower RL steps seen)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"llmlab.cli.{name}").register(sub)
    return parser


def _threads(text: str) -> int:
    n = int(text) if text.strip().isdigit() else 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads >= 1, got {text!r}")
    return n


def set_threads(n: int) -> None:
    """Torch's CPU threads for this process: read from the environment when torch is imported later (the
    command modules import it only in their handlers), set directly when it already is."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def out_of_memory(e: BaseException) -> bool:
    """Whether `e` is an allocation that failed: Python's MemoryError, or torch's on the CPU (a RuntimeError
    from its allocator) or an accelerator (torch.OutOfMemoryError, also a RuntimeError)."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def what_failed(e: BaseException) -> str:
    """", allocating X GiB" when the error says how much was asked for (torch's CPU and CUDA allocators do)."""
    import re

    text = str(e)
    if m := re.search(r"allocate (\d+) bytes", text):
        return f", allocating {int(m.group(1)) / 2**30:.2f} GiB"
    if m := re.search(r"allocate ([\d.]+ [KMGT]i?B)", text):
        return f", allocating {m.group(1)}"
    return ""


def main(argv: list[str] | None = None) -> int:
    if sys.stdout is None:
        _closed_stdout()
    if sys.stdout.encoding.replace("-", "").lower() != "utf8" and hasattr(sys.stdout, "reconfigure"):
        # output is UTF-8, as input must be, whatever the locale: a GBK or C locale would otherwise write
        # other bytes (that `seg eval` then refuses) or stop at the first character it cannot encode
        sys.stdout.reconfigure(encoding="utf-8")
    args = build_parser().parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a failed write is the error below, not Python's at exit
        return code
    except LlmlabError as e:
        print(f"llmlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmlab: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if args.verbose or not out_of_memory(e):
            raise
        print(f"llmlab: error: out of memory{what_failed(e)}: this command's sizes (batch, beams, sequence "
              "length, model) need more than the machine has; lower them", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error, and nothing to print
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush is silent
        return 128 + signal.SIGPIPE
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        print(f"llmlab: error: cannot write the output: {e.strerror}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left unwritten goes nowhere
        return 1


# a write that failed for want of room, a device or a descriptor to write to (`> /dev/full`, `>&-`)
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF})


def _closed_stdout() -> None:
    """Standard output was closed (``llmlab ... >&-``): Python leaves sys.stdout None, and descriptor 1 free
    for the next file opened, which output would then land in. It is taken by /dev/null opened read-only,
    so every write to standard output fails with EBADF and is reported as a write error."""
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 1:
        os.dup2(fd, 1)
        os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - for the whole run
