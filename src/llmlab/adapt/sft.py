"""Supervised fine-tuning (topics 39, 41): conversations rendered by a `ChatTemplate`, padded or packed
into batches (`llmlab.adapt.batching`), and trained with the pretraining engine (`llmlab.train.Trainer`:
optimizer, schedule, precision, checkpoints with exact resume, metrics, progress); only the batches and
the loss differ.

The loss is `weighted_lm_loss`: reply tokens weigh 1, prompt tokens `prompt_loss_weight` (0 = prompt
masking, the usual choice; 1 = train on every token, as pretraining does). Only parameters with
``requires_grad`` are trained, so freezing layers or `apply_lora` before training is all it takes.

What SFT does to the model is measured before and after (`measure`): exact-match accuracy on the
arithmetic test split by greedy generation, both in the chat format and as a plain completion (how a
base model is prompted), and general ability as perplexity on a general corpus's dev split. With
``data="arithmetic-tools"`` (`llmlab.adapt.tools`) the replies call the calculator, their results are
masked from the loss (unless `learn_tool_results`), and the chat answers are measured with the agent loop
answering the calls too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from llmlab.adapt.batching import batch_indices, pack_batch, pad_batch
from llmlab.adapt.chat import ChatTemplate, Split, check_training_messages
from llmlab.adapt.sft_config import SFT_TRAIN, SFTConfig  # noqa: F401 (SFT_TRAIN: part of this API)
from llmlab.core.errors import InputError
from llmlab.core.io import jsonl_lines
from llmlab.core.modes import eval_mode
from llmlab.train.config import TrainConfig
from llmlab.train.objectives import moe_aux_loss, weighted_lm_loss
from llmlab.train.trainer import Trainer, perplexity

log = logging.getLogger(__name__)

# --- data -----------------------------------------------------------------------------------------

def conversation(record: dict, where: str) -> list[dict]:
    """A JSONL record as messages: {"messages": [...]} as is, {"prompt", "response"} as a user and an
    assistant turn; InputError naming `where` for a record that is no training conversation (ending with
    an assistant turn).

    >>> conversation({"prompt": "1+1=", "response": "2"}, "x")
    [{'role': 'user', 'content': '1+1='}, {'role': 'assistant', 'content': '2'}]
    """
    if isinstance(record, dict) and "messages" in record:
        messages = record["messages"]
    elif isinstance(record, dict) and isinstance(record.get("prompt"), str) and isinstance(record.get("response"), str):
        messages = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
    else:
        raise InputError(f"{where}: expected {{\"messages\": [...]}} or {{\"prompt\": ..., \"response\": ...}}, "
                         f"got {str(record)[:80]}")
    try:
        check_training_messages(messages)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    return messages


def arithmetic_conversations(problems) -> list[list[dict]]:
    return [[{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}] for p in problems]


def load_conversations(cfg: SFTConfig) -> tuple[list[list[dict]], list[list[dict]]]:
    """Train and dev conversations: the arithmetic splits (replies that call the calculator with
    arithmetic-tools), or a JSONL file whose last 5% (at least one record) is held out as dev, in order."""
    from llmlab.adapt.tools import arithmetic_tool_conversations
    from llmlab.data.corpora import arithmetic

    if cfg.data in ("arithmetic", "arithmetic-tools"):
        kw = dict(max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)
        render = arithmetic_tool_conversations if cfg.tools else arithmetic_conversations
        return (render(arithmetic(cfg.arithmetic_train, "train", **kw)), render(arithmetic(200, "dev", **kw)))
    if Path(cfg.data).suffix != ".jsonl":
        raise InputError(f"data must be 'arithmetic', 'arithmetic-tools' or a .jsonl file, got {cfg.data!r}")
    convs = [conversation(r, f"{cfg.data} line {i}") for i, r in jsonl_lines(cfg.data, "SFT data")]
    if len(convs) < 2:
        raise InputError(f"{cfg.data!r} has {len(convs)} conversation(s); SFT holds out the last 5% (at least one) "
                         "for validation, so it needs at least 2")
    k = max(1, len(convs) // 20)
    return convs[:-k], convs[-k:]


def encode_examples(template: ChatTemplate, tok, convs: list[list[dict]], max_len: int, split: Split | None = None
                    ) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """Rendered (ids, loss mask) pairs, cut to `max_len` tokens (seq_len + 1: inputs and shifted targets);
    `split` cuts replies into learned and unlearned pieces (`ChatTemplate.render`).

    The cut rule: a longer conversation keeps its first `max_len` tokens (the start of the dialogue and
    as much of the reply as fits); one left with no token to learn is dropped. The counts say how many
    were cut and dropped.
    """
    out, cut, dropped = [], 0, 0
    for messages in convs:
        ids, mask = template.render(tok, messages, split)
        if len(ids) > max_len:
            cut += 1
            ids, mask = ids[:max_len], mask[:max_len]
            if not any(mask[1:]):
                dropped += 1
                continue
        out.append((ids, mask))
    if not out:
        raise InputError(f"no conversation has a reply token within the first {max_len} tokens: raise seq_len")
    return out, {"examples": len(out), "cut": cut, "dropped": dropped}


MAX_UNKNOWN = 0.02  # share of <unk> tokens in the training text beyond which fine-tuning is refused


def check_known(tok, convs: list[list[dict]]) -> float:
    """The share of the conversations' characters the tokenizer cannot write (they would become <unk>);
    refused beyond `MAX_UNKNOWN`, since the model would learn to answer <unk>: a model pretrained on
    pfr1998 alone has no ASCII digits, so it cannot be taught arithmetic answers.
    """
    text = "".join(m["content"] for c in convs for m in c)
    if not text:
        return 0.0
    share = tok.count_unknown(text) / len(text)
    if share > MAX_UNKNOWN:
        missing = sorted({ch for ch in text if tok.unk_id in tok.encode(ch)})
        raise InputError(f"the base model's tokenizer cannot write {share:.1%} of the training text (characters "
                         f"such as {''.join(missing[:20])!r}), which would all be <unk>: pretrain on text that "
                         "holds them (e.g. llmlab data mix --domain arithmetic --general pfr1998)")
    return share


# --- the trainer ----------------------------------------------------------------------------------

def loss_weight(targets: torch.Tensor, weights: torch.Tensor) -> float:
    """The total weight `weighted_lm_loss` divides by: the weights of the targets that count (not -100).

    >>> loss_weight(torch.tensor([[-100, 7, 8]]), torch.tensor([[0.25, 1.0, 1.0]]))
    2.0
    """
    return float((weights.float() * (targets != -100)).sum())


class SFTTrainer(Trainer):
    """The training engine on padded conversations with the weighted loss; validation is the reply-only
    loss on the dev conversations (prompt weight 0 whatever the training weight, so runs compare). Its
    token counts are the conversations' tokens, padding left out."""

    counts_tokens = True

    def __init__(self, model, cfg: TrainConfig, train: list, dev: list, run_dir: str | Path, pad_id: int,
                 prompt_loss_weight: float = 0.0, bucket: bool = False, packing: bool = False):
        super().__init__(model, cfg, None, None, run_dir)
        self.examples, self.dev = train, dev
        self.lengths = [len(ids) for ids, _ in train]
        self.pad_id, self.prompt_loss_weight, self.bucket = pad_id, prompt_loss_weight, bucket
        self.packing = packing  # the same conversations per micro-batch, packed into rows of <= seq_len tokens
        self.anchor = None  # an `llmlab.adapt.forgetting.Anchor`: its loss terms join every micro-step's
        self._anchor_stats: dict[str, float] = {}

    def batch(self, micro: int):
        """Inputs, targets, loss weights, the anchor's general windows (None without them), and with packing
        the rows' segments: all a function of (seed, step, micro). Packing draws the same `batch_size`
        conversations as padding does and packs them (`pack_batch`), so the loss and its gradients are the
        padded run's, only fewer tokens are computed."""
        cfg = self.cfg
        seed = self.batch_seed(micro)
        picked = self.picked(micro)
        general = self.anchor.windows(seed) if self.anchor is not None else None
        if self.packing:
            x, y, w, seg = (t.to(self.device) for t in pack_batch(picked, cfg.seq_len, self.pad_id,
                                                                  self.prompt_loss_weight))
            return x, y, w, general, seg
        x, y, w = (t.to(self.device) for t in pad_batch(picked, self.pad_id, self.prompt_loss_weight))
        return x, y, w, general

    def batch_seed(self, micro: int) -> int:
        return (self.cfg.seed * 1_000_003 + self.step) * 64 + micro

    def picked(self, micro: int) -> list[tuple[list[int], list[int]]]:
        """The conversations (ids, loss mask) of this step's micro-batch `micro`."""
        rows = batch_indices(self.lengths, self.cfg.batch_size, self.batch_seed(micro), self.bucket)
        return [self.examples[i] for i in rows]

    def forward_backward(self) -> float:
        """Accumulate the step's gradients; return its loss, the mean over all its micro-batches' weighted
        tokens.

        The step's loss is the sum of its weighted token losses over its total weight, so grad_accum k of
        batch b equals one batch of k*b: a micro-batch weighs by its share of the step's weight, not
        1/grad_accum (which would over-weigh the tokens of micro-batches with short replies; transformers
        fixed the same in 4.46 with num_items_in_batch). Its batches are therefore drawn before the first
        backward, the same batches as one at a time (each a function of seed, step, micro)."""
        batches = [self.batch(m) for m in range(self.cfg.grad_accum)]
        weights = [loss_weight(y, w) for _, y, w, *_ in batches]
        total = max(sum(weights), 1e-12)  # as `weighted_lm_loss` clamps it
        shares = [n / total for n in weights]  # 1.0 with one micro-batch: the loss as is
        return sum(float(self.micro_step(*b, share=s)) * s for b, s in zip(batches, shares))

    def micro_step(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, general=None,
                   segments: torch.Tensor | None = None, *, share: float) -> torch.Tensor:
        """Forward and backward of one micro-batch, its reply loss weighted by `share` (its part of the
        step's loss weight, `forward_backward`), the MoE and anchor terms (per micro-batch means) by 1 /
        grad_accum; its reply loss."""
        self.count((x != self.pad_id).sum())
        with self._autocast():
            logits = self.forward(x) if segments is None else self.forward(x, segments=segments)  # (B, T, V)
        loss = weighted_lm_loss(logits, y, w)
        objective = loss * share
        aux = moe_aux_loss(self.model)
        if aux is not None:
            objective = objective + aux / self.cfg.grad_accum
        if self.anchor is not None:
            extra, self._anchor_stats = self.anchor.loss(self.model, general)
            objective = objective + extra / self.cfg.grad_accum
        (self.scaler.scale_loss(objective) if self.scaler else objective).backward()
        return loss.detach()

    def train_step(self) -> dict:
        record = super().train_step()
        record.update(self._anchor_stats)  # the last micro-batch's parts of the anchor loss
        return record

    @torch.no_grad()
    def evaluate(self, max_batches: int | None, model=None) -> dict:
        model = model or self.model
        bs = self.cfg.batch_size
        chunks = [self.dev[i:i + bs] for i in range(0, len(self.dev), bs)][:max_batches]
        total = count = 0.0
        with eval_mode(model):
            for chunk in chunks:
                x, y, w = (t.to(self.device) for t in pad_batch(chunk, self.pad_id, 0.0))
                n = float(w.sum())
                total += float(weighted_lm_loss(model(x), y, w)) * n
                count += n
        loss = total / max(count, 1.0)
        return {"step": self.step, "val_loss": loss, "val_ppl": perplexity(loss), "val_tokens": int(count)}


# --- measurements ---------------------------------------------------------------------------------

def greedy_answers(model, tok, problems, prompts: list[list[int]], stop_id: int, max_new_tokens: int, desc: str,
                   tools: bool = False) -> dict:
    """`llmlab.adapt.tools.answer_stats` of `model`'s greedy answers, which stop at `stop_id`; with `tools`
    the agent loop answers the calculator calls, one problem at a time. Without, the answers are decoded in
    batches of similar lengths (`generate_batch`: greedy, each prompt's tokens alone, several times faster)."""
    from llmlab.adapt.tools import answer_stats, text_stats
    from llmlab.generate import GenerationConfig, generate_batch
    from llmlab.generate.agent import agent_step

    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    if tools:
        return answer_stats(agent_step(model, gen, stop_id), tok, problems, prompts, max_new_tokens, desc, tools)
    log.info("%s: %d problems", desc, len(problems))
    return text_stats(problems, [tok.decode(ids) for ids in generate_batch(model, list(prompts), gen, stop_id, 64)])


def answer_accuracy(model, tok, problems, prompts: list[list[int]], stop_id: int, max_new_tokens: int,
                    desc: str) -> tuple[float, list[tuple[str, str, str]]]:
    """Exact-match accuracy of greedy answers to `prompts` (one per problem), read after any tool call the
    answer holds (`final_answer`), and (question, gold, answer) for the first few."""
    r = greedy_answers(model, tok, problems, prompts, stop_id, max_new_tokens, desc)
    return r["accuracy"], r["samples"]


def arithmetic_exact_match(model, tok, template: ChatTemplate, problems, max_new_tokens: int,
                           tools: bool = False) -> dict:
    """`greedy_answers` of a chat model to `problems`, each asked as one user turn of `template`; with
    `tools` through the agent loop. A model whose tokenizer writes a call's characters (`llmlab sft --data
    arithmetic-tools`) may call with or without the loop, so its budget grows by the longest call
    (`call_tokens`) either way: cut inside the call, an answer would be read as wrong."""
    from llmlab.adapt.tools import SYNTAX, call_tokens

    prompts = [template.prompt_ids(tok, [{"role": "user", "content": p.question}]) for p in problems]
    calls = tools or tok.count_unknown(SYNTAX) == 0
    budget = max_new_tokens + (call_tokens(tok, problems) if calls else 0)
    return greedy_answers(model, tok, problems, prompts, template.ids(tok)[template.end], budget,
                          "answers with tools" if tools else "answers", tools)


def general_tokens(tok, corpus: str, split: str, n_tokens: int) -> torch.Tensor:
    """The first `n_tokens` of `corpus`'s `split` as one stream, lines joined by EOS (as pretraining reads them)."""
    from llmlab.data.corpora import corpus_text

    ids: list[int] = []
    for line in corpus_text(corpus, split):
        ids += tok.encode(line) + [tok.eos_id]
        if len(ids) >= n_tokens:
            break
    return torch.tensor(ids[:n_tokens], dtype=torch.long)


def general_perplexity(model, tok, corpus: str, n_tokens: int, seq_len: int) -> dict:
    """Loss and perplexity on the first `n_tokens` of `corpus`'s dev split (lines joined by EOS, as a
    pretraining stream), and the share of those tokens that are ``<unk>``."""
    from llmlab.train.trainer import evaluate_loss

    stream = general_tokens(tok, corpus, "dev", n_tokens)
    loss, n = evaluate_loss(model, stream, seq_len)
    unk = float((stream == tok.unk_id).float().mean()) if stream.numel() else 0.0
    return {"general_loss": loss, "general_ppl": perplexity(loss), "general_tokens": n, "general_unk_share": unk}


def measure(model, tok, template: ChatTemplate, cfg: SFTConfig) -> dict:
    """The before/after figures: chat and completion accuracy on arithmetic test problems, general
    perplexity. Completion prompts the question as plain text after EOS (how a base model is asked).

    With arithmetic-tools the chat answers are also run through the agent loop (``tool_*`` figures), and
    every chat answer may write a call on top of `answer_tokens` (`arithmetic_exact_match`); answers are
    read after the call either way. Without the loop the model writes the call's result itself."""
    from llmlab.data.corpora import arithmetic_distinct
    from llmlab.models.scoring import text_start

    out: dict = {}
    if cfg.eval_problems:
        problems = arithmetic_distinct(cfg.eval_problems, max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)
        r = arithmetic_exact_match(model, tok, template, problems, cfg.answer_tokens)
        out.update(chat_accuracy=r["accuracy"], chat_samples=r["samples"])
        if cfg.tools:
            r = arithmetic_exact_match(model, tok, template, problems, cfg.answer_tokens, tools=True)
            out.update(tool_accuracy=r["accuracy"], tool_call_rate=r["call_rate"],
                       tool_argument_rate=r["argument_rate"], tool_samples=r["samples"])
        acc, shown = answer_accuracy(model, tok, problems, [text_start(tok) + tok.encode(p.question) for p in problems],
                                     tok.eos_id, cfg.answer_tokens, "completions")
        out.update(completion_accuracy=acc, completion_samples=shown, problems=len(problems), distinct=True)
    if cfg.general_tokens:
        out.update(general_perplexity(model, tok, cfg.general_corpus, cfg.general_tokens,
                                      min(cfg.train.seq_len, model.config.max_seq_len)))
    return out
