"""llmlab's serving overhead: tokens/s of a greedy completion through `llmlab serve`'s HTTP server
(JSON, and streamed as server-sent events) against calling `generate` in the same process, with ratios.

The model is a random decoder of the given size over a character vocabulary of pfr1998 (or --model DIR);
the server runs in this process on a free localhost port, answering one keep-alive client, so the figure
is what HTTP, JSON, incremental decoding and stop-string checks add to the decode itself.

Both sides run torch on --threads threads (default 1): the server decodes in a handler thread, the direct
call in the main thread, and with torch's default of one OpenMP thread per core on a busy 2-core machine
the main thread's decode ran 5-8x slower than a worker thread's (36 against 288 tokens/s, same model),
which would credit the server with the difference; on one thread both took 240-290 tokens/s.

    .venv/bin/python bench/serve.py [--dim 256] [--layers 4] [--new-tokens 200] [--reps 5] [--threads 1] [--model DIR]

With --clients 1,4,8,16 it measures continuous batching instead: for each N, N client threads each send
--requests greedy completions of --new-tokens tokens (prompts of different lengths, so rows join and leave
at different steps), to a server with max_batch=1 (one at a time) and one with max_batch=N; it prints the
completion tokens/s across all clients, each request's mean latency, and the ratios.

    .venv/bin/python bench/serve.py --clients 1,4,8,16 [--requests 4] [--new-tokens 64]

With --prefill-chunks 64,128 it measures chunked prefill instead: --streams clients each stream short-prompt
completions of --new-tokens tokens, one after another, while one more client sends --long-requests
prompts of --long-prompt tokens (8 new tokens each), one after another (--long-pause seconds between an
answer and the next prompt, default 0: the heaviest prefill load); once those are answered the
streams finish the completion they are in. For a server without chunking (--prefill-chunk 0) and one per
chunk size it prints the running clients' inter-token gaps (the times between two tokens of one
completion as the client reads them: median, p95, worst), the CPU time of the scheduler thread's steps
(p95, worst: the part of a gap that another process's load on the machine does not stretch), the
completion tokens/s of all clients, and the long prompts' mean time to first token (what chunking costs
them), with ratios to no chunking.
Each setting runs --reps times, in turn; the figures are medians over the runs.

    .venv/bin/python bench/serve.py --prefill-chunks 64,128,256 [--long-prompt 900] [--long-requests 6] [--streams 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time

import torch

from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.scoring import text_start
from llmlab.serve import Engine, ServeConfig, chat_template_of, make_server

PROMPT = "中国经济"


def load(args):
    if args.model:
        from llmlab.cli.common import load_any_model

        model, tok = load_any_model(args.model)
        return model, tok, chat_template_of(args.model)
    from llmlab.data.corpora import pfr1998_text
    from llmlab.tokenizers import CharTokenizer

    tok = CharTokenizer.train(pfr1998_text("train")[:2000])
    torch.manual_seed(0)
    ctx = args.new_tokens + 64 if not args.prefill_chunks else max(args.new_tokens + 64, args.long_prompt + 16)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=args.dim, n_layer=args.layers, n_head=4, n_kv_head=4,
                      max_seq_len=ctx)
    return CausalLM(cfg).eval(), tok, None


def measure(runs: dict, reps: int) -> dict[str, list[float]]:
    """tokens/s of each of `runs` (name -> a call returning the tokens it produced), `reps` times, taken in
    turn so that a change in the machine's load falls on all of them alike (after one warm-up each)."""
    for run in runs.values():
        run()
    out: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            t = time.perf_counter()
            n = run()
            out[name].append(n / (time.perf_counter() - t))
    return out


PROMPTS = ["中国", "北京的冬天很冷，上海的夏天很热。", "经济", "新年好！人民日报发表社论", "今天"]


def concurrent(server, clients: int, requests: int, new_tokens: int) -> tuple[float, float]:
    """(completion tokens/s across all clients, mean seconds per request) of `clients` threads each
    sending `requests` completions in turn, one keep-alive connection each."""
    port, latencies, tokens = server.server_address[1], [], []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for j in range(requests):
            body = {"prompt": PROMPTS[(i + j) % len(PROMPTS)], "max_tokens": new_tokens, "temperature": 0}
            t = time.perf_counter()
            conn.request("POST", "/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
            doc = json.loads(conn.getresponse().read())
            latencies.append(time.perf_counter() - t)
            tokens.append(doc["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(tokens) / (time.perf_counter() - t), statistics.mean(latencies)


def batching(args, model, tok, template) -> None:
    clients = [int(n) for n in args.clients.split(",")]
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, context {model.config.max_seq_len}; "
          f"greedy, {args.new_tokens} new tokens, {args.requests} requests per client; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'clients':>7s} {'max_batch':>9s} {'tokens/s':>9s} {'latency s':>9s}   ratio (batched / one at a time)")
    engine = Engine(model, tok, "bench", template)
    for n in clients:
        figures = {}
        for max_batch in dict.fromkeys((1, n)):
            server = make_server(engine, ServeConfig(port=0, max_batch=max_batch, max_tokens_limit=args.new_tokens,
                                                     max_wait_seconds=3600))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            concurrent(server, 1, 1, args.new_tokens)  # warm-up
            figures[max_batch] = concurrent(server, n, args.requests, args.new_tokens)
            server.shutdown()
            server.server_close()
            print(f"{n:7d} {max_batch:9d} {figures[max_batch][0]:9.1f} {figures[max_batch][1]:9.3f}")
        (tps1, lat1), (tpsn, latn) = figures[1], figures[n]
        print(f"{'':7s} {'':9s} {tpsn / tps1:8.2f}x {latn / lat1:8.2f}x")


def read_stream(conn, body: dict) -> tuple[list[float], int]:
    """Stream one completion over `conn`: the arrival time of each event that carries text, and the
    completion tokens (from the usage chunk)."""
    conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True,
                                                        "stream_options": {"include_usage": True}}).encode(),
                 {"Content-Type": "application/json"})
    r, times, tokens = conn.getresponse(), [], 0
    for line in r:
        if not line.startswith(b"data: {"):
            continue
        doc = json.loads(line[6:])
        if doc["choices"] and doc["choices"][0]["text"]:
            times.append(time.perf_counter())
        if doc.get("usage"):
            tokens = doc["usage"]["completion_tokens"]
    return times, tokens


def long_prompt_run(engine, chunk: int, args, long_texts: list[str]) -> dict[str, float]:
    """One run of the --prefill-chunks mode with `chunk`: the figures it prints (seconds, tokens/s)."""
    server = make_server(engine, ServeConfig(port=0, max_batch=args.streams + 1, prefill_chunk=chunk,
                                             max_tokens_limit=args.new_tokens, max_wait_seconds=3600))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port, done, started = server.server_address[1], threading.Event(), threading.Barrier(args.streams + 1)
    gaps, tokens, ttft, steps = [], [], [], []
    iterate = server.scheduler._iterate

    def timed(batch) -> bool:  # the scheduler thread's CPU time per iteration: not the machine's other load
        t = time.thread_time()
        more = iterate(batch)
        steps.append(time.thread_time() - t)
        return more

    server.scheduler._iterate = timed

    def streamer(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        first = True
        while first or not done.is_set():
            times, n = read_stream(conn, {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": args.new_tokens,
                                          "temperature": 0})
            gaps.extend(b - a for a, b in zip(times, times[1:]))
            tokens.append(n)
            if first:  # the long prompts start once every stream is running
                started.wait()
                first = False

    def long_client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        started.wait()
        for i, text in enumerate(long_texts):
            if i:
                time.sleep(args.long_pause)
            t = time.perf_counter()
            times, n = read_stream(conn, {"prompt": text, "max_tokens": 8, "temperature": 0})
            ttft.append(times[0] - t)
            tokens.append(n)
        done.set()

    threads = [threading.Thread(target=streamer, args=(i,)) for i in range(args.streams)]
    threads.append(threading.Thread(target=long_client))
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    server.shutdown()
    server.server_close()
    gaps.sort()
    steps.sort()
    return {"median gap": statistics.median(gaps), "p95 gap": gaps[int(0.95 * (len(gaps) - 1))], "worst gap": gaps[-1],
            "p95 step CPU": steps[int(0.95 * (len(steps) - 1))], "worst step CPU": steps[-1],
            "tokens/s": sum(tokens) / wall, "long TTFT": statistics.mean(ttft)}


def chunked_prefill(args, model, tok, template) -> None:
    from llmlab.data.corpora import pfr1998_text

    chunks = [0] + [int(n) for n in args.prefill_chunks.split(",")]
    text = "".join(pfr1998_text("train")[:2000])
    long_texts = []  # different prompts of --long-prompt tokens (with the text start), in the vocabulary
    for i in range(args.long_requests):
        ids = tok.encode(text[i * 997:])[:args.long_prompt - 1]
        long_texts.append(tok.decode(ids))
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, context {model.config.max_seq_len}; "
          f"{args.streams} streams of {args.new_tokens}-token greedy completions, {args.long_requests} prompts of "
          f"{args.long_prompt} tokens arriving one after another, {args.long_pause:g} s apart; "
          f"torch threads {torch.get_num_threads()}; medians of {args.reps} runs each, in turn")
    engine = Engine(model, tok, "bench", template)
    long_prompt_run(engine, chunks[-1], args, long_texts[:1])  # warm-up
    runs: dict[int, list[dict]] = {n: [] for n in chunks}
    for rep in range(args.reps):
        for n in chunks:
            runs[n].append(long_prompt_run(engine, n, args, long_texts))
            print(f"  run {rep + 1}/{args.reps}, prefill_chunk {n}: "
                  + ", ".join(f"{k} {v:.4g}" for k, v in runs[n][-1].items()), flush=True)
    keys = list(runs[0][0])
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in keys} for n in chunks}
    units = {"tokens/s": "", "long TTFT": " s"}
    labels = [k + units.get(k, " ms") for k in keys]
    print(f"{'prefill_chunk':>13s}  " + "  ".join(labels))
    for n in chunks:
        cells = [med[n][k] * (1 if k in units else 1000) for k in keys]
        print(f"{n or 'off':>13}  " + "  ".join(f"{c:{len(w)}.{1 if c >= 10 else 3}f}" for c, w in zip(cells, labels)))
        if n:
            print(f"{'ratio to off':>13s}  " + "  ".join(f"{med[n][k] / med[0][k]:{len(w) - 1}.2f}x"
                                                        for k, w in zip(keys, labels)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, for both sides")
    ap.add_argument("--model", default=None, help="a saved model directory instead of a random one")
    ap.add_argument("--clients", default="", help="continuous batching: concurrent clients to try, e.g. 1,4,8,16")
    ap.add_argument("--requests", type=int, default=4, help="with --clients: completions each client sends")
    ap.add_argument("--prefill-chunks", default="", help="chunked prefill: chunk sizes to try, e.g. 32,128")
    ap.add_argument("--long-prompt", type=int, default=900, help="with --prefill-chunks: tokens of each long prompt")
    ap.add_argument("--long-requests", type=int, default=6, help="with --prefill-chunks: long prompts sent")
    ap.add_argument("--streams", type=int, default=4, help="with --prefill-chunks: clients streaming completions")
    ap.add_argument("--long-pause", type=float, default=0.0,
                    help="with --prefill-chunks: seconds between a long prompt's answer and the next one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, template = load(args)
    if args.clients:
        return batching(args, model, tok, template)
    if args.prefill_chunks:
        return chunked_prefill(args, model, tok, template)
    ids = text_start(tok) + tok.encode(PROMPT)
    gen = GenerationConfig(max_new_tokens=args.new_tokens, temperature=0.0)

    def direct() -> int:
        out = generate(model, ids, gen, eos_id=tok.eos_id)
        tok.decode(out)
        return len(out)

    server = make_server(Engine(model, tok, "bench", template),
                         ServeConfig(port=0, max_tokens_limit=args.new_tokens, default_max_tokens=args.new_tokens))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=300)
    body = {"prompt": PROMPT, "max_tokens": args.new_tokens, "temperature": 0}

    def served(stream: bool) -> int:
        conn.request("POST", "/v1/completions", json.dumps({**body, "stream": stream}).encode(),
                     {"Content-Type": "application/json"})
        data = conn.getresponse().read().decode()
        if not stream:
            return json.loads(data)["usage"]["completion_tokens"]
        last = [json.loads(b[6:]) for b in data.split("\n\n") if b.startswith("data: {")][-1]
        assert last["choices"][0]["finish_reason"] is not None
        return sum(1 for b in data.split("\n\n") if b.startswith("data: {")) - 1  # pieces ~ tokens (char model)

    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, context {model.config.max_seq_len}; "
          f"greedy, {args.new_tokens} new tokens, {args.reps} runs each, in turn; "
          f"torch threads {torch.get_num_threads()}")
    assert direct() == served(False), "the server wrote another number of tokens than generate()"
    tps = measure({"generate() in process": direct, "served, JSON": lambda: served(False),
                   "served, streamed (SSE)": lambda: served(True)}, args.reps)
    direct_xs = tps["generate() in process"]
    for name, xs in tps.items():
        med = statistics.median(xs)
        ratio = "" if xs is direct_xs else (f"  ratio {med / statistics.median(direct_xs):.3f} "
                                            f"(best {max(xs) / max(direct_xs):.3f})")
        print(f"{name:24s} median {med:7.1f} tokens/s, best {max(xs):7.1f}{ratio}")
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
