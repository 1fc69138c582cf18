"""Pipeline parallelism equals sequential execution (loss, every gradient, weights after steps) under
GPipe and 1F1B; the schedule arithmetic (bubble, in-flight activations) matches the theory."""

import copy

import pytest
import torch
import torch.distributed as dist

from llmlab.core.errors import InputError
from llmlab.dist.launch import spawn
from llmlab.dist.pipeline_parallel import (
    PipelineStage,
    bubble_fraction,
    bubble_fraction_theory,
    peak_in_flight,
    pipeline_step,
    schedule_ops,
    simulate,
    stage_bounds,
    torch_pipeline_step,
)
from llmlab.dist.tensor_parallel import parallelize_decoder, unsharded
from llmlab.models import CausalLM, ModelConfig
from llmlab.train.objectives import causal_lm_loss

B, T, M = 8, 8, 4  # batch, sequence, micro-batches


def _config(**kw) -> ModelConfig:
    base = dict(vocab_size=64, dim=32, n_layer=2, n_head=4, n_kv_head=2, ffn_hidden=64, max_seq_len=16)
    return ModelConfig(**{**base, **kw})


def _equivalence(group, schedule: str, n_layer: int, tie: bool, seed: int = 0, tp_group=None, accum: int = 1,
                 **cfg) -> dict:
    """Whole model vs this rank's stage on one batch (some targets ignored), then two SGD steps.
    With `tp_group`, each stage is also tensor-parallel over it (a pipeline x tensor mesh); with
    `accum`, each step accumulates that many backward passes before the optimizer steps."""
    torch.manual_seed(0)
    ref = CausalLM(_config(n_layer=n_layer, tie_embeddings=tie, **cfg))
    model = copy.deepcopy(ref) if tp_group is None else parallelize_decoder(copy.deepcopy(ref), tp_group)
    stage = PipelineStage(model, dist.get_rank(group), dist.get_world_size(group))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 64, (B, T + 1), generator=g)
    x, y = idx[:, :-1], idx[:, 1:].clone()
    y[0, :3] = -100  # uneven counted targets per micro-batch: the loss must still be the batch mean
    # SGD, so 1e-6 holds: Adam divides by sqrt(v) and magnifies the fp32 noise of tiny gradients
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt_pp = torch.optim.SGD(stage.parameters(), lr=0.1, momentum=0.9)
    out = {}
    for step in range(2):
        for _ in range(accum):
            loss_ref = causal_lm_loss(ref(x), y)
            loss_ref.backward()
            res = pipeline_step(stage, x, y, M, schedule, group)
        out[f"loss{step}"] = abs(res.loss - loss_ref.item())
        if step == 0:
            out["grads"] = _max_diff(stage, ref, grads=True, tp_group=tp_group)
            out["peak"], out["timeline"] = res.peak_in_flight, res.timeline
        opt_ref.step(), opt_pp.step()
        opt_ref.zero_grad(), opt_pp.zero_grad()
    out["weights"] = _max_diff(stage, ref, grads=False, tp_group=tp_group)
    return out


def _max_diff(stage: PipelineStage, ref: CausalLM, grads: bool, tp_group=None) -> float:
    ref_params = dict(ref.named_parameters())  # tied: the head is embed_tokens.weight
    if tp_group is not None:
        mine = unsharded(stage, tp_group, grads=grads)
    else:
        mine = {n: p.grad if grads else p.detach() for n, p in stage.named_parameters()}
    worst = 0.0
    for name, a in mine.items():
        r = ref_params.get(stage.global_name(name), ref_params["embed_tokens.weight"])
        worst = max(worst, float((a - (r.grad if grads else r.detach())).abs().max()))
    return worst


def _torch_equivalence(schedule: str) -> dict:
    """torch.distributed.pipelining on the same stage module: same loss and gradients as the whole model."""
    torch.manual_seed(0)
    ref = CausalLM(_config(tie_embeddings=True))
    stage = PipelineStage(copy.deepcopy(ref), dist.get_rank(), dist.get_world_size())
    idx = torch.randint(0, 64, (B, T + 1), generator=torch.Generator().manual_seed(0))
    x, y = idx[:, :-1], idx[:, 1:]  # no ignored targets: PyTorch averages the micro-batch means
    loss_ref = causal_lm_loss(ref(x), y)
    loss_ref.backward()
    loss = torch_pipeline_step(stage, x, y, M, schedule)
    return {"loss": abs(loss - loss_ref.item()), "grads": _max_diff(stage, ref, grads=True)}


def _bad_calls(group) -> list[str]:
    stage = PipelineStage(CausalLM(_config()), 1 - dist.get_rank(group), 2)  # the other rank's stage
    msgs = []
    for n_micro, st in ((M, stage), (3, PipelineStage(CausalLM(_config()), dist.get_rank(group), 2))):
        try:
            pipeline_step(st, torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T, dtype=torch.long), n_micro)
        except InputError as e:
            msgs.append(str(e))
    return msgs


def _worker_two(rank, world):
    alone = [dist.new_group([0]), dist.new_group([1])]  # one-stage pipelines: no p2p, plain accumulation
    return {"p1": _equivalence(alone[rank], "1f1b", 2, tie=True),
            "gpipe": _equivalence(None, "gpipe", 2, tie=True),
            "1f1b": _equivalence(None, "1f1b", 3, tie=True, position="alibi"),  # uneven stages: 2 + 1 layers
            "untied": _equivalence(None, "1f1b", 2, tie=False, position="learned", norm_position="post"),
            "accum": _equivalence(None, "1f1b", 2, tie=True, accum=2),  # tied gradients sent once, not again
            "torch": [_torch_equivalence(schedule) for schedule in ("gpipe", "1f1b")],
            "errors": _bad_calls(None)}


def _worker_four(rank, world):
    groups = [dist.new_group([0, 2]), dist.new_group([1, 3])]  # interleaved: group ranks != global ranks
    tp_groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # with `groups`: a 2 (pipeline) x 2 (tensor) mesh
    return {"gpipe": _equivalence(None, "gpipe", 4, tie=True), "1f1b": _equivalence(None, "1f1b", 4, tie=True),
            "sub": _equivalence(groups[rank % 2], "1f1b", 2, tie=True, seed=rank % 2),
            "tp_pp": _equivalence(groups[rank % 2], "1f1b", 2, tie=True, tp_group=tp_groups[rank // 2])}


def _check(res: dict, schedule: str, p: int, stage: int) -> None:
    assert res["loss0"] < 1e-6 and res["loss1"] < 1e-6
    assert res["grads"] < 1e-6
    assert res["weights"] < 1e-6
    assert [(e.kind, e.micro) for e in res["timeline"]] == schedule_ops(schedule, p, stage, M)
    assert res["peak"] == (M if schedule == "gpipe" else min(p - stage, M))


def test_pipeline_matches_sequential_on_two_ranks():
    results = spawn(_worker_two, 2)
    for stage, res in enumerate(results):
        for key, schedule in (("gpipe", "gpipe"), ("1f1b", "1f1b"), ("untied", "1f1b"), ("accum", "1f1b")):
            _check(res[key], schedule, 2, stage)
        _check(res["p1"], "1f1b", 1, 0)
        for torch_res in res["torch"]:
            assert torch_res["loss"] < 1e-6 and torch_res["grads"] < 1e-6
        assert "this rank is stage" in res["errors"][0]
        assert "batch size 8 must be divisible by the number of micro-batches, got 3" in res["errors"][1]
    assert results[0]["gpipe"]["peak"] == M and results[0]["1f1b"]["peak"] == 2
    timelines = [res["gpipe"]["timeline"] for res in results]
    assert 0 < bubble_fraction(timelines) < 1


def test_pipeline_four_stages_subgroups_and_a_tensor_pipeline_mesh():
    results = spawn(_worker_four, 4)
    for rank, res in enumerate(results):
        _check(res["gpipe"], "gpipe", 4, rank)
        _check(res["1f1b"], "1f1b", 4, rank)
        _check(res["sub"], "1f1b", 2, rank // 2)
        _check(res["tp_pp"], "1f1b", 2, rank // 2)
    assert [res["1f1b"]["peak"] for res in results] == [4, 3, 2, 1]


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize("p,m", [(1, 1), (2, 1), (2, 4), (4, 4), (4, 8), (8, 32), (3, 2)])
def test_simulated_bubble_equals_theory(schedule, p, m):
    for t_f, t_b in ((1.0, 1.0), (1.0, 2.0)):
        assert bubble_fraction(simulate(schedule, p, m, t_f, t_b)) == pytest.approx(bubble_fraction_theory(p, m))


def test_theory_and_memory_bound():
    assert bubble_fraction_theory(2, 2) == pytest.approx(1 / 3)
    assert bubble_fraction_theory(64, 64) == pytest.approx(63 / 127)
    for p, m in ((2, 8), (4, 8), (4, 2), (8, 16)):
        for s in range(p):
            assert peak_in_flight(schedule_ops("gpipe", p, s, m)) == m
            assert peak_in_flight(schedule_ops("1f1b", p, s, m)) == min(p - s, m) <= p
            ops = schedule_ops("1f1b", p, s, m)
            assert sorted(ops) == sorted(schedule_ops("gpipe", p, s, m))  # same work, other order


def test_bad_arguments():
    assert stage_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert stage_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    with pytest.raises(InputError, match="pipeline stages must be in"):
        stage_bounds(2, 3)
    with pytest.raises(InputError, match="schedule must be one of"):
        schedule_ops("zero-bubble", 2, 0, 4)
    with pytest.raises(InputError, match="m >= 1 micro-batches"):
        bubble_fraction_theory(2, 0)
    with pytest.raises(InputError, match="stage must be in"):
        PipelineStage(CausalLM(_config()), 2, 2)
