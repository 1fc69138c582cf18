"""The user's model cache: models trained once from built-in data and kept for later runs.

Nothing is downloaded: a cached model is trained on this machine the first time it is asked for
(`cached_model`), saved under `model_home()` and loaded from there afterwards. The cache lives in
``$LLMLAB_HOME`` if set, else ``$XDG_CACHE_HOME/llmlab``, else ``~/.cache/llmlab``; deleting a
model's directory makes the next run train it again.

A model appears in the cache in one step: it is saved into a hidden temporary directory beside its
final place and renamed there, so a crash never leaves half a model where a later run would load it,
and when two processes train the same model at once the first to finish wins.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from llmlab.core.errors import InputError
from llmlab.core.io import umask

log = logging.getLogger(__name__)
WHERE = "$LLMLAB_HOME, default ~/.cache/llmlab"  # where `model_home` is, in a line of help text


class Saveable(Protocol):
    def save(self, directory: str | os.PathLike) -> object: ...


M = TypeVar("M", bound=Saveable)


def model_home() -> Path:
    """The cache directory: ``$LLMLAB_HOME``, else ``$XDG_CACHE_HOME/llmlab``, else ``~/.cache/llmlab``."""
    if os.environ.get("LLMLAB_HOME"):
        return Path(os.environ["LLMLAB_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "llmlab"


def cached_model(name: str, train: Callable[[], M], load: Callable[[Path], M], about: str) -> M:
    """The model cached as `name`; trained with `train()` and saved there first if it is not cached yet.

    `about` names the model in messages (say "default segmenter (perceptron, pfr1998 train split,
    about 20 seconds)"). A cached model that no longer loads is an error naming its directory, not a
    silent retraining: delete the directory to train it again.
    """
    home = model_home()
    path = home / name
    if path.exists():
        try:
            return load(path)
        except InputError as e:
            raise InputError(f"the cached {about} in {str(path)!r} does not load ({e}); "
                             "delete that directory to train it again") from None
    try:  # before the training, so that an unwritable cache fails at once, not after it
        home.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=home))
        tmp.chmod(0o777 & ~umask())  # not mkdtemp's private 0700: the mode a plain mkdir gives
    except OSError as e:
        raise InputError(f"cannot write the model cache {str(home)!r} ({e.strerror}); "
                         "set LLMLAB_HOME to a writable directory") from None
    try:
        log.info("training the %s once; it is kept in %s", about, path)
        model = train()
        model.save(tmp)
        try:
            tmp.rename(path)
        except OSError:
            if not path.exists():
                raise
            log.info("another process cached %s first; keeping that one", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


__all__ = ["WHERE", "cached_model", "model_home"]
