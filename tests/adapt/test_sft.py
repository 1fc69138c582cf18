"""Supervised fine-tuning: the masked loss by hand, padding, exact resume, frozen parameters, a tiny
model that learns the arithmetic answer format, and the sft / chat commands."""

import dataclasses
import io
import json

import pytest
import torch
import torch.nn.functional as F

from llmlab.adapt.batching import first_fit, pack_batch, pack_rows, pad_batch
from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.adapt.sft import SFT_TRAIN, SFTTrainer, arithmetic_conversations, encode_examples
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig, load_model, save_model
from llmlab.tokenizers import CharTokenizer
from llmlab.train.objectives import causal_lm_loss, weighted_lm_loss

T = ChatTemplate()


def tiny_model(tok, seed=0):
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=32))


@pytest.fixture(scope="module")
def base_tok():
    return CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+")])


@pytest.fixture(scope="module")
def base_dir(base_tok, tmp_path_factory):
    d = tmp_path_factory.mktemp("base") / "model"
    save_model(tiny_model(base_tok), d, base_tok)
    return d


def examples(tok, n=64, split="train"):
    convs = arithmetic_conversations(arithmetic(n, split, max_digits=2, ops="+-"))
    return encode_examples(T, tok, convs, 25)[0]


def test_masked_loss_is_the_cross_entropy_of_the_reply_tokens_only(base_tok):
    tok = add_chat_tokens(None, base_tok)
    batch = examples(tok, 3)
    x, y, w = pad_batch(batch, tok.pad_id, 0.0)
    logits = torch.randn(*x.shape, tok.vocab_size)
    nll, n = 0.0, 0
    for b, (ids, mask) in enumerate(batch):  # by hand: position t predicts token t + 1 where that one is learned
        for t in range(len(ids) - 1):
            if mask[t + 1]:
                nll -= F.log_softmax(logits[b, t], -1)[ids[t + 1]].item()
                n += 1
    assert weighted_lm_loss(logits, y, w).item() == pytest.approx(nll / n, rel=1e-5)
    assert n == sum(len(tok.encode(p.answer)) + 1 for p in arithmetic(3, max_digits=2, ops="+-"))
    assert ((y == -100) == (w == 0)).all() and (x[w == 0][-1:] == tok.pad_id).all()


def test_prompt_loss_weight_one_is_the_plain_causal_loss(base_tok):
    tok = add_chat_tokens(None, base_tok)
    batch = [ex for ex in examples(tok, 20) if len(ex[0]) == len(examples(tok, 20)[0][0])][:4]  # no padding
    x, y, w = pad_batch(batch, tok.pad_id, 1.0)
    assert (y != -100).all()
    logits = torch.randn(*x.shape, tok.vocab_size)
    ids = torch.tensor([ids for ids, _ in batch])
    torch.testing.assert_close(weighted_lm_loss(logits, y, w), causal_lm_loss(logits, ids[:, 1:]))
    half = weighted_lm_loss(logits, *pad_batch(batch, tok.pad_id, 0.5)[1:])  # between masked and plain
    lo, hi = sorted([weighted_lm_loss(logits, y, w).item(), weighted_lm_loss(logits, *pad_batch(batch, 3, 0.0)[1:])
                     .item()])
    assert lo <= half.item() <= hi


def test_cut_rule_keeps_the_start_and_drops_conversations_with_nothing_to_learn(base_tok):
    tok = add_chat_tokens(None, base_tok)
    convs = [[{"role": "user", "content": "12+34="}, {"role": "assistant", "content": "46"}]]  # 1+6+1+1+2+1 = 12 tokens
    out, stats = encode_examples(T, tok, convs * 2, 10)
    assert stats == {"examples": 2, "cut": 2, "dropped": 0} and out[0][1] == [0] * 9 + [1]
    with pytest.raises(InputError, match="raise seq_len"):
        encode_examples(T, tok, convs, 9)


def trainer(tok, model, run_dir, bucket=True, packing=False, **train):
    cfg = dataclasses.replace(SFT_TRAIN, **{**dict(steps=6, batch_size=4, seq_len=24, warmup_steps=2, eval_every=0,
                                                   checkpoint_every=3, log_every=1, device="cpu"), **train})
    return SFTTrainer(model, cfg, examples(tok), examples(tok, 8, "dev"), run_dir, tok.pad_id, bucket=bucket,
                      packing=packing)


@pytest.mark.parametrize("packing", [False, True])
def test_a_resumed_run_equals_the_uninterrupted_one_exactly(base_tok, tmp_path, packing):
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    whole = trainer(tok, model, tmp_path / "whole", packing=packing)
    whole.fit()
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    first = trainer(tok, model, tmp_path / "split", packing=packing)
    for _ in range(3):  # a session that stops after step 3's checkpoint
        first.metrics.write(first.train_step())
    first.save()
    tok = add_chat_tokens(model := tiny_model(base_tok, seed=1), base_tok)  # other weights: all must come from disk
    second = trainer(tok, model, tmp_path / "split", packing=packing)
    assert second.maybe_resume() and second.step == 3
    second.fit()
    losses = [[r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for d in (tmp_path / "whole", tmp_path / "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    tokens = [[r["tokens"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for d in (tmp_path / "whole", tmp_path / "split")]
    assert tokens[0] == tokens[1] and tokens[0] == sorted(set(tokens[0]))  # the count resumes too, and grows
    for (k, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_only_parameters_that_require_grad_change(base_tok, tmp_path):
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("layers.1."))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer(tok, model, tmp_path / "frozen", steps=3).fit()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("layers.1.") for k in changed), changed
    assert changed == {k for k, p in model.named_parameters() if p.requires_grad}


def sft(base_dir, tmp_path, *flags, name="s"):
    data = flags[flags.index("--data") + 1] if "--data" in flags else "arithmetic"
    built_in = ["--arithmetic-train", "2000"] if data.startswith("arithmetic") else []  # a file replaces them
    return main(["sft", "--model", str(base_dir), "--name", name, "--out", str(tmp_path / "runs"), "--device", "cpu",
                 "--arithmetic-max-digits", "2", "--arithmetic-ops", "+", *built_in,
                 "--general-tokens", "2000", "--seq-len", "24", "--batch-size", "32", *flags])


def test_a_tiny_model_learns_the_answer_format_and_the_commands_round_trip(base_dir, tmp_path, capsys, monkeypatch):
    """Measured (dim 32, 2 layers, 600 steps of 32 two-digit additions, lr 3e-3): train loss 2.04 -> 0.70, chat
    exact match 0 -> 0.16 on 50 test problems, every reply digits then <|end|>. The bounds leave room for
    another machine's float rounding: loss below half the start, at least 3 of 50 right, all digit replies."""
    flags = ["--steps", "600", "--lr", "3e-3", "--min-lr", "3e-4", "--eval-problems", "50", "--eval-every", "300",
             "--checkpoint-every", "300", "--log-every", "50"]
    assert sft(base_dir, tmp_path, *flags) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "s"
    summary = json.loads((run / "summary.json").read_text())
    b, a = summary["before"], summary["after"]
    assert summary["last_train_loss"] < 0.5 * summary["first_train_loss"]
    assert b["chat_accuracy"] == 0 and a["chat_accuracy"] >= 0.06
    assert all(reply.isdigit() for _, _, reply in a["chat_samples"])
    assert "chat accuracy" in out and "before 0" in out and "report.md" in (run / "report.md").name
    report = (run / "report.md").read_text()
    assert "## Before and after" in report and "prompt masked" in report
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["before"] and records[-1]["final"] and sum("val_loss" in r for r in records) == 2
    # the saved model: loads with its chat tokenizer; generate and chat read it
    model, tok = load_model(run / "model")
    assert tok.token_to_id(T.end) == model.config.vocab_size - 1
    assert json.loads((run / "model" / "tokenizer_config.json").read_text())["chat_template"] == T.jinja()
    assert main(["generate", "--model", str(run / "model"), "--prompt", "12+", "--max-new-tokens", "3"]) == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"12+34=\n80+47=\n")))
    assert main(["chat", "--model", str(run / "model"), "--forget"]) == 0
    replies = capsys.readouterr().out.splitlines()[-2:]
    assert replies[1] == a["chat_samples"][0][2]  # the same greedy answer as the run measured
    # run again: finished, nothing retrains; the metrics keep one before and one after record
    before_ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert sft(base_dir, tmp_path, *flags) == 0
    again = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in again if "loss" in r] == [r for r in records if "loss" in r]
    assert sum(bool(r.get("final")) for r in again) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before_ckpts


def test_cli_errors_are_named_and_leave_other_folders_alone(base_dir, tmp_path, capsys):
    quick = ["--steps", "2", "--eval-problems", "2", "--eval-every", "0"]
    assert sft(base_dir, tmp_path, "--prompt-loss-weight", "2", *quick) == 2
    assert "prompt_loss_weight must be in [0, 1]" in capsys.readouterr().err
    assert main(["sft", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    mine = tmp_path / "runs" / "mine"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    assert sft(base_dir, tmp_path, *quick, name="mine") == 2
    assert "not an llmlab run" in capsys.readouterr().err and [p.name for p in mine.iterdir()] == ["notes.txt"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n\n{"text": "x"}\n')  # the error names the line, blanks counted
    assert sft(base_dir, tmp_path, "--data", str(bad), *quick, name="j") == 2
    assert "bad.jsonl line 3: expected" in capsys.readouterr().err
    assert main(["chat", "--model", str(base_dir)]) == 2
    assert "not a chat model" in capsys.readouterr().err


@pytest.mark.parametrize("flags,flag", [
    (["--lora-alpha", "16"], "--lora-alpha"), (["--lora-targets", "q_proj"], "--lora-targets"),
    (["--general-batch", "8"], "--general-batch"), (["--ewc", "1", "--general-batch", "4"], "--general-batch"),
    (["--fisher-samples", "64"], "--fisher-samples"), (["--replay", "1", "--fisher-samples", "8"], "--fisher-samples"),
    (["--general-tokens", "0", "--general-corpus", "sentiment"], "--general-corpus"),
    (["--data", "DATA", "--arithmetic-train", "2000"], "--arithmetic-train"),
    (["--data", "DATA", "--eval-problems", "0", "--arithmetic-ops", "+"], "--arithmetic-ops"),
    (["--eval-problems", "0", "--answer-tokens", "12"], "--answer-tokens"),
])
def test_a_setting_without_the_technique_it_belongs_to_is_refused(base_dir, tmp_path, capsys, flags, flag):
    """As --prompt-init without --prompt-tuning: refused before any work, even at its default value."""
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"prompt": "1+2=", "response": "3"}) + "\n")
    flags = [str(data) if f == "DATA" else f for f in flags]
    assert main(["sft", "--model", str(base_dir), "--name", "x", "--out", str(tmp_path / "runs"), *flags]) == 2
    assert f"{flag} applies " in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_config_refuses_those_settings_changed_and_takes_them_where_they_apply():
    from llmlab.adapt.sft_config import ForgettingConfig, SFTConfig

    for kw, flag in [(dict(lora_alpha=8.0), "--lora-alpha"), (dict(data="c.jsonl", arithmetic_train=5), "--arithmetic"),
                     (dict(forgetting=ForgettingConfig(ewc=1.0, general_batch=4)), "--general-batch")]:
        with pytest.raises(InputError, match=f"{flag}.* applies "):
            SFTConfig(**kw)
    assert SFTConfig(lora_r=4, lora_alpha=8.0, lora_targets=["q_proj"]).lora_targets == ("q_proj",)
    assert SFTConfig(data="c.jsonl", arithmetic_ops="+").arithmetic_ops == "+"  # the test problems' operators
    assert SFTConfig(forgetting=ForgettingConfig(ewc=1.0, fisher_samples=8)).forgetting.fisher_samples == 8


@pytest.mark.parametrize("corpus", ["missing.txt", "no-such-corpus"])
def test_a_general_corpus_that_cannot_be_read_is_refused_before_the_run_folder_is_touched(base_dir, tmp_path,
                                                                                           capsys, corpus):
    """It was read only after training: with --fresh the good run was gone, without it a half-made folder
    refused the corrected rerun."""
    quick = ["--steps", "2", "--eval-problems", "0", "--eval-every", "0", "--arithmetic-train", "40",
             "--general-tokens", "200"]
    assert sft(base_dir, tmp_path, *quick, name="good") == 0
    run = tmp_path / "runs" / "good"
    files = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert sft(base_dir, tmp_path, *quick, "--fresh", "--general-corpus", corpus, name="good") == 2
    assert corpus in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == files  # the good run, untouched
    assert sft(base_dir, tmp_path, *quick, "--general-corpus", corpus, name="new") == 2
    assert not (tmp_path / "runs" / "new").exists()
    general = tmp_path / "general.txt"
    general.write_text("".join(f"{p.text}\n" for p in arithmetic(100, "dev", max_digits=2, ops="+")))
    assert sft(base_dir, tmp_path, *quick, "--general-corpus", str(general), name="new") == 0


def test_a_model_folder_holding_a_file_not_its_own_is_refused_before_training_even_with_fresh(base_dir, tmp_path,
                                                                                              capsys):
    """It was refused only when the trained model was saved; --fresh deleted the file with model/."""
    quick = ["--steps", "2", "--eval-problems", "0", "--eval-every", "0", "--arithmetic-train", "40",
             "--general-tokens", "0"]
    assert sft(base_dir, tmp_path, *quick) == 0
    run = tmp_path / "runs" / "s"
    (run / "model" / "extra.txt").write_text("mine")
    metrics = (run / "metrics.jsonl").stat().st_mtime_ns
    for more in ([], ["--fresh"]):
        assert sft(base_dir, tmp_path, *quick, *more) == 2
        assert "extra.txt" in capsys.readouterr().err
        assert (run / "model" / "extra.txt").read_text() == "mine"
        assert (run / "metrics.jsonl").stat().st_mtime_ns == metrics


def test_a_run_never_starts_from_a_model_inside_its_own_folder(base_dir, tmp_path, capsys):
    """`sft --model runs/s/model --name s --fresh` deleted the model it was about to fine-tune (and without
    --fresh the run's end replaced it)."""
    quick = ["--steps", "2", "--eval-problems", "2", "--eval-every", "0", "--arithmetic-train", "40"]
    assert sft(base_dir, tmp_path, *quick) == 0
    own = tmp_path / "runs" / "s" / "model"
    weights = (own / "model.safetensors").read_bytes()
    for fresh in ([], ["--fresh"]):
        assert sft(own, tmp_path, *quick, *fresh) == 2
        assert "--model" in (err := capsys.readouterr().err) and "lies in the run directory" in err
        assert (own / "model.safetensors").read_bytes() == weights


def test_jsonl_conversations_of_both_shapes_train_with_prompt_loss(base_dir, tmp_path, capsys):
    data = tmp_path / "chat.jsonl"
    rows = [{"prompt": "1+2=", "response": "3"},
            {"messages": [{"role": "system", "content": "9"}, {"role": "user", "content": "4+4="},
                          {"role": "assistant", "content": "8"}, {"role": "user", "content": "8+1="},
                          {"role": "assistant", "content": "9"}]}] * 10
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert sft(base_dir, tmp_path, "--data", str(data), "--steps", "3", "--eval-problems", "2", "--eval-every", "0",
               "--prompt-loss-weight", "1", name="j") == 0
    summary = json.loads((tmp_path / "runs" / "j" / "summary.json").read_text())
    assert summary["examples"] == 19 and summary["dev_examples"] == 1 and summary["steps"] == 3
    assert "prompt tokens weighted 1.0" in (tmp_path / "runs" / "j" / "report.md").read_text()


def test_lora_sft_trains_the_adapters_and_the_new_token_rows_only_and_saves_a_merged_model(base_dir, tmp_path,
                                                                                            capsys):
    flags = ["--steps", "40", "--lr", "3e-3", "--eval-problems", "4", "--eval-every", "20", "--lora-r", "4",
             "--lora-targets", "q_proj", "v_proj", "down_proj"]
    assert sft(base_dir, tmp_path, *flags, name="lora") == 0
    run = tmp_path / "runs" / "lora"
    summary = json.loads((run / "summary.json").read_text())
    base, base_tok = load_model(base_dir)
    tuned, tok = load_model(run / "model")  # a plain model: LoRA merged into its weights
    d, n_new = base.config.dim, tok.vocab_size - base_tok.vocab_size
    lora = sum(4 * (m.in_features + m.out_features) for name, m in base.named_modules()
               if name.endswith(("q_proj", "v_proj", "down_proj")))
    assert summary["trainable_parameters"] == lora + n_new * d  # tied head: the new rows once
    old, new = dict(base.named_parameters()), dict(tuned.named_parameters())
    for name, p in old.items():
        if name == "embed_tokens.weight":
            torch.testing.assert_close(new[name][: p.shape[0]], p, rtol=0, atol=0)  # old rows untouched
            assert not torch.equal(new[name][p.shape[0]:], new[name][p.shape[0]:].mean(0).expand(n_new, d))
        elif name.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight")):
            assert not torch.equal(new[name], p)  # the merged update
        else:
            torch.testing.assert_close(new[name], p, rtol=0, atol=0)
    assert main(["sft", "--model", str(base_dir), "--name", "wd", "--out", str(tmp_path / "runs"), "--lora-r", "4",
                 "--weight-decay", "0.1"]) == 2
    assert "weight decay" in capsys.readouterr().err


def test_training_text_the_base_tokenizer_cannot_write_is_refused(base_tok):
    from llmlab.adapt.sft import check_known

    ok = [[{"role": "user", "content": "12+3="}, {"role": "assistant", "content": "15"}]]
    assert check_known(base_tok, ok) == 0.0
    few = ok * 60 + [[{"role": "user", "content": "x"}, {"role": "assistant", "content": "1"}]]
    assert 0 < check_known(base_tok, few) <= 0.02  # a stray character: allowed (the run warns)
    with pytest.raises(InputError, match=r"cannot write 100.0% of the training text \(characters such as '一三二加'"):
        check_known(base_tok, [[{"role": "user", "content": "一加二"}, {"role": "assistant", "content": "三"}]])


def test_a_quantized_chat_model_keeps_its_template_and_still_chats(base_dir, tmp_path, capsys, monkeypatch):
    from llmlab.pipeline.sft import tokenizer_config

    model, tok = load_model(base_dir)
    tok = add_chat_tokens(model, tok, T)
    chat_dir = save_model(model, tmp_path / "chat", tok, tokenizer_config=tokenizer_config(tok, T))
    assert main(["quantize", "--model", str(chat_dir), "-o", str(tmp_path / "q")]) == 0
    assert (json.loads((tmp_path / "q" / "tokenizer_config.json").read_text())
            == json.loads((chat_dir / "tokenizer_config.json").read_text()))
    capsys.readouterr()
    for d in (chat_dir, tmp_path / "q"):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"12+34=\n")))
        assert main(["chat", "--model", str(d), "--max-new-tokens", "4"]) == 0
    replies = capsys.readouterr().out.splitlines()
    assert len(replies) == 2  # one reply from each (the untrained model's int8 reply may differ in a token)


def test_lora_runs_repeat_whatever_the_global_generator(base_dir, tmp_path):
    """A's init comes from the run's seed: two runs with the global generator in other states (as in two
    processes, which torch seeds differently) give the same weights."""
    flags = ["--steps", "3", "--eval-problems", "0", "--general-tokens", "0", "--eval-every", "0", "--lora-r", "2"]
    for i, name in enumerate(("a", "b")):
        torch.manual_seed(100 + i)
        assert sft(base_dir, tmp_path, *flags, name=name) == 0
    a, _ = load_model(tmp_path / "runs" / "a" / "model")
    b, _ = load_model(tmp_path / "runs" / "b" / "model")
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k


# --- packing (padding-free batching) ---------------------------------------------------------------

def test_packing_lays_every_conversation_once_within_seq_len(base_tok):
    tok = add_chat_tokens(None, base_tok)
    batch = examples(tok, 16)
    x, y, w, seg = pack_batch(batch, 24, tok.pad_id, 0.5)
    assert x.shape[1] <= 24 and x.shape[0] < len(batch)  # several conversations a row
    # the rows hold the padded batch's real tokens, targets and weights, conversation by conversation
    px, py, pw = pad_batch(batch, tok.pad_id, 0.5)
    rows = pack_rows([len(ids) - 1 for ids, _ in batch], 24)
    for r, row in enumerate(rows):
        at = 0
        for k, i in enumerate(row):
            n = len(batch[i][0]) - 1
            assert torch.equal(x[r, at:at + n], px[i, :n]) and torch.equal(y[r, at:at + n], py[i, :n])
            assert torch.equal(w[r, at:at + n], pw[i, :n]) and (seg[r, at:at + n] == k).all()
            at += n
        assert (w[r, at:] == 0).all() and (y[r, at:] == -100).all() and (seg[r, at:] == len(row)).all()
    assert float(w.sum()) == float(pw.sum()) and int((w > 0).sum()) == int((pw > 0).sum())
    assert first_fit([5, 3, 4, 2, 1], 8) == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize("seed", range(20))
def test_packed_rows_are_as_few_as_first_fit_makes_and_no_longer(seed):
    g = torch.Generator().manual_seed(seed)
    capacity = int(torch.randint(8, 64, (1,), generator=g))
    lengths = torch.randint(1, capacity + 1, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g).tolist()
    rows = pack_rows(lengths, capacity)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))  # each item once
    assert all(row == sorted(row) for row in rows) and max(sum(lengths[i] for i in row) for row in rows) <= capacity
    greedy = first_fit(lengths, capacity)
    longest = max(sum(lengths[i] for i in row) for row in rows)
    assert len(rows) * longest <= len(greedy) * max(sum(lengths[i] for i in row) for row in greedy)  # positions
    assert pack_rows([5, 3, 4, 2], 10) == [[0, 3], [1, 2]]  # by hand: 7 and 7, where first fit makes 10 and 4
    with pytest.raises(InputError, match="9 tokens cannot be packed into rows of 8"):
        first_fit([3, 9], 8)


def adapted(tok, kind, position):
    """A tiny GQA model (fresh chat tokens), fully trainable, with LoRA, or with a soft / deep prompt."""
    from llmlab.adapt.lora import apply_lora
    from llmlab.adapt.prompt_tuning import PromptConfig, apply_prompt_tuning

    torch.manual_seed(3)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=4, n_kv_head=2,
                                 max_seq_len=32, position=position))
    if kind == "lora":
        apply_lora(model, r=2, targets=("q_proj", "v_proj"))
        for name, p in model.named_parameters():  # B starts at 0, so A's gradient would be 0: move it
            if name.endswith("lora_B.weight"):
                torch.nn.init.normal_(p, std=0.1)
    elif kind in ("soft", "deep"):
        apply_prompt_tuning(model, PromptConfig(n_virtual=3, init="random", deep=kind == "deep"))
    return model


@pytest.mark.parametrize("position", ["rope", "learned"])
@pytest.mark.parametrize("kind", ["full", "lora", "soft", "deep"])
def test_the_packed_loss_and_gradients_are_the_padded_batchs(base_tok, kind, position):
    tok = add_chat_tokens(None, base_tok)
    batch = examples(tok, 12)
    model = adapted(tok, kind, position)
    out = []
    for packed in (False, True):
        model.zero_grad()
        if packed:
            x, y, w, seg = pack_batch(batch, 24, tok.pad_id, 0.25)
            loss = weighted_lm_loss(model(x, segments=seg), y, w)
        else:
            x, y, w = pad_batch(batch, tok.pad_id, 0.25)
            loss = weighted_lm_loss(model(x), y, w)
        loss.backward()
        out.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}))
    (padded, g_pad), (packed, g_pack) = out
    torch.testing.assert_close(packed, padded, rtol=1e-6, atol=1e-6)
    assert g_pad.keys() == g_pack.keys() and g_pad
    for k in g_pad:
        assert g_pad[k].abs().sum() > 0, k
        torch.testing.assert_close(g_pack[k], g_pad[k], rtol=1e-4, atol=1e-6, msg=k)


def test_packed_rows_give_transformers_flattened_batch_logits_and_loss(base_tok, tmp_path):
    """Hugging Face's padding-free batching: `DataCollatorWithFlattening` lays the conversations end to end
    in one row with positions restarting at 0 for each, and LLaMA reads each alone (no cache). The same
    weights, exported, give our packed rows' logits at every real token and our reply-only loss."""
    transformers = pytest.importorskip("transformers")
    from llmlab.models.hf import export_hf

    tok = add_chat_tokens(None, base_tok)
    batch = examples(tok, 12)
    torch.manual_seed(3)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=4, n_kv_head=2,
                                 max_seq_len=64)).eval()
    export_hf(model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    x, y, w, seg = pack_batch(batch, 48, tok.pad_id)
    rows = pack_rows([len(ids) - 1 for ids, _ in batch], 48)
    order = [i for row in rows for i in row]
    flat = transformers.DataCollatorWithFlattening(return_tensors="pt")(
        [{"input_ids": batch[i][0], "labels": [t if m else -100 for t, m in zip(*batch[i])]} for i in order])
    assert flat["input_ids"].shape[0] == 1 and x.shape[0] > 1  # one long row there, several rows of <= 48 here
    with torch.no_grad():
        ours = model(x, segments=seg)  # (R, T, V)
        theirs = hf(**flat, use_cache=False)
    # each conversation's inputs are its tokens but the last, which only HF's row holds
    ends = torch.tensor([len(batch[i][0]) for i in order]).cumsum(0) - 1
    keep = torch.ones(flat["input_ids"].shape[1], dtype=torch.bool)
    keep[ends] = False
    real = seg < torch.tensor([len(row) for row in rows])[:, None]  # (R, T): not a row's padding
    torch.testing.assert_close(ours[real], theirs.logits[0, keep], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(weighted_lm_loss(ours, y, w), theirs.loss, atol=1e-6, rtol=1e-6)


def test_a_packed_run_follows_the_padded_run_in_fewer_rows(base_tok, tmp_path):
    runs = {}
    for packing in (False, True):
        tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
        t = trainer(tok, model, tmp_path / str(packing), bucket=False, packing=packing, steps=4)
        t.fit()
        losses = [r["loss"] for r in map(json.loads, (tmp_path / str(packing) / "metrics.jsonl").read_text()
                                         .splitlines()) if "loss" in r]
        runs[packing] = losses, model.state_dict(), len(t.batch(0)[0])
    (pad_losses, pad_state, pad_rows), (pack_losses, pack_state, pack_rows) = runs[False], runs[True]
    assert pack_losses == pytest.approx(pad_losses, rel=1e-5) and len(pad_losses) == 4
    # both count the same tokens: each step's conversations (inputs: all tokens but the last), no padding
    counted = {packing: [r["tokens"] for r in map(json.loads, (tmp_path / str(packing) / "metrics.jsonl").read_text()
                                                   .splitlines()) if "loss" in r] for packing in (False, True)}
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    t = trainer(tok, model, tmp_path / "count", bucket=False, steps=4)
    expected, total = [], 0
    for step in range(4):
        t.step = step
        total += sum(len(ids) - 1 for ids, _ in t.picked(0))
        expected.append(total)
    assert counted[False] == counted[True] == expected
    for k in pad_state:
        torch.testing.assert_close(pack_state[k], pad_state[k], rtol=1e-4, atol=1e-5, msg=k)
    assert pack_rows < pad_rows == 4


def test_packing_is_refused_where_a_packed_row_cannot_read_as_each_conversation_alone(base_tok):
    from llmlab.adapt.sft_config import SFTConfig
    from llmlab.pipeline.sft import _check_packing

    tok = add_chat_tokens(None, base_tok)
    alibi = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=32,
                                 position="alibi"))
    cfg = SFTConfig(model="m", packing=True, prompt_tuning=4, train=dataclasses.replace(SFT_TRAIN, seq_len=24,
                                                                                       weight_decay=0.0))
    with pytest.raises(InputError, match="--packing: ALiBi measures distances to the soft prompt"):
        _check_packing(cfg, alibi)
    _check_packing(dataclasses.replace(cfg, prompt_tuning=0), alibi)  # without a soft prompt ALiBi packs
    _check_packing(cfg, tiny_model(base_tok))  # RoPE packs after a soft prompt


def test_sft_packing_runs_from_the_command_line_and_says_so(base_dir, tmp_path):
    assert sft(base_dir, tmp_path, "--packing", "--steps", "3", "--eval-problems", "2", "--eval-every", "0",
               "--general-tokens", "0", name="p") == 0
    assert "packed" in (tmp_path / "runs" / "p" / "report.md").read_text()


def test_a_run_the_time_limit_cut_short_says_so_in_its_report(base_dir, tmp_path):
    """Its report read "1 steps ... train loss x -> x" like a finished run's; now the planned steps and why
    it stopped, and one loss where one record was logged. Run again, it goes on to the end."""
    flags = ["--steps", "3", "--eval-problems", "2", "--eval-every", "0", "--general-tokens", "0", "--log-every", "10"]
    assert sft(base_dir, tmp_path, *flags, "--max-minutes", "1e-6", name="t") == 0
    report = (tmp_path / "runs" / "t" / "report.md").read_text()
    loss = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())["first_train_loss"]
    assert "1 of 3 steps (stopped by the time limit; run it again to go on)" in report
    assert f"train loss {loss:.4g}, " in report
    assert sft(base_dir, tmp_path, *flags, name="t") == 0
    report = (tmp_path / "runs" / "t" / "report.md").read_text()
    assert "- Training: 3 steps of" in report and "stopped" not in report


def test_a_metrics_line_a_killed_session_cut_short_does_not_block_resuming(base_dir, tmp_path):
    """Pretraining resumed past it; sft (and rl, dpo, rm, reading the "before" record the same way) stopped at
    'line N is not valid JSON' before resuming."""
    flags = ["--steps", "3", "--eval-problems", "2", "--eval-every", "0", "--general-tokens", "0", "--log-every", "1"]
    assert sft(base_dir, tmp_path, *flags, "--max-minutes", "1e-6", name="t") == 0
    metrics = tmp_path / "runs" / "t" / "metrics.jsonl"
    with open(metrics, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "loss": 5.1, "lr"')
    assert sft(base_dir, tmp_path, *flags, name="t") == 0
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3] and sum("before" in r for r in records) == 1
