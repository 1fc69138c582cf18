"""Hybrid-parallel layout planner (topic 50): data x tensor x pipeline, sized before anything runs.

A layout splits N devices as dp x tp x pp. Tensor parallelism shards every layer's matrices over tp
devices (Megatron: attention by heads, the FFN by columns then rows) and all-reduces activations
four times per layer and micro-batch; pipeline parallelism gives each of pp stages a contiguous run
of layers and passes activations forward and gradients back once per micro-batch; data parallelism
replicates the result dp times and all-reduces gradients once per step. The planner prices each
layout with llmlab's own estimators, torch-free:

    memory per device   the worst stage (the first: embedding + most layers, most micro-batches
                        in flight), from `llmlab.train.memory`'s per-layer activation bytes and its
                        bytes-per-parameter rules, divided by tp; ZeRO-1 shards optimizer states over dp
    communication       bytes each device sends per step (ring all-reduce sends 2(n-1)/n of the data)
    step time           compute / (1 - bubble) + communication at the link's bandwidth, no overlap
                        (an upper bound); bubble = (pp - 1) / (m + pp - 1) with m micro-batches;
                        a tp or dp group crossing a node boundary goes at the inter-node bandwidth
                        (a tp group that does is also flagged: tp 6 on nodes of 8, not only tp 16)

Simplifications, stated: tensor parallelism divides all activations by tp (Megatron without sequence
parallelism keeps norm inputs whole; the error is a few percent); the embedding and the head are
vocabulary-parallel over tp; pipeline sends are not split across tp. Good enough to rank layouts and to
see why a layout fails, not a cycle-accurate simulator.

The document's GPT-3 example (64 pipeline stages, 6-way data parallel over DGX hosts, 8-way tensor
parallel inside each host: 3,072 A100s) is `gpt3_example()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig
from llmlab.models.params import flops_per_token, parameter_breakdown
from llmlab.models.presets import model_preset
from llmlab.train.memory import STATE_COPIES, MemoryConfig, activation_bytes


@dataclass(frozen=True)
class Cluster:
    n_devices: int = 8  # devices in all
    memory_gib: float = 80.0  # memory per device
    devices_per_node: int = 8  # devices sharing the fast intra-node links (tensor parallelism stays inside)
    peak_tflops: float = 312.0  # 16-bit peak per device (A100: 312)
    mfu: float = 0.5  # fraction of peak the matmuls reach
    intra_node_gbps: float = 300.0  # GB/s per device inside a node (NVLink)
    inter_node_gbps: float = 25.0  # GB/s per device across nodes (200 Gb/s InfiniBand)

    def __post_init__(self):
        for name in ("n_devices", "devices_per_node"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("memory_gib", "peak_tflops", "mfu", "intra_node_gbps", "inter_node_gbps"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.mfu > 1:
            raise InputError(f"mfu is a fraction of the peak: it must be <= 1, got {self.mfu}")


@dataclass(frozen=True)
class Workload:
    global_batch: int = 512  # sequences per optimizer step, over all data-parallel replicas
    micro_batch: int = 1  # sequences per micro-batch on one pipeline
    seq_len: int = 2048  # tokens per sequence
    precision: str = "mixed"  # fp32 | amp | mixed (16-bit weights and gradients, fp32 master + states)
    optimizer: str = "adam"  # optimizer whose states are counted (see llmlab memory)
    grad_checkpoint: bool = True  # keep only layer inputs; recompute (a third more compute)
    zero_stage: int = 1  # 0, or 1 = shard optimizer states over the data-parallel group

    def __post_init__(self):
        if self.micro_batch < 1:  # before MemoryConfig, which would name it batch_size
            raise InputError(f"micro_batch must be >= 1, got {self.micro_batch}")
        MemoryConfig(batch_size=self.micro_batch, seq_len=self.seq_len, optimizer=self.optimizer,
                     precision=self.precision)  # validates those fields with the estimator's messages
        if self.global_batch < 1:
            raise InputError(f"global_batch must be >= 1, got {self.global_batch}")
        if self.zero_stage not in (0, 1):
            raise InputError(f"the planner models zero_stage 0 or 1, got {self.zero_stage}")


@dataclass(frozen=True)
class Layout:
    dp: int = 1
    tp: int = 1
    pp: int = 1

    @property
    def size(self) -> int:
        return self.dp * self.tp * self.pp

    def __str__(self) -> str:
        return f"dp{self.dp} x tp{self.tp} x pp{self.pp}"

    @classmethod
    def parse(cls, text: str) -> Layout:
        """'6x8x64' (dp x tp x pp).

        >>> Layout.parse("6x8x64")
        Layout(dp=6, tp=8, pp=64)
        """
        try:
            dp, tp, pp = (int(x) for x in text.lower().split("x"))
        except ValueError:
            raise InputError(f"a layout is DPxTPxPP, e.g. 6x8x64; got {text!r}") from None
        if min(dp, tp, pp) < 1:
            raise InputError(f"every layout degree must be >= 1, got {text!r}")
        return cls(dp, tp, pp)


@dataclass
class Plan:
    layout: Layout
    problems: list[str]  # why the layout cannot run; empty when it can
    micro_batches: int = 0  # per pipeline per step
    stage_layers: list[int] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)  # bytes per device (worst stage), by part
    comm: dict[str, float] = field(default_factory=dict)  # bytes sent per device per step, by strategy
    bubble: float = 0.0
    time: dict[str, float] = field(default_factory=dict)  # seconds per step, by part

    @property
    def feasible(self) -> bool:
        return not self.problems

    @property
    def step_seconds(self) -> float:
        return self.time.get("total", math.inf)


def stage_layers(n_layer: int, pp: int) -> list[int]:
    """Contiguous layers per stage, as even as possible, larger stages first.

    >>> stage_layers(96, 64)[:3], sum(stage_layers(96, 64)), stage_layers(10, 4)
    ([2, 2, 2], 96, [3, 3, 2, 2])
    """
    base, extra = divmod(n_layer, pp)
    return [base + (i < extra) for i in range(pp)]


def bubble_fraction(pp: int, micro_batches: int) -> float:
    """Idle share of a GPipe / 1F1B pipeline with equal stages: (p - 1) / (m + p - 1).

    >>> bubble_fraction(4, 4), bubble_fraction(1, 8)
    (0.42857142857142855, 0.0)
    """
    if pp < 1 or micro_batches < 1:
        raise InputError(f"need p >= 1 stages and m >= 1 micro-batches, got p={pp}, m={micro_batches}")
    return (pp - 1) / (micro_batches + pp - 1)


def ring_factor(n: int) -> float:
    """Bytes a rank sends in a ring all-reduce, per byte of data: 2(n - 1) / n."""
    return 2 * (n - 1) / n


def spans_nodes(group: int, n: int, per_node: int) -> bool:
    """Whether a block of `group` consecutive ranks (of the n // group blocks of n ranks) crosses a node
    boundary. A tensor group of 6 on nodes of 8 does (ranks 6..11); one of 8 does not; 6 ranks on one
    node of 8 do not.

    >>> spans_nodes(6, 1536, 8), spans_nodes(8, 1536, 8), spans_nodes(6, 6, 8), spans_nodes(16, 32, 8)
    (True, False, False, True)
    """
    return any(k * group // per_node != ((k + 1) * group - 1) // per_node for k in range(n // group))


def _problems(model: ModelConfig, lay: Layout, cluster: Cluster, work: Workload) -> tuple[list[str], list[str]]:
    """(what makes the layout impossible to price, what makes it unusable on this cluster)."""
    shape = [f"tp {lay.tp} does not divide {name} {n}"
             for name, n in (("n_head", model.n_head), ("n_kv_head", model.n_kv_head), ("ffn hidden", model.hidden))
             if n % lay.tp]
    if lay.pp > model.n_layer:
        shape.append(f"pp {lay.pp} exceeds the {model.n_layer} layers")
    if work.global_batch % (lay.dp * work.micro_batch):
        shape.append(f"global batch {work.global_batch} is not a multiple of dp {lay.dp} x micro-batch "
                     f"{work.micro_batch}")
    fit = []
    if lay.size != cluster.n_devices:
        fit.append(f"{lay} uses {lay.size} devices, the cluster has {cluster.n_devices}")
    if spans_nodes(lay.tp, lay.size, cluster.devices_per_node):  # tp 6 on nodes of 8 as much as tp 16
        fit.append(f"tp {lay.tp} groups span nodes ({cluster.devices_per_node} devices per node)")
    return shape, fit


def plan(model: ModelConfig, lay: Layout, cluster: Cluster, work: Workload) -> Plan:
    """Memory, communication, bubble and step time of one layout (see the module docstring)."""
    shape, fit = _problems(model, lay, cluster, work)
    p = Plan(lay, shape + fit)
    if shape:
        return p
    m = work.global_batch // (lay.dp * work.micro_batch)
    p.micro_batches, p.stage_layers = m, stage_layers(model.n_layer, lay.pp)
    b = parameter_breakdown(model)
    norm = model.dim * (1 if model.norm == "rmsnorm" else 2)
    per_layer = (b["attention"] + b["ffn"]) / model.n_layer + 2 * norm
    final_norm = b["norms"] - model.n_layer * 2 * norm
    head = (b["lm_head"] or model.vocab_size * model.dim) + final_norm  # a tied head is copied when pp > 1
    if lay.pp == 1:
        stage_params = sum(b.values())
    else:  # the first stage holds the embedding, the last the head: price the larger
        stage_params = max(p.stage_layers[0] * per_layer + b["embedding"], p.stage_layers[-1] * per_layer + head)
    P = stage_params / lay.tp  # parameters on one device of the worst stage
    w = 2 if work.precision == "mixed" else 4
    states = STATE_COPIES[work.optimizer] * 4 + (4 if work.precision == "mixed" else 0)
    mem_cfg = MemoryConfig(batch_size=work.micro_batch, seq_len=work.seq_len, optimizer=work.optimizer,
                           precision=work.precision)
    layer_act = activation_bytes(model, mem_cfg)
    full_layer = layer_act["per_layer"]
    B, S = work.micro_batch, work.seq_len
    kept_layer = layer_act["block_input"] if work.grad_checkpoint else full_layer
    in_flight = min(lay.pp, m)  # 1F1B: stage 0 holds pp micro-batches' activations (GPipe would hold m)
    act = in_flight * p.stage_layers[0] * kept_layer / lay.tp
    if work.grad_checkpoint:
        act += full_layer / lay.tp  # the layer being recomputed
    logits = 2 * B * S * model.vocab_size * 4 / lay.tp if lay.pp == 1 else 0  # the last stage holds it
    p.memory = {
        "weights": P * w,
        "gradients": P * w,
        "optimizer states": P * states / (lay.dp if work.zero_stage else 1),
        "activations": act,
        "logits": logits,
    }
    p.memory["total"] = sum(p.memory.values())
    act_bytes = layer_act["block_input"]  # one (B, S, d) tensor of the residual stream: fp32 unless mixed
    tp_allreduces = 6 if work.grad_checkpoint else 4  # 2 forward + 2 backward (+ 2 in the recomputed forward)
    p.comm = {
        "data parallel": ring_factor(lay.dp) * P * w if lay.dp > 1 else 0.0,
        "tensor parallel": ring_factor(lay.tp) * act_bytes * tp_allreduces * p.stage_layers[0] * m
        if lay.tp > 1 else 0.0,
        "pipeline parallel": 2 * act_bytes * m if lay.pp > 1 else 0.0,  # one activation out, one gradient back
    }
    p.comm["total"] = sum(p.comm.values())
    p.bubble = bubble_fraction(lay.pp, m)
    tokens = work.global_batch * work.seq_len
    flops = flops_per_token(model, work.seq_len) * tokens * (4 / 3 if work.grad_checkpoint else 1)
    compute = flops / cluster.n_devices / (cluster.peak_tflops * 1e12 * cluster.mfu)
    intra, inter = cluster.intra_node_gbps * 1e9, cluster.inter_node_gbps * 1e9
    # ranks are numbered tp fastest, then dp, then pp: a tp group is tp consecutive ranks, a stage's dp groups
    # lie in dp x tp of them; a group stays inside a node only if no such block crosses a node boundary
    per_node = cluster.devices_per_node
    tp_link = inter if spans_nodes(lay.tp, lay.size, per_node) else intra
    dp_link = inter if spans_nodes(lay.dp * lay.tp, lay.size, per_node) else intra
    pp_link = intra if lay.size <= per_node else inter
    p.time = {
        "compute": compute,
        "bubble": compute / (1 - p.bubble) - compute,
        "data parallel": p.comm["data parallel"] / dp_link,
        "tensor parallel": p.comm["tensor parallel"] / tp_link,
        "pipeline parallel": p.comm["pipeline parallel"] / pp_link,
    }
    p.time["total"] = sum(p.time.values())
    budget = cluster.memory_gib * 2**30
    if p.memory["total"] > budget:
        p.problems.append(f"needs {p.memory['total'] / 2**30:.1f} GiB per device, has {cluster.memory_gib:g} GiB")
    return p


def layouts(n_devices: int) -> list[Layout]:
    """Every dp x tp x pp with product n_devices."""
    out = []
    for tp in range(1, n_devices + 1):
        if n_devices % tp:
            continue
        for pp in range(1, n_devices // tp + 1):
            if (n_devices // tp) % pp == 0:
                out.append(Layout(n_devices // (tp * pp), tp, pp))
    return out


def propose(model: ModelConfig, cluster: Cluster, work: Workload) -> list[Plan]:
    """Every layout of the cluster, priced; the ones that fit first, fastest first."""
    plans = [plan(model, lay, cluster, work) for lay in layouts(cluster.n_devices)]
    return sorted(plans, key=lambda p: (not p.feasible, p.step_seconds))


def gpt3_example() -> tuple[ModelConfig, Cluster, Workload, Layout]:
    """The document's GPT-3 layout: 64 stages x 6 DGX-A100 hosts per stage x 8 GPUs per host.

    The batch is GPT-3's 3.2M tokens (1,536 x 2,048), micro-batches of one sequence; A100s with 80 GiB.
    """
    lay = Layout(dp=6, tp=8, pp=64)
    return model_preset("gpt3-175b"), Cluster(n_devices=lay.size, memory_gib=80.0), Workload(global_batch=1536), lay


def format_plan(p: Plan) -> str:
    """A plan as one report line."""
    gib = 2**30
    head = f"{p.layout!s:<22}"
    if not p.memory:
        return head + "cannot run: " + "; ".join(p.problems)
    return (head + f"{p.memory['total'] / gib:8.2f} GiB/device  {p.comm['total'] / gib:8.2f} GiB sent/device/step"
            f"  bubble {p.bubble:6.1%}  step {p.step_seconds:8.2f} s"
            + ("" if p.feasible else "  (" + "; ".join(p.problems) + ")"))


def describe(p: Plan) -> list[str]:
    """One layout in detail: memory, communication and time by part."""
    gib = 2**30
    lo, hi = min(p.stage_layers, default=0), max(p.stage_layers, default=0)
    per_stage = f"{lo}" if lo == hi else f"{lo} to {hi}"  # stage_layers puts the larger stages first
    out = [f"layout {p.layout}: {p.layout.size} devices, {p.micro_batches} micro-batches per pipeline, "
           f"layers per stage {per_stage}" if p.memory else f"layout {p.layout}"]
    if not p.memory:
        return out + ["  cannot run: " + "; ".join(p.problems)]
    out.append("  memory per device (worst stage):")
    out += [f"    {k:<18} {v / gib:10.3f} GiB" for k, v in p.memory.items()]
    out.append("  bytes sent per device per step:")
    out += [f"    {k:<18} {v / gib:10.3f} GiB" for k, v in p.comm.items()]
    out.append(f"  pipeline bubble {p.bubble:.1%} = (pp-1)/(m+pp-1)")
    out.append("  step time estimate (no overlap):")
    out += [f"    {k:<18} {v:10.3f} s" for k, v in p.time.items()]
    out.append("  fits" if p.feasible else "  does not fit: " + "; ".join(p.problems))
    return out
