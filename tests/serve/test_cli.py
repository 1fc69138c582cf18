"""`llmlab serve` as a user runs it: it prints where it listens, answers, and stops cleanly on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import llmlab


def interruptible():
    """Ctrl-C's default in the server, as at a terminal: a suite started in the background by a shell
    without job control (`make test &`) ignores SIGINT, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_serve_prints_its_url_answers_and_stops_on_ctrl_c(chat_dir):
    src = str(Path(llmlab.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "llmlab", "serve", "--model", str(chat_dir), "--port", "0",
                          "--model-name", "mine", "--max-tokens-limit", "8", "--max-batch", "3",
                          "--prefill-chunk", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=interruptible)
    try:
        line = p.stdout.readline()
        assert line.startswith("serving 'mine' (/v1/completions, /v1/chat/completions) at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        req = urllib.request.Request(url + "/chat/completions", method="POST", data=json.dumps(
            {"model": "mine", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            doc = json.load(r)
        assert doc["choices"][0]["message"]["role"] == "assistant" and doc["usage"]["completion_tokens"] <= 4
        with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=30) as r:
            assert json.load(r)["max_batch"] == 3
        logged = []  # the request's log line, which its thread writes once the answer is out

        def read_log():
            for line in p.stderr:
                logged.append(line)
                if "POST /v1/chat/completions" in line:
                    return

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), logged  # the request's log line came: the server is idle again
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0 and out.strip() == "stopped", (out, err)
    assert "POST /v1/chat/completions 200 prompt_tokens=5 completion_tokens=" in logged[-1], logged
    assert "Traceback" not in "".join(logged) + err


def test_serve_refuses_a_bad_flag_in_one_line(tmp_path, capsys):
    from llmlab.cli import main

    assert main(["serve", "--model", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path), "--truncation", "right"]) == 2
    assert capsys.readouterr().err.strip() == ("llmlab: error: truncation must be one of ('error', 'left', 'middle'), "
                                               "got 'right'")
    assert main(["serve", "--model", str(tmp_path), "--max-batch", "0"]) == 2
    assert capsys.readouterr().err.strip() == "llmlab: error: max_batch must be >= 1 (1 = one request at a time), got 0"
    assert main(["serve", "--model", str(tmp_path), "--prefill-chunk", "-1"]) == 2
    assert capsys.readouterr().err.strip() == ("llmlab: error: prefill_chunk must be >= 0 (0 = each prompt in one "
                                               "forward), got -1")


def test_serve_refuses_a_prefill_chunk_the_serial_server_would_ignore(char_dir, capsys, monkeypatch):
    """--max-batch 1 decodes each request alone, its prompt in one forward: a chunk size, even 0, does nothing."""
    import llmlab.serve
    from llmlab.cli import main

    def no_server(*_):  # were the flag taken, the command would serve here; it must be refused before
        raise AssertionError("the server started")

    monkeypatch.setattr(llmlab.serve, "make_server", no_server)
    for chunk in ("4", "0"):
        assert main(["serve", "--model", str(char_dir), "--max-batch", "1", "--prefill-chunk", chunk]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("llmlab: error: --prefill-chunk applies to batched decoding (--max-batch N > 1)")
        assert err.endswith("leave it out") and "\n" not in err
