"""Each written-out optimizer against torch.optim, step for step, on a small language model."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.train import optim as ours
from llmlab.train.objectives import causal_lm_loss

CASES = [
    ("SGD", dict(lr=0.05), dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01), dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3), dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
     dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=1e-3), dict(lr=1e-3)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.9, weight_decay=0.01),
     dict(lr=1e-3, centered=True, momentum=0.9, weight_decay=0.01)),
    ("Adam", dict(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01), dict(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)),
    ("AdamW", dict(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1), dict(lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)),
]


@pytest.mark.parametrize("name,our_kw,torch_kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch_optim_for_100_steps(name, our_kw, torch_kw):
    cfg = ModelConfig(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=1, max_seq_len=8)
    torch.manual_seed(0)
    a = CausalLM(cfg)
    b = CausalLM(cfg)
    b.load_state_dict(a.state_dict())
    opt_a = getattr(ours, name)(a.parameters(), **our_kw)
    opt_b = getattr(torch.optim, name)(b.parameters(), foreach=False, **torch_kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        x = torch.randint(0, 16, (4, 8), generator=g)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            causal_lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
            opt.step()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-6, msg=n)


@pytest.mark.parametrize("name,our_kw,torch_kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_group_added_later_steps_as_in_torch(name, our_kw, torch_kw):
    """add_param_group after construction (Adagrad made its state only for the first groups: KeyError)."""
    got = []
    for opt_class, kw in ((getattr(ours, name), our_kw), (getattr(torch.optim, name), torch_kw)):
        a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
        opt = opt_class([a], **kw)
        opt.add_param_group({"params": [b], "lr": kw["lr"] / 2})
        for step in range(3):
            a.grad, b.grad = torch.full((3,), step + 1.0), torch.full((2,), step - 1.0)
            opt.step()
        got.append((a.detach().clone(), b.detach().clone()))
    torch.testing.assert_close(got[0], got[1])


def test_state_memory_per_optimizer():
    p = [torch.nn.Parameter(torch.randn(100))]
    p[0].grad = torch.randn(100)
    expected = {"SGD": 0, "Adagrad": 1, "RMSprop": 1, "Adam": 2, "AdamW": 2}
    for name, copies in expected.items():
        opt = getattr(ours, name)(p, lr=0.1)
        opt.step()
        assert ours.state_bytes(opt) == copies * 400, name
    opt = ours.SGD(p, lr=0.1, momentum=0.9)
    opt.step()
    assert ours.state_bytes(opt) == 400


def test_bad_hyperparameters_are_clear_errors():
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(InputError, match="lr must be > 0"):
        ours.SGD(p, lr=0)
    with pytest.raises(InputError, match="nesterov needs momentum"):
        ours.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(InputError, match="betas must be in"):
        ours.Adam(p, betas=(0.9, 1.0))


def test_trainer_accepts_exactly_the_written_optimizers():
    from llmlab.train.config import OPTIMIZER_NAMES

    assert set(OPTIMIZER_NAMES) == set(ours.OPTIMIZERS)


def _run_on_random_tensors(opt_class, kw, steps=5):
    """Params and gradients in float64 (so tolerances can be tight), gradients spread over 1e-12..1 so
    that eps, which only matters next to tiny gradients, shows in the result. Returns (params, states)."""
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(64, generator=g, dtype=torch.float64))
    opt = opt_class([p], **kw)
    for _ in range(steps):
        sign = torch.randint(0, 2, (64,), generator=g).double() * 2 - 1
        p.grad = sign * 10 ** (-12 * torch.rand(64, generator=g, dtype=torch.float64))
        opt.step()
    return p.detach().clone(), opt.state[p]


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_default_hyperparameters_step_as_torch_defaults(name):
    """ours.X(params) with no settings is torch.optim.X(params): same lr, eps and weight decay defaults,
    and the same step count in the state (named as in torch)."""
    ours_p, ours_state = _run_on_random_tensors(getattr(ours, name), {})
    ref_p, ref_state = _run_on_random_tensors(getattr(torch.optim, name), dict(foreach=False))
    torch.testing.assert_close(ours_p, ref_p, atol=0, rtol=1e-12)
    if "step" in ref_state:
        assert int(ours_state["step"]) == int(ref_state["step"]) == 5


@pytest.mark.parametrize("betas", [(0.0, 0.99), (0.9, 0.0)])
def test_adam_accepts_a_zero_beta_as_torch_does(betas):
    """beta = 0 is allowed (no averaging of that moment): beta1 = 0 is RMSProp with bias correction."""
    for name in ("Adam", "AdamW"):
        ours_p, _ = _run_on_random_tensors(getattr(ours, name), dict(lr=0.01, betas=betas))
        ref_p, _ = _run_on_random_tensors(getattr(torch.optim, name), dict(lr=0.01, betas=betas, foreach=False))
        torch.testing.assert_close(ours_p, ref_p, atol=0, rtol=1e-12)
