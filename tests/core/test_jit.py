"""Kernels compiled on demand (`llmlab.core.jit`): the interpreted and compiled runs agree, the budget
decides as documented, and merely importing kernels loads no numba."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from llmlab.core import jit as jit_module
from llmlab.core.jit import interpreted, interpreting, jit

_M = np.uint64(0x9E3779B97F4A7C15)


@jit
def _mix(x: np.uint64, k: int) -> np.uint64:
    h = x * _M + np.uint64(k)  # wraps round: a warning in plain numpy scalars
    return h ^ (h >> np.uint64(29))


@jit
def _mix_sum(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Kernel calling a kernel: hashes of each value and a float sum."""
    out = np.empty(a.shape[0], np.uint64)
    total = 0.0
    for i in range(a.shape[0]):
        out[i] = _mix(a[i], i)
        total += np.float64(a[i] % np.uint64(1000)) * 0.1
    return out, total


@pytest.fixture
def budget(monkeypatch):
    """A fresh process's budget, set by the test."""
    monkeypatch.setattr(jit_module, "_spent", 0)
    return lambda n: monkeypatch.setattr(jit_module, "INTERPRET_BUDGET", n)


def test_a_kernel_gives_the_same_results_interpreted_and_compiled_without_warnings(budget):
    budget(10**6)
    a = np.random.default_rng(0).integers(0, 2**63, 50, dtype=np.int64).view(np.uint64) * np.uint64(3)
    compiled = _mix_sum(a)
    with warnings.catch_warnings(), interpreted(len(a)) as slow:
        warnings.simplefilter("error")  # numba never warns on wrap-round; the interpreted run must not either
        assert slow and interpreting()
        plain = _mix_sum(a)
    assert np.array_equal(plain[0], compiled[0]) and plain[1] == compiled[1]
    # the reference: Python integers modulo 2**64
    ref = [(x * int(_M) + i) % 2**64 for i, x in enumerate(a.tolist())]
    assert plain[0].tolist() == [h ^ (h >> 29) for h in ref]
    assert not interpreting()


def test_the_budget_decides_and_nested_calls_keep_the_outer_decision(budget):
    budget(10)
    with interpreted(6) as first, interpreted(100) as nested:  # inside: no new decision, nothing charged
        assert nested and interpreting()
    assert first and jit_module._spent == 6
    with interpreted(5) as second, interpreted(1) as nested:  # 6 + 5 > 10: compiled, and compiled from now on
        assert not nested and not interpreting()
    assert not second
    with interpreted(1) as third:
        assert not third


def test_under_numpy_1_every_kernel_runs_compiled(budget, monkeypatch):
    """numpy 1's value-based casting could turn interpreted uint64 hashes into floats: no interpreting there."""
    budget(10**6)
    monkeypatch.setattr(jit_module, "INTERPRETABLE", False)
    with interpreted(1) as slow:
        assert not slow and not interpreting()


def test_importing_and_a_small_interpreted_call_load_no_numba():
    code = ("import sys, numpy as np\n"
            "from llmlab.core.jit import interpreted, jit\n"
            "from llmlab.text import hashindex, features, lexmatch, bmes, pos, pos_perceptron, perceptron\n"
            "assert 'numba' not in sys.modules\n"
            "with interpreted(3):\n"
            "    index = hashindex.FeatureIndex(np.array([5, 9], np.uint64))\n"
            "    assert index.lookup(np.array([9, 4], np.uint64)).tolist() == [1, 2]\n"
            "    assert features.codes_of('Ａb').tolist() == [65, 98]\n"
            "assert 'numba' not in sys.modules\n"
            "assert features.codes_of('Ａb').tolist() == [65, 98]\n"
            "assert 'numba' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


_CALLEE = '''
import numpy as np
from llmlab.core.jit import jit
STEP = {step}

@jit
def bump(x):
    return x + {add}
'''
_CALLER = '''
import numpy as np
from llmlab.core.jit import jit
from callee import STEP, bump

@jit
def twice(x):
    return bump(bump(x)) * STEP

print(twice(1), sum(twice.compiled.stats.cache_hits.values()))
'''


def test_a_cached_kernel_is_compiled_again_when_a_kernel_or_constant_it_takes_from_another_file_changes(tmp_path):
    """numba's disk cache checks a kernel's own file only: a caller kept its compiled copy of a callee
    from another module after that module changed (a fix to `pos.viterbi2_kernel` went unseen by the
    tagger's cached training epoch). The stamp now also covers the kernels it calls and the constants
    it reads, wherever they are defined."""

    def run(step, add):
        (tmp_path / "callee.py").write_text(_CALLEE.format(step=step, add=add))
        out = subprocess.run([sys.executable, "caller.py"], cwd=tmp_path, capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
        value, hits = out.stdout.split()
        return int(value), int(hits) > 0

    (tmp_path / "caller.py").write_text(_CALLER)
    assert run(step=1, add=1) == (3, False)  # compiled and cached
    assert run(step=1, add=1) == (3, True)  # loaded from the cache
    assert run(step=1, add=2) == (5, False)  # the callee changed: compiled again
    assert run(step=3, add=2) == (15, False)  # a constant it imports changed
    assert run(step=3, add=2) == (15, True)
