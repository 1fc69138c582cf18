"""Left-padded rows with their own positions (`CausalLM.forward`'s `positions` with a padding mask, as
batched generation runs them): each prompt's logits, in the prefill and in every cached decode step, are
those it gets alone, at every position scheme; what cannot be honoured is refused by name."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.config import POSITIONS
from llmlab.nn.masks import left_padded_mask

BASE = dict(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
CONFIGS = {p: ModelConfig(**BASE, position=p) for p in POSITIONS} | {  # every position kind, and:
    "mqa-moe": ModelConfig(**{**BASE, "n_kv_head": 1}, n_experts=4, moe_top_k=2),
    "yarn": ModelConfig(**BASE, rope_scaling="yarn", rope_factor=2.0, rope_original_max_seq_len=16),
    "dynamic": ModelConfig(**BASE, rope_scaling="dynamic", rope_factor=2.0, rope_original_max_seq_len=24),
}
LENGTHS = [7, 1, 4, 10]


def left_padded(prompts: list[list[int]]):
    """ids (B, P) with padding (id 0) on the left, `real` (B, P) and positions (B, P) counting each row's
    real tokens from 0 (padding at 0)."""
    P = max(map(len, prompts))
    pads = torch.tensor([P - len(p) for p in prompts])
    ids = torch.tensor([[0] * (P - len(p)) + p for p in prompts])
    real = torch.arange(P) >= pads[:, None]  # (B, P)
    return ids, real, (torch.arange(P) - pads[:, None]).clamp(min=0)


def random_prompts(g: torch.Generator) -> list[list[int]]:
    """Prompts of LENGTHS tokens (ids 1..49: never the padding id 0)."""
    return [torch.randint(1, 50, (n,), generator=g).tolist() for n in LENGTHS]


def model_of(name: str) -> CausalLM:
    torch.manual_seed(0)
    return CausalLM(CONFIGS[name]).eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_left_padded_prefill_gives_each_prompt_its_logits_alone(name):
    model = model_of(name)
    g = torch.Generator().manual_seed(1)
    prompts = random_prompts(g)
    ids, real, pos = left_padded(prompts)
    P = ids.shape[1]
    with torch.no_grad():
        full = model(ids, mask=left_padded_mask(real, P), positions=pos)  # (B, P, V), no cache
        cache = model.new_cache(len(prompts))
        cached = model(ids, cache, left_padded_mask(real, P), positions=pos)
        for b, p in enumerate(prompts):
            alone = model(torch.tensor([p]))[0]  # (n, V)
            torch.testing.assert_close(full[b, P - len(p):], alone)
            torch.testing.assert_close(cached[b, P - len(p):], alone)
    assert not torch.allclose(full[0, -1], full[3, -1])  # rows differ: the test can tell them apart


@pytest.mark.parametrize("name", CONFIGS)
def test_cached_steps_after_a_left_padded_prefill_match_each_prompt_alone(name):
    model = model_of(name)
    g = torch.Generator().manual_seed(2)
    prompts = random_prompts(g)
    ids, real, pos = left_padded(prompts)
    B, P = ids.shape
    steps = torch.randint(1, 50, (B, 4), generator=g)  # the next tokens of every row
    real = torch.cat([real, torch.ones(B, 4, dtype=torch.bool)], dim=1)  # (B, P + 4)
    lengths = torch.tensor(LENGTHS)
    with torch.no_grad():
        cache = model.new_cache(B)
        model(ids, cache, left_padded_mask(real[:, :P], P), positions=pos)
        for t in range(4):
            S = P + t + 1
            step = model(steps[:, t:t + 1], cache, left_padded_mask(real[:, :S], 1), positions=(lengths + t)[:, None])
            for b, p in enumerate(prompts):
                alone = model(torch.tensor([p + steps[b, :t + 1].tolist()]))[0, -1]  # (V,)
                torch.testing.assert_close(step[b, 0], alone)


def test_positions_counting_from_zero_leave_an_unpadded_forward_unchanged():
    model = model_of("learned")
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, positions=torch.arange(9).expand(2, 9)), model(ids))
        shifted = model(ids, positions=torch.arange(3, 12).expand(2, 9))  # the positions are used
    assert not torch.allclose(shifted, model(ids))


def test_positions_the_model_cannot_honour_are_refused():
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

    model = model_of("rope")
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(InputError, match=r"positions must have the shape of the token ids \(2, 3\)"):
        model(ids, positions=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(InputError, match=r"positions must be integers in \[0, 32\)"):
        model(ids, positions=torch.full((2, 3), -1))
    with pytest.raises(InputError, match=r"positions must be integers in \[0, 32\)"):
        model(ids, positions=torch.full((2, 3), 32))
    with pytest.raises(InputError, match=r"pass no cache or mask \(nor positions\)"):
        model(ids, segments=torch.zeros(2, 3, dtype=torch.long), positions=torch.zeros(2, 3, dtype=torch.long))
    dynamic = model_of("dynamic")
    dynamic(ids, positions=torch.full((2, 3), 23))  # the trained 24 positions: plain RoPE
    with pytest.raises(InputError, match="dynamic NTK"):
        dynamic(ids, positions=torch.full((2, 3), 24))
    alibi = model_of("alibi")
    apply_prompt_tuning(alibi, PromptConfig(n_virtual=2, init="vocab"))
    with pytest.raises(InputError, match="ALiBi"):
        alibi(ids, positions=torch.zeros(2, 3, dtype=torch.long))
