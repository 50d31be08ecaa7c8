"""Atomic file writes (a reader, or a rerun after a kill, sees the old file or the new one,
never a half-written one) and file digests. Backend-agnostic (no TensorFlow)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import keras


def write_atomically(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls ``write(tmp)`` on a temporary file beside ``path``, then renames it to ``path``.

    Args:
      path: the destination file.
      write: writes the whole content to the path it is given.
      suffix: the temporary file's extension, for writers that pick the format from it
        (``.keras``) or append their own (``np.save`` adds ``.npy`` to other names).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=directory, prefix=".tmp-")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give it a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_keras_atomically(model: keras.Model, path: str) -> None:
    """Saves ``model`` to ``path`` (.keras) via a temporary file and an atomic rename."""
    write_atomically(path, model.save, suffix=".keras")


def sha256_of(path: str) -> str:
    """The hex sha256 of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
