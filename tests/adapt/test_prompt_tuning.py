"""Soft prompts and deep prompts against PEFT's PromptTuning and PrefixTuning on the exported LLaMA model
(logits, trainable counts, adapter files both ways), and their invariants: only the prompt trains, cached
generation equals uncached, each init does what it says (a text-initialised prompt reads as that text, at
every position scheme), a prompt alone learns a task, files round-trip, bad input is refused by name."""

import pytest
import torch
import torch.nn.functional as F

from llmlab.adapt.prompt_tuning import (
    DeepPrompt,
    PromptConfig,
    SoftPrompt,
    apply_prompt_tuning,
    load_prompt,
    remove_prompt,
    save_prompt,
    trainable_parameters,
)
from llmlab.core.errors import InputError
from llmlab.core.threads import torch_threads
from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig
from llmlab.nn.masks import causal_mask

from ..helpers import widen

CFG = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
KINDS = {"soft": dict(), "deep": dict(deep=True), "deep-mlp": dict(deep=True, projection=16)}


def base_model(seed: int = 0, **kw) -> CausalLM:
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(**{**CFG.__dict__, **kw})).eval()


def logits(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=x) if not isinstance(model, CausalLM) else model(x)
    return getattr(out, "logits", out)


class CharTok:
    """Ids of the letters a..z as 1..26: enough tokenizer for the text init."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) - ord("a") + 1 for c in text]


@pytest.fixture
def hf_base(tmp_path):
    """The base model as exported and loaded by transformers, and a function giving a fresh copy of it."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from llmlab.models.hf import export_hf

    export_hf(base_model(), tmp_path / "hf")
    return lambda: transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()


def peft_config(kind: str, n: int = 5):
    import peft

    if kind == "soft":
        return peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n)
    return peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, prefix_projection=kind == "deep-mlp",
                                   encoder_hidden_size=16 if kind == "deep-mlp" else None)


def copy_into_peft(prompt, theirs) -> None:
    """Our prompt's parameters into PEFT's prompt encoder (named embedding.weight, transform.0.weight, ...)."""
    params = {n.removeprefix("prompt_encoder.default."): p for n, p in theirs.named_parameters()
              if n.startswith("prompt_encoder.default.")}
    if isinstance(prompt, SoftPrompt):
        ours = {"embedding.weight": prompt.embeddings}
    elif not hasattr(prompt, "transform"):
        ours = {"embedding.weight": prompt.prefix}
    else:
        ours = {"embedding.weight": prompt.embedding,
                **{f"transform.{k}": v for k, v in prompt.transform.state_dict().items()}}
    assert set(ours) == set(params)
    with torch.no_grad():
        for name, value in ours.items():
            params[name].copy_(value)


@pytest.mark.parametrize("kind", KINDS)
def test_same_prompt_gives_pefts_logits_and_trainable_count(kind, hf_base):
    import peft

    model = base_model()
    prompt = apply_prompt_tuning(model, PromptConfig(n_virtual=5, init="random", init_std=0.5, **KINDS[kind]))
    theirs = peft.get_peft_model(hf_base(), peft_config(kind)).eval()
    assert trainable_parameters(model) == theirs.get_nb_trainable_parameters()
    copy_into_peft(prompt, theirs)
    x = torch.randint(0, CFG.vocab_size, (3, 9), generator=torch.Generator().manual_seed(1))
    ours, ref = logits(model, x), logits(theirs, x)
    if kind == "soft":  # PEFT returns the virtual positions' logits too
        assert ref.shape[1] == 5 + 9
        ref = ref[:, 5:]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(ours, logits(base_model(), x), atol=1e-3)  # the prompt shows


@pytest.mark.parametrize("kind", KINDS)
def test_saved_prompt_loads_in_peft_with_the_same_logits(kind, hf_base, tmp_path):
    import peft

    model = base_model()
    apply_prompt_tuning(model, PromptConfig(n_virtual=4, init="random", init_std=0.5, seed=3, **KINDS[kind]))
    save_prompt(model, tmp_path / "p")
    theirs = peft.PeftModel.from_pretrained(hf_base(), tmp_path / "p").eval()
    x = torch.randint(0, CFG.vocab_size, (2, 7))
    ref = logits(theirs, x)
    torch.testing.assert_close(logits(model, x), ref[:, -7:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_peft_trained_and_saved_loads_in_llmlab(kind, hf_base, tmp_path):
    import peft

    theirs = peft.get_peft_model(hf_base(), peft_config(kind, n=3)).eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in theirs.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    theirs.save_pretrained(tmp_path / "peft")
    model = base_model()
    prompt = load_prompt(model, tmp_path / "peft")
    assert prompt.n_virtual == 3 and isinstance(prompt, SoftPrompt if kind == "soft" else DeepPrompt)
    x = torch.randint(0, CFG.vocab_size, (2, 6))
    torch.testing.assert_close(logits(model, x), logits(theirs, x)[:, -6:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_prompt_trains_and_the_base_stays_bit_identical(kind):
    model = base_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random", **KINDS[kind]))
    start = {k: v.clone() for k, v in prompt.state_dict().items()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("soft_prompt.") for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    x = torch.randint(0, CFG.vocab_size, (2, 8))
    for _ in range(3):
        F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()
    assert all(not torch.equal(v, prompt.state_dict()[k]) for k, v in start.items())  # every prompt tensor moved
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in before.items())
    remove_prompt(model)
    assert model.soft_prompt is None and set(model.state_dict()) == set(before)
    assert all(p.requires_grad for p in model.parameters())  # as before the prompt


@pytest.mark.parametrize("position", ["rope", "learned", "alibi"])
@pytest.mark.parametrize("kind", ["soft", "deep"])
def test_generation_with_the_cache_equals_without(kind, position):
    model = widen(base_model(position=position))  # wider than the init: a greedy path that varies
    apply_prompt_tuning(model, PromptConfig(n_virtual=4, init="vocab", seed=2, **KINDS[kind]))
    cached = GenerationConfig(max_new_tokens=15, temperature=0.0)
    tokens = generate(model, [1, 2, 3], cached)
    assert tokens == generate(model, [1, 2, 3], GenerationConfig(max_new_tokens=15, temperature=0.0, use_cache=False))
    assert len(set(tokens)) > 2
    beams = GenerationConfig(max_new_tokens=8, num_beams=3)
    assert generate(model, [1, 2, 3], beams) == generate(model, [1, 2, 3], GenerationConfig(
        max_new_tokens=8, num_beams=3, use_cache=False))


@pytest.mark.parametrize("position", ["rope", "learned", "sinusoidal", "alibi", "none"])
def test_a_text_initialised_prompt_reads_as_that_text_soft_or_deep(position):
    """At init, virtual tokens holding the text's embeddings (or, deep, the keys and values the model
    computes for it) are the text itself at positions 0..n-1: the logits after it are the plain model's."""
    model = base_model(position=position)
    text = "abcde"
    ids = CharTok().encode(text)
    x = torch.tensor([[7, 8, 9, 10]])
    plain = logits(model, torch.cat([torch.tensor([ids]), x], 1))[:, len(ids):]
    for deep in (False, True):
        apply_prompt_tuning(model, PromptConfig(n_virtual=len(ids), init="text", init_text=text, deep=deep), CharTok())
        torch.testing.assert_close(logits(model, x), plain, atol=1e-5, rtol=1e-4)
        remove_prompt(model)


def test_each_init_does_what_it_says():
    model = base_model()
    emb = model.embed_tokens.weight
    p = apply_prompt_tuning(model, PromptConfig(n_virtual=7, init="text", init_text="abc"), CharTok())
    assert torch.equal(p.embeddings, emb[[1, 2, 3, 1, 2, 3, 1]])  # repeated to n_virtual, as PEFT's TEXT
    remove_prompt(model)
    p = apply_prompt_tuning(model, PromptConfig(n_virtual=2, init="text", init_text="abcdef"), CharTok())
    assert torch.equal(p.embeddings, emb[[1, 2]])  # cut
    remove_prompt(model)
    p = apply_prompt_tuning(model, PromptConfig(n_virtual=6, init="vocab", seed=4))
    rows = [(emb == r).all(1).nonzero().flatten().tolist() for r in p.embeddings]
    assert all(len(r) == 1 for r in rows)  # each vector is one token's embedding
    q = remove_prompt(model)
    assert torch.equal(apply_prompt_tuning(model, PromptConfig(n_virtual=6, init="vocab", seed=4)).embeddings,
                       q.embeddings)  # seeded
    remove_prompt(model)
    p = apply_prompt_tuning(model, PromptConfig(n_virtual=31, init="random"))  # default std: the table's
    assert abs(float(p.embeddings.std()) / float(emb.std()) - 1) < 0.1
    remove_prompt(model)
    p = apply_prompt_tuning(model, PromptConfig(n_virtual=30, init="random", init_std=0.25, deep=True))
    assert abs(float(p.prefix.std()) - 0.25) < 0.02


def test_a_prompt_alone_learns_to_answer_a_fixed_input():
    # a frozen head of the default init (std 0.02) caps every logit below 1: a base with larger weights
    # stands in for a pretrained one
    model = base_model(init_std=0.3).train()
    apply_prompt_tuning(model, PromptConfig(n_virtual=8, init="vocab", seed=0))
    question, answer = [1, 2, 3], [30, 31, 32, 33]
    seq = torch.tensor([question + answer])
    target = seq[:, 1:].masked_fill(torch.arange(seq.shape[1] - 1) < len(question) - 1, -100)  # the answer only
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    losses = []
    with torch_threads(1):
        for _ in range(150):
            loss = F.cross_entropy(model(seq[:, :-1]).flatten(0, 1), target.flatten(), ignore_index=-100)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    assert generate(model, question, GenerationConfig(max_new_tokens=4, temperature=0.0)) == answer
    remove_prompt(model)
    assert generate(model, question, GenerationConfig(max_new_tokens=4, temperature=0.0)) != answer


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_is_exact(kind, tmp_path):
    model = base_model()
    prompt = apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random", seed=9, **KINDS[kind]))
    save_prompt(model, tmp_path / "p")
    other = base_model()
    loaded = load_prompt(other, tmp_path / "p")
    assert type(loaded) is type(prompt) and loaded.config == prompt.config
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in prompt.state_dict().items())
    x = torch.randint(0, CFG.vocab_size, (2, 6))
    assert torch.equal(logits(model, x), logits(other, x))


def test_a_mask_covers_the_real_tokens_and_the_prompt_is_always_seen():
    model = base_model()
    apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random"))
    x = torch.randint(0, CFG.vocab_size, (2, 6))
    torch.testing.assert_close(logits(model, x), model(x, mask=causal_mask(6)).detach(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["soft", "deep"])
def test_context_counts_the_virtual_tokens_and_generation_slides_past_it(kind):
    model = widen(base_model())
    apply_prompt_tuning(model, PromptConfig(n_virtual=5, init="random", **KINDS[kind]))
    model(torch.zeros(1, CFG.max_seq_len - 5, dtype=torch.long))
    with pytest.raises(ValueError, match="beyond the context length"):
        model(torch.zeros(1, CFG.max_seq_len - 4, dtype=torch.long))
    long = list(range(1, 31))  # cut on the left to the 27 positions the prompt leaves
    for cfg in (GenerationConfig(max_new_tokens=12, temperature=0.0), GenerationConfig(max_new_tokens=6, num_beams=2)):
        uncached = GenerationConfig(**{**cfg.__dict__, "use_cache": False})
        assert generate(model, long, cfg) == generate(model, long, uncached)


@pytest.mark.parametrize("kw, match", [
    (dict(n_virtual=0), "n_virtual must be an integer >= 1"),
    (dict(init="text"), "needs a non-empty init_text"),
    (dict(init="words"), "init must be one of"),
    (dict(projection=8), "deep prompts only"),
    (dict(deep=True, projection=8, init="vocab"), "use init 'random'"),
    (dict(init_std=-1.0), "init_std must be"),
])
def test_config_errors(kw, match):
    with pytest.raises(InputError, match=match):
        PromptConfig(**kw)


def test_usage_errors_name_the_problem(tmp_path):
    model = base_model()
    with pytest.raises(InputError, match="encodes to no tokens"):
        silent = type("Silent", (), {"encode": lambda self, text: []})()
        apply_prompt_tuning(model, PromptConfig(init="text", init_text=" "), tok=silent)
    with pytest.raises(InputError, match="needs the model's tokenizer"):
        apply_prompt_tuning(model, PromptConfig(init="text", init_text="abc"))
    with pytest.raises(InputError, match="no room"):
        apply_prompt_tuning(model, n_virtual=CFG.max_seq_len)
    assert model.soft_prompt is None and all(p.requires_grad for p in model.parameters())  # untouched
    apply_prompt_tuning(model, n_virtual=3)
    with pytest.raises(InputError, match="already has a soft prompt"):
        apply_prompt_tuning(model, n_virtual=3)
    save_prompt(model, tmp_path / "p")
    other = base_model(dim=64)
    with pytest.raises(InputError, match="width 32, but this model's is 64: it was made for another model"):
        load_prompt(other, tmp_path / "p")
    assert other.soft_prompt is None
    load_prompt(base_model(n_layer=3), tmp_path / "p")  # input vectors fit any depth of that width
    remove_prompt(model)
    apply_prompt_tuning(model, n_virtual=3, deep=True)
    save_prompt(model, tmp_path / "d")
    with pytest.raises(InputError, match="made for another model"):
        load_prompt(base_model(n_layer=3), tmp_path / "d")
    with pytest.raises(InputError, match="does not exist"):
        load_prompt(base_model(), tmp_path / "nowhere")
    with pytest.raises(InputError, match="no soft prompt"):
        save_prompt(base_model(), tmp_path / "q")
    from llmlab.models import save_model

    with pytest.raises(InputError, match="carries a soft prompt: save it with"):
        save_model(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("deep", [False, True])
def test_a_damaged_prompt_folder_is_named(deep, tmp_path):
    """A prompt_config.json whose "model" was null or held a quoted size was a TypeError traceback; a NaN in
    prompt.safetensors loaded, and generation then said the model's weights had diverged."""
    import json

    from safetensors.torch import load_file, save_file

    model = base_model()
    apply_prompt_tuning(model, n_virtual=3, deep=deep)
    save_prompt(model, tmp_path / "p")
    config, weights = tmp_path / "p" / "prompt_config.json", tmp_path / "p" / "prompt.safetensors"
    doc = json.loads(config.read_text())
    size = "head_dim" if deep else "dim"
    for m in (None, [], {**doc["model"], size: str(doc["model"][size])}, {**doc["model"], size: 0}):
        config.write_text(json.dumps({**doc, "model": m}))
        with pytest.raises(InputError, match=rf"prompt_config\.json': 'model' must give the model's .*{size}"):
            load_prompt(base_model(), tmp_path / "p")
    config.write_text(json.dumps(doc))
    state = load_file(weights)
    next(iter(state.values())).view(-1)[0] = float("nan")
    save_file(state, weights)
    with pytest.raises(InputError, match=r"prompt weights .*prompt\.safetensors' are damaged: .* NaN or infinite"):
        load_prompt(base_model(), tmp_path / "p")


# --- llmlab sft --prompt-tuning -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft_base(tmp_path_factory):
    """A tiny character-level base model (context 32) saved with its tokenizer, as test_sft's."""
    from llmlab.data.corpora import arithmetic
    from llmlab.models import save_model
    from llmlab.tokenizers import CharTokenizer

    tok = CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+")])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=32))
    return save_model(model, tmp_path_factory.mktemp("base") / "model", tok)


def sft(base, tmp_path, *flags, name="pt"):
    from llmlab.cli import main

    with torch_threads(1):
        return main(["sft", "--model", str(base), "--name", name, "--out", str(tmp_path / "runs"),
                     "--arithmetic-max-digits", "2", "--arithmetic-ops", "+", "--arithmetic-train", "500",
                     "--general-tokens", "500", "--seq-len", "24", "--batch-size", "16", "--eval-problems", "4",
                     "--eval-every", "0", *flags])


@pytest.mark.parametrize("deep", [False, True])
def test_sft_trains_the_prompt_and_chat_rows_only_and_chat_reads_the_prompt(deep, sft_base, tmp_path, capsys,
                                                                            monkeypatch):
    import io
    import json

    from llmlab.cli import main
    from llmlab.models import load_model

    flags = ["--steps", "20", "--lr", "3e-2", "--prompt-tuning", "6", *(["--deep"] if deep else [])]
    assert sft(sft_base, tmp_path, *flags) == 0
    run = tmp_path / "runs" / "pt"
    summary = json.loads((run / "summary.json").read_text())
    base, base_tok = load_model(sft_base)
    tuned, tok = load_model(run / "model")  # the base, grown by the chat tokens; no prompt inside
    d, n_new = base.config.dim, tok.vocab_size - base_tok.vocab_size
    prompt_size = 6 * (2 * 2 * 2 * 16 if deep else d)  # deep: 2 layers x (k, v) x 2 kv heads x 16
    assert summary["trainable_parameters"] == prompt_size + n_new * d and summary["last_train_loss"] < 3
    for name, p in base.state_dict().items():
        new = tuned.state_dict()[name]
        assert torch.equal(new[: p.shape[0]] if name in ("embed_tokens.weight", "lm_head.weight") else new, p), name
    assert sorted(p.name for p in (run / "prompt").iterdir()) == sorted(
        ["prompt_config.json", "prompt.safetensors", "adapter_config.json", "adapter_model.safetensors"])
    assert "Soft prompt: 6 virtual tokens" in (run / "report.md").read_text()
    first = summary["after"]["chat_samples"][0]  # (question, gold, the tuned model's answer)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(f"{first[0]}\n".encode())))
    capsys.readouterr()
    assert main(["chat", "--model", str(run / "model"), "--soft-prompt", str(run / "prompt"),
                 "--max-new-tokens", "12"]) == 0  # as many as the run's answers
    assert capsys.readouterr().out.splitlines() == [first[2]]  # the answer the run measured, prompt and all
    assert main(["generate", "--model", str(run / "model"), "--soft-prompt", str(run / "prompt"), "--prompt", "12+",
                 "--max-new-tokens", "3"]) == 0


@pytest.mark.parametrize("kw, message", [
    (dict(prompt_tuning=4, lora_r=4), "choose one"),
    (dict(prompt_deep=True), "give its length with --prompt-tuning N"),
    (dict(prompt_tuning=4, prompt_init="text"), "needs a non-empty init_text"),
    (dict(prompt_tuning=4, prompt_init_text="12"), "is read by --prompt-init text"),
    (dict(prompt_tuning=-1), "prompt_tuning must be >= 0"),
])
def test_sft_config_refuses_prompt_settings_that_make_no_sense(kw, message):
    from llmlab.adapt.sft_config import SFTConfig

    with pytest.raises(InputError, match=message):
        SFTConfig(**kw)


def test_sft_command_refuses_weight_decay_and_a_prompt_that_leaves_no_room(sft_base, tmp_path, capsys):
    assert sft(sft_base, tmp_path, "--steps", "1", "--prompt-tuning", "4", "--deep", "--weight-decay", "0.1") == 2
    assert "weight decay" in capsys.readouterr().err
    assert sft(sft_base, tmp_path, "--steps", "1", "--prompt-tuning", "9") == 2
    assert "exceed the base model's context of 32: lower --seq-len to 23" in capsys.readouterr().err
    assert sft(sft_base, tmp_path, "--steps", "1", "--prompt-tuning", "40") == 2  # no --seq-len would fit
    assert "context of 32: use fewer than 32 virtual tokens" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "pt").exists()


def test_a_resumed_prompt_tuning_run_equals_the_uninterrupted_one(sft_base, tmp_path):
    """Checkpoints hold the prompt (soft_prompt.* in the model's state): a run stopped after step 3 and
    resumed on a model with other weights ends where the uninterrupted one does."""
    import dataclasses
    import json

    from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
    from llmlab.adapt.sft import SFT_TRAIN, SFTTrainer, arithmetic_conversations, encode_examples
    from llmlab.data.corpora import arithmetic
    from llmlab.models import load_model

    cfg = dataclasses.replace(SFT_TRAIN, steps=6, batch_size=4, seq_len=20, warmup_steps=2, eval_every=0,
                              checkpoint_every=3, log_every=1, device="cpu", lr=1e-2)

    def trainer(run_dir, seed=0):
        model, tok = load_model(sft_base)
        tok = add_chat_tokens(model, tok)
        apply_prompt_tuning(model, PromptConfig(n_virtual=4, init="random", seed=seed, deep=True))
        convs = arithmetic_conversations(arithmetic(32, max_digits=2, ops="+"))
        data = encode_examples(ChatTemplate(), tok, convs, 21)[0]
        return SFTTrainer(model, cfg, data, data[:4], run_dir, tok.pad_id)

    with torch_threads(1):
        whole = trainer(tmp_path / "whole")
        whole.fit()
        first = trainer(tmp_path / "split")
        for _ in range(3):
            first.metrics.write(first.train_step())
        first.save()
        second = trainer(tmp_path / "split", seed=1)  # another prompt: it must come from the checkpoint
        assert second.maybe_resume() and second.step == 3
        second.fit()
    losses = [[r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for d in (tmp_path / "whole", tmp_path / "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    assert torch.equal(whole.model.soft_prompt.prefix, second.model.soft_prompt.prefix)


def test_the_projection_is_seeded_and_leaves_the_global_generator_alone():
    model = base_model()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random", deep=True, projection=8, seed=5))
    assert torch.equal(torch.get_rng_state(), state)
    remove_prompt(model)
    b = apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random", deep=True, projection=8, seed=5))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
