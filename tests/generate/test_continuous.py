"""A running batch that rows join and leave between steps (`RunningBatch`): every row gets the tokens
`generate` gives it alone, whatever joined before or after it, at every position scheme; greedy, seeded
sampling with its own settings, penalties and EOS; rows past the context decode alone, as `generate` does."""

import pytest

from llmlab.core.errors import InputError
from llmlab.core.threads import torch_threads
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.autoregressive import decoding
from llmlab.generate.continuous import RunningBatch
from llmlab.models import ModelConfig

from .test_batch import BASE, CONFIGS, prompts_of, wide

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


def run(model, prompts, cfgs, joins, alone=False, eos_id=EOS):
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
        batch = RunningBatch(model, alone=alone)
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
    model = wide(CONFIGS[name])
    prompts = prompts_of(LENGTHS, model.config.vocab_size)
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, CFGS)]
    got, sizes = run(model, prompts, CFGS, JOINS)
    assert got == want
    assert max(sizes) >= 4 and sizes[-1] == 1  # rows ran together, and left as they ended


def test_rows_leave_at_their_end_token():
    model = wide(CONFIGS["rope"])
    prompts = prompts_of(LENGTHS, model.config.vocab_size)
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
    model = wide(CONFIGS["learned"])
    prompts = prompts_of(LENGTHS, model.config.vocab_size)
    want = [generate(model, p, c, eos_id=EOS) for p, c in zip(prompts, CFGS)]
    forward, batches = model.forward, set()
    model.forward = lambda idx, *a, **kw: batches.add(idx.shape[0]) or forward(idx, *a, **kw)
    got, sizes = run(model, prompts, CFGS, JOINS, alone=True)
    assert got == want and max(sizes) >= 4 and batches == {1}  # rows at once, each with forwards of its own


def test_a_row_s_error_is_its_own_and_beams_are_refused():
    model = wide(ModelConfig(**BASE))
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
