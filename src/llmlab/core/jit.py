"""Compiled loops for the hot paths that numpy cannot vectorise (Viterbi, hash probing, lexicon scans).

`jit` is numba's ``njit`` with the project's settings: machine code cached on disk beside the source
(the first call in a fresh checkout compiles, later processes load it), and the GIL released so
threads can run kernels side by side. Kernels take and return numpy arrays only; their callers keep
the Python-facing API and its error checks. Arithmetic on hashes stays in uint64 throughout: numba,
like numpy, turns uint64 mixed with int64 into float64, so constants are typed explicitly.
"""

from __future__ import annotations

from numba import njit

jit = njit(cache=True, nogil=True)
# `jit` that may also reassociate float arithmetic and fuse multiply-adds, so that a float32 reduction
# (a dot product over d) vectorises; the sum's last bits then depend on the compiler's order. No other
# fast-math flag: nothing assumes values are finite.
jit_reassoc = njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})

__all__ = ["jit", "jit_reassoc"]
