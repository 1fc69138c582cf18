"""The device mesh of a hybrid layout: which ranks share data, tensor and pipeline groups.

Ranks are laid out pipeline-major and tensor-minor, (pp, dp, tp), as Megatron does: the ranks of a
tensor-parallel group are consecutive (on one node, where the links are fastest), data-parallel
replicas of a stage come next, and pipeline stages are furthest apart. With 8 ranks as dp2 x tp2 x pp2,
rank 5 is stage 1, replica 0, tensor shard 1; its tensor group is {4, 5}, its data group {5, 7}, its
pipeline group {1, 5}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from llmlab.core.errors import InputError
from llmlab.dist.planner import Layout


@dataclass
class Mesh:
    layout: Layout
    rank: int  # global rank
    dp_rank: int
    tp_rank: int
    pp_rank: int
    dp_group: object  # process groups (torch.distributed.ProcessGroup)
    tp_group: object
    pp_group: object

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.layout.pp - 1

    @property
    def writes(self) -> bool:
        """Whether this rank logs and writes run outputs: global rank 0."""
        return self.rank == 0

    @property
    def saves_shard(self) -> bool:
        """Whether this rank saves its (tensor, pipeline) shard: the first data-parallel replica."""
        return self.dp_rank == 0


def build_mesh(layout: Layout, device_type: str = "cpu") -> Mesh:
    """The mesh for `layout` over the initialised process group (whose size must match)."""
    world = dist.get_world_size()
    if layout.size != world:
        raise InputError(f"layout {layout} needs {layout.size} processes, the group has {world}")
    mesh = init_device_mesh(device_type, (layout.pp, layout.dp, layout.tp), mesh_dim_names=("pp", "dp", "tp"))
    groups = {name: mesh.get_group(name) for name in ("dp", "tp", "pp")}
    return Mesh(layout, dist.get_rank(), *(dist.get_rank(groups[n]) for n in ("dp", "tp", "pp")),
                groups["dp"], groups["tp"], groups["pp"])
