"""Banned tokens (``suppress_tokens``) and banned sequences (``bad_words_ids``): against Hugging Face's
processors and its `generate` on the same weights (the `model` and `hf_model` of conftest.py), against
their definition, in sampling, and through `llmlab generate --suppress / --no-unk / --bad-words`."""

import dataclasses
import json
import logging

import pytest
import torch

from llmlab.cli import main
from llmlab.core.config import config_from_dict
from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.penalties import apply_penalties, bad_words, suppress_tokens
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer


def favouring(bias: torch.Tensor, max_seq_len: int = 32) -> CausalLM:
    """A model whose next-token logits are about `bias` (V,) whatever the context: every embedding
    carries a large feature 0 (the rest of the stream is small at init), which the final RMSNorm scales to
    about sqrt(dim) and the untied head's column 0 turns into a logit per token."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(bias), dim=32, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=max_seq_len,
                      tie_embeddings=False)
    model = CausalLM(cfg).eval()
    with torch.no_grad():
        model.embed_tokens.weight[:, 0] = 10.0
        model.lm_head.weight[:, 0] = bias / cfg.dim**0.5
    return model


def random_bans(g, ids: torch.Tensor, vocab: int) -> list[list[int]]:
    """1-6 sequences of 1-4 ids: random ones, ones whose prefix ends a row of `ids` (so they fire), and
    suffixes of earlier ones (overlapping bans)."""
    rint = lambda hi: int(torch.randint(hi, (1,), generator=g))  # noqa: E731
    seqs: list[list[int]] = []
    for _ in range(1 + rint(6)):
        n, kind = 1 + rint(4), rint(3)
        if kind == 1 and ids.shape[1] >= n - 1:
            seqs.append(ids[rint(ids.shape[0]), ids.shape[1] - n + 1:].tolist() + [rint(vocab)])
        elif kind == 2 and seqs and len(seqs[-1]) > 1:
            seqs.append(seqs[-1][1:])
        else:
            seqs.append(torch.randint(vocab, (n,), generator=g).tolist())
    return seqs


def test_bans_match_transformers_processors():
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(0)
    fired = 0
    for _ in range(200):
        length, vocab = int(torch.randint(0, 12, (1,), generator=g)), 9
        logits, ids = torch.randn(4, vocab, generator=g) * 3, torch.randint(0, vocab, (4, length), generator=g)
        seqs = random_bans(g, ids, vocab)
        ref = lp.NoBadWordsLogitsProcessor(seqs)(ids, logits.clone())
        if torch.isinf(ref).all(-1).any():
            with pytest.raises(InputError, match="bad_words_ids bans every token"):
                bad_words(logits, ids, tuple(map(tuple, seqs)))
        else:
            assert torch.equal(bad_words(logits, ids, tuple(map(tuple, seqs))), ref), (ids, seqs)
        fired += sum(len(s) > 1 and row[len(row) - len(s) + 1:] == s[:-1] for row in ids.tolist() for s in seqs)
        sup = torch.randint(vocab, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
        assert torch.equal(suppress_tokens(logits, tuple(sup)), lp.SuppressTokensLogitsProcessor(sup)(ids, logits))
    assert fired > 100  # many cases where a longer sequence's prefix ended a row


def test_bans_ban_exactly_what_their_definition_says():
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        logits, ids = torch.randn(3, 8, generator=g), torch.randint(0, 8, (3, 6), generator=g)
        seqs, sup = random_bans(g, ids, 8), torch.randint(8, (2,), generator=g).tolist()
        cfg = GenerationConfig(suppress_tokens=sup, bad_words_ids=seqs)
        for r, row in enumerate(ids.tolist()):
            want = [t in sup or any(s[-1] == t and row[len(row) - len(s) + 1:] == s[:-1] for s in seqs)
                    for t in range(8)]
            if all(want):
                with pytest.raises(InputError, match="bans every token"):
                    apply_penalties(logits[r:r + 1], ids[r:r + 1], 6, cfg)
            else:
                assert torch.isinf(apply_penalties(logits[r:r + 1], ids[r:r + 1], 6, cfg))[0].tolist() == want


def test_bans_with_an_ngram_ban_match_transformers_processor_list():
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        logits, ids = torch.randn(3, 9, generator=g) * 3, torch.randint(0, 9, (3, 10), generator=g)
        seqs, sup = random_bans(g, ids, 9), torch.randint(9, (3,), generator=g).tolist()
        cfg = GenerationConfig(no_repeat_ngram_size=2, repetition_penalty=1.3, suppress_tokens=sup, bad_words_ids=seqs)
        ref = lp.LogitsProcessorList([lp.RepetitionPenaltyLogitsProcessor(1.3), lp.NoRepeatNGramLogitsProcessor(2),
                                      lp.NoBadWordsLogitsProcessor(seqs), lp.SuppressTokensLogitsProcessor(sup)])(
            ids, logits.clone())
        if torch.isinf(ref).all(-1).any():  # together they ban everything: the last ban to act says so
            with pytest.raises(InputError, match="bans every token"):
                apply_penalties(logits, ids, 4, cfg)
        else:
            assert torch.equal(apply_penalties(logits, ids, 4, cfg), ref)


def test_greedy_decoding_with_bans_matches_transformers(model, hf_model):
    prompt = [1, 5, 9, 5, 2]
    plain = generate(model, prompt, GenerationConfig(max_new_tokens=15, temperature=0))
    for kw in [dict(suppress_tokens=[plain[0], plain[3]]), dict(bad_words_ids=[[plain[2]]]),
               dict(bad_words_ids=[plain[3:5], plain[6:9], [prompt[-1], plain[0]]]),  # one across the prompt's end
               dict(bad_words_ids=[plain[2:5], plain[3:5], plain[4:6]], suppress_tokens=[plain[8]]),
               dict(bad_words_ids=[plain[1:3]], suppress_tokens=[plain[5]], no_repeat_ngram_size=2)]:
        ours = generate(model, prompt, GenerationConfig(max_new_tokens=15, temperature=0, **kw))
        theirs = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=15, **kw)
        assert ours == theirs[0, len(prompt):].tolist() and ours != plain, kw


def test_a_one_token_bad_word_of_eos_is_ignored_as_in_transformers(model, hf_model, caplog):
    prompt = [1, 5, 9]
    plain = generate(model, prompt, GenerationConfig(max_new_tokens=12, temperature=0))
    eos, kw = plain[6], dict(max_new_tokens=12, temperature=0)
    with caplog.at_level(logging.WARNING, logger="llmlab.generate.penalties"):
        ours = generate(model, prompt, GenerationConfig(bad_words_ids=[[eos], plain[1:3]], **kw), eos_id=eos)
    assert "is EOS and is ignored" in caplog.text
    assert ours == generate(model, prompt, GenerationConfig(bad_words_ids=[plain[1:3]], **kw), eos_id=eos)
    out = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12, eos_token_id=eos,
                            pad_token_id=eos, bad_words_ids=[[eos], plain[1:3]])[0, len(prompt):].tolist()
    assert ours == (out[:out.index(eos)] if eos in out else out)
    # suppress_tokens does forbid EOS, in both
    ours = generate(model, prompt, GenerationConfig(suppress_tokens=[eos], **kw), eos_id=eos)
    out = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12, eos_token_id=eos,
                            pad_token_id=eos, suppress_tokens=[eos])[0, len(prompt):].tolist()
    assert ours == out and len(ours) == 12 and eos not in ours


def test_beam_search_with_bans_matches_transformers(model, hf_model):
    prompt, eos = [6, 2, 9], 10
    plain = generate(model, prompt, GenerationConfig(num_beams=3, max_new_tokens=12), eos_id=eos)
    assert len(plain) >= 7  # room for bans inside the output
    for kw in [dict(suppress_tokens=[plain[0], plain[2]]), dict(suppress_tokens=[eos, plain[1]]),
               dict(bad_words_ids=[plain[1:3]]), dict(bad_words_ids=[[plain[4]], plain[2:4], plain[3:6]]),
               dict(bad_words_ids=[plain[5:7], [prompt[-1], plain[0]]], suppress_tokens=[plain[3]],
                    no_repeat_ngram_size=2, repetition_penalty=1.5)]:
        ours = generate(model, prompt, GenerationConfig(num_beams=3, max_new_tokens=12, **kw), eos_id=eos)
        out = hf_model.generate(torch.tensor([prompt]), num_beams=3, max_new_tokens=12, do_sample=False,
                                eos_token_id=eos, pad_token_id=eos, **kw)[0, len(prompt):].tolist()
        assert ours == (out[:out.index(eos)] if eos in out else out) and ours != plain, kw


def test_beam_search_with_random_bans_matches_transformers(model, hf_model):
    g = torch.Generator().manual_seed(3)
    pick = lambda options: options[int(torch.randint(len(options), (1,), generator=g))]  # noqa: E731
    for _ in range(12):
        prompt = torch.randint(0, 40, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
        kw = dict(num_beams=pick([2, 3, 5]), length_penalty=pick([0.0, 1.0, 2.0]), max_new_tokens=pick([4, 10]))
        eos = pick([31, 16, 10, 35])
        plain = generate(model, prompt, GenerationConfig(**kw), eos_id=eos)
        seen = torch.tensor([prompt + plain[:int(torch.randint(len(plain) + 1, (1,), generator=g))]])
        kw |= dict(suppress_tokens=torch.randint(40, (2,), generator=g).tolist(),
                   bad_words_ids=random_bans(g, seen, 40))  # some end like the plain output at some step
        ours = generate(model, prompt, GenerationConfig(**kw), eos_id=eos)
        out = hf_model.generate(torch.tensor([prompt]), do_sample=False, eos_token_id=eos, pad_token_id=eos,
                                **kw)[0, len(prompt):].tolist()
        assert ours == (out[:out.index(eos)] if eos in out else out), (prompt, eos, kw)


@pytest.mark.parametrize("use_cache", [True, False])
def test_sampling_never_writes_what_is_banned(use_cache):
    """Tokens 5 and 7 take about 90% of the mass; 200 tokens at temperature 1 slide past the context of 32."""
    model = favouring(torch.tensor([0.0] * 5 + [4.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]))
    prompt, kw = [1, 2], dict(max_new_tokens=200, temperature=1.0, use_cache=use_cache)

    def bigrams(out):
        seq = prompt + out
        return set(zip(seq, seq[1:]))

    for seed in range(3):
        plain = generate(model, prompt, GenerationConfig(seed=seed, **kw))
        assert plain.count(5) > 60 and {(5, 5), (7, 5), (5, 7)} <= bigrams(plain)
        out = generate(model, prompt, GenerationConfig(seed=seed, suppress_tokens=[5], **kw))
        assert 5 not in out and out.count(7) > 120
        out = generate(model, prompt, GenerationConfig(seed=seed, bad_words_ids=[[5, 5], [7, 5]], **kw))
        assert not {(5, 5), (7, 5)} & bigrams(out) and (5, 7) in bigrams(out)


def test_config_takes_lists_and_stays_hashable():
    cfg = GenerationConfig(suppress_tokens=[3, 1], bad_words_ids=[[1, 2], (3,)])
    assert cfg == GenerationConfig(suppress_tokens=(3, 1), bad_words_ids=((1, 2), (3,)))
    assert hash(cfg) == hash(GenerationConfig(suppress_tokens=(3, 1), bad_words_ids=((1, 2), (3,))))
    assert config_from_dict(GenerationConfig, json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert GenerationConfig(suppress_tokens=torch.tensor([4, 2])).suppress_tokens == (4, 2)


@pytest.mark.parametrize("kw,msg", [
    (dict(suppress_tokens=[-1]), "suppress_tokens must hold token ids >= 0, got -1"),
    (dict(suppress_tokens=[1.5]), r"suppress_tokens must hold token ids \(ints\), got 1.5"),
    (dict(suppress_tokens=[True]), r"suppress_tokens must hold token ids \(ints\), got True"),
    (dict(suppress_tokens="<unk>"), "suppress_tokens must be a sequence of token ids, got '<unk>'"),
    (dict(suppress_tokens=3), "suppress_tokens must be a sequence of token ids, got 3"),
    (dict(bad_words_ids=[[1], []]), r"bad_words_ids\[1\] must hold at least one token id"),
    (dict(bad_words_ids=[1, 2]), r"bad_words_ids\[0\] must be a sequence of token ids, got 1"),
    (dict(bad_words_ids=[[0, -2]]), r"bad_words_ids\[0\] must hold token ids >= 0, got -2"),
    (dict(bad_words_ids="ab"), "bad_words_ids must be a list of token id sequences, got 'ab'"),
])
def test_bad_ban_settings_are_clear_errors(kw, msg):
    with pytest.raises(InputError, match=msg):
        GenerationConfig(**kw)


@pytest.mark.parametrize("beams", [1, 3])
def test_bans_past_the_vocabulary_or_of_everything_are_clear_errors(model, beams):
    run = lambda **kw: generate(model, [1, 2], GenerationConfig(max_new_tokens=3, num_beams=beams, **kw))  # noqa: E731
    with pytest.raises(InputError, match=r"suppress_tokens holds token ids \[40, 41\] past the model's vocabulary "
                                         r"of 40 \(ids 0..39\)"):
        run(suppress_tokens=[41, 3, 40])
    with pytest.raises(InputError, match=r"bad_words_ids holds token ids \[99\] past the model's vocabulary of 40"):
        run(bad_words_ids=[[1], [2, 99]])
    with pytest.raises(InputError, match=r"suppress_tokens bans every token of the vocabulary \(40\)"):
        run(suppress_tokens=range(40))
    with pytest.raises(InputError, match=r"bad_words_ids bans every token"):
        run(bad_words_ids=[[i] for i in range(40)])
    with pytest.raises(InputError, match=r"suppress_tokens bans every token"):  # the last of the bans to act
        run(suppress_tokens=range(20), bad_words_ids=[[i] for i in range(20, 40)])
    assert run(suppress_tokens=range(1, 40)) == [0, 0, 0]


# --- the CLI ---------------------------------------------------------------------------------------------

TEXT = ["中国经济发展", "北京新年人民"]


@pytest.fixture(scope="module")
def unk_model(tmp_path_factory):
    """A character model that writes <unk> (id 0) most often (about 40%), 中 and 国 next; no other special
    token (EOS would end the output)."""
    tok = CharTokenizer.train(TEXT)
    bias = torch.zeros(tok.vocab_size)
    bias[[tok.bos_id, tok.eos_id, tok.pad_id]] = -30.0
    bias[tok.unk_id] = 3.5
    bias[tok.token_to_id("中")] = bias[tok.token_to_id("国")] = 3.0
    return save_model(favouring(bias), tmp_path_factory.mktemp("unk") / "model", tok)


def generate_cli(model_dir, capsys, *flags: str, prompt: str = "经济") -> str:
    """What `llmlab generate` writes after the prompt: 30 characters at temperature 1."""
    assert main(["generate", "--model", str(model_dir), "--prompt", prompt, "--max-new-tokens", "30",
                 "--temperature", "1", *flags]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(prompt)
    return line[len(prompt):]


def test_cli_no_unk_takes_unk_out_of_the_output(unk_model, capsys):
    assert generate_cli(unk_model, capsys).count("<unk>") > 5
    out = generate_cli(unk_model, capsys, "--no-unk")
    assert "<unk>" not in out and len(out) == 30 and "中" in out  # 30 characters, none of them <unk>


def test_cli_suppress_and_bad_words(unk_model, capsys):
    assert "国" in generate_cli(unk_model, capsys) and "中国" in generate_cli(unk_model, capsys, "--no-unk")
    assert "国" not in generate_cli(unk_model, capsys, "--suppress", "国", "<unk>")
    out = generate_cli(unk_model, capsys, "--no-unk", "--bad-words", "中国", "国国", "--bad-words", "中中")
    assert "中国" not in out and "国国" not in out and "中中" not in out and "国" in out
    # a bad word that the prompt starts: its last token cannot follow the prompt
    assert not generate_cli(unk_model, capsys, "--no-unk", "--bad-words", "中国", prompt="中").startswith("国")


def test_cli_compare_applies_the_bans_to_every_strategy(unk_model, capsys):
    def outputs(*flags):
        assert main(["generate", "--model", str(unk_model), "--compare", "--prompt", "经济", "--max-new-tokens",
                     "8", *flags]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]

    assert sum("<unk>" in line for line in outputs()) >= 6  # greedy and beams write nothing else
    lines = outputs("--no-unk")
    assert len(lines) > 5 and not any("<unk>" in line for line in lines)


@pytest.mark.parametrize("flags,msg", [
    (["--suppress", "猫"], "--suppress: '猫' is not a token of the model's tokenizer"),
    (["--suppress", "中国"], "--suppress: '中国' is not a token"),
    (["--bad-words", "猫"], "--bad-words: '猫' holds characters the tokenizer does not know"),
    (["--bad-words", ""], "--bad-words: '' encodes to no tokens"),
])
def test_cli_bad_bans_are_one_line_errors(unk_model, capsys, flags, msg):
    assert main(["generate", "--model", str(unk_model), "--prompt", "经济", *flags]) == 2
    assert msg in capsys.readouterr().err


def test_cli_no_unk_without_an_unk_token_does_nothing(unk_model, capsys, caplog, monkeypatch):
    """A foreign tokenizer may lack <unk> (GPT-2's): it cannot write one, so there is nothing to ban."""
    monkeypatch.setattr(CharTokenizer, "token_to_id", lambda self, t: None if t == "<unk>" else self.stoi.get(t))
    with caplog.at_level(logging.INFO, logger="llmlab.cli.generate"):
        out = generate_cli(unk_model, capsys, "--no-unk")
    assert "nothing to suppress" in caplog.text and out == generate_cli(unk_model, capsys)
