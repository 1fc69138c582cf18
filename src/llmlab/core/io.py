"""File helpers: atomic writes (temp file + rename) and checked reads with clear errors."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import numbers
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from llmlab.core.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path` in one step.

    Readers never see a half-written file: either the old content or the new one. On error the
    temporary file is removed and `path` is untouched.

    A symbolic link is written through: its target is replaced (the temporary file beside the
    target), the link stays. An existing path that is not a regular file (a FIFO, a terminal or another
    device, a socket) cannot be renamed over without replacing it for every other user, and a path
    under /dev or /proc is a device or a stream: these are yielded as they are and written directly,
    not atomically.

    A path that names one of this process's open descriptors (``/dev/stdout``, ``/dev/stderr``,
    ``/dev/fd/N``, ``/proc/self/fd/N``: `own_descriptor`) is not opened anew, which would truncate the
    file the shell opened (``>> all.txt``: what it held was lost) and write at offset 0 past what this
    process already wrote there. A temporary file is yielded instead, and on success its bytes are
    written through a duplicate of the descriptor: its offset and append mode are the shell's, nothing
    is truncated, and nothing reaches the stream when the work fails.
    """
    fd = own_descriptor(path)
    if fd is not None:
        with tempfile.TemporaryDirectory(prefix="llmlab-out.") as folder:
            tmp_path = Path(folder) / "output"
            yield tmp_path
            with open(tmp_path, "rb") as src:
                write_descriptor(fd, src)
        return
    path = check_output(path)
    if (path.exists() and not path.is_file()) or Path(os.path.abspath(path)).parts[1:2] in (("dev",), ("proc",)):
        yield path
        return
    if path.is_symlink():
        path = check_output(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise InputError(f"cannot write {str(path)!r}: {e.strerror} ({e.filename})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp makes the file private (0600), and so do writers that replace it (safetensors' save_file):
        # once written, give it the mode `path` has, or a new file's under the umask
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~umask()
        yield tmp_path
        tmp_path.chmod(mode)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}


def own_descriptor(path: str | os.PathLike | None) -> int | None:
    """The descriptor of this process that `path` names, or None: ``/dev/stdin``, ``/dev/stdout`` and
    ``/dev/stderr`` (0, 1, 2), ``/dev/fd/N`` and ``/proc/self/fd/N`` (or this process's id for self).
    Opening such a path opens the file again from its start (with "w", truncated): an output named so is
    written through the descriptor itself (`atomic_path`). A standard stream Python found closed (``>&-``)
    is refused: its number may since belong to another file.

    >>> own_descriptor("/dev/stdout"), own_descriptor("/proc/self/fd/7"), own_descriptor("out.txt")
    (1, 7, None)
    """
    if path is None:
        return None
    parts = Path(os.path.abspath(path)).parts
    if parts[1:2] == ("dev",) and len(parts) == 3 and parts[2] in _STREAMS:
        fd = _STREAMS[parts[2]]
    elif (parts[1:3] == ("dev", "fd") and len(parts) == 4 or len(parts) == 5 and parts[1] == "proc"
          and parts[2] in ("self", "thread-self", str(os.getpid())) and parts[3] == "fd") and parts[-1].isdigit():
        fd = int(parts[-1])
    else:
        return None
    if fd < 3 and (sys.stdin, sys.stdout, sys.stderr)[fd] is None:
        raise InputError(f"cannot write {str(path)!r}: standard {list(_STREAMS)[fd][3:]} is closed")
    return fd


def write_descriptor(fd: int, src: BinaryIO) -> None:
    """The bytes of `src` written through a duplicate of descriptor `fd` (the same open file: its offset,
    shared with every other writer to it, and its append mode), after what Python holds for it in
    sys.stdout or sys.stderr is flushed, so the bytes come in the order they were written."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and _fileno(stream) == fd:
            stream.flush()
    with open(os.dup(fd), "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):  # a StringIO (pytest's capture), a closed stream
        return None


def is_stdout(*paths: str | os.PathLike | None) -> bool:
    """Whether one of `paths` (None skipped) names this process's standard output (``-o /dev/stdout``,
    or a ``/dev/fd/N`` open on the same file): a command writing its output there prints its summary to
    stderr, or the line would land inside the output."""
    if sys.stdout is None or (out := _fileno(sys.stdout)) is None:
        return False
    for path in paths:
        fd = own_descriptor(path)
        if fd is not None:
            try:
                a, b = os.fstat(fd), os.fstat(out)
            except OSError:
                continue
            if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
                return True
    return False


def check_not_stdout(path: str | os.PathLike | None, what: str = "input file") -> None:
    """InputError when the input `path` (None: standard input) is the regular file standard output writes
    to (``llmlab seg cut --input a.txt >> a.txt``, or ``< a.txt >> a.txt``): a filter reading it would read
    its own output and never reach the end, filling the disk. GNU cat refuses likewise ("input file is
    output file"). Line filters call it before reading."""
    out = _fileno(sys.stdout) if sys.stdout is not None else None
    try:
        o = os.fstat(out) if out is not None else None
        i = os.fstat(_fileno(sys.stdin)) if path is None and sys.stdin is not None else os.stat(path) if path else None
    except (OSError, TypeError):
        return  # no stream there: nothing is both
    if o is None or i is None or not (stat.S_ISREG(o.st_mode) and stat.S_ISREG(i.st_mode)):
        return
    if (o.st_dev, o.st_ino) == (i.st_dev, i.st_ino):
        shown = "standard input" if path is None else f"{what} {str(path)!r}"
        raise InputError(f"{shown} is the file standard output writes to: it would read its own output "
                         "without end; write the output elsewhere")


def within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies inside it, links and ``..`` resolved (an output that would write
    over an input, or an input a run's folder holds).

    >>> within("runs/x/model/../model", "runs/x"), within("runs/xy", "runs/x")
    (True, False)
    """
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_not_input(path: str | os.PathLike | None, inputs: Mapping[str, str | os.PathLike | None],
                    what: str = "output") -> None:
    """InputError when the output file `path` is the same file as one of `inputs` (flag or name -> path;
    None and a built-in corpus name that is no file are skipped): writing it would destroy what is read.
    The same file, not the same name: ``./a`` and ``a``, a symbolic or hard link to it, are caught.
    Only regular files count: ``/dev/stdin`` and ``/dev/stdout`` may both be one terminal. Commands call
    it before the work.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("mine")
    >>> check_not_input(d / "." / "a.txt", {"--corpus": d / "a.txt"}, "-o")
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: -o '...a.txt' is the same file as --corpus '...a.txt': writing it would ...
    """
    if path is None or not os.path.isfile(path):
        return
    for name, source in inputs.items():
        if source is not None and os.path.isfile(source) and os.path.samefile(path, source):
            raise InputError(f"{what} {str(path)!r} is the same file as {name} {str(source)!r}: writing it "
                             "would destroy the input; write elsewhere")


def check_output(path: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """`path` as a Path, or InputError when no file (`folder`: no folder) can be written there: it
    is a directory (a file), or a folder above it is a file. Commands call it before long work, so a
    typo costs nothing.

    >>> check_output("/")
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: output '/' is a directory, expected a file name
    """
    p = Path(path)
    if p.is_dir() and not folder:
        raise InputError(f"{what} {str(p)!r} is a directory, expected a file name")
    if p.exists() and not p.is_dir() and folder:
        raise InputError(f"{what} {str(p)!r} is a file, expected a folder")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what} {str(p)!r}: {str(parent)!r} is a file, not a folder")
            break
    return p


def check_folder(path: str | os.PathLike, owned: Iterable[str] = (), what: str = "output folder") -> Path:
    """`path` as a Path, or InputError when a folder written there would replace something that is not
    its own: the folder may be new, empty, or hold only the entries named in `owned` (what an earlier
    save of the same kind wrote). Commands call it before long work; `atomic_folder` calls it again.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "notes.txt").write_text("mine")
    >>> check_folder(d, owned={"model.safetensors"})
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: output folder '...' holds files that are not its own (notes.txt): ...
    """
    p = check_output(path, what, folder=True)
    if p.is_dir():
        foreign = sorted(e.name for e in p.iterdir() if e.name not in set(owned))
        if foreign:
            more = f", and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise InputError(f"{what} {str(p)!r} holds files that are not its own ({', '.join(foreign[:5])}{more}): "
                             "give a new or empty folder")
    return p


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, owned: Iterable[str] = (), what: str = "output folder") -> Iterator[Path]:
    """Yield a new empty folder beside `path`; on success it takes `path`'s place as a whole (an earlier
    folder there, which `check_folder` must accept, is swapped out and removed). Readers see the old
    folder or the new one, never a mix of both; on error the new one is removed and `path` is untouched.
    A symbolic link is written through, as in `atomic_path`: its target is replaced, the link stays.
    """
    path = check_folder(os.path.realpath(check_output(path, what, folder=True)), owned, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~umask())  # not mkdtemp's private 0700: the mode a plain mkdir gives
    except OSError as e:
        raise InputError(f"cannot write {what} {str(path)!r}: {e.strerror}") from None
    try:
        yield tmp
        check_folder(path, owned, what)  # nothing of the user's appeared there meanwhile
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@functools.lru_cache(maxsize=1)
def umask() -> int:
    """The process umask (read once: reading it means setting it for a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a pipe or a terminal (`atomic_path`) cannot sync
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, inf, -inf, numpy's too, at any depth of dicts, lists and
    tuples) made None, and numpy scalars made Python numbers: what strict JSON can hold. A figure that is
    undefined (the explained variance of a step whose rewards are all equal, the mean of nothing) is then
    written as null, which JavaScript's JSON.parse, jq or serde read, where a bare NaN makes them refuse
    the whole file.

    >>> strict_json({"a": float("nan"), "b": [1.5, float("-inf"), (2, True)], "c": None})
    {'a': None, 'b': [1.5, None, [2, True]], 'c': None}
    """
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, numbers.Integral):  # numpy's integers
        return int(obj)
    if isinstance(obj, numbers.Real):  # float, numpy's floats
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj  # anything else: json says what it cannot write


def json_text(obj: Any, **kwargs) -> str:
    """`obj` as strict JSON text (`strict_json`: a non-finite float becomes null); `json.dumps` with
    `allow_nan=False`, so nothing non-finite slips through. Every JSON file or line llmlab writes goes
    through it; readers still accept the bare NaN that files of older versions hold."""
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, ensure_ascii=False, indent=2) + "\n")


def write_safetensors(path: str | os.PathLike, arrays: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """numpy `arrays` as a safetensors file at `path`, written atomically (`atomic_path`, which also gives
    the file a plain write's mode where safetensors would leave it private)."""
    import numpy as np
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)


def check_readable(path: str | os.PathLike, what: str = "file") -> Path:
    """Return `path` as a Path, or raise InputError if it is missing, a directory or unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {str(p)!r} does not exist")
    if p.is_dir():
        raise InputError(f"{what} {str(p)!r} is a directory, expected a file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} {str(p)!r} is not readable")
    return p


def existing_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Return `path` as a Path, or raise InputError if it is missing or a file (a model, adapter, prompt or
    index folder to read)."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{what} {str(p)!r} " + ("is a file, expected a folder" if p.exists() else "does not exist"))
    return p


def read_text(path: str | os.PathLike | None, what: str = "file") -> str:
    """The UTF-8 text of a file (None: all of standard input) as it is (line endings untranslated), less
    a leading byte-order mark (an encoding signature that Windows editors write, not text)."""
    if path is None:
        data, what = sys.stdin.buffer.read(), "standard input"
    else:
        p = check_readable(path, what)
        data, what = p.read_bytes(), f"{what} {str(p)!r}"
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 (byte {e.start}: {e.reason})") from None


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON document in a file (`read_text`), or InputError naming the file if it does not parse."""
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise InputError(f"{what} {str(path)!r} is not valid JSON: {e.msg} (line {e.lineno})") from None


def read_safetensors(path: str | os.PathLike, what: str = "file", names: tuple[str, ...] = ()) -> dict:
    """The numpy arrays of a safetensors file, or InputError naming the file when it is missing,
    truncated or not safetensors, lacks one of `names`, or holds a NaN or infinite float (no saved
    weight, count or score is one: such a file was damaged after it was written, and would cut, tag or
    rank by garbage without a word)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    p = check_readable(path, what)
    try:
        arrays = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{what} {str(p)!r} cannot be read (truncated, or not safetensors): {e}") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"{what} {str(p)!r} lacks {missing}")
    import numpy as np

    bad = sorted(k for k, a in arrays.items() if a.dtype.kind in "fc" and not np.isfinite(a).all())
    if bad:
        raise InputError(f"{what} {str(p)!r} is damaged: {bad} hold NaN or infinite values")
    return arrays


def split_lines(text: str) -> list[str]:
    """The lines of `text` without their endings: cut at "\\n" only, a "\\r" just before it dropped.

    Unlike `str.splitlines`, a form feed, U+2028 or a lone "\\r" stays inside its line, so a line
    in is a line out and the text between the breaks comes back whole.

    >>> split_lines("a\\r\\nb\\u2028c\\x0cd\\n\\ne")
    ['a', 'b\\u2028c\\x0cd', '', 'e']
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: str | os.PathLike, what: str = "file") -> list[str]:
    """Lines of a UTF-8 text file without their line endings (`split_lines`)."""
    return split_lines(read_text(path, what))


BATCH_LINES = 2000  # lines a batch of `line_batches` holds at most


def line_batches(path: str | os.PathLike | None, what: str = "input file",
                 size: int = BATCH_LINES) -> Iterator[list[str]]:
    """The lines of the UTF-8 file at `path` (None: standard input) as `split_lines` cuts them, in
    batches of up to `size`, read as they come: a stream of any length is handled a batch at a time
    (from a terminal, a line at a time: `_batches`)."""
    if path is None:
        yield from _batches(sys.stdin.buffer, "standard input", size)
        return
    with open(check_readable(path, what), "rb") as f:
        yield from _batches(f, f"{what} {str(path)!r}", size)


class FileLines:
    """The lines of the UTF-8 file at `path`, read again from the file each time they are iterated (for
    work that reads a text more than once without holding it in memory), as `line_batches` reads them.
    `path` may also be a binary file open for reading (read from its start each time, named `what` in
    errors): `rereadable_lines` gives standard input and pipes so."""

    def __init__(self, path: str | os.PathLike | BinaryIO, what: str = "input file"):
        self.file = None if isinstance(path, (str, os.PathLike)) else path
        self.path, self.what = (check_readable(path, what) if self.file is None else None), what

    def __iter__(self) -> Iterator[str]:
        if self.file is not None:
            self.file.seek(0)
        for lines in (line_batches(self.path, self.what) if self.file is None
                      else _batches(self.file, self.what, BATCH_LINES)):
            yield from lines


@contextlib.contextmanager
def rereadable_lines(path: str | os.PathLike | None, what: str = "input file") -> Iterator[FileLines]:
    """The lines of `path` (None: standard input) as a `FileLines`, for work that reads them more than
    once. A regular file is read again from disk on each pass; anything that can be read only once
    (standard input, a pipe, a FIFO, ``/dev/stdin``, a shell's ``<(...)``) is first copied, a block at a
    time, to an unnamed temporary file (removed when the block ends), so memory does not grow with the
    input and the second pass does not find the stream empty. Errors name the input and the line."""
    if path is not None and check_readable(path, what).is_file():
        yield FileLines(path, what)
        return
    with tempfile.TemporaryFile() as f:
        if path is None:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        else:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
        yield FileLines(f, "standard input" if path is None else f"{what} {str(path)!r}")


def _batches(stream: BinaryIO, what: str, size: int) -> Iterator[list[str]]:
    """The lines of `stream` in batches of up to `size` (`line_batches`). From a terminal each line is a
    batch of its own, so a person typing gets each answer at once, not after `size` lines or the end.
    A pipe is still read in full batches (a batch is scored in one pass, much faster than line by line):
    a program that writes a line and waits for its answer should send a line per run or use a terminal."""
    if stream.isatty():
        size = 1
    batch: list[str] = []
    for i, raw in enumerate(stream, 1):  # a binary stream's lines end at b"\n" only
        try:
            line = raw.decode("utf-8-sig" if i == 1 else "utf-8")  # as `read_text`: no byte-order mark
        except UnicodeDecodeError as e:
            raise InputError(f"{what} line {i} is not UTF-8 (byte {e.start}: {e.reason})") from None
        batch.extend(split_lines(line))  # one line: `raw` is not empty
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (weights can be large); "" when there is no
    such file (a run's fingerprint then records the absence).
    """
    path = Path(path)
    if not path.is_file():
        return ""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike, what: str = "file") -> list[Any]:
    """Records of a JSONL file; blank lines are skipped, a malformed line is an error naming it."""
    return [record for _, record in jsonl_lines(path, what)]


def jsonl_lines(path: str | os.PathLike, what: str = "file") -> Iterator[tuple[int, Any]]:
    """(line number, record) for each non-blank line of a JSONL file, for errors that name the line; a
    malformed line is an error naming it."""
    for i, line in enumerate(read_lines(path, what), 1):
        if line.strip():
            yield i, json_record(line, f"{what} {str(path)!r} line {i}")


def json_record(line: str, where: str) -> Any:
    r"""One JSON value from a line of text, or InputError naming `where` (a file and its line).

    A string holding a lone surrogate (an escape such as ``"\ud83d"`` without its pair: text cut
    inside an emoji) is refused too, in a key or a value at any depth: it is no Unicode text, so no
    UTF-8 file could hold it, and the work done on it would fail only when written.

    >>> json_record('{"text": "x \\ud83d"}', "f.jsonl line 3")
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: f.jsonl line 3 holds a lone surrogate '\ud83d' (half a character): not text
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where} is not valid JSON: {e.msg}") from None
    if ("\\ud" in line or "\\uD" in line) and (bad := _lone_surrogate(value)) is not None:
        raise InputError(f"{where} holds a lone surrogate {bad!r} (half a character): not text")
    return value


def _lone_surrogate(value: Any) -> str | None:
    """A lone surrogate in the strings of a JSON value (dict keys included, at any depth), or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                return v[e.start]
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Write records as JSONL atomically."""
    text = "".join(json_text(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(path, text)


class JsonlAppender:
    """Append one JSON record per line and flush, for metrics logged during a run (the folder is
    made on the first record, so making an appender writes nothing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json_text(record, ensure_ascii=False) + "\n")
