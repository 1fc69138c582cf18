"""Distributed training on torch.distributed: data, sharded, tensor, pipeline and hybrid parallelism.

Every strategy runs on gloo (CPU) as on NCCL (GPUs), launched with ``torchrun`` or `spawn`, and each
has an equivalence check against single-process training. Names are imported on first use.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "spawn": "llmlab.dist.launch",
    "init_from_env": "llmlab.dist.launch",
    "naive_all_reduce": "llmlab.dist.collectives",
    "ring_all_reduce": "llmlab.dist.collectives",
    "theoretical_bytes": "llmlab.dist.collectives",
    "count_collectives": "llmlab.dist.collectives",
    "GradientSync": "llmlab.dist.data_parallel",
    "broadcast_parameters": "llmlab.dist.data_parallel",
    "shard_rows": "llmlab.dist.data_parallel",
    "wrap_ddp": "llmlab.dist.data_parallel",
    "shard_model": "llmlab.dist.fsdp",
    "gather_state_dict": "llmlab.dist.fsdp",
    "local_param_bytes": "llmlab.dist.fsdp",
    "ColumnParallelLinear": "llmlab.dist.tensor_parallel",
    "RowParallelLinear": "llmlab.dist.tensor_parallel",
    "parallelize_decoder": "llmlab.dist.tensor_parallel",
    "tp_allreduce_bytes": "llmlab.dist.tensor_parallel",
    "PipelineStage": "llmlab.dist.pipeline_parallel",
    "pipeline_step": "llmlab.dist.pipeline_parallel",
    "bubble_fraction": "llmlab.dist.pipeline_parallel",
    "bubble_fraction_theory": "llmlab.dist.pipeline_parallel",
    "torch_pipeline_step": "llmlab.dist.pipeline_parallel",
    "Mesh": "llmlab.dist.mesh",
    "build_mesh": "llmlab.dist.mesh",
    "DistributedTrainer": "llmlab.dist.trainer",
    "check_layout_settings": "llmlab.dist.rules",
    "Layout": "llmlab.dist.planner",
    "plan": "llmlab.dist.planner",
    "propose": "llmlab.dist.planner",
})
