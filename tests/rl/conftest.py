"""Tiny chat models for the rl tests: a character tokenizer over 2-digit additions with the chat tokens."""

import pytest
import torch

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.core.threads import torch_threads
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig
from llmlab.tokenizers import CharTokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: extra threads only contend."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def chat_tok():
    base = CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+")])
    return add_chat_tokens(None, base)


@pytest.fixture(scope="session")
def end(chat_tok):
    """The id of <|end|>, where completions stop."""
    return ChatTemplate().ids(chat_tok)["<|end|>"]


@pytest.fixture(scope="session")
def prompt(chat_tok):
    """Chat prompt ids of a question: <|user|>question<|end|><|assistant|>."""
    return lambda q: ChatTemplate().prompt_ids(chat_tok, [{"role": "user", "content": q}])


@pytest.fixture(scope="session")
def policy(chat_tok):
    """A factory of tiny decoders over the chat vocabulary, seeded."""
    def make(seed=0, dim=32, n_layer=1, max_seq_len=32):
        torch.manual_seed(seed)
        return CausalLM(ModelConfig(vocab_size=chat_tok.vocab_size, dim=dim, n_layer=n_layer, n_head=2,
                                    n_kv_head=2, max_seq_len=max_seq_len))
    return make


@pytest.fixture(scope="module")
def chat_dir(policy, chat_tok, tmp_path_factory):
    """A tiny model saved the way llmlab sft saves one: chat tokens and tokenizer_config.json."""
    from llmlab.models import save_model
    from llmlab.pipeline.sft import tokenizer_config

    d = tmp_path_factory.mktemp("chat") / "model"
    save_model(policy(0), d, chat_tok, tokenizer_config=tokenizer_config(chat_tok, ChatTemplate()))
    return d
