"""The model cache: trained once, loaded afterwards, never half-written, wherever LLMLAB_HOME says."""

import json
from pathlib import Path

import pytest

from llmlab.core.cache import cached_model, model_home
from llmlab.core.errors import InputError


class Note:
    """A tiny saveable model: one JSON file."""

    def __init__(self, value):
        self.value = value

    def save(self, directory):
        Path(directory, "note.json").write_text(json.dumps(self.value), encoding="utf-8")

    @classmethod
    def load(cls, directory):
        path = Path(directory, "note.json")
        if not path.is_file():
            raise InputError(f"{str(path)!r} is missing")
        return cls(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_model_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMLAB_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_home() == tmp_path / "xdg" / "llmlab"
    monkeypatch.setenv("LLMLAB_HOME", str(tmp_path / "mine"))
    assert model_home() == tmp_path / "mine"
    monkeypatch.delenv("LLMLAB_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert model_home() == tmp_path / "user" / ".cache" / "llmlab"


def test_trained_once_then_loaded(home):
    calls = []

    def train():
        calls.append(1)
        return Note([1, 2, 3])

    first = cached_model("note", train, Note.load, "note")
    second = cached_model("note", train, Note.load, "note")
    assert first.value == second.value == [1, 2, 3] and len(calls) == 1
    assert sorted(p.name for p in home.iterdir()) == ["note"]  # no temporary directory left
    assert (home / "note").stat().st_mode & 0o777 == home.stat().st_mode & 0o777  # as a plain mkdir makes it


def test_failed_training_leaves_nothing(home):
    def train():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_model("note", train, Note.load, "note")
    assert list(home.iterdir()) == []
    assert cached_model("note", lambda: Note("ok"), Note.load, "note").value == "ok"


def test_first_process_to_finish_wins(home):
    def train():  # another process caches the model while this one trains
        (home / "note").mkdir()
        Note("theirs").save(home / "note")
        return Note("mine")

    assert cached_model("note", train, Note.load, "note").value == "mine"
    assert Note.load(home / "note").value == "theirs"
    assert sorted(p.name for p in home.iterdir()) == ["note"]


def test_a_broken_cached_model_is_a_clear_error(home):
    (home / "note").mkdir(parents=True)
    with pytest.raises(InputError, match="delete that directory"):
        cached_model("note", lambda: Note("x"), Note.load, "note")
    assert (home / "note").is_dir()  # nothing deleted behind the user's back


def test_an_unwritable_cache_fails_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("LLMLAB_HOME", str(blocker / "home"))  # a path under a file cannot be created
    with pytest.raises(InputError, match="LLMLAB_HOME"):
        cached_model("note", lambda: pytest.fail("trained"), Note.load, "note")
