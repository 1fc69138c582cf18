"""Builders that tests in several folders share. Import them relatively (`from ..helpers import wide_lm`):
pytest runs with --import-mode=importlib, which names test modules after their path under the root."""

import torch

from llmlab.models import CausalLM, ModelConfig


def widen(model: torch.nn.Module, std: float = 0.6) -> torch.nn.Module:
    """Redraw every parameter of `model` from N(0, std), in place, and return it.

    At the default init a tiny decoder's next-token distribution is near uniform and greedy decoding
    repeats one token; weights this wide give distributions that vary from step to step, so greedy paths
    vary between prompts, beams part ways and EOS comes at different steps.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


def wide_lm(config: ModelConfig, seed: int = 0, std: float = 0.6) -> CausalLM:
    """A random CausalLM in eval mode: torch seeded with `seed`, built from `config`, then `widen`ed.

    >>> cfg = ModelConfig(vocab_size=11, dim=8, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8)
    >>> a, b = wide_lm(cfg), wide_lm(cfg)
    >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters())), a.training
    (True, False)
    """
    torch.manual_seed(seed)
    return widen(CausalLM(config).eval(), std)


def random_prompts(lengths, vocab: int, seed: int = 1) -> list[list[int]]:
    """One prompt of uniformly drawn token ids per length, fixed by `seed`.

    >>> [len(p) for p in random_prompts([3, 1], 5)], random_prompts([4], 5) == random_prompts([4], 5)
    ([3, 1], True)
    """
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]
