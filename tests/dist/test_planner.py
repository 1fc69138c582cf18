"""The layout planner: its arithmetic agrees with the memory estimator and with the document's GPT-3 case.

Torch-free; these tests spawn nothing (the `dist` marker applies to the folder all the same).
"""

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.dist.planner import Cluster, Layout, Workload, gpt3_example, layouts, plan, propose, stage_layers
from llmlab.models.config import ModelConfig
from llmlab.models.params import count_parameters
from llmlab.train.memory import MemoryConfig, estimate_memory

SMALL = ModelConfig(vocab_size=1000, dim=256, n_layer=8, n_head=8, n_kv_head=8, max_seq_len=512,
                    tie_embeddings=False)
WORK = Workload(global_batch=32, micro_batch=2, seq_len=512, zero_stage=0, grad_checkpoint=False)


@pytest.mark.parametrize("precision", ["fp32", "amp", "mixed"])
@pytest.mark.parametrize("grad_checkpoint", [False, True])
def test_one_device_matches_the_memory_estimator(precision, grad_checkpoint):
    """Checkpointed layers keep their input at the estimator's width: 2 bytes under mixed, not 4."""
    work = Workload(global_batch=32, micro_batch=2, seq_len=512, zero_stage=0, precision=precision,
                    grad_checkpoint=grad_checkpoint)
    p = plan(SMALL, Layout(1, 1, 1), Cluster(n_devices=1), work)
    rows = dict((name, b) for name, b, _ in estimate_memory(SMALL, MemoryConfig(
        batch_size=2, seq_len=512, optimizer="adam", precision=precision, grad_checkpoint=grad_checkpoint)))
    assert p.memory["weights"] == rows["weights"]
    assert p.memory["gradients"] == rows["gradients"]
    assert p.memory["optimizer states"] == rows["optimizer states"]
    assert p.memory["activations"] == rows["activations (all layers)"]
    assert p.comm["total"] == 0 and p.bubble == 0
    if grad_checkpoint:  # 8 layer inputs of B*S*d elements, in the residual stream's dtype, + one layer rebuilt
        width = 2 if precision == "mixed" else 4
        assert p.memory["activations"] == 8 * 2 * 512 * 256 * width + rows["activations (per layer)"]


def test_tensor_parallel_divides_weights_and_pipeline_splits_layers():
    one = plan(SMALL, Layout(1, 1, 1), Cluster(n_devices=1), WORK)
    tp = plan(SMALL, Layout(1, 4, 1), Cluster(n_devices=4), WORK)
    assert tp.memory["weights"] == pytest.approx(one.memory["weights"] / 4)
    pp = plan(SMALL, Layout(1, 1, 4), Cluster(n_devices=4), WORK)
    assert pp.stage_layers == [2, 2, 2, 2]
    assert pp.memory["weights"] < one.memory["weights"] / 2
    assert pp.bubble == pytest.approx(3 / (16 + 3))  # m = 32 / (1 * 2) = 16 micro-batches


def test_data_parallel_ring_sends_twice_the_gradients_times_n_minus_1_over_n():
    one = plan(SMALL, Layout(1, 1, 1), Cluster(n_devices=1), WORK)
    dp = plan(SMALL, Layout(4, 1, 1), Cluster(n_devices=4), WORK)
    assert dp.comm["data parallel"] == pytest.approx(2 * 3 / 4 * one.memory["gradients"])
    assert dp.micro_batches == 4


@pytest.mark.parametrize("precision, width", [("fp32", 4), ("amp", 4), ("mixed", 2)])
def test_activations_crossing_tensor_and_pipeline_links_have_the_residual_streams_width(precision, width):
    """They were priced at 2 bytes an element under every precision; the residual stream is fp32 but under mixed."""
    work = Workload(global_batch=8, micro_batch=1, seq_len=512, precision=precision, grad_checkpoint=False)
    p = plan(SMALL, Layout(1, 2, 4), Cluster(n_devices=8), work)
    tensor = 1 * 512 * 256 * width  # one (B, S, d) activation
    m, layers = 8, 2  # micro-batches, layers on the first stage
    assert p.comm["tensor parallel"] == 2 * (2 - 1) / 2 * tensor * 4 * layers * m  # 4 ring all-reduces a layer
    assert p.comm["pipeline parallel"] == 2 * tensor * m  # an activation out, a gradient back


def test_groups_that_straddle_nodes_go_at_the_inter_node_bandwidth_and_tensor_ones_are_flagged():
    """tp 6 on nodes of 8 (groups of ranks 0..5, 6..11, ...) was priced at NVLink speed and fitted."""
    model, cluster, work = gpt3_example()[0], Cluster(n_devices=1536), Workload(global_batch=1536)
    intra, inter = cluster.intra_node_gbps * 1e9, cluster.inter_node_gbps * 1e9
    six = plan(model, Layout(8, 6, 32), cluster, work)
    assert six.problems == ["tp 6 groups span nodes (8 devices per node)"]
    assert six.time["tensor parallel"] == pytest.approx(six.comm["tensor parallel"] / inter)
    eight = plan(model, Layout(6, 8, 32), cluster, work)
    assert eight.feasible and eight.time["tensor parallel"] == pytest.approx(eight.comm["tensor parallel"] / intra)
    # dp 3 x tp 2 = 6 ranks a stage: the second stage's dp groups hold ranks 6..11, across two nodes
    work = Workload(global_batch=48, micro_batch=2, seq_len=512, zero_stage=0, grad_checkpoint=False)
    straddling = plan(SMALL, Layout(3, 2, 4), Cluster(n_devices=24), work)
    assert straddling.time["data parallel"] == pytest.approx(straddling.comm["data parallel"] / inter)
    inside = plan(SMALL, Layout(2, 2, 6), Cluster(n_devices=24), work)  # blocks of 4 ranks: never across
    assert inside.time["data parallel"] == pytest.approx(inside.comm["data parallel"] / intra)


def test_layouts_cover_every_factorisation_and_bad_ones_say_why():
    assert {(x.dp, x.tp, x.pp) for x in layouts(4)} == {
        (4, 1, 1), (2, 2, 1), (2, 1, 2), (1, 4, 1), (1, 2, 2), (1, 1, 4)}
    plans = propose(SMALL, Cluster(n_devices=12), WORK)
    assert plans[0].feasible and all(p.layout.size == 12 for p in plans)
    bad = plan(SMALL, Layout(1, 3, 4), Cluster(n_devices=12), WORK)
    assert any("does not divide n_head" in s for s in bad.problems)


def test_the_documents_gpt3_layout_fits_and_accounts_for_every_parameter():
    model, cluster, work, lay = gpt3_example()
    assert (lay.dp, lay.tp, lay.pp, cluster.n_devices) == (6, 8, 64, 3072)
    assert count_parameters(model) == 174_593_642_496
    p = plan(model, lay, cluster, work)
    assert p.feasible, p.problems
    assert sum(p.stage_layers) == 96 and max(p.stage_layers) == 2
    assert p.micro_batches == 1536 // 6
    # the worst stage holds two of 96 layers plus the 617M-parameter embedding, split 8 ways, in 16 bits
    per_layer = (count_parameters(model) - 50257 * 12288 - 2048 * 12288) / 96
    assert p.memory["weights"] == pytest.approx((2 * per_layer + 50257 * 12288 + 2048 * 12288) / 8 * 2, rel=1e-3)
    # the same model on one stage does not fit in 80 GiB
    assert not plan(model, Layout(384, 8, 1), cluster, work).feasible


def test_bad_layout_and_workload_are_refused():
    with pytest.raises(InputError, match="DPxTPxPP"):
        Layout.parse("6x8")
    with pytest.raises(InputError, match="optimizer"):
        Workload(optimizer="lion")
    with pytest.raises(InputError, match="mfu is a fraction"):
        Cluster(mfu=2)
    with pytest.raises(InputError, match="micro_batch must be >= 1"):  # the flag's own name, not batch_size
        Workload(micro_batch=0)
    assert stage_layers(5, 2) == [3, 2]


def test_plan_cli_prints_the_gpt3_case(capsys):
    assert main(["plan", "--gpt3", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "layout dp6 x tp8 x pp64" in out and "fits" in out and "pipeline bubble 19.7%" in out
    assert "layers per stage 1 to 2" in out  # 96 layers over 64 stages: the range reads low to high
    assert main(["plan", "llama-7b", "--n-devices", "16", "--memory-gib", "24", "--layout", "4x2x2"]) == 0
    assert "layers per stage 16\n" in capsys.readouterr().out  # equal stages: one number
    assert main(["plan", "--gpt3", "--top", "-1"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err
