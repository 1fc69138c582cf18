"""Linear probes on a frozen model's layers (llmlab.adapt.probe)."""

import numpy as np
import pytest
import torch

from llmlab.adapt.probe import encode_texts, fit_logistic, layer_features, predict, probe
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer

sklearn = pytest.importorskip("sklearn.linear_model")


def blobs(n, k, d, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, d))
    y = rng.integers(0, k, n)
    return centres[y] + rng.normal(0, 1, (n, d)) * rng.uniform(0.5, 3, d), y


def test_the_probe_is_scikit_learns_logistic_regression():
    x, y = blobs(300, 3, 8, seed=0)
    w, b, mean, std = params = fit_logistic(x, y, c=0.5)
    ref = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit((x - x.mean(0)) / x.std(0), y)
    np.testing.assert_allclose(w, ref.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, ref.intercept_, rtol=1e-4, atol=1e-5)
    xt, _ = blobs(200, 3, 8, seed=1)
    np.testing.assert_array_equal(predict(params, xt), ref.predict((xt - mean) / std))
    # two classes: the multinomial fit with c decides as the binomial one with C = 2c
    x, y = blobs(300, 2, 8, seed=2)
    params = fit_logistic(x, y, c=0.3)
    ref = sklearn.LogisticRegression(C=0.6, tol=1e-10, max_iter=10_000).fit((x - x.mean(0)) / x.std(0), y)
    w, b = params[0], params[1]
    np.testing.assert_allclose(w[1] - w[0], ref.coef_[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(predict(params, xt), ref.predict((xt - params[2]) / params[3]))


@pytest.fixture(scope="module")
def tiny():
    texts = ["好评很好很满意", "差评太差了不满意", "一般般还可以吧", "非常好用推荐", "质量差退货"]
    tok = CharTokenizer.train(texts)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=32)
    return CausalLM(cfg), tok


def test_batched_features_equal_each_text_alone_and_the_head_is_restored(tiny):
    model, tok = tiny
    ids = encode_texts(tok, ["好评很好很满意", "差", "一般般还可以吧推荐", "质量差退货"], 32)
    head = model.lm_head
    batched = layer_features(model, ids, batch_size=3)
    assert batched["mean"].shape == (3, 4, 16) and model.lm_head is head
    for i, seq in enumerate(ids):
        alone = layer_features(model, [seq], batch_size=1)
        for p in ("mean", "last"):
            np.testing.assert_allclose(batched[p][:, i], alone[p][:, 0], atol=1e-5)
    # layer 0 is the token embeddings; the last layer's last position is what the head reads
    emb = model.embed_tokens.weight.detach().numpy()
    np.testing.assert_allclose(batched["mean"][0, 1], emb[ids[1]].mean(0), atol=1e-6)
    with torch.no_grad():
        logits = model(torch.tensor([ids[2]]))[0, -1]
        want = model.lm_head(model.norm(torch.tensor(batched["last"][-1, 2])))
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)


def test_a_planted_label_is_read_off_and_scored_against_the_majority(tiny):
    model, tok = tiny
    rng = np.random.default_rng(0)
    chars = list("很好满意差太了不一般还可以吧")

    def sample(n):
        out = []
        for _ in range(n):
            y = int(rng.integers(0, 2))
            body = "".join(rng.choice(chars, 6))
            out.append((("推荐" if y else "退货") + body, y))
        return out

    r = probe(model, tok, sample(120), sample(80))
    assert r.accuracy["mean"][0] >= 0.95  # the label's characters are in the mean of the embeddings
    assert len(r.accuracy["last"]) == 3 and r.n_train == 120 and r.n_test == 80
    assert 0.3 <= r.majority <= 0.7


def test_errors(tiny):
    model, tok = tiny
    with pytest.raises(InputError, match="one class"):
        probe(model, tok, [("好", 1), ("差", 1)], [("好", 1)])
    with pytest.raises(InputError, match="needs labelled"):
        probe(model, tok, [], [("好", 1)])
    with pytest.raises(InputError, match="c must be > 0"):
        fit_logistic(np.zeros((2, 2)), np.array([0, 1]), c=0)
    with pytest.raises(InputError, match="integers"):
        fit_logistic(np.zeros((2, 2)), np.array([0.5, 1.0]))


def test_cli_prints_a_row_per_layer(tiny, tmp_path, capsys):
    model, tok = tiny
    d = save_model(model, tmp_path / "m", tok)
    assert main(["probe", "--model", str(d), "--train-size", "40", "--test-size", "30"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sentiment: 40 training, 30 test") and "random/mean" in out[1]
    assert [line.split()[0] for line in out[2:]] == ["embed", "1", "2"]
    assert all(0 <= float(v) <= 1 for line in out[2:] for v in line.split()[1:])
    assert main(["probe", "--model", str(d), "--train-size", "1"]) == 2
