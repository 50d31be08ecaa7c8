"""Training facts stored inside a saved ``.keras`` file, e.g. which VGG weights a model saw.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``);
Keras ignores other entries, so the trainers add one JSON entry, :data:`INFO_ENTRY`, holding
a flat dict of facts (task, loss network, training data...). ``stylize`` and the evaluation
read it back to say what a model was trained with. Files without the entry (older models)
give an empty dict. Backend-agnostic (no TensorFlow).
"""

from __future__ import annotations

import json
import zipfile
from typing import Mapping

import keras

from yoto_tf.files import write_atomically

INFO_ENTRY = "yoto_tf_info.json"


def save_model(network: keras.Model, path: str, info: Mapping | None = None) -> None:
    """Saves ``network`` to ``path`` (.keras) atomically, with ``info`` (JSON-serializable)."""

    def write(tmp: str) -> None:
        network.save(tmp)
        if info:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(INFO_ENTRY, json.dumps(dict(info), indent=2, sort_keys=True))

    write_atomically(path, write, suffix=".keras")


def read_model_info(path: str) -> dict:
    """The facts stored by :func:`save_model`; ``{}`` when the file has none.

    Raises:
      ValueError: ``path`` is not a readable ``.keras`` zip, or its info entry is not a JSON
        object (names the file).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if INFO_ENTRY not in archive.namelist():
                return {}
            info = json.loads(archive.read(INFO_ENTRY))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the model's training info ({error}).") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: the entry {INFO_ENTRY} is not a JSON object.")
    return info
