"""Atomic file writes (a reader, or a rerun after a kill, sees the old file or the new one,
never a half-written one) and file digests. Backend-agnostic (no TensorFlow).

Models, checkpoints, images, bitstreams, TFLite files and their sidecars, and the reports
(JSON, CSV, text, figures) of the evaluations and benchmarks go through :func:`write_atomically`,
so that an interrupted rerun never truncates what an earlier run wrote. (The web demo's page
folder and the example app's output picture are written directly.)
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


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


def write_bytes_atomically(path: str, payload: bytes) -> None:
    """Writes ``payload`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)

    write_atomically(path, write)


def write_text_atomically(path: str, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: str, value: Any, indent: int = 2, **dump_options) -> None:
    """Writes ``value`` as JSON, with a final newline, to ``path`` atomically.

    ``dump_options`` go to :func:`json.dump` (e.g. ``allow_nan=False``); a value JSON cannot
    hold raises before ``path`` is touched.
    """
    text = json.dumps(value, indent=indent, **dump_options) + "\n"
    write_text_atomically(path, text)


def write_csv_atomically(path: str, rows: Iterable[Mapping[str, Any]], fields: Sequence[str],
                         **writer_options) -> None:
    """Writes ``rows`` (dicts) as CSV with the header ``fields`` to ``path`` atomically.

    ``writer_options`` go to :class:`csv.DictWriter` (e.g. ``extrasaction="ignore"``).
    """
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields), **writer_options)
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


def save_figure_atomically(figure: Figure, path: str, **savefig_options) -> None:
    """``figure.savefig(path, **savefig_options)`` atomically; the format comes from the extension."""
    write_atomically(path, lambda tmp: figure.savefig(tmp, **savefig_options),
                     suffix=os.path.splitext(path)[1])


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
