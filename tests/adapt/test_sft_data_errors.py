"""A JSONL conversation that is no training example (it ends with a user turn) is refused naming its line,
as every other malformed record is, in the Python API and through `llmlab sft`."""

import json

import pytest
import torch

from llmlab.adapt.sft import conversation, load_conversations
from llmlab.adapt.sft_config import SFTConfig
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer

GOOD = {"messages": [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}]}
ENDS_WITH_USER = {"messages": [*GOOD["messages"], {"role": "user", "content": "and 2+2?"}]}


def write(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_a_conversation_ending_with_a_user_turn_is_refused_naming_its_line(tmp_path):
    assert conversation(GOOD, "x") == GOOD["messages"]
    with pytest.raises(InputError, match="^here: a training conversation must end with an assistant turn .*'user'"):
        conversation(ENDS_WITH_USER, "here")
    with pytest.raises(InputError, match="^here: a training conversation must end with an assistant turn"):
        conversation({"prompt": "1+1=", "response": "2", "messages": [{"role": "system", "content": "s"}]}, "here")
    f = write(tmp_path / "c.jsonl", [GOOD, GOOD, "", GOOD, ENDS_WITH_USER, GOOD])  # blank lines counted
    with pytest.raises(InputError, match=r"c.jsonl line 5: a training conversation must end with an assistant turn"):
        load_conversations(SFTConfig(data=str(f)))


def test_llmlab_sft_names_the_line(tmp_path, capsys):
    tok = CharTokenizer.train([p.text for p in arithmetic(50, max_digits=2, ops="+")] + ["and ?"])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=32))
    base = save_model(model, tmp_path / "base", tok)
    f = write(tmp_path / "end.jsonl", [GOOD, GOOD, GOOD, ENDS_WITH_USER])
    assert main(["sft", "--model", str(base), "--data", str(f), "--out", str(tmp_path / "runs"), "--name", "s",
                 "--steps", "1", "--eval-problems", "0", "--general-tokens", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "end.jsonl line 4: a training conversation must end with an assistant turn" in err
