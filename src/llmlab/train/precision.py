"""Mixed precision (topics 29, 33): dynamic loss scaling and fp32 master weights, written out.

fp16 has 5 exponent bits: values below 2^-24 round to zero, so small gradients vanish. Multiplying
the loss by a scale S shifts every gradient up by S before it is stored in fp16; the optimizer then
divides by S in fp32. S is chosen dynamically: halve it (and skip the step) when any gradient
overflows to inf/NaN, double it after `growth_interval` clean steps. This is the algorithm of
`torch.amp.GradScaler`, which the tests use as the reference.

Master weights: the model runs forward and backward in fp16, but an fp32 copy of every weight is
what the optimizer updates; tiny updates (lr * grad) that fp16 could not represent accumulate there.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

import torch

from llmlab.core.errors import InputError

FP16_TINY = 2.0**-24  # smallest positive fp16 (subnormal); anything below rounds to 0
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bf16; without them torch emulates it

log = logging.getLogger(__name__)


def cpu_bf16_support(flags: Iterable[str] | None = None) -> str:
    """"native" when the x86 CPU flags include a bf16 instruction set, "emulated" when they include neither,
    "unknown" when there are none to read (a torch without the probes, or a CPU without AVX2: not x86).
    `flags` default: this machine's, as torch's CPU probes report them (`_cpu_flags`).

    >>> cpu_bf16_support({"avx2", "avx512_bf16"}), cpu_bf16_support({"avx2", "fma"}), cpu_bf16_support(set())
    ('native', 'emulated', 'unknown')
    """
    flags = set(_cpu_flags() if flags is None else flags)
    if not flags:
        return "unknown"
    return "native" if flags & set(BF16_CPU_FLAGS) else "emulated"


# torch.cpu's probe of each flag that matters here (quantize's VNNI check reads the same family of probes)
CPU_PROBES = {"avx2": "_is_avx2_supported", "avx512_bf16": "_is_avx512_bf16_supported",
              "amx_bf16": "_is_amx_tile_supported"}  # AMX tiles come with AMX-BF16


def _cpu_flags() -> set[str]:
    """This CPU's flags among `CPU_PROBES`, from torch's own probes; empty when this torch lacks one of them
    or the CPU has no AVX2 (nothing to say about a CPU that is not x86)."""
    probes = {flag: getattr(torch.cpu, name, None) for flag, name in CPU_PROBES.items()}
    if any(probe is None for probe in probes.values()):
        return set()
    flags = {flag for flag, probe in probes.items() if probe()}
    return flags if "avx2" in flags else set()


@functools.lru_cache(maxsize=1)  # once a process: every run of an experiment would repeat it
def warn_if_cpu_bf16_emulated() -> None:
    """Log a warning when bf16 on this CPU is emulated (about 9x slower than fp32 on an AVX2-only CPU)."""
    if cpu_bf16_support() == "emulated":
        log.warning("bf16 on this CPU is emulated (no %s instructions): autocast runs several times slower "
                    "than fp32 here (about 9x on an AVX2-only CPU); use --precision fp32 on this machine",
                    " or ".join(BF16_CPU_FLAGS))


class DynamicLossScaler:
    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if init_scale <= 0 or growth_factor <= 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise InputError("need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.good_steps = 0  # clean steps since the last change of scale
        self.skipped = 0  # steps skipped because of overflow, in total

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale

    @torch.no_grad()
    def unscale_(self, params) -> bool:
        """Divide gradients by the scale in place; return True if any is inf or NaN."""
        found_inf = False
        inv = 1.0 / self.scale
        for p in params:
            if p.grad is not None:
                p.grad.mul_(inv)
                found_inf = found_inf or not bool(torch.isfinite(p.grad).all())
        return found_inf

    def update(self, found_inf: bool) -> None:
        if found_inf:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
        else:
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0

    def step(self, optimizer: torch.optim.Optimizer, params) -> bool:
        """Unscale, step unless a gradient overflowed, update the scale; True if the step was taken."""
        found_inf = self.unscale_(params)
        if not found_inf:
            optimizer.step()
        self.update(found_inf)
        return not found_inf

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.good_steps, self.skipped = state["scale"], state["good_steps"], state["skipped"]


class MasterWeights:
    """An fp16 working model whose updates go through fp32 master copies.

    >>> model = torch.nn.Linear(2, 2)
    >>> mw = MasterWeights(model)
    >>> model.weight.dtype, mw.master[0].dtype
    (torch.float16, torch.float32)
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.working = [p for p in model.parameters() if p.requires_grad]
        self.master = [p.detach().clone().float().requires_grad_(True) for p in self.working]
        model.half()

    def grads_to_master(self) -> None:
        for w, m in zip(self.working, self.master):
            m.grad = None if w.grad is None else w.grad.float()
            w.grad = None

    @torch.no_grad()
    def master_to_model(self) -> None:
        for w, m in zip(self.working, self.master):
            w.copy_(m)  # rounds to fp16


def underflow_fraction(grads: list[torch.Tensor], scale: float = 1.0) -> float:
    """Fraction of nonzero gradient values that become 0 when stored in fp16 after scaling.

    >>> underflow_fraction([torch.tensor([1e-3, 1e-9, 0.0])]), underflow_fraction([torch.tensor([1e-9])], 2.0**16)
    (0.5, 0.0)
    """
    lost = total = 0
    for g in grads:
        nz = g != 0
        total += int(nz.sum())
        lost += int(((g * scale).half() == 0)[nz].sum())
    return lost / total if total else 0.0
