import pytest
import torch

from llmlab.models import CausalLM, ModelConfig
from llmlab.train.objectives import causal_lm_loss
from llmlab.train.optim import AdamW
from llmlab.train.precision import FP16_TINY, DynamicLossScaler, MasterWeights, underflow_fraction


def test_scaler_follows_torch_grad_scaler_on_the_same_overflow_pattern():
    ours = DynamicLossScaler(init_scale=2.0**10, growth_interval=3)
    ref = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    p_ours = torch.nn.Parameter(torch.zeros(4))
    p_ref = torch.nn.Parameter(torch.zeros(4))
    opt_ours = torch.optim.SGD([p_ours], lr=0.1)
    opt_ref = torch.optim.SGD([p_ref], lr=0.1)
    overflow_at = {2, 3, 9}
    for step in range(14):
        grad = torch.full((4,), float("inf")) if step in overflow_at else torch.arange(4.0)
        ref.scale(torch.ones(()))  # the reference creates its scale lazily, on first use
        for p, scaler in ((p_ours, ours.scale), (p_ref, ref.get_scale())):
            p.grad = grad * scaler  # what backward of a scaled loss would give
        taken = ours.step(opt_ours, [p_ours])
        ref.step(opt_ref)
        ref.update()
        assert taken == (step not in overflow_at)
        assert ours.scale == ref.get_scale(), step
        torch.testing.assert_close(p_ours, p_ref)
    assert ours.skipped == len(overflow_at)


def test_loss_scaling_rescues_gradients_that_fp16_would_flush_to_zero():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, dim=32, n_layer=2, n_head=4, max_seq_len=16)
    model = CausalLM(cfg)
    x = torch.randint(0, 64, (4, 17))
    (causal_lm_loss(model(x[:, :-1]), x[:, 1:]) * 1e-4).backward()  # a small loss, as late in training
    grads = [p.grad for p in model.parameters()]
    unscaled, scaled = underflow_fraction(grads), underflow_fraction(grads, 2.0**16)
    assert unscaled > 0.01 and scaled < unscaled / 10
    tiny = torch.tensor([FP16_TINY / 4])
    assert tiny.half().item() == 0 and (tiny * 2.0**16).half().item() > 0


def test_fp16_master_weight_training_tracks_fp32():
    if not hasattr(torch, "float16"):
        pytest.skip("no fp16")
    cfg = ModelConfig(vocab_size=32, dim=32, n_layer=1, n_head=4, max_seq_len=16)
    torch.manual_seed(0)
    ref = CausalLM(cfg)
    half = CausalLM(cfg)
    half.load_state_dict(ref.state_dict())
    mw = MasterWeights(half)
    opt_ref, opt_half = AdamW(ref.parameters(), lr=3e-3), AdamW(mw.master, lr=3e-3)
    scaler = DynamicLossScaler(init_scale=2.0**12)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        x = torch.arange(17).repeat(4, 1) % 32  # a learnable pattern
        x = (x + torch.randint(0, 32, (4, 1), generator=g)) % 32
        opt_ref.zero_grad()
        loss_ref = causal_lm_loss(ref(x[:, :-1]), x[:, 1:])
        loss_ref.backward()
        opt_ref.step()
        loss_half = causal_lm_loss(half(x[:, :-1]), x[:, 1:])
        scaler.scale_loss(loss_half).backward()
        mw.grads_to_master()
        if scaler.step(opt_half, mw.master):
            mw.master_to_model()
        for m in mw.master:
            m.grad = None
        losses.append((loss_ref.item(), loss_half.item()))
    assert losses[-1][1] < losses[0][1] - 1.0  # it learns
    assert abs(losses[-1][0] - losses[-1][1]) < 0.1  # and stays close to fp32
    assert all(m.dtype == torch.float32 for m in mw.master)
    assert all(p.dtype == torch.float16 for p in half.parameters())


def test_fp16_tiny_is_the_smallest_positive_fp16():
    """FP16_TINY is the first fp16 above 0 (the smallest subnormal); half of it rounds to 0 (ties to even)."""
    zero = torch.zeros((), dtype=torch.float16)
    assert torch.nextafter(zero, torch.ones((), dtype=torch.float16)).item() == FP16_TINY
    assert torch.tensor(FP16_TINY).half().item() == FP16_TINY
    assert torch.tensor(FP16_TINY / 2).half().item() == 0


def test_underflow_fraction_by_default_is_what_a_plain_fp16_cast_loses():
    g = torch.Generator().manual_seed(0)
    grads = [10 ** (-10 + 5 * torch.rand(200, generator=g)), torch.zeros(5)]
    lost = [(x.half() == 0) & (x != 0) for x in grads]
    expected = sum(int(m.sum()) for m in lost) / sum(int((x != 0).sum()) for x in grads)
    assert 0 < expected < 1
    assert underflow_fraction(grads) == expected
    assert underflow_fraction([torch.zeros(3)]) == 0.0


def test_scaler_defaults_are_grad_scalers():
    ours = DynamicLossScaler()
    ref = torch.amp.GradScaler("cpu")
    ref.scale(torch.ones(()))  # the reference creates its scale lazily
    assert ours.scale == ref.get_scale()
    assert (ours.growth_factor, ours.backoff_factor, ours.growth_interval) == (
        ref.get_growth_factor(), ref.get_backoff_factor(), ref.get_growth_interval())


def test_bad_scaler_settings_are_clear_errors_and_the_limits_are_allowed():
    from llmlab.core.errors import InputError

    for bad in (dict(init_scale=0.0), dict(init_scale=-1.0), dict(growth_factor=1.0), dict(backoff_factor=0.0),
                dict(backoff_factor=1.0), dict(growth_interval=0)):
        with pytest.raises(InputError, match="need init_scale > 0"):
            DynamicLossScaler(**bad)
    # just inside each limit is accepted (growth_interval=1 doubles after every clean step)
    s = DynamicLossScaler(init_scale=1e-3, growth_factor=1.5, backoff_factor=0.99, growth_interval=1)
    s.update(False)
    assert s.scale == 1e-3 * 1.5
    DynamicLossScaler(backoff_factor=0.01)


@pytest.mark.parametrize("flags, support", [
    ({"fpu", "avx2", "fma", "avx512f"}, "emulated"),  # AVX2 / AVX-512 without bf16: torch emulates it
    ({"avx2", "avx512_bf16"}, "native"), ({"avx2", "amx_bf16", "amx_tile"}, "native"), (set(), "unknown")])
def test_cpu_bf16_support_reads_the_bf16_flags(flags, support):
    from llmlab.train.precision import cpu_bf16_support

    assert cpu_bf16_support(flags) == support


@pytest.mark.parametrize("reports, support", [
    ({"_is_avx2_supported": True, "_is_avx512_bf16_supported": False, "_is_amx_tile_supported": False}, "emulated"),
    ({"_is_avx2_supported": True, "_is_avx512_bf16_supported": True, "_is_amx_tile_supported": False}, "native"),
    ({"_is_avx2_supported": False, "_is_avx512_bf16_supported": False, "_is_amx_tile_supported": False}, "unknown"),
    ({"_is_avx2_supported": True, "_is_avx512_bf16_supported": None, "_is_amx_tile_supported": False}, "unknown"),
])
def test_this_cpus_flags_come_from_torchs_probes(monkeypatch, reports, support):
    """No AVX2 (an ARM CPU, whose bf16 is another matter) or a torch without a probe: nothing to say."""
    from llmlab.train import precision

    for name, value in reports.items():
        if value is None:
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda v=value: v, raising=False)
    assert precision.cpu_bf16_support() == support


@pytest.mark.parametrize("support, precision, warnings", [
    ("emulated", "bf16", 1), ("native", "bf16", 0), ("unknown", "bf16", 0), ("emulated", "fp32", 0)])
def test_bf16_training_on_a_cpu_that_emulates_it_warns_once(tmp_path, monkeypatch, caplog, support, precision,
                                                             warnings):
    from llmlab.train import TrainConfig, Trainer
    from llmlab.train import precision as prec

    monkeypatch.setattr(prec, "cpu_bf16_support", lambda flags=None: support)
    prec.warn_if_cpu_bf16_emulated.cache_clear()
    cfg = TrainConfig(steps=1, batch_size=1, seq_len=8, warmup_steps=0, device="cpu", precision=precision)
    model = ModelConfig(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8)
    with caplog.at_level("WARNING", logger="llmlab.train.precision"):
        for run in ("a", "b"):  # two runs in one process (an experiment's): one warning
            Trainer(CausalLM(model), cfg, torch.arange(40) % 16, None, tmp_path / run)
    prec.warn_if_cpu_bf16_emulated.cache_clear()  # the next test (or run) decides afresh
    found = [r.getMessage() for r in caplog.records if r.name == "llmlab.train.precision"]
    assert len(found) == warnings and all("bf16 on this CPU is emulated" in m and "fp32" in m for m in found)
