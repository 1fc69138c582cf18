"""The pretraining stream's layout, and the start every inference path takes from it."""

from llmlab.models.scoring import text_start
from llmlab.pipeline.pretrain import encode_stream
from llmlab.tokenizers import CharTokenizer


def test_inference_starts_texts_where_training_streams_start_them():
    lines = ["中国人民", "迎接新的挑战", "ok"]
    tok = CharTokenizer.train(lines)
    stream = encode_stream(tok, lines).tolist()
    start = text_start(tok)
    pos = 0
    for i, line in enumerate(lines):
        ids = tok.encode(line)
        if i:  # every line after the first follows exactly the context inference starts from
            assert stream[pos - len(start):pos] == start
        assert stream[pos:pos + len(ids)] == ids
        pos += len(ids) + 1
    assert pos == len(stream)
    assert tok.bos_id not in stream  # a BOS start would be a token the model never saw
