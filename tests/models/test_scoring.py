import math

import torch

from llmlab.models import CausalLM, ModelConfig
from llmlab.models.scoring import token_logprobs


def test_token_logprobs_follow_the_chain_rule_prefix_by_prefix():
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, max_seq_len=8)).eval()
    ids = [3, 5, 7, 1, 2, 9]
    got = token_logprobs(model, ids, start_id=0)
    seq = [0] + ids
    with torch.no_grad():
        expected = [float(model(torch.tensor([seq[:i]]))[0, -1].log_softmax(-1)[seq[i]]) for i in range(1, len(seq))]
    assert len(got) == len(ids)
    assert all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(got, expected))
    # longer than the context: every token still scored exactly once
    assert len(token_logprobs(model, list(range(20)) * 2, start_id=0)) == 40
    assert token_logprobs(model, [4]) == []
