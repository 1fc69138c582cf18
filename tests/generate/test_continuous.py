"""A running batch that rows join and leave between steps (`RunningBatch`): every row gets the tokens
`generate` gives it alone, whatever joined before or after it, at every position scheme; greedy, seeded
sampling with its own settings, penalties and EOS; rows past the context decode alone, as `generate` does.
With chunked prefill, the same tokens at every chunk size, and no step runs more than a chunk of prompt
tokens beside the running rows' one token each."""

import pytest

from llmlab.core.errors import InputError
from llmlab.core.threads import torch_threads
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.autoregressive import decoding
from llmlab.generate.continuous import RunningBatch
from llmlab.models import CausalLM, ModelConfig

from ..helpers import random_prompts, wide_lm
from .test_batch import BASE, CONFIGS

EOS = 7


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: a second thread only contends (on a busy 2-core machine, 100x slower)."""
    with torch_threads(1):
        yield


CFGS = [  # each row its own settings; the fifth passes the context of 48 (25 + 30): it decodes alone
    GenerationConfig(max_new_tokens=12, temperature=0.0),
    GenerationConfig(max_new_tokens=10, temperature=0.9, seed=5, top_k=10),
    GenerationConfig(max_new_tokens=15, temperature=0.0, frequency_penalty=1.0, no_repeat_ngram_size=2),
    GenerationConfig(max_new_tokens=8, temperature=1.2, top_p=0.9, seed=2),
    GenerationConfig(max_new_tokens=30, temperature=0.0),
    GenerationConfig(max_new_tokens=12, temperature=0.7, seed=3, repetition_penalty=1.5),
    GenerationConfig(max_new_tokens=1, temperature=0.0),
]
LENGTHS = [3, 17, 1, 9, 25, 5, 2]
JOINS = {0: [0, 2], 2: [1], 3: [4, 6], 5: [3, 5]}  # step -> rows that join before it (1 is longer than all)


def run(model, prompts, cfgs, joins, alone=False, eos_id=EOS, chunk=0):
    """Each row's tokens, the rows joining at the steps `joins` gives; and the batch size of each step."""
    out = {i: [] for i in range(len(prompts))}
    sizes, running, step = [], {}, 0

    def take(rows):
        for i, row in rows:
            if row.token is not None:
                out[i].append(row.token)
            if row.finished:
                del running[i]

    with decoding(model):
        batch = RunningBatch(model, alone=alone, prefill_chunk=chunk)
        while running or step <= max(joins):
            for i in joins.get(step, []):
                running[i] = batch.add(prompts[i], cfgs[i], eos_id)
                take([(i, running[i])])  # its first token, from its prefill
            if running:
                sizes.append(len(batch.step()))
                take(list(running.items()))
            step += 1
    return [out[i] for i in range(len(prompts))], sizes


@pytest.mark.parametrize("name", CONFIGS)
def test_rows_joining_and_leaving_get_generate_s_tokens(name):
    model = wide_lm(CONFIGS[name])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, CFGS)]
    got, sizes = run(model, prompts, CFGS, JOINS)
    assert got == want
    assert max(sizes) >= 4 and sizes[-1] == 1  # rows ran together, and left as they ended


def test_rows_leave_at_their_end_token():
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    greedy = [GenerationConfig(max_new_tokens=14, temperature=0.0)] * len(prompts)
    plain = [generate(model, p, greedy[0]) for p in prompts]
    eos = max(range(BASE["vocab_size"]), key=lambda t: sum(t in o for o in plain))  # stops rows at different steps
    want = [generate(model, p, greedy[0], eos_id=eos) for p in prompts]
    got, sizes = run(model, prompts, greedy, {0: list(range(len(prompts)))}, eos_id=eos)
    assert got == want and len({len(w) for w in want}) > 2
    # a row that wrote its k-th token (EOS or the 14th) leaves before the next step
    rounds = [len(w) + (len(w) < 14) for w in want]  # tokens sampled, EOS included
    assert sizes == [sum(r > s for r in rounds) for s in range(1, max(rounds))]


def test_alone_decodes_every_row_by_itself():
    model = wide_lm(CONFIGS["learned"])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, CFGS)]
    forward, batches = model.forward, set()
    model.forward = lambda idx, *a, **kw: batches.add(idx.shape[0]) or forward(idx, *a, **kw)
    got, sizes = run(model, prompts, CFGS, JOINS, alone=True)
    assert got == want and max(sizes) >= 4 and batches == {1}  # rows at once, each with forwards of its own


@pytest.mark.parametrize("soft_prompt", [False, True])
def test_a_row_s_error_is_its_own_and_beams_are_refused(soft_prompt):
    model = wide_lm(ModelConfig(**BASE))
    if soft_prompt:  # every row decoded alone, by `stream`: its error is still its own
        from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

        apply_prompt_tuning(model, PromptConfig(n_virtual=2, init="vocab"))
    with decoding(model):
        batch = RunningBatch(model)
        ok = batch.add([1, 2, 3], GenerationConfig(max_new_tokens=5, temperature=0.0))
        # only ids 0 and 1 allowed, and never one seen before: after both, no token is left
        banned = batch.add([4, 5], GenerationConfig(max_new_tokens=5, temperature=0.0, no_repeat_ngram_size=1,
                                                    suppress_tokens=tuple(range(2, BASE["vocab_size"]))))
        assert banned.token in (0, 1)
        batch.step()
        assert banned.error is None and banned.token in (0, 1)
        batch.step()
        assert isinstance(banned.error, InputError) and banned.finished
        assert ok.error is None and not ok.finished and len(ok.ids) == 3 + 3
        with pytest.raises(InputError, match="beam search"):
            batch.add([1], GenerationConfig(num_beams=2))
        with pytest.raises(InputError, match="past the model's vocabulary"):
            batch.add([1], GenerationConfig(suppress_tokens=(99,)))


# chunk sizes: one token per step; 4 (no prompt a multiple of it: 17, 9 and 25 take 5, 3 and 7 steps, the
# rest one); and more than any prompt (each prompt one forward, a step after it was added)
@pytest.mark.parametrize("chunk", [1, 4, 64])
@pytest.mark.parametrize("name", CONFIGS)
def test_chunked_prefill_gets_generate_s_tokens(name, chunk):
    model = wide_lm(CONFIGS[name])
    prompts = random_prompts(LENGTHS, model.config.vocab_size)
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, CFGS)]
    got, sizes = run(model, prompts, CFGS, JOINS, chunk=chunk)
    assert got == want
    assert max(sizes) >= 2  # rows ran together (fewer than unchunked: they join later)


def counted(model: CausalLM) -> list[int]:
    """Wrap the model's forward: the list gets the tokens (B * T) of each call."""
    calls, forward = [], model.forward
    model.forward = lambda idx, *a, **kw: calls.append(idx.numel()) or forward(idx, *a, **kw)
    return calls


def test_no_step_runs_more_than_a_chunk_of_prompt_tokens():
    """A 30-token prompt arriving while two rows decode is prefilled 7 tokens per step, and the running rows
    write one token at each of those steps; unchunked, its one step runs all 30 (what stalls the others)."""
    model = wide_lm(CONFIGS["rope"])
    prompts = random_prompts([3, 5, 30, 2], model.config.vocab_size)
    cfg = GenerationConfig(max_new_tokens=16, temperature=0.0)
    want = [generate(model, p, cfg) for p in prompts]
    joins = {0: [0, 1], 3: [2, 3]}  # the long prompt, then a short one behind it in the queue
    calls = counted(model)
    for chunk in (0, 7):
        out, rows, prompt_tokens, wrote = [[] for _ in prompts], {}, [], []
        with decoding(model):
            batch = RunningBatch(model, prefill_chunk=chunk)
            while len(prompt_tokens) <= max(joins) or not all(r.finished for r in rows.values()):
                calls.clear()
                for i in joins.get(len(prompt_tokens), []):
                    rows[i] = batch.add(prompts[i], cfg)
                    if rows[i].token is not None:  # unchunked: its first token, from its prefill
                        out[i].append(rows[i].token)
                running = [i for i, r in rows.items() if r.token is not None and not r.finished]
                stepped = batch.step()
                wrote.append({i for i, r in rows.items() if r in stepped})
                for i in wrote[-1]:
                    out[i].append(rows[i].token)
                prompt_tokens.append(sum(calls) - len(running))  # all the step ran, less one per running row
        assert out == want
        if chunk:
            # 3 + 4 of 5, 1; 30 = 4 * 7 + 2, the 2-token prompt riding on the last: the budget, never passed
            assert prompt_tokens[:9] == [7, 1, 0, 7, 7, 7, 7, 4, 0] and max(prompt_tokens) == chunk
            assert all({0, 1} <= wrote[s] for s in range(3, 8))  # the running rows wrote a token at each step
        else:
            assert prompt_tokens[:4] == [8, 0, 0, 32]  # both prompts of a step at once, in `add`


@pytest.mark.parametrize("position", ["rope", "alibi", "learned"])
def test_chunked_prefill_of_rows_decoded_alone(position):
    """A soft prompt decodes every row alone, by `stream`: chunked, then continued from its cache."""
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

    model = wide_lm(ModelConfig(**BASE, position=position))
    apply_prompt_tuning(model, PromptConfig(n_virtual=4, init="vocab", seed=2))
    prompts = random_prompts([2, 11, 5, 35], model.config.vocab_size)  # 35 + 12 passes 48 - 4: the window slides
    cfgs = [GenerationConfig(max_new_tokens=12, temperature=0.0), GenerationConfig(max_new_tokens=12, seed=4),
            GenerationConfig(max_new_tokens=9, temperature=0.8, seed=1, repetition_penalty=1.4),
            GenerationConfig(max_new_tokens=12, temperature=0.0)]
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, cfgs)]
    calls = counted(model)
    got, _ = run(model, prompts, cfgs, {0: [0, 1], 2: [2, 3]}, chunk=4)
    assert got == want
    # the prompts ran in chunks; only the 35-token row's slid window (44 tokens) runs whole, as in `stream`
    assert 4 in calls and {n for n in calls if n > 4} == {44}


def test_dynamic_ntk_past_its_trained_length_prefills_whole():
    """Past dynamic NTK's trained length one forward rotates every key by its whole length: such a prompt is
    prefilled in `add` (its first token there), one within it in chunks, both as `generate` decodes them."""
    model = wide_lm(CONFIGS["dynamic"])  # trained 40 of 48
    prompts = random_prompts([44, 30], model.config.vocab_size)
    cfg = GenerationConfig(max_new_tokens=4, temperature=0.0)  # 30 + 3 is within 40: batched, chunked
    want = [generate(model, p, cfg) for p in prompts]
    with decoding(model):
        batch = RunningBatch(model, prefill_chunk=8)
        past, within = batch.add(prompts[0], cfg), batch.add(prompts[1], cfg)
        assert past.token is not None and past.alone is not None  # decoded alone, prefilled whole
        assert within.token is None and within.pending == 30
        out = [[past.token], []]
        while not (past.finished and within.finished):
            stepped = batch.step()
            for o, r in zip(out, (past, within)):
                if r in stepped and r.token is not None:
                    o.append(r.token)
    assert out == want


def test_a_row_removed_while_its_prompt_is_prefilled_never_runs():
    model = wide_lm(CONFIGS["rope"])
    cfg = GenerationConfig(max_new_tokens=5, temperature=0.0)
    prompts = random_prompts([20, 3], model.config.vocab_size)
    want = generate(model, prompts[1], cfg)
    calls = counted(model)
    with decoding(model):
        batch = RunningBatch(model, prefill_chunk=6)
        gone, kept = batch.add(prompts[0], cfg), batch.add(prompts[1], cfg)
        batch.step()
        batch.remove(gone)
        calls.clear()
        out = []
        while not kept.finished:
            if kept in batch.step() and kept.token is not None:
                out.append(kept.token)
    assert out == want and gone.token is None and not batch.prefilling
    assert calls == [3, 1, 1, 1, 1]  # the other's prompt, then its steps: nothing more of the removed row
    with pytest.raises(InputError, match="prefill_chunk must be >= 0"):
        RunningBatch(model, prefill_chunk=-1)
