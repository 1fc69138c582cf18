import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate, sample_next, top_k_filter, top_p_filter
from llmlab.models import CausalLM, ModelConfig

CFG = ModelConfig(vocab_size=30, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=48)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CausalLM(CFG).eval()


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 5, 1.0), (1.2, 0, 0.8)])
def test_cached_generation_equals_uncached_token_for_token(model, temperature, top_k, top_p):
    prompt = [3, 1, 4, 1, 5]
    kw = dict(max_new_tokens=30, temperature=temperature, top_k=top_k, top_p=top_p, seed=7)
    cached = generate(model, prompt, GenerationConfig(use_cache=True, **kw))
    uncached = generate(model, prompt, GenerationConfig(use_cache=False, **kw))
    assert cached == uncached and len(cached) == 30


def test_greedy_is_argmax_of_a_full_forward(model):
    prompt = [2, 7]
    out = generate(model, prompt, GenerationConfig(max_new_tokens=6, temperature=0))
    seq = list(prompt)
    for _ in range(6):
        with torch.no_grad():
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert out == seq[2:]


def test_stops_at_eos_and_respects_context(model):
    out = generate(model, [1], GenerationConfig(max_new_tokens=40, temperature=0))
    eos = out[3]
    stopped = generate(model, [1], GenerationConfig(max_new_tokens=40, temperature=0), eos_id=eos)
    assert stopped == out[: out.index(eos)]
    long_prompt = list(range(30)) * 2  # 60 tokens > context 48
    assert len(generate(model, long_prompt, GenerationConfig(max_new_tokens=10, temperature=0))) == 10


def test_generation_past_the_context_slides_its_window(model):
    # context 48: every step sees the whole prompt and output up to the latest 48 tokens, as a full
    # forward over them does (the prompt used to be cut to leave room for all 100 new tokens)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    out = generate(model, prompt, GenerationConfig(max_new_tokens=100, temperature=0))
    seq = list(prompt)
    for _ in range(100):
        with torch.no_grad():
            seq.append(int(model(torch.tensor([seq[-CFG.max_seq_len:]]))[0, -1].argmax()))
    assert out == seq[len(prompt):]
    kw = dict(max_new_tokens=100, temperature=1.0, seed=3)
    sampled = generate(model, prompt, GenerationConfig(**kw))
    assert sampled == generate(model, prompt, GenerationConfig(use_cache=False, **kw))


@pytest.mark.parametrize("p", [0.9, 0.5, 1e-9, 0.0])
def test_filters_match_their_definitions(p):
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0]])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [[False, True, True, True, False]]
    probs = logits.softmax(-1)[0]
    order = probs.argsort(descending=True)
    # nucleus of p: the top tokens until their mass first reaches p, so at least one (p = 0 kept none)
    mass, keep = 0.0, set()
    for i in order.tolist():
        keep.add(i)
        mass += float(probs[i])
        if mass >= p:
            break
    kept = (~torch.isinf(top_p_filter(logits, p)))[0].nonzero().flatten().tolist()
    assert set(kept) == keep
    g = torch.Generator().manual_seed(0)
    draws = [int(sample_next(logits, top_k=2, generator=g)) for _ in range(200)]
    assert set(draws) <= {0, 4} and len(set(draws)) == 2


def test_sampling_frequencies_follow_the_distribution():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    g = torch.Generator().manual_seed(0)
    draws = sample_next(logits.expand(20000, 3), generator=g)
    freq = torch.bincount(draws, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.015, rtol=0)


def test_a_tiny_temperature_samples_the_argmax_and_large_logits_do_not_overflow():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[1.0, 3.0, 2.0], [50.0, -50.0, 49.0], [1e38, 0.0, -1e38]])
    for t in (1e-300, 1e-46, 1e-40, 1e-12):  # 1e-46 and less are 0 in float32
        assert sample_next(logits, temperature=t, generator=g).tolist() == [1, 0, 0]
    tie = torch.tensor([5.0, 5.0, 0.0])  # a tie stays a fair choice between the maxima
    for t in (1e-30, 1e-300):
        assert {int(sample_next(tie, temperature=t, generator=g)) for _ in range(50)} == {0, 1}
    # shifting by the maximum does not change the distribution at ordinary temperatures
    torch.manual_seed(1)
    x = torch.randn(4, 7) * 3
    assert torch.allclose(((x - x.amax(-1, keepdim=True)) / 0.7).softmax(-1), (x / 0.7).softmax(-1), atol=1e-6)


def test_bad_generation_settings_are_clear_errors(model):
    with pytest.raises(InputError, match="top_p must be in"):
        GenerationConfig(top_p=0)
    with pytest.raises(InputError, match="temperature must be"):
        GenerationConfig(temperature=-1)
    for seed in (-1, 2**64):  # torch.Generator's range; past it, a bare OverflowError
        with pytest.raises(InputError, match="seed must be"):
            GenerationConfig(seed=seed)
    with pytest.raises(InputError, match="at least one token"):
        generate(model, [])


def test_penalties_up_to_their_limit_run_and_larger_ones_are_clear_errors(model):
    """Past the limit the float32 logits overflowed: NaN, then a false 'weights have diverged' (or, in a
    beam, special tokens picked by NaN scores); at the limit every setting decodes."""
    prompt = [1, 2, 3, 2]
    for kw in ({"frequency_penalty": 1e9}, {"frequency_penalty": -1e9}, {"presence_penalty": -1e9},
               {"repetition_penalty": 1e-9}, {"repetition_penalty": 1e9}):
        for how in ({"temperature": 0.0}, {"temperature": 0.8}, {"num_beams": 2}):
            out = generate(model, prompt, GenerationConfig(max_new_tokens=6, **kw, **how))
            assert len(out) == 6 and all(0 <= t < CFG.vocab_size for t in out), (kw, how)
    for kw, msg in (({"frequency_penalty": 1e39}, r"frequency_penalty must be in \[-1e\+09, 1e\+09\]"),
                    ({"presence_penalty": -4e38}, "presence_penalty must be in"),
                    ({"repetition_penalty": 1e-39}, r"repetition_penalty must be in \[1e-09, 1e\+09\]"),
                    ({"repetition_penalty": 0.0}, "repetition_penalty must be in")):
        with pytest.raises(InputError, match=msg):
            GenerationConfig(**kw)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_logits_of_a_diverged_model_are_a_clear_error(bad):
    """torch.multinomial failed on them ('probability tensor contains either inf, nan or element < 0')."""
    from llmlab.core.errors import InputError

    logits = torch.tensor([[1.0, bad, 0.0]])
    for temperature in (0.0, 0.8):
        with pytest.raises(InputError, match="not finite"):
            sample_next(logits, temperature)
    assert int(sample_next(torch.tensor([[1.0, float("-inf"), 0.0]]), 0.0)) == 0  # -inf is a masked token


def test_filters_match_transformers_logits_warpers():
    """top_k_filter / top_p_filter against transformers' TopKLogitsWarper / TopPLogitsWarper on random
    logits (float64, continuous: no ties), k = 1 (greedy: only the argmax stays) to V - 1, p over (0, 1)."""
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=g, dtype=torch.float64) * 2
    for k in range(1, 10):
        ref = lp.TopKLogitsWarper(k)(None, logits)
        assert torch.equal(top_k_filter(logits, k), ref), k
    assert torch.isfinite(top_k_filter(logits, 1)).sum(-1).tolist() == [1] * 32
    for p in torch.rand(20, generator=g, dtype=torch.float64).tolist():
        ref = lp.TopPLogitsWarper(p)(None, logits)
        assert torch.equal(top_p_filter(logits, p), ref), p


def test_top_p_keeps_the_fewest_tokens_whose_mass_reaches_p_exactly():
    """Four equal tokens (probabilities exactly 1/4): p = 1/4, 1/2, 3/4 keep 1, 2, 3 of them (mass
    reaching p is enough, it need not pass it); p = 1 keeps all four."""
    logits = torch.zeros(1, 4)
    for p, n in ((0.25, 1), (0.5, 2), (0.75, 3), (1.0, 4)):
        assert int(torch.isfinite(top_p_filter(logits, p)).sum()) == n, p


def test_top_p_of_one_filters_nothing_even_where_the_mass_rounds_to_one_early():
    """p = 1 (sample_next's default) is no filter: a token whose probability is lost in the float32
    cumulative sum (it already rounds to 1.0) must stay possible."""
    logits = torch.tensor([[30.0, 0.0, -1.0, -2.0]])
    probs = logits.softmax(-1)
    assert float(probs[0, 0]) == 1.0 and float(probs[0, 3]) > 0  # the cumulative mass is 1.0 after one token
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def _generators():
    from llmlab.generate import generate_batch
    from llmlab.generate.continuous import RunningBatch
    from llmlab.rl.rollout import sample_group, sample_groups

    def running(model, prompt, cfg, chunk):
        batch = RunningBatch(model, prefill_chunk=chunk)
        batch.add(prompt, cfg)
        while batch.rows or batch.prefilling:
            batch.step()

    g = torch.Generator().manual_seed(0)
    return {"generate": lambda m, p, c: generate(m, p, c),
            "beam": lambda m, p, c: generate(m, p, GenerationConfig(max_new_tokens=4, num_beams=3)),
            "beam, no cache": lambda m, p, c: generate(m, p, GenerationConfig(max_new_tokens=4, num_beams=3,
                                                                              use_cache=False)),
            "no cache": lambda m, p, c: generate(m, p, GenerationConfig(max_new_tokens=4, use_cache=False)),
            "batch": lambda m, p, c: generate_batch(m, [p, p[:3]], c),
            "running": lambda m, p, c: running(m, p, c, 0),
            "chunked": lambda m, p, c: running(m, p, c, 4),
            "rollout": lambda m, p, c: sample_group(m, p, 2, 4, 1.0, 0, 0, g),
            "rollouts": lambda m, p, c: sample_groups(m, [p, p[:3]], [0, 1], 2, 4, 1.0, 0, 0, g)}


@pytest.mark.parametrize("kind", list(_generators()))
def test_prefill_projects_only_the_positions_it_samples_from(model, kind):
    """A prompt's prefill needs its last position's logits: the vocabulary projection of the others
    (T x dim x vocab) is skipped, so lm_head never sees more than one position per row."""
    seen = []
    hook = model.lm_head.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    try:
        _generators()[kind](model, list(range(1, 11)), GenerationConfig(max_new_tokens=4))
    finally:
        hook.remove()
    assert seen and set(seen) == {1}
