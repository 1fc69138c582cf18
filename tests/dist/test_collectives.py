import pytest
import torch
import torch.distributed as dist

from llmlab.core.errors import InputError
from llmlab.dist.collectives import ALL_REDUCES, theoretical_bytes
from llmlab.dist.launch import spawn

SHAPES = [(1,), (3,), (8, 125), (7, 143)]  # fewer elements than ranks, divisible by 2 and 4, divisible by neither


def _check_against_torch(group, tag: str) -> dict:
    """Run both schemes on several shapes and dtypes; compare with dist.all_reduce; return the byte counts."""
    me = dist.get_rank(group)
    stats = {}
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6), (torch.int64, 0)):
        for shape in SHAPES:
            g = torch.Generator().manual_seed(1000 * dist.get_rank() + len(shape) * 7 + shape[-1])
            x = torch.randn(shape, generator=g, dtype=torch.float64)
            x = (x * 100).to(dtype) if dtype == torch.int64 else x.to(dtype)  # floats of order 1: errors ~ ulp
            want = x.clone()
            dist.all_reduce(want, group=group)
            for name, fn in ALL_REDUCES.items():
                got = x.clone()
                s = fn(got, group=group)
                torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=f"{tag} {name} {dtype} {shape} rank {me}")
                stats[(name, str(dtype), shape)] = (s.sent, s.received, x.numel() * x.element_size())
    return stats


def _collectives_worker(rank, world):
    out = {"world": _check_against_torch(None, "world")}
    # and 2-rank groups: two rings of two over subgroups {0, 2} and {1, 3}, peers looked up by global rank
    groups = [dist.new_group([0, 2]), dist.new_group([1, 3])]
    out["sub"] = _check_against_torch(groups[rank % 2], "subgroup")
    return out


def test_naive_and_ring_equal_torch_all_reduce_and_send_the_theoretical_bytes():
    """One 4-process run (each start costs seconds) checks 4 ranks over the world and 2 over subgroups."""
    world = 4
    results = spawn(_collectives_worker, world, timeout=300)
    for key, (_, _, nbytes) in results[0]["world"].items():
        name, _, shape = key
        per_rank = [r["world"][key][:2] for r in results]
        total_sent = sum(s for s, _ in per_rank)
        total_received = sum(r for _, r in per_rank)
        assert total_sent == total_received  # every byte sent is received by someone
        if name == "ring":
            assert total_sent == 2 * (world - 1) * nbytes  # each chunk goes N-1 times round in each phase
            if torch.Size(shape).numel() % world == 0:  # equal chunks: every rank moves exactly 2(N-1)/N * S
                for rank, (s, r) in enumerate(per_rank):
                    t = theoretical_bytes("ring", nbytes, world, rank)
                    assert (s, r) == (t.sent, t.received)
        else:
            for rank, (s, r) in enumerate(per_rank):
                t = theoretical_bytes("naive", nbytes, world, rank)
                assert (s, r) == (t.sent, t.received)
    for rank, res in enumerate(results):  # group rank = rank // 2 in {0, 2} and {1, 3}
        for (name, _, shape), (s, r, nbytes) in res["sub"].items():
            t = theoretical_bytes(name, nbytes, 2, rank // 2)
            if name == "naive" or torch.Size(shape).numel() % 2 == 0:
                assert (s, r) == (t.sent, t.received)


def test_theoretical_bytes_formulas_and_bad_input():
    nbytes = 4 * 10**6
    for n in (2, 4, 8, 64):
        ring = theoretical_bytes("ring", nbytes, n).sent
        assert ring == 2 * (n - 1) / n * nbytes < 2 * nbytes  # below 2S however many ranks
        assert theoretical_bytes("naive", nbytes, n, rank=0).sent == (n - 1) * nbytes  # grows with N at the root
    assert theoretical_bytes("ring", nbytes, 1).sent == 0
    with pytest.raises(InputError, match="scheme"):
        theoretical_bytes("tree", nbytes, 4)
    with pytest.raises(InputError, match="rank"):
        theoretical_bytes("ring", nbytes, 4, rank=4)
