"""Remedies for forgetting during SFT against their definitions: the Fisher diagonal equals per-window
squared gradients from torch.func, the EWC / L2-SP penalty and its gradient are the formula, replay is
the causal LM loss on the general windows, distillation starts at zero with zero gradient, frozen blocks
do not move, the fine-tuning batches do not change when replay is on, resume stays exact, and a strong
anchor keeps the weights at the base while a plain run moves them."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from llmlab.adapt.chat import add_chat_tokens
from llmlab.adapt.forgetting import Anchor, diagonal_fisher, freeze_blocks
from llmlab.adapt.sft import SFT_TRAIN, SFTTrainer, arithmetic_conversations, encode_examples
from llmlab.adapt.sft_config import ForgettingConfig, SFTConfig
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig, load_model, save_model
from llmlab.tokenizers import CharTokenizer
from llmlab.train.objectives import causal_lm_loss
from llmlab.train.trainer import get_batch


@pytest.fixture(scope="module")
def base_tok():
    return CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+-")])


def tiny_model(tok, seed=0, layers=2):
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=layers, n_head=2, n_kv_head=2,
                                max_seq_len=32))


def stream(tok, n=3000):
    text = " ".join(p.text for p in arithmetic(400, "dev", max_digits=3, ops="+-"))
    return torch.tensor(tok.encode(text)[:n])


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap over SDPA: slow, still exact
def test_fisher_is_the_mean_of_per_window_squared_gradients(base_tok):
    model = tiny_model(base_tok)
    tokens = stream(base_tok)
    fisher = diagonal_fisher(model, tokens, samples=6, seq_len=12, seed=3)
    assert model.training and all(p.grad is None for p in model.parameters())  # mode and gradients left alone
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = get_batch(tokens, 6, 12, 3)

    def window_loss(p, xi, yi):
        logits = functional_call(model, p, (xi[None],))
        return F.cross_entropy(logits[0], yi)

    model.eval()
    per_window = vmap(grad(window_loss), in_dims=(None, 0, 0))(params, x, y)  # each weight: (6, *shape)
    for name, g in per_window.items():
        torch.testing.assert_close(fisher[name], (g ** 2).mean(0), rtol=1e-4, atol=1e-10)


def test_penalty_and_its_gradient_are_the_formula(base_tok):
    model = tiny_model(base_tok)
    for p in model.layers[0].parameters():
        p.requires_grad_(False)  # not anchored: frozen weights cannot drift
    cfg = ForgettingConfig(ewc=3.0, l2_init=0.5, fisher_samples=4)
    anchor = Anchor(model, cfg, stream(base_tok), seq_len=12)
    assert not any(k.startswith("layers.0.") for k in anchor.theta0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    want, grads = 0.0, {}
    for name, p in model.named_parameters():
        if name in anchor.theta0:
            w = 0.5 + 3.0 * anchor.fisher[name]
            want += float((0.5 * w * (p.detach() - anchor.theta0[name]) ** 2).sum())
            grads[name] = w * (p.detach() - anchor.theta0[name])
    pen = anchor.penalty(model)
    assert float(pen.detach()) == pytest.approx(want, rel=1e-5)
    pen.backward()
    for name, p in model.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, grads[name], rtol=1e-5, atol=1e-9)


def test_replay_is_the_lm_loss_and_distillation_starts_at_zero(base_tok):
    model = tiny_model(base_tok)
    tokens = stream(base_tok)
    anchor = Anchor(model, ForgettingConfig(replay=0.7, distill=2.0, general_batch=3), tokens, seq_len=12)
    windows = anchor.windows(seed=11)
    torch.testing.assert_close(windows[0], get_batch(tokens, 3, 12, 11 ^ 0x6E4E_5EED)[0])
    loss, stats = anchor.loss(model, windows)
    x, y = windows
    with torch.no_grad():
        assert stats["replay_loss"] == pytest.approx(float(causal_lm_loss(model(x), y)), rel=1e-5)
    assert stats["distill_kl"] == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    replay_only = Anchor(model, ForgettingConfig(replay=0.7, general_batch=3), tokens, seq_len=12)
    g_both = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    replay_only.loss(model, windows)[0].backward()
    for k, p in model.named_parameters():  # the KL term's gradient at the base is zero
        torch.testing.assert_close(g_both[k], p.grad, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight))
    assert anchor.loss(model, windows)[1]["distill_kl"] > 0.01


def test_freezing_blocks_and_bad_settings(base_tok):
    model = tiny_model(base_tok, layers=3)
    frozen = freeze_blocks(model, 2)
    assert frozen == sum(p.numel() for b in list(model.layers)[:2] for p in b.parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters()) and model.embed_tokens.weight.requires_grad
    with pytest.raises(InputError, match="freeze_layers"):
        freeze_blocks(model, 4)
    for bad in (dict(ewc=-1.0), dict(replay=float("nan")), dict(freeze_layers=-1), dict(general_batch=0)):
        with pytest.raises(InputError):
            ForgettingConfig(**bad)
    with pytest.raises(InputError, match="general text"):
        Anchor(model, ForgettingConfig(replay=1.0), torch.tensor([1, 2, 3]), seq_len=12)
    assert SFTConfig.from_dict({"train": {}}).forgetting == ForgettingConfig()  # runs saved before these fields


def sft_trainer(tok, model, run_dir, anchor_cfg=None, packing=False, **train):
    cfg = dataclasses.replace(SFT_TRAIN, **{**dict(steps=6, batch_size=4, seq_len=24, warmup_steps=2, eval_every=0,
                                                   checkpoint_every=3, log_every=1, device="cpu"), **train})
    convs = arithmetic_conversations(arithmetic(64, max_digits=2, ops="+-"))
    t = SFTTrainer(model, cfg, encode_examples_ok(tok, convs), encode_examples_ok(tok, convs[:8]), run_dir, tok.pad_id,
                   packing=packing)
    if anchor_cfg is not None:
        t.anchor = Anchor(t.model, anchor_cfg, stream(tok), seq_len=24)
    return t


def encode_examples_ok(tok, convs):
    from llmlab.adapt.chat import ChatTemplate

    return encode_examples(ChatTemplate(), tok, convs, 25)[0]


def test_replay_leaves_the_batches_alone_and_resume_stays_exact(base_tok, tmp_path):
    cfg = ForgettingConfig(replay=0.5, distill=0.5, ewc=10.0, l2_init=0.1, fisher_samples=4)
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    plain = sft_trainer(tok, tiny_model(base_tok), tmp_path / "plain")
    anchored = sft_trainer(tok, model, tmp_path / "whole", cfg)
    for a, b in zip(plain.batch(0)[:3], anchored.batch(0)[:3]):
        assert torch.equal(a, b)
    assert plain.batch(0)[3] is None and anchored.batch(0)[3] is not None
    anchored.fit()
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
    first = sft_trainer(tok, model, tmp_path / "split", cfg)
    for _ in range(3):
        first.metrics.write(first.train_step())
    first.save()
    tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)  # the same base: the anchor is rebuilt alike
    second = sft_trainer(tok, model, tmp_path / "split", cfg)
    assert second.maybe_resume() and second.step == 3
    second.fit()
    recs = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (tmp_path / "whole", tmp_path / "split")]
    assert [r["loss"] for r in recs[0] if "loss" in r] == [r["loss"] for r in recs[1] if "loss" in r]
    assert all({"replay_loss", "distill_kl", "anchor_penalty"} <= set(r) for r in recs[0] if "loss" in r)
    for (k, a), b in zip(anchored.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_packing_keeps_the_anchor_terms_and_the_padded_runs_losses(base_tok, tmp_path):
    """The general windows are a batch of their own: packing the conversations changes none of the terms."""
    cfg = ForgettingConfig(replay=0.5, distill=0.5, l2_init=0.1)
    recs = []
    for packing in (False, True):
        tok = add_chat_tokens(model := tiny_model(base_tok), base_tok)
        t = sft_trainer(tok, model, tmp_path / str(packing), cfg, packing=packing, steps=3)
        assert (len(t.batch(0)) == 5) == packing
        t.fit()
        recs.append([json.loads(line) for line in (tmp_path / str(packing) / "metrics.jsonl").read_text().splitlines()
                     if "loss" in json.loads(line)])
    for pad, pack in zip(*recs):
        for k in ("loss", "replay_loss", "distill_kl", "anchor_penalty"):
            assert pack[k] == pytest.approx(pad[k], rel=1e-4, abs=1e-7), k
    assert len(recs[0]) == 3


def test_sft_command_anchors_and_freezes(base_tok, tmp_path, capsys):
    base = tmp_path / "base"
    save_model(tiny_model(base_tok), base, base_tok)
    general = tmp_path / "general.txt"
    general.write_text("\n".join(p.text for p in arithmetic(300, "dev", max_digits=3, ops="+-")) + "\n")

    def sft(name, *flags):
        return main(["sft", "--model", str(base), "--name", name, "--out", str(tmp_path / "runs"), "--device", "cpu",
                     "--arithmetic-max-digits", "2", "--arithmetic-ops", "+", "--arithmetic-train", "500",
                     "--general-corpus", str(general), "--general-tokens", "1000", "--seq-len", "24",
                     "--batch-size", "16", "--steps", "30", "--lr", "3e-3", "--eval-problems", "2", "--eval-every",
                     "0", *flags])

    assert sft("plain") == 0 and sft("held", "--l2-init", "1e4") == 0 and sft("frozen", "--freeze-layers", "1") == 0
    old, _ = load_model(base)
    moved = {}
    for name in ("plain", "held", "frozen"):
        new, _ = load_model(tmp_path / "runs" / name / "model")
        moved[name] = {k: float((new.state_dict()[k][: v.shape[0]] - v).abs().max())
                       for k, v in old.state_dict().items()}
    assert max(moved["held"].values()) < 0.1 * max(moved["plain"].values())  # the anchor holds the weights
    assert all(v == 0 for k, v in moved["frozen"].items() if k.startswith("layers.0."))
    assert any(v > 0 for k, v in moved["frozen"].items() if k.startswith("layers.1."))
    summary = json.loads((tmp_path / "runs" / "frozen" / "summary.json").read_text())
    assert summary["frozen_parameters"] == sum(p.numel() for p in old.layers[0].parameters())
    assert "L2-to-base lambda 10000" in (tmp_path / "runs" / "held" / "report.md").read_text()
    assert sft("bad", "--ewc", "-1") == 2 and "ewc" in capsys.readouterr().err
