"""A KV cache larger than the memory available is refused before any of it is allocated, and `llmlab generate`
says so in one line (exit status 1) instead of growing until the process is killed. The available memory is
monkeypatched small: no test allocates more than a tiny cache."""

import re

import pytest
import torch

import llmlab.nn.attention as attention
from llmlab.cli import main
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.nn.attention import KVCache, available_memory
from llmlab.tokenizers import CharTokenizer

CFG = ModelConfig(vocab_size=20, dim=16, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=12)


def test_the_size_checked_is_the_size_allocated(monkeypatch):
    """Exactly the bytes of the cache's tensors fit; one byte fewer is refused, for float32 and bfloat16."""
    for dtype in (torch.float32, torch.bfloat16):
        free = available_memory()
        cache = KVCache(3, 2, 2, 5, 4, dtype=dtype)
        nbytes = sum(t.nbytes for t in cache.k + cache.v)
        assert nbytes == 2 * 3 * 2 * 2 * 5 * 4 * dtype.itemsize
        monkeypatch.setattr(attention, "available_memory", lambda device=None, n=nbytes: n)
        KVCache(3, 2, 2, 5, 4, dtype=dtype)
        monkeypatch.setattr(attention, "available_memory", lambda device=None, n=nbytes: n - 1)
        with pytest.raises(MemoryError, match=f"would allocate {nbytes} bytes; {nbytes - 1} are available"):
            KVCache(3, 2, 2, 5, 4, dtype=dtype)
        monkeypatch.undo()
        assert free is None or free > 0


def test_a_cache_too_large_is_refused_before_any_allocation(monkeypatch):
    model = CausalLM(CFG).eval()
    per_row = 2 * CFG.n_layer * CFG.n_kv_head * CFG.max_seq_len * CFG.head_dim * 4  # float32
    monkeypatch.setattr(attention, "available_memory", lambda device=None: 10 * per_row)
    assert model.new_cache(10).k[0].shape[0] == 10  # ten rows fit

    def no_allocation(*a, **kw):
        raise AssertionError("allocated before the size check")

    monkeypatch.setattr(torch, "zeros", no_allocation)
    with pytest.raises(MemoryError, match=f"x 11 rows x .* would allocate {11 * per_row} bytes"):
        model.new_cache(11)


def test_generate_with_too_many_beams_ends_in_one_line_with_exit_status_1(tmp_path, monkeypatch, capsys):
    tok = CharTokenizer.train(["中国经济发展很快"])
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=12)
    d = save_model(CausalLM(cfg).eval(), tmp_path / "m", tok)
    beams = 4
    need = 2 * cfg.n_layer * beams * cfg.n_kv_head * cfg.max_seq_len * cfg.head_dim * 4  # float32, the context
    run = ["generate", "--model", str(d), "--prompt", "中国", "--num-beams", str(beams), "--max-new-tokens", "3"]
    monkeypatch.setattr(attention, "available_memory", lambda device=None: need - 1)
    assert main(run) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"llmlab: error: out of memory, allocating [\d.]+ GiB: this command's sizes \(batch, beams, "
                        r"sequence length, model\) need more than the machine has; lower them\n", err), err
    monkeypatch.setattr(attention, "available_memory", lambda device=None: need)
    assert main(run) == 0 and capsys.readouterr().out.startswith("中国")
