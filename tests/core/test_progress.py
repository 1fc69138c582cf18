import time

import pytest

from llmlab.core import progress as P


@pytest.fixture
def off_terminal(monkeypatch):
    """stderr is captured (not a terminal) and LLMLAB_PROGRESS unset: the plain-line mode."""
    monkeypatch.delenv("LLMLAB_PROGRESS", raising=False)


def test_a_short_loop_off_a_terminal_writes_nothing(off_terminal, capsys):
    assert list(P.progress(range(50), desc="quick")) == list(range(50))
    assert capsys.readouterr().err == ""


def test_a_long_loop_off_a_terminal_writes_whole_lines_ending_with_its_count(off_terminal, capsys, monkeypatch):
    monkeypatch.setattr(P, "HEARTBEAT", 0.05)
    for _ in P.progress(range(8), desc="slow"):
        time.sleep(0.02)
    lines = capsys.readouterr().err.split("\n")
    assert lines[-1] == "" and lines[:-1], lines  # at least one line, each ended, no carriage returns
    assert all(line.startswith("slow: ") and "\r" not in line for line in lines[:-1])
    assert lines[-2].startswith("slow: 8/8 ")


def test_each_redraw_becomes_one_line_and_a_repeat_none():
    import io

    out = io.StringIO()
    lines = P._Lines(out)
    for text in ("\rwork: 1/3", "\rwork: 2/3", "\rwork: 2/3", "", "\n", "\rwork: 3/3\n"):
        lines.write(text)
    assert out.getvalue() == "work: 1/3\nwork: 2/3\nwork: 3/3\n"


def test_a_bar_updated_by_hand_reports_its_count(off_terminal, capsys, monkeypatch):
    monkeypatch.setattr(P, "HEARTBEAT", 0.05)
    with P.progress(total=5, desc="steps") as bar:
        for _ in range(5):
            time.sleep(0.02)
            bar.update(1)
    assert capsys.readouterr().err.split("\n")[-2].startswith("steps: 5/5 ")


def test_a_postfix_set_every_step_shows_in_the_lines_without_adding_any(off_terminal, capsys, monkeypatch):
    """The trainers set the loss every step; off a terminal that must not print a line per step."""
    monkeypatch.setattr(P, "HEARTBEAT", 3600.0)
    with P.progress(total=20, desc="train") as bar:
        for i in range(20):
            bar.update(1)
            bar.set_postfix(loss=f"{i:.3f}")
    assert capsys.readouterr().err == ""  # ended before the first heartbeat: silent
    monkeypatch.setattr(P, "HEARTBEAT", 0.05)
    with P.progress(total=4, desc="train") as bar:
        for i in range(4):
            time.sleep(0.03)
            bar.update(1)
            bar.set_postfix(loss=f"{i:.3f}")
    lines = capsys.readouterr().err.split("\n")[:-1]
    assert lines and lines[-1].startswith("train: 4/4 ") and lines[-1].endswith(", loss=3.000]")


def test_progress_0_silences_even_a_long_loop(capsys, monkeypatch):
    monkeypatch.setenv("LLMLAB_PROGRESS", "0")
    monkeypatch.setattr(P, "HEARTBEAT", 0.0)
    for _ in P.progress(range(3), desc="slow"):
        time.sleep(0.02)
    assert capsys.readouterr().err == ""
