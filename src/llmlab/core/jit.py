"""Compiled loops for the hot paths that numpy cannot vectorise (Viterbi, hash probing, lexicon scans).

`jit` is numba's ``njit`` with the project's settings: machine code cached on disk beside the source
(the first call in a fresh checkout compiles, later processes load it; a change to the kernel's file,
or to a kernel or constant it takes from another file, compiles it again), and the GIL released so
threads can run kernels side by side. Kernels take and return numpy arrays only; their callers keep
the Python-facing API and its error checks. Arithmetic on hashes stays in uint64 throughout: numba,
like numpy, turns uint64 mixed with int64 into float64, so constants are typed explicitly.

Numba is imported when a kernel first runs compiled, not when one is defined: importing numba and
making its first call cost a fresh process over a second of CPU (numba loads scipy.linalg and its
own typing registries even when every kernel comes from the disk cache). That is more than cutting
or tagging a line costs, so a caller that knows its work is small wraps it in `interpreted(work)`:
the kernels called inside then run their Python source as is (numba's own ``NUMBA_DISABLE_JIT``
mode, per call), with the same results, until the process has spent `INTERPRET_BUDGET` items of
work that way; after that, or for a larger job, they run compiled. The work a process interprets
before it pays for numba is thus bounded (ski rental: at worst about twice the cheaper choice).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Items a process may run through interpreted kernels before it compiles. Interpreted, the perceptron
# segmenter takes about 0.2 ms a character (an item) and the tagger about 0.45 ms a word (two items);
# numba's import and first compiled calls take about 1.1 s. So the budget costs at most about as much
# CPU as compiling would have.
INTERPRET_BUDGET = 5000

_mode: contextvars.ContextVar[str] = contextvars.ContextVar("llmlab_jit_mode", default="compiled")
_decided: contextvars.ContextVar[bool] = contextvars.ContextVar("llmlab_jit_decided", default=False)
# Interpreted kernels mix numpy uint64 hashes with Python ints; numpy 2 keeps those uint64 (NEP 50), while
# numpy 1's value-based casting can turn them into float64 and the hashes into other numbers. Under
# numpy 1 every kernel runs compiled.
INTERPRETABLE = int(np.__version__.split(".")[0]) >= 2
_spent = 0  # items interpreted so far in this process
_lock = threading.Lock()


@contextmanager
def interpreted(work: int) -> Iterator[bool]:
    """Run the kernels called inside as plain Python if `work` more items fit in what is left of
    `INTERPRET_BUDGET`, compiled otherwise (and from then on: numba is loaded by then). Yields whether
    they are interpreted. A nested call keeps the outermost decision and charges nothing.
    """
    global _spent
    if _decided.get():
        yield _mode.get() != "compiled"
        return
    with _lock:
        fits = INTERPRETABLE and _spent + work <= INTERPRET_BUDGET
        _spent = _spent + work if fits else INTERPRET_BUDGET
    decided, mode = _decided.set(True), _mode.set("interpreted" if fits else "compiled")
    try:
        yield fits
    finally:
        _mode.reset(mode)
        _decided.reset(decided)


def interpreting() -> bool:
    """Whether kernels called now run interpreted (inside `interpreted`, with the work fitting)."""
    return _mode.get() != "compiled"


class Kernel:
    """A function compiled with numba on its first compiled call (`compiled`); called under
    `interpreted`, it runs its Python source instead (`py_func`) with numpy's warnings off, as
    compiled code has none (hashes wrap round on purpose). Compiled kernels may call one another:
    numba sees a kernel as the dispatcher it compiles to (`_register_with_numba`)."""

    def __init__(self, fn: Callable, options: dict[str, Any]):
        functools.update_wrapper(self, fn)
        self.py_func = fn
        self._options = options
        self._compiled: Any = None

    @property
    def compiled(self) -> Any:
        """The numba dispatcher (imports numba on first use)."""
        if self._compiled is None:
            from numba import njit

            _register_with_numba()
            with _lock:
                if self._compiled is None:
                    self._compiled = njit(**self._options)(self.py_func)
        return self._compiled

    def __call__(self, *args: Any) -> Any:
        mode = _mode.get()
        if mode == "compiled":
            return self.compiled(*args)
        if mode == "inside":  # called from an interpreted kernel: the error state is set already
            return self.py_func(*args)
        token = _mode.set("inside")
        try:
            with np.errstate(all="ignore"):  # hashes wrap round on purpose; compiled code never warns
                return self.py_func(*args)
        finally:
            _mode.reset(token)

    def __repr__(self) -> str:
        return f"<llmlab kernel {self.__module__}.{self.__qualname__}>"


_KERNELS: dict[Callable, Kernel] = {}  # py_func -> its Kernel, for the cache stamps


def _frozen_stamp(fn: Callable, seen: set | None = None) -> list[tuple[str, str]]:
    """What numba freezes into `fn`'s machine code from outside `fn`'s own file, which its disk cache
    does not check: the source files of the kernels it calls (and theirs, recursively), and the values
    of the module-level constants each of them reads (a constant imported from another file sits in
    the importer's globals)."""
    seen = set() if seen is None else seen
    seen.add(fn)
    out = []
    for name in fn.__code__.co_names:
        value = fn.__globals__.get(name)
        if isinstance(value, Kernel) and value.py_func not in seen:
            source = Path(inspect.getsourcefile(value.py_func) or "")
            digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""
            out += [(f"{value.__module__}.{name}", digest), *_frozen_stamp(value.py_func, seen)]
        elif isinstance(value, np.ndarray):
            out.append((name, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest() + str(value.dtype)))
        elif isinstance(value, (bool, int, float, complex, str, bytes, tuple, np.generic)):
            out.append((name, repr(value)))
    return out


def _stamped(base: type) -> type:
    """numba's cache locator `base`, for llmlab's kernels only, with `_frozen_stamp` added to the
    source stamp that decides whether a cached copy is fresh."""

    class Stamped(base):
        def __init__(self, py_func: Callable, py_file: str):
            super().__init__(py_func, py_file)
            self._frozen = tuple(sorted(_frozen_stamp(py_func)))

        def get_source_stamp(self) -> Any:
            return super().get_source_stamp(), self._frozen

        @classmethod
        def from_function(cls, py_func: Callable, py_file: str) -> Any:
            return super().from_function(py_func, py_file) if py_func in _KERNELS else None

    Stamped.__name__ = Stamped.__qualname__ = f"Stamped{base.__name__}"
    return Stamped


@functools.lru_cache(maxsize=1)
def _register_with_numba() -> None:
    """Teach numba that a `Kernel` used inside compiled code is its compiled dispatcher, and that a
    kernel's cached copy is stale when a kernel or constant it takes from another file has changed
    (ahead of numba's own locators, in their order; other functions fall through to those)."""
    from numba import types
    from numba.core import caching
    from numba.extending import typeof_impl

    @typeof_impl.register(Kernel)
    def _typeof_kernel(val: Kernel, c: Any) -> Any:
        return types.Dispatcher(val.compiled)

    # numba's names, with the underscore they had before 0.61
    impl, *bases = (getattr(caching, name, None) or getattr(caching, "_" + name, None) for name in (
        "CacheImpl", "UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator"))
    if impl is not None and all(bases):
        impl._locator_classes[:0] = [_stamped(base) for base in bases]


def jit(fn: Callable) -> Kernel:
    """``njit(cache=True, nogil=True)``, compiled on first use (see the module docstring)."""
    return _KERNELS.setdefault(fn, Kernel(fn, {"cache": True, "nogil": True}))


def jit_reassoc(fn: Callable) -> Kernel:
    """`jit` that may also reassociate float arithmetic and fuse multiply-adds, so that a float32
    reduction (a dot product over d) vectorises; the sum's last bits then depend on the compiler's
    order (and differ from the interpreted result). No other fast-math flag: nothing assumes values
    are finite."""
    return _KERNELS.setdefault(fn, Kernel(fn, {"cache": True, "nogil": True, "fastmath": {"reassoc", "contract"}}))


__all__ = ["INTERPRET_BUDGET", "Kernel", "interpreted", "interpreting", "jit", "jit_reassoc"]
