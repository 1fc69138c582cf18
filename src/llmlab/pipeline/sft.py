"""Supervised fine-tuning run: base model + chat tokens -> conversations -> training -> before/after
figures -> saved chat model and a report, all under one run directory (the layout of a pretraining run):

    runs/<name>/
      config.json      the SFTConfig
      data.json        SHA-256 of the base model's files and of the conversations (a resume must see the same)
      metrics.jsonl    the "before" record (step 0), training and validation records, the "after" record
      checkpoints/     resumable state (atomic)
      model/           the fine-tuned model with its chat tokenizer and tokenizer_config.json (chat_template)
      prompt/          with --prompt-tuning: the soft prompt (llmlab's files and PEFT's); model/ is then the
                       base with the chat tokens' rows trained, and `llmlab chat --soft-prompt` reads both
      report.md        what was fine-tuned on what, and what it did to task accuracy and general perplexity

Running again with the same config resumes (or, if finished, re-measures and re-reports).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.adapt.forgetting import Anchor, freeze_blocks
from llmlab.adapt.lora import LoRAConfig, apply_lora, merge_lora, token_weights, train_token_rows
from llmlab.adapt.prompt_tuning import apply_prompt_tuning, remove_prompt, save_prompt
from llmlab.adapt.sft import (
    SFTConfig,
    SFTTrainer,
    check_known,
    encode_examples,
    general_tokens,
    load_conversations,
    measure,
)
from llmlab.adapt.tools import add_tool_characters
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, atomic_write_text, sha256_file
from llmlab.generate.agent import transcript_pieces
from llmlab.models import count_parameters, load_model, save_model
from llmlab.models.card import ModelCard
from llmlab.models.decoder import check_packable
from llmlab.pipeline.pretrain import log_final_eval, prepare_run_dir
from llmlab.pipeline.report import steps_done, undefined
from llmlab.train.trainer import read_metrics

log = logging.getLogger(__name__)
TOOL_USE = (" Replies call a calculator, [calc(EXPR)→ then the answer: run it with `llmlab chat --tools`, which "
            "writes the result and ] in, as fine-tuning showed it.")
GENERAL_TRAIN_TOKENS = 200_000  # general-corpus train tokens that replay, distillation and EWC's Fisher draw from


def sft_fingerprint(model_dir: str, train: list, dev: list) -> dict:
    """What identifies a fine-tuning run's inputs: the base model's weights and tokenizer, the conversations."""
    d = Path(model_dir)
    return {"base_weights_sha256": sha256_file(d / "model.safetensors"),
            "base_tokenizer_sha256": sha256_file(d / "tokenizer.json"),
            "train_sha256": hashlib.sha256(json.dumps(train, ensure_ascii=False).encode()).hexdigest(),
            "dev_sha256": hashlib.sha256(json.dumps(dev, ensure_ascii=False).encode()).hexdigest()}


def tokenizer_config(tok, template: ChatTemplate) -> dict:
    """Hugging Face's tokenizer_config.json for the chat model: its Jinja chat_template (which renders the
    text `ChatTemplate.text` renders), the special tokens, and llmlab's template fields for `llmlab chat`."""
    return {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template.jinja(),
            "eos_token": template.end, "pad_token": "<|pad|>", "unk_token": "<unk>",
            "llmlab_chat_template": template.to_dict()}


CHAT_USE = ("Chat: each turn is <|role|>content<|end|>, the reply follows <|assistant|> and ends with <|end|> "
            "(tokenizer_config.json holds the Jinja chat_template).")


def save_chat_model(model, directory: Path, tok, template: ChatTemplate, name: str, training_data: str,
                    figures: dict, use_note: str = "") -> None:
    """A chat model as SFT, RL and DPO runs save it: weights, tokenizer, tokenizer_config.json with the
    template, and a model card naming the run, its data, and the float figures of ``figures["after"]``."""
    card = ModelCard(name=f"llmlab-{name}", parameters=figures["parameters"], training_data=training_data,
                     tokenizer=f"{type(tok).__name__}, {tok.vocab_size} tokens with chat tokens {template.tokens}",
                     intended_use=CHAT_USE + use_note,
                     metrics={k: v for k, v in figures["after"].items() if isinstance(v, float)})
    save_model(model, directory, tok, card, tokenizer_config=tokenizer_config(tok, template))


def recorded_before(path: Path) -> dict | None:
    """The last "before" measurement in a run's metrics file, else None. A measurement on arithmetic test
    problems drawn with replacement (a run started before evaluations answered distinct questions) counts
    as none: the caller measures the starting model again, so before and after are on one question set."""
    found = None
    for r in read_metrics(path):  # before resuming: a line a killed session cut short is still there
        if r.get("before"):
            found = r
    return None if found is None or ("problems" in found and not found.get("distinct")) else found


def run_sft(cfg: SFTConfig, out_root: str | Path = "runs", fresh: bool = False,
            prepare: Callable | None = None, finish: Callable | None = None) -> dict:
    """Fine-tune (or resume) `cfg.model` on `cfg.data`; return the figures the report shows.

    `prepare(model)` runs after the chat tokens are added and before training (freeze layers, or
    ``apply_lora``); `finish(model)` before the model is saved (``merge_lora``), so model/ holds a full model.
    """
    t_start = time.perf_counter()
    if not cfg.model:
        raise InputError("SFT needs a base model directory (--model DIR)")
    out = Path(out_root) / cfg.name
    model, base_tok = load_model(cfg.model, device="cpu")
    if base_tok is None:
        raise InputError(f"model directory {cfg.model!r} has no tokenizer.json")
    template = ChatTemplate()
    tok = add_chat_tokens(model, base_tok, template)
    if cfg.tools:  # the call's characters, after the chat tokens: a tool model's chat tokens keep the chat ids
        tok = add_tool_characters(model, tok)
    if cfg.lora_r:  # A's init draws from the run's seed (torch seeds its global generator anew in each process)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            apply_lora(model, LoRAConfig(r=cfg.lora_r, alpha=cfg.lora_alpha, targets=cfg.lora_targets))
        train_token_rows(model, list(range(base_tok.vocab_size, tok.vocab_size)))  # the new chat tokens
    if cfg.prompt_tuning:
        _check_room(cfg, model.config.max_seq_len)
        apply_prompt_tuning(model, cfg.prompt_config, tok)
        train_token_rows(model, list(range(base_tok.vocab_size, tok.vocab_size)))  # as with LoRA
    if prepare is not None:
        prepare(model)
    frozen = freeze_blocks(model, cfg.forgetting.freeze_layers)
    trainable = _trainable(model, tok.vocab_size - base_tok.vocab_size if cfg.lora_r or cfg.prompt_tuning else None)
    train_convs, dev_convs = load_conversations(cfg)
    if check_known(tok, train_convs):  # `tok`: with the tool's characters, which the base may lack
        log.warning("some characters of the training text are <unk> to the base model's tokenizer")
    # the tool's results are the loop's, not learned (unless asked: Toolformer learned its text as is)
    split = transcript_pieces if cfg.tools and not cfg.learn_tool_results else None
    train, stats = encode_examples(template, tok, train_convs, cfg.train.seq_len + 1, split)
    dev, _ = encode_examples(template, tok, dev_convs, cfg.train.seq_len + 1, split)
    if cfg.packing:
        _check_packing(cfg, model)
    trainer = SFTTrainer(model, cfg.train, train, dev, out, tok.pad_id, cfg.prompt_loss_weight, cfg.bucket,
                         cfg.packing)
    if cfg.forgetting.active:  # anchored to the weights as fine-tuning starts (a resumed run rebuilds the same)
        general = (general_tokens(tok, cfg.general_corpus, "train", GENERAL_TRAIN_TOKENS)
                   if cfg.forgetting.needs_general else None)
        window = min(cfg.train.seq_len, model.config.max_seq_len)
        trainer.anchor = Anchor(trainer.model, cfg.forgetting, general, window, seed=cfg.train.seed)
    if cfg.general_tokens:  # measured after training: a corpus that cannot be read is refused before the folder is
        general_tokens(tok, cfg.general_corpus, "dev", 1)  # touched (--fresh would have deleted the run it redoes)
    prepare_run_dir(out, cfg, fresh, sft_fingerprint(cfg.model, train_convs, dev_convs))
    metrics = out / "metrics.jsonl"
    before = recorded_before(metrics)
    if before is None:  # measured on the model as training starts (a restored checkpoint comes after)
        before = {"step": 0, "before": True, **measure(trainer.model, tok, template, cfg)}
        trainer.metrics.write(before)
    trainer.started = t_start
    trainer.maybe_resume()
    result = trainer.fit()
    model.train(False)
    after = {"step": trainer.step, "after": True, "final": True, **measure(model, tok, template, cfg),
             **trainer.evaluate(None)}
    log_final_eval(metrics, after)
    if cfg.lora_r:
        merge_lora(model)  # model/ holds a full model: plain layers with the update folded in
    if cfg.prompt_tuning:  # the prompt is saved beside the model, which is the base (and the chat tokens' rows)
        save_prompt(model, out / "prompt")
        remove_prompt(model)
    if finish is not None:
        finish(model)
    losses = [r["loss"] for r in read_metrics(metrics) if "loss" in r]
    if not losses and "loss" in result["train"]:  # stopped before its first --log-every step
        losses = [result["train"]["loss"]]
    figures = {"name": cfg.name, "base_model": cfg.model, "data": cfg.data, **stats,
               "dev_examples": len(dev), "steps": trainer.step, "train_seconds": trainer.train_seconds,
               "stopped_early": result["stopped_early"], "prompt_loss_weight": cfg.prompt_loss_weight,
               "trainable_parameters": trainable, "frozen_parameters": frozen,
               "parameters": count_parameters(model.config), "vocab_size": tok.vocab_size,
               "first_train_loss": losses[0] if losses else float("nan"),
               "last_train_loss": losses[-1] if losses else float("nan"), "train_loss_records": len(losses),
               "before": {k: v for k, v in before.items() if k not in ("step", "before")},
               "after": {k: v for k, v in after.items() if k not in ("step", "after", "final")}}
    save_chat_model(model, out / "model", tok, template, cfg.name,
                    f"fine-tuned from {cfg.model} on {cfg.data} ({len(train)} conversations)", figures,
                    TOOL_USE if cfg.tools else "")
    figures["wall_seconds"] = trainer.total_wall_seconds()
    atomic_write_text(out / "report.md", sft_report(cfg, figures))
    atomic_write_json(out / "summary.json", figures)
    return figures


def _check_room(cfg: SFTConfig, context: int) -> None:
    """The virtual tokens take context positions: the prompt and a training window must fit together."""
    if cfg.prompt_tuning + cfg.train.seq_len > context:
        room = context - cfg.prompt_tuning  # what is left of the context beside the virtual tokens
        fix = (f"lower --seq-len to {room} or less" if room >= 1 else
               f"use fewer than {context} virtual tokens (--prompt-tuning), leaving room for a window")
        raise InputError(f"{cfg.prompt_tuning} virtual tokens + seq_len {cfg.train.seq_len} exceed the base model's "
                         f"context of {context}: {fix}")


def _check_packing(cfg: SFTConfig, model) -> None:
    """Refuse packing before training starts where the model cannot read packed rows as each conversation
    alone (ALiBi after a soft prompt, dynamic NTK beyond its trained length): the rule of `check_packable`."""
    ids = torch.zeros(1, cfg.train.seq_len, dtype=torch.long)
    try:
        check_packable(model, ids, ids, cfg.prompt_tuning)
    except InputError as e:
        raise InputError(f"--packing: {e}") from None


def _trainable(model, masked_rows: int | None) -> int:
    """Parameters that train: every requires_grad one, except that with `masked_rows` the token
    weights (`train_token_rows`) count only those rows (a tied weight once)."""
    token = set(map(id, token_weights(model))) if masked_rows is not None else set()
    seen, n = set(), 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            n += masked_rows * p.shape[1] if id(p) in token else p.numel()
    return n


def _fmt(v) -> str:
    """A figure of the report; "-" where it is undefined (null in the run's files, or NaN)."""
    return "-" if undefined(v) else f"{v:.4g}" if isinstance(v, float) else str(v)


def train_loss_text(f: dict) -> str:
    """The run's train loss "first -> last", or its one loss where one record was logged (not "x -> x")."""
    first = _fmt(f["first_train_loss"])
    return first if f.get("train_loss_records", 2) < 2 else f"{first} -> {_fmt(f['last_train_loss'])}"


def remedies(cfg: SFTConfig) -> str:
    """The forgetting remedies the run used, as a clause for the report ("" when none)."""
    f = cfg.forgetting
    terms = (("replay weight", "replay"), ("distillation weight", "distill"), ("EWC lambda", "ewc"),
             ("L2-to-base lambda", "l2_init"))
    parts = [f"{label} {getattr(f, k):g}" for label, k in terms if getattr(f, k)]
    if f.freeze_layers:
        parts.append(f"lowest {f.freeze_layers} block(s) frozen")
    return f"; against forgetting: {', '.join(parts)} ({cfg.general_corpus} train)" if parts else ""


TOOL_NOTE = (" A chat answer is read after its last answered call ([calc(EXPR)→RESULT]): with tools the agent loop "
             "writes each RESULT] in, without them the model writes its own. A call's argument counts when it is the "
             "question without its '='.")


def sft_report(cfg: SFTConfig, f: dict) -> str:
    """The run's report in Markdown: setup, the before/after table, samples."""
    b, a = f["before"], f["after"]
    rows = [("chat exact match (arithmetic test)", "chat_accuracy"),
            ("completion exact match (plain prompt)", "completion_accuracy"),
            (f"general perplexity ({cfg.general_corpus} dev)", "general_ppl"),
            ("general loss (nats/token)", "general_loss"),
            ("general tokens that are <unk>", "general_unk_share")]
    if cfg.tools:
        rows[:1] = [("chat exact match without tools (the model writes each result)", "chat_accuracy"),
                    ("chat exact match with tools (agent loop)", "tool_accuracy"),
                    ("answers that call the calculator", "tool_call_rate"),
                    ("answers whose call's argument is the question", "tool_argument_rate")]
    table = "\n".join(f"| {label} | {_fmt(b.get(k, '-'))} | {_fmt(a.get(k, '-'))} |" for label, k in rows)
    samples = {key: "\n".join(f"| {q} | {g} | {bo!r} | {ao!r} |" for (q, g, bo), (_, _, ao)
                              in zip(b.get(key, []), a.get(key, []))) for key in ("chat_samples", "tool_samples")}
    head = "| question | gold | before | after |\n|---|---|---|---|\n"
    with_tools = f"\n## Chat samples with tools\n\n{head}{samples['tool_samples']}\n" if cfg.tools else ""
    deep = " in every layer (deep)" if cfg.prompt_deep else ""
    prompt = (f"- Soft prompt: {cfg.prompt_tuning} virtual tokens{deep}, "
              f"init {cfg.prompt_init}, in `prompt/` beside `model/` (`llmlab chat --soft-prompt`)\n"
              if cfg.prompt_tuning else "")
    packed = f" packed into rows of at most {cfg.train.seq_len} tokens" if cfg.packing else ""
    masking = ("prompt masked (loss on the replies only)" if cfg.prompt_loss_weight == 0 else
               f"prompt tokens weighted {cfg.prompt_loss_weight}")
    losses = train_loss_text(f)
    if cfg.tools and cfg.learn_tool_results:
        masking += "; each call's result and ']' learned as the rest of the reply is (Toolformer's loss)"
    elif cfg.tools:
        masking += ("; each call's result and ']' weighted as the prompt is (the agent loop writes them, the model "
                    "never does)")
    return (f"# SFT run `{cfg.name}`\n\n"
            f"- Base model: `{f['base_model']}` ({f['parameters']:,} parameters, "
            f"{f['trainable_parameters']:,} trained)\n{prompt}"
            f"- Data: `{f['data']}`: {f['examples']} conversations ({f['cut']} cut to {cfg.train.seq_len + 1} tokens, "
            f"{f['dropped']} dropped), {f['dev_examples']} held out\n"
            f"- Loss: {masking}{remedies(cfg)}\n"
            f"- Training: {steps_done(f['steps'], cfg.train.steps)} of {cfg.train.batch_size} conversations{packed}, "
            f"lr {cfg.train.lr}, {cfg.train.schedule} schedule, {f['train_seconds']:.1f} s; train loss {losses}, "
            f"reply loss on dev {_fmt(a.get('val_loss', '-'))}\n\n"
            "## Before and after (topic 41)\n\n| measure | before | after |\n|---|---|---|\n"
            f"{table}\n\nAccuracy: greedy answers to {a.get('problems', 0)} distinct test questions, exact match. "
            "The chat prompt is `<|user|>question<|end|><|assistant|>`; the completion prompt is the question as plain "
            "text after EOS, the way a base model is asked. A rise in general perplexity is what fine-tuning "
            f"cost the model outside the task.{TOOL_NOTE if cfg.tools else ''}\n\n"
            f"## Chat samples\n\n{head}{samples['chat_samples']}\n{with_tools}")
