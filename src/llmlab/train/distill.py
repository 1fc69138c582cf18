"""Knowledge distillation during pretraining (topic 33; Hinton, Vinyals & Dean 2015).

A small student learns from the data and from a larger, frozen teacher's next-token distributions,
softened by a temperature T. Per target token the loss is

    (1 - alpha) * CE(student, data) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

averaged over the tokens the cross-entropy counts (targets equal to `ignore_index` count in neither
term). The gradient of the soft term with respect to the student's logits is
``alpha * T * (softmax(s / T) - softmax(t / T)) / N``: the T^2 keeps its size comparable to the hard
term's as T changes (a higher T spreads the teacher's probability over more tokens, its "dark knowledge"
of which wrong answers are nearly right).

The teacher is an llmlab model folder (`load_teacher`): it must share the student's tokenizer, cover
its sequence length, and its weights' SHA-256 joins the run's data fingerprint so a resume with another
teacher is refused. `Trainer(..., teacher=...)` runs it in eval mode without gradients beside the
student, under the same autocast; checkpoints hold the student only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.core.errors import InputError
from llmlab.core.io import sha256_file


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, temperature: float,
            ignore_index: int = -100) -> torch.Tensor:
    """Mean over the counted targets of KL(softmax(teacher / T) || softmax(student / T)), in nats.

    Logits are (B, T, V), targets (B, T); a target equal to `ignore_index` leaves its position out.
    Equal logits give 0.
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (B, T, V) student
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)  # (B, T, V) teacher
    per_token = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, T)
    counted = targets != ignore_index  # (B, T)
    return (per_token * counted).sum() / counted.sum()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      alpha: float, temperature: float, ignore_index: int = -100
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(1 - alpha) * ce + alpha * T^2 * kd``, with ce the next-token loss on `targets` (as
    `causal_lm_loss` averages it) and kd the `soft_kl` at temperature T; returns (loss, ce, kd).

    alpha 0 gives `causal_lm_loss` exactly; alpha 1 learns from the teacher alone.
    """
    from llmlab.train.objectives import causal_lm_loss

    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    ce = causal_lm_loss(student_logits, targets, ignore_index=ignore_index)
    kd = soft_kl(student_logits, teacher_logits, targets, temperature, ignore_index)
    return (1 - alpha) * ce + alpha * temperature ** 2 * kd, ce, kd


def load_teacher(model_dir: str | Path, tokenizer, seq_len: int, device: str | torch.device = "cpu"):
    """The teacher in `model_dir`, frozen and in eval mode on `device`, and its weights' SHA-256.

    InputError, naming both sides, unless it was saved with the same tokenizer as the student's
    (`tokenizer`, compared as tokenizer.json documents), embeds exactly that vocabulary, and its context
    holds `seq_len` tokens.
    """
    from llmlab.models import load_model

    d = Path(model_dir)
    teacher, teacher_tok = load_model(d, device)
    if teacher_tok is None:
        raise InputError(f"teacher {str(d)!r} has no tokenizer.json: distillation needs the teacher's tokenizer to "
                         "check that it is the student's")
    if teacher_tok.to_hf_json() != tokenizer.to_hf_json():
        raise InputError(f"teacher {str(d)!r} has another tokenizer ({type(teacher_tok).__name__}, "
                         f"{teacher_tok.vocab_size} tokens) than the student's ({type(tokenizer).__name__}, "
                         f"{tokenizer.vocab_size} tokens): token ids would mean other things; train the teacher "
                         "with the same corpus, --tokenizer and --vocab-size")
    if teacher.config.vocab_size != tokenizer.vocab_size:
        raise InputError(f"teacher {str(d)!r} embeds {teacher.config.vocab_size} tokens, the student's tokenizer "
                         f"has {tokenizer.vocab_size}: their logits would not line up")
    if teacher.config.max_seq_len < seq_len:
        raise InputError(f"teacher {str(d)!r} has max_seq_len {teacher.config.max_seq_len}, shorter than the "
                         f"student's seq_len {seq_len}")
    teacher.eval().requires_grad_(False)
    return teacher, sha256_file(d / "model.safetensors")
