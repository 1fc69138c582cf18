"""Retrieval-augmented generation: prompts that fit, grounding that tracks copying, `answer` end to end
with a tiny model, and the `llmlab rag` commands."""

import json
import re

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import pfr1998_text
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.rag import TEMPLATE, answer, build_prompt, format_prompt, grounding
from llmlab.generate.retrieval import BM25Index, IndexConfig
from llmlab.models import ModelConfig, save_model
from llmlab.models.scoring import text_start
from llmlab.tokenizers import CharTokenizer

from ..helpers import wide_lm

DOCS = [d for d in pfr1998_text("dev") if 20 <= len(d) <= 60][:40]
QUESTION = DOCS[3][2:14]


@pytest.fixture(scope="module")
def index():
    return BM25Index.build(DOCS, IndexConfig(passage_chars=30, overlap_chars=6))


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.train(DOCS + [TEMPLATE, "0123456789[]"])


@pytest.fixture(scope="module")
def model(tok):
    # wider than the default init, so that samples vary with the seed
    return wide_lm(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=160),
                   seed=0)


def test_build_prompt_keeps_the_best_passages_that_fit(index, tok):
    hits = index.search(QUESTION, k=6)
    assert len(hits) == 6
    full = len(tok.encode(format_prompt(QUESTION, hits)))
    kept_sizes = []
    for budget in range(full + 5, 0, -7):
        try:
            prompt = build_prompt(QUESTION, hits, tok, budget)
        except InputError as e:  # the question alone is over the budget
            assert len(tok.encode(format_prompt(QUESTION, []))) > budget and "budget" in str(e)
            continue
        assert prompt.n_tokens == len(tok.encode(prompt.text)) <= budget
        assert list(prompt.hits) == hits[: len(prompt.hits)]  # best first, only the tail dropped
        if len(prompt.hits) < len(hits):  # the next passage would not have fitted
            assert len(tok.encode(format_prompt(QUESTION, hits[: len(prompt.hits) + 1]))) > budget
        for n, h in enumerate(prompt.hits, 1):
            assert f"[{n}] {h.text}\n" in prompt.text
        kept_sizes.append(len(prompt.hits))
    assert kept_sizes[0] == 6 and min(kept_sizes) == 0 and kept_sizes == sorted(kept_sizes, reverse=True)


def test_grounding_of_copied_unrelated_and_padded_answers(index):
    hits = index.search(QUESTION, k=3)
    assert grounding(hits[1].text, hits).score == 1.0
    assert grounding(hits[0].text[3:15], hits).score == 1.0
    assert grounding("The quick brown fox jumps over the lazy dog.", hits).score == 0.0
    unrelated = grounding("小猫喜欢在阳光下睡觉，狗狗爱吃骨头。", hits)
    assert unrelated.score < 0.1 and not unrelated.is_grounded(0.5)
    answer_text = hits[0].text + "\n"  # a passage may end mid-sentence
    scores = [grounding(answer_text, hits).score]
    for extra in ["小猫喜欢在阳光下睡觉。", "狗狗爱吃骨头！", "Paris is lovely in spring."]:
        answer_text += extra
        scores.append(grounding(answer_text, hits).score)
    assert all(a > b for a, b in zip(scores, scores[1:]))  # each unsupported sentence lowers it
    g = grounding(answer_text, hits)
    assert [s.support for s in g.sentences[-3:]] == [0.0, 0.0, 0.0]
    assert g.unsupported(0.5)[-1] == "Paris is lovely in spring."
    weighted = sum(s.support * s.n_grams for s in g.sentences) / sum(s.n_grams for s in g.sentences)
    assert g.score == pytest.approx(weighted)


def test_grounding_n_is_the_gram_length():
    passage = "北京是中国的首都"
    shuffled = "首都的中国是北京"  # the same characters in another order
    assert grounding(shuffled, [passage], n=1).score == 1.0
    assert grounding(shuffled, [passage], n=2).score < 1.0
    assert grounding(shuffled, [passage], n=3).score < grounding(shuffled, [passage], n=2).score
    assert grounding("", [passage]).score == 0.0 and grounding("。！", [passage]).sentences == ()
    with pytest.raises(InputError, match="n must be >= 1"):
        grounding("x", [passage], n=0)
    with pytest.raises(InputError, match="threshold"):
        grounding("x", [passage]).is_grounded(1.5)


def test_answer_prompts_with_the_passages_it_cites(model, tok, index):
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=5)
    a = answer(model, tok, QUESTION, index, k=3, gen_config=cfg)
    hits = index.search(QUESTION, k=3)
    assert a.citations == tuple(hits)  # the context has room for all three
    assert a.prompt == format_prompt(QUESTION, hits)
    expected = generate(model, text_start(tok) + tok.encode(a.prompt), cfg, eos_id=tok.eos_id)
    assert a.text == tok.decode(expected)
    assert a.grounding == grounding(a.text, a.citations)
    assert answer(model, tok, QUESTION, index, k=3, gen_config=cfg) == a  # the seed fixes the sample
    other = answer(model, tok, QUESTION, index, k=3, gen_config=GenerationConfig(max_new_tokens=12, seed=6))
    assert other.text != a.text
    d = a.to_dict()
    assert d["citations"][0]["n"] == 1 and d["citations"][0]["text"] == hits[0].text
    json.dumps(d, ensure_ascii=False)


def test_answer_drops_passages_to_leave_room_for_the_answer(model, tok, index):
    cfg = GenerationConfig(max_new_tokens=70, temperature=0)
    a = answer(model, tok, QUESTION, index, k=5, gen_config=cfg)
    assert 0 < len(a.citations) < 5 and a.citations == tuple(index.search(QUESTION, k=5)[: len(a.citations)])
    assert len(text_start(tok)) + len(tok.encode(a.prompt)) + 70 <= model.config.max_seq_len
    ctx = model.config.max_seq_len
    with pytest.raises(InputError, match=f"no room .* at most a quarter of the context, {ctx // 4},"):
        answer(model, tok, QUESTION, index, gen_config=GenerationConfig(max_new_tokens=160))
    # the value the message suggests leaves the question and a passage room
    assert answer(model, tok, QUESTION, index, gen_config=GenerationConfig(max_new_tokens=ctx // 4)).citations


def test_cli_index_search_ask(model, tok, tmp_path, capsys):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    idx = tmp_path / "idx"
    assert main(["rag", "index", str(docs), "-o", str(idx), "--passage-chars", "30", "--overlap-chars", "6"]) == 0
    assert "40 documents" in capsys.readouterr().out
    assert main(["rag", "search", "--index", str(idx), QUESTION, "-k", "3"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    hits = BM25Index.load(idx).search(QUESTION, k=3)
    assert [(x["rank"], x["index"], x["text"], x["doc"]) for x in lines] == [(i, h.index, h.text, h.doc)
                                                                             for i, h in enumerate(hits, 1)]
    assert DOCS[lines[0]["doc"]][lines[0]["start"]: lines[0]["end"]] == lines[0]["text"]
    recs = tmp_path / "docs.jsonl"
    recs.write_text("".join(json.dumps({"id": i, "body": d}, ensure_ascii=False) + "\n" for i, d in enumerate(DOCS)),
                    encoding="utf-8")
    assert main(["rag", "index", str(recs), "--field", "body", "-o", str(tmp_path / "idx2"), "--passage-chars", "30",
                 "--overlap-chars", "6"]) == 0
    capsys.readouterr()
    assert main(["rag", "search", "--index", str(tmp_path / "idx2"), QUESTION, "-k", "3"]) == 0
    assert [json.loads(x)["index"] for x in capsys.readouterr().out.splitlines()] == [h.index for h in hits]
    d = save_model(model, tmp_path / "model", tok)
    argv = ["rag", "ask", "--index", str(idx), "--model", str(d), QUESTION, "-k", "3", "--max-new-tokens", "8",
            "--seed", "5", "--temperature", "1.0"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    a = answer(model, tok, QUESTION, BM25Index.load(idx), k=3,
               gen_config=GenerationConfig(max_new_tokens=8, seed=5, temperature=1.0))
    assert out == json.loads(json.dumps(a.to_dict(), ensure_ascii=False))


def test_cli_errors_are_named(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert main(["rag", "index", str(empty), "-o", str(tmp_path / "idx")]) == 2
    assert "nothing to index" in capsys.readouterr().err
    assert main(["rag", "search", "--index", str(tmp_path / "missing"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    docs = tmp_path / "docs.txt"
    docs.write_text("北京\n上海\n", encoding="utf-8")
    assert main(["rag", "index", str(docs), "-o", str(tmp_path / "idx")]) == 0
    assert main(["rag", "search", "--index", str(tmp_path / "idx"), "北京", "-k", "0"]) == 2
    assert "k must be >= 1" in capsys.readouterr().err
    assert main(["rag", "search", "--index", str(tmp_path / "idx"), " "]) == 2  # printed nothing, exit 0
    assert "the query is empty" in capsys.readouterr().err
    assert main(["rag", "index", str(docs), "-o", str(tmp_path / "i3"), "--split", "dev"]) == 2
    assert "--split" in capsys.readouterr().err


@pytest.mark.parametrize("settings, message", [
    ({"idf": "lucene", "epsilon": 0.9}, "--epsilon applies to the okapi idf .* not lucene: leave it out"),
    ({"idf": "plus", "epsilon": 3.0}, "--epsilon applies to the okapi idf .* not plus: leave it out"),
    ({"passage_chars": 0, "overlap_chars": 40}, "--overlap-chars applies when documents are cut into passages"),
])
def test_cli_index_refuses_settings_it_would_not_use(tmp_path, capsys, settings, message):
    docs = tmp_path / "docs.txt"
    docs.write_text("北京\n上海\n", encoding="utf-8")
    flags = [x for k, v in settings.items() for x in ("--" + k.replace("_", "-"), str(v))]
    assert main(["rag", "index", str(docs), "-o", str(tmp_path / "idx"), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.txt"]
    cfg = IndexConfig(**settings)  # the config itself takes them, so an index saved with them still loads
    BM25Index.build(["北京", "上海"], cfg).save(tmp_path / "api")
    assert BM25Index.load(tmp_path / "api").config == cfg


def test_cli_index_refuses_a_lone_surrogate_before_the_work(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "北京"}\n{"text": "x \\ud83d"}\n', encoding="utf-8")
    assert main(["rag", "index", str(docs), "-o", str(tmp_path / "idx")]) == 2
    assert "line 2 holds a lone surrogate" in capsys.readouterr().err


@pytest.mark.parametrize("question", ["", "  \t "])
def test_answer_refuses_an_empty_question(model, tok, index, question):
    # nothing to retrieve for: the model would answer a prompt with no passages and no question
    with pytest.raises(InputError, match="the question is empty"):
        answer(model, tok, question, index, gen_config=GenerationConfig(max_new_tokens=8, temperature=0))


@pytest.mark.parametrize("flags, message", [(["--n", "0"], "n must be >= 1, got 0"),
                                             (["--threshold", "2"], r"threshold must be in \[0, 1\], got 2.0")])
def test_cli_ask_refuses_bad_grounding_settings_before_loading(tmp_path, capsys, flags, message):
    """Checked with the other flags: neither the index nor the model is read (here neither exists), nothing
    is generated."""
    assert main(["rag", "ask", "--index", str(tmp_path / "no-index"), "--model", str(tmp_path / "no-model"),
                 QUESTION, *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
