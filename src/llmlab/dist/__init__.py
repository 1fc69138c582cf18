"""Distributed training on torch.distributed: data, sharded, tensor, pipeline and hybrid parallelism.

Every strategy runs on gloo (CPU) as on NCCL (GPUs), launched with ``torchrun`` or `spawn`, and each
has an equivalence check against single-process training. Names are imported on first use.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "spawn": "llmlab.dist.launch",
    "init_from_env": "llmlab.dist.launch",
})
