"""The classic optimizers written out (topics 28, 52), each a few lines of update rule.

Each class is a `torch.optim.Optimizer` whose per-parameter state is named as in `torch.optim`
(``momentum_buffer``, ``sum``, ``square_avg``, ``exp_avg`` ...) and whose update follows the same
arithmetic, so the tests can hold them to `torch.optim` step for step. Updates run under no_grad on
each parameter in turn: slower than torch's fused kernels, but every line is the textbook formula.

State memory per parameter (fp32 copies of the parameter): SGD 0, momentum 1, Adagrad 1,
RMSProp 1 (2 centred, +1 with momentum), Adam/AdamW 2. `state_bytes` measures it.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from llmlab.core.errors import InputError


def _check(lr: float, **nonneg: float) -> None:
    if lr <= 0:
        raise InputError(f"lr must be > 0, got {lr}")
    for name, v in nonneg.items():
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {v}")


class _Written(Optimizer):
    """Runs `update(p, grad, state, group)` for every parameter that has a gradient."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError  # every subclass defines its rule; the base is never used alone


class SGD(_Written):
    """p -= lr * g, with optional L2 weight decay, heavy-ball momentum, dampening and Nesterov."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        _check(lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InputError("nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def update(self, p, grad, state, group):
        g = grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else grad
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.clone()  # first step: no dampening
            else:
                buf.mul_(mu).add_(g, alpha=1 - group["dampening"])
            g = g.add(buf, alpha=mu) if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])


class Adagrad(_Written):
    """Per-coordinate rate lr / sqrt(sum of squared gradients): rare features get big steps."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        _check(lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = 0
                self.state[p]["sum"] = torch.full_like(p, initial_accumulator_value)

    def update(self, p, grad, state, group):
        if not state:  # a parameter of a group added after construction
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        g = grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else grad
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"].addcmul_(g, g, value=1)
        p.addcdiv_(g, state["sum"].sqrt().add_(group["eps"]), value=-clr)


class RMSprop(_Written):
    """Divide by a running RMS of gradients; `centered` subtracts the running mean (a variance)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        _check(lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            if group["momentum"]:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        state["step"] += 1
        a = group["alpha"]
        g = grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else grad
        sq = state["square_avg"].mul_(a).addcmul_(g, g, value=1 - a)  # E[g^2]
        if group["centered"]:
            ga = state["grad_avg"].lerp_(g, 1 - a)  # E[g]
            avg = sq.addcmul(ga, ga, value=-1).sqrt_().add_(group["eps"])  # sqrt(E[g^2] - E[g]^2)
        else:
            avg = sq.sqrt().add_(group["eps"])
        if group["momentum"]:
            buf = state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(g, avg)
            p.add_(buf, alpha=-group["lr"])
        else:
            p.addcdiv_(g, avg, value=-group["lr"])


class Adam(_Written):
    """Momentum (first moment) over RMS (second moment), both bias-corrected.

    `decoupled=False` (Adam) adds weight decay to the gradient (L2); `decoupled=True` (AdamW) shrinks
    the weights directly, p *= 1 - lr * wd, so decay is not rescaled by the adaptive denominator.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        _check(lr, eps=eps, weight_decay=weight_decay)
        if not all(0 <= b < 1 for b in betas):
            raise InputError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled=decoupled))

    def update(self, p, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t, (b1, b2), lr, wd = state["step"], group["betas"], group["lr"], group["weight_decay"]
        if group["decoupled"]:
            p.mul_(1 - lr * wd)
            g = grad
        else:
            g = grad.add(p, alpha=wd) if wd else grad
        m = state["exp_avg"].lerp_(g, 1 - b1)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        step_size = lr / (1 - b1**t)
        denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(group["eps"])
        p.addcdiv_(m, denom, value=-step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=True)


OPTIMIZERS = {"sgd": SGD, "momentum": SGD, "nesterov": SGD, "adagrad": Adagrad, "rmsprop": RMSprop,
              "adam": Adam, "adamw": AdamW}


def state_bytes(opt: Optimizer) -> int:
    """Bytes held in optimizer state tensors (each storage counted once)."""
    seen, total = set(), 0
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v) and v.untyped_storage().data_ptr() not in seen:
                seen.add(v.untyped_storage().data_ptr())
                total += v.untyped_storage().nbytes()
    return total
