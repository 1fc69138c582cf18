import math

import pytest
import torch

from llmlab.core.errors import InputError
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


def direct(model, seq, i, begin):
    """log p(seq[i] | seq[begin:i]), computed alone."""
    with torch.no_grad():
        return float(model(torch.tensor([seq[begin:i]]))[0, -1].log_softmax(-1)[seq[i]])


@pytest.mark.parametrize("stride", [1, 3, 5, 8])
def test_sliding_windows_score_each_token_from_the_window_that_first_reaches_it(stride):
    torch.manual_seed(1)
    ctx = 8
    model = CausalLM(ModelConfig(vocab_size=20, dim=32, n_layer=2, n_head=4, max_seq_len=ctx)).eval()
    seq = [0] + [int(x) for x in torch.randint(1, 20, (29,))]
    got = token_logprobs(model, seq[1:], start_id=0, stride=stride)
    assert len(got) == len(seq) - 1
    for i in range(1, len(seq)):
        # windows start at 0, stride, 2 stride, ...; the one starting at k stride predicts up to k stride + ctx
        k = max(0, -(-(i - ctx) // stride))
        assert math.isclose(got[i - 1], direct(model, seq, i, k * stride), abs_tol=1e-5), (i, k)
        assert i - k * stride >= min(i, ctx - stride + 1)  # the context each token gets
    if stride == ctx:  # the default: windows side by side
        assert got == token_logprobs(model, seq[1:], start_id=0)


def test_stride_one_gives_every_token_the_whole_context_and_bad_strides_are_refused():
    torch.manual_seed(2)
    model = CausalLM(ModelConfig(vocab_size=20, dim=32, n_layer=1, n_head=4, max_seq_len=6)).eval()
    seq = list(range(1, 16))
    got = token_logprobs(model, seq, stride=1)
    assert all(math.isclose(got[i - 1], direct(model, seq, i, max(0, i - 6)), abs_tol=1e-5) for i in range(1, 15))
    for bad in (0, 7):
        with pytest.raises(InputError, match=r"stride must be in \[1, 6\]"):
            token_logprobs(model, seq, stride=bad)
