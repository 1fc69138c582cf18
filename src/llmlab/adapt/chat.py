"""A chat template (topic 39): conversations as one token sequence, with a mask of what to learn.

The format: each turn is its role token, the content, and ``<|end|>``; a prompt for generation ends
with the assistant's role token, and the model answers until it writes ``<|end|>``::

    <|system|>Be brief.<|end|><|user|>12+30=<|end|><|assistant|>42<|end|>

``<|end|>`` is its own token rather than the tokenizer's ``<|eos|>``: a pretrained llmlab model has
learned EOS as the boundary between documents (`text_start`), and a chat turn ending is a different
event; a character tokenizer's file also lists only added tokens as specials HF finds in text, which
the role tokens and ``<|end|>`` become. No BOS and no separator text: the role tokens are the only
structure, so the rendered text is the same under Hugging Face's ``apply_chat_template`` with
`ChatTemplate.jinja`.

Contents are encoded as ordinary text: a user who types ``<|end|>`` gets its characters, never the
token, so a message cannot forge a turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from llmlab.core.errors import InputError
from llmlab.tokenizers.base import Tokenizer

ROLES = ("system", "user", "assistant")
Split = Callable[[str], list[tuple[str, bool]]]  # a reply -> (piece, learned) pieces, in order


@dataclass(frozen=True)
class ChatTemplate:
    system: str = "<|system|>"  # opens a system turn (allowed only as the first message)
    user: str = "<|user|>"  # opens a user turn
    assistant: str = "<|assistant|>"  # opens an assistant turn; a generation prompt ends with it
    end: str = "<|end|>"  # closes every turn; learned after each assistant turn, and where generation stops

    def __post_init__(self):
        toks = self.tokens
        for t in toks:
            if not isinstance(t, str) or not t or any(c in t for c in "'\"{}%\\") or any(c.isspace() for c in t):
                raise InputError(f"chat template tokens must be non-empty, without spaces, quotes, braces, % or "
                                 f"backslashes (they are written into a Jinja template), got {t!r}")
        if len(set(toks)) != len(toks):
            raise InputError(f"chat template tokens must be distinct, got {toks}")

    @property
    def tokens(self) -> tuple[str, str, str, str]:
        """The special tokens the template needs: the three roles and the end of turn."""
        return (self.system, self.user, self.assistant, self.end)

    def role_token(self, role: str) -> str:
        return getattr(self, role)

    def text(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """The conversation as text, special tokens spelled out (what `jinja` renders).

        >>> ChatTemplate().text([{"role": "user", "content": "1+1="}], add_generation_prompt=True)
        '<|user|>1+1=<|end|><|assistant|>'
        """
        check_messages(messages)
        body = "".join(self.role_token(m["role"]) + m["content"] + self.end for m in messages)
        return body + (self.assistant if add_generation_prompt else "")

    def jinja(self) -> str:
        """The template as a Hugging Face ``chat_template`` (Jinja), rendering the same text as `text`."""
        roles = "".join(f"{'el' if i else ''}if m['role'] == '{r}' %}}{{{{ '{self.role_token(r)}' }}}}{{% "
                        for i, r in enumerate(ROLES))
        return ("{% for m in messages %}{% " + roles
                + "else %}{{ raise_exception('unknown role ' + m['role']) }}{% endif %}"
                "{{ m['content'] + '" + self.end + "' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ '" + self.assistant + "' }}{% endif %}")

    def ids(self, tok: Tokenizer) -> dict[str, int]:
        """The id of each template token in `tok`; InputError naming those it lacks (`add_chat_tokens`)."""
        out = {t: tok.token_to_id(t) for t in self.tokens}
        missing = [t for t, i in out.items() if i is None]
        if missing:
            raise InputError(f"the tokenizer lacks the chat tokens {missing}: add them with add_chat_tokens")
        return out

    def render(self, tok: Tokenizer, messages: list[dict], split: Split | None = None) -> tuple[list[int], list[int]]:
        """Token ids of a training conversation and its loss mask: 1 exactly on each assistant turn's
        content and its end token (what the model learns to write), 0 on role tokens and on every system
        and user token. The conversation must end with an assistant turn.

        With `split`, each assistant turn's content is encoded piece by piece as ``split(content)`` cuts it,
        and a piece marked False is not learned: `llmlab.generate.agent.transcript_pieces` marks a tool's
        result, which the agent loop writes and the model never generates.

        >>> from llmlab.tokenizers import CharTokenizer
        >>> tok = add_chat_tokens(None, CharTokenizer.train(["1+1=2"]))
        >>> ids, mask = ChatTemplate().render(tok, [{"role": "user", "content": "1+1="},
        ...                                         {"role": "assistant", "content": "2"}])
        >>> [tok.decode([i]) for i, m in zip(ids, mask) if m]
        ['2', '<|end|>']
        """
        check_training_messages(messages)
        special = self.ids(tok)
        ids: list[int] = []
        mask: list[int] = []
        for m in messages:
            learn = int(m["role"] == "assistant")
            ids.append(special[self.role_token(m["role"])])
            mask.append(0)
            for piece, mine in split(m["content"]) if split is not None and learn else [(m["content"], True)]:
                content = tok.encode(piece)
                ids += content
                mask += [learn * mine] * len(content)
            ids.append(special[self.end])
            mask.append(learn)
        return ids, mask

    def prompt_ids(self, tok: Tokenizer, messages: list[dict]) -> list[int]:
        """Ids of a conversation to be answered: its turns, then the assistant's role token."""
        check_messages(messages)
        if messages[-1]["role"] == "assistant":
            raise InputError("a conversation to answer must end with a user (or system) turn, not an assistant one")
        special = self.ids(tok)
        ids: list[int] = []
        for m in messages:
            ids += [special[self.role_token(m["role"])], *tok.encode(m["content"]), special[self.end]]
        return ids + [special[self.assistant]]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_messages(messages: list[dict]) -> None:
    """InputError unless `messages` is a non-empty list of {"role", "content"} dicts with known roles, a
    system message only first."""
    if not isinstance(messages, list) or not messages:
        raise InputError(f"a conversation must be a non-empty list of messages, got {messages!r}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise InputError(f"message {i} must be an object with a string 'content', got {m!r}")
        if m.get("role") not in ROLES:
            raise InputError(f"message {i} has role {m.get('role')!r}; roles are {ROLES}")
        if m["role"] == "system" and i > 0:
            raise InputError(f"message {i} is a system message; only the first message may be one")


@torch.no_grad()
def check_training_messages(messages: list[dict]) -> None:
    """`check_messages`, and the conversation ends with an assistant turn (the reply to learn): checked as
    a data file is read, so the error names its line (`llmlab.adapt.sft.conversation`), and again by `render`.

    >>> check_training_messages([{"role": "user", "content": "1+1="}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: a training conversation must end with an assistant turn ... a 'user' turn
    """
    check_messages(messages)
    if messages[-1]["role"] != "assistant":
        raise InputError(f"a training conversation must end with an assistant turn (the reply to learn), "
                         f"this one ends with a {messages[-1]['role']!r} turn")


def add_chat_tokens(model, tok: Tokenizer, template: ChatTemplate | None = None) -> Tokenizer:
    """The tokenizer with the template's tokens it lacks (at new ids after the old ones), and `model`
    (if given) grown in place to embed them; old ids, and the old tokens' logits, are unchanged.

    New embedding rows (and rows of an untied output head) start at the mean of the existing ones: the
    new token then looks like an average token to the network, and its logit is the mean logit, so it
    neither steals probability from the old tokens nor starts from a random direction that a few steps of
    fine-tuning would have to undo (Hewitt, "Initializing new word embeddings", 2021).
    """
    from llmlab.tokenizers.specials import with_special_tokens

    template = template or ChatTemplate()
    new = with_special_tokens(tok, template.tokens)
    if model is not None:
        grow_vocab(model, tok.vocab_size, new.vocab_size)
    return new


@torch.no_grad()
def grow_vocab(model, n_old: int, n_new: int) -> None:
    """Give `model` at least `n_new` token rows; rows n_old..n_new-1 of the embedding (and of an untied
    head) become the mean of rows 0..n_old-1. The config's vocab_size follows."""
    emb = model.embed_tokens
    V, d = emb.weight.shape
    tied = model.lm_head.weight is emb.weight
    if n_new > V:
        bigger = torch.nn.Embedding(n_new, d, device=emb.weight.device, dtype=emb.weight.dtype)
        bigger.weight[:V] = emb.weight
        model.embed_tokens = bigger
        if tied:
            model.lm_head.weight = bigger.weight
        else:
            head = torch.nn.Linear(d, n_new, bias=False, device=emb.weight.device, dtype=model.lm_head.weight.dtype)
            head.weight[:V] = model.lm_head.weight
            model.lm_head = head
        model.config = dataclasses.replace(model.config, vocab_size=n_new)
    model.embed_tokens.weight[n_old:n_new] = model.embed_tokens.weight[:n_old].mean(0)
    if not tied:
        model.lm_head.weight[n_old:n_new] = model.lm_head.weight[:n_old].mean(0)


def load_chat_template(model_dir) -> ChatTemplate:
    """The template a chat model was fine-tuned with (its tokenizer_config.json, as `llmlab sft` saves it)."""
    from pathlib import Path

    from llmlab.core.config import config_from_dict
    from llmlab.core.io import read_json

    path = Path(model_dir) / "tokenizer_config.json"
    if not path.is_file():
        raise InputError(f"model directory {str(model_dir)!r} has no tokenizer_config.json: it is not a chat model "
                         "(fine-tune one with llmlab sft)")
    doc = read_json(path, "tokenizer config")
    if not isinstance(doc, dict) or not isinstance(doc.get("llmlab_chat_template"), dict):
        raise InputError(f"{str(path)!r} has no llmlab_chat_template: it was not written by llmlab sft")
    return config_from_dict(ChatTemplate, doc["llmlab_chat_template"], what=str(path))
