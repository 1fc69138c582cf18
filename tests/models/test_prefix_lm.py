"""The prefix decoder (GLM / U-PaLM): the causal decoder with a prefix-LM mask and loss."""

import torch

from llmlab.models import CausalLM, ModelConfig
from llmlab.nn.masks import prefix_lm_mask
from llmlab.train.objectives import causal_lm_loss, prefix_lm_loss

CFG = ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=24)


def test_prefix_is_bidirectional_and_the_rest_causal():
    torch.manual_seed(0)
    model = CausalLM(CFG).eval()
    P, T = 5, 12
    mask = prefix_lm_mask(P, T)
    x = torch.randint(0, 20, (1, T))
    in_prefix, after = x.clone(), x.clone()
    in_prefix[0, P - 1] = (x[0, P - 1] + 1) % 20
    after[0, P + 2] = (x[0, P + 2] + 1) % 20
    with torch.no_grad():
        base, a, b = model(x, mask=mask), model(in_prefix, mask=mask), model(after, mask=mask)
        causal = model(in_prefix)
    assert not torch.allclose(base[0, 0], a[0, 0])  # position 0 sees the end of the prefix
    assert torch.allclose(causal[0, 0], model(x)[0, 0])  # a causal decoder does not
    assert torch.allclose(base[0, : P + 2], b[0, : P + 2], atol=1e-6)  # nothing sees the future after it


def test_cached_decoding_after_a_bidirectional_prefix_equals_the_full_forward():
    torch.manual_seed(1)
    model = CausalLM(CFG).eval()
    P, T = 6, 14
    x = torch.randint(0, 20, (2, T))
    with torch.no_grad():
        full = model(x, mask=prefix_lm_mask(P, T))
        cache = model.new_cache(batch=2)
        parts = [model(x[:, :P], cache, mask=prefix_lm_mask(P, P))]
        parts += [model(x[:, i:i + 1], cache) for i in range(P, T)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_prefix_lm_loss_counts_only_tokens_after_the_prefix():
    logits = torch.randn(2, 6, 20)
    targets = torch.randint(0, 20, (2, 6))
    lengths = torch.tensor([2, 4])  # targets t count when t + 1 >= prefix length
    manual = targets.clone()
    manual[0, :1] = -100
    manual[1, :3] = -100
    torch.testing.assert_close(prefix_lm_loss(logits, targets, lengths), causal_lm_loss(logits, manual))
    torch.testing.assert_close(prefix_lm_loss(logits, targets, 1), causal_lm_loss(logits, targets))
