import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.nn.gradflow import GradFlowConfig, Stack, gradient_flow_table, gradient_norms_at_init


def test_plain_sigmoid_gradients_vanish_with_depth():
    first = [gradient_norms_at_init(GradFlowConfig(depth=d, width=32))[0] for d in (2, 6, 10)]
    assert first[0] > 10 * first[1] > 100 * first[2]


def test_plain_sigmoid_gradients_shrink_towards_the_input():
    norms = gradient_norms_at_init(GradFlowConfig(depth=8, width=32))
    assert all(a < b for a, b in zip(norms, norms[1:]))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_residual_and_norm_keep_the_first_layer_gradient(activation):
    plain = gradient_norms_at_init(GradFlowConfig(depth=12, width=32, activation=activation))
    resnorm = gradient_norms_at_init(GradFlowConfig(depth=12, width=32, activation=activation, residual=True,
                                                    norm=True))
    assert resnorm[0] > 1000 * plain[0]
    assert 0.2 < resnorm[0] / resnorm[-1] < 5  # no vanishing and no explosion across depth


def test_one_layer_gradient_matches_the_chain_rule():
    cfg = GradFlowConfig(depth=1, width=4, batch=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Stack(cfg)  # the same weights gradient_norms_at_init builds
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = torch.randn(3, 4, generator=gen), torch.randn(3, 1, generator=gen)
    W, b, v, c = model.linears[0].weight, model.linears[0].bias, model.head.weight, model.head.bias
    with torch.no_grad():
        s = torch.sigmoid(x @ W.T + b)  # (3, 4)
        dout = 2 * (s @ v.T + c - y) / 3  # d mse / d output, (3, 1)
        dz = (dout @ v) * s * (1 - s)  # (3, 4)
        expected = (dz.T @ x).norm()
    assert gradient_norms_at_init(cfg)[0] == pytest.approx(float(expected), rel=1e-5)


def test_table_is_deterministic_and_complete():
    rows = gradient_flow_table(("relu",), depth=3, width=8)
    assert [(r["residual"], r["norm"]) for r in rows] == [(False, False), (False, True), (True, False), (True, True)]
    assert rows == gradient_flow_table(("relu",), depth=3, width=8)


@pytest.mark.parametrize("kwargs", [{"depth": 0}, {"activation": "softsign"}, {"batch": -1}])
def test_bad_configs_are_rejected(kwargs):
    with pytest.raises(InputError):
        GradFlowConfig(**kwargs)
