"""Saved ``.keras`` files: training facts stored inside them, and half-precision storage.

Training facts, e.g. which VGG weights a model saw:

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``);
Keras ignores other entries, so the trainers add one JSON entry, :data:`INFO_ENTRY`, holding
a flat dict of facts (task, loss network, training data...). ``stylize`` and the evaluation
read it back to say what a model was trained with. Files without the entry (older models)
give an empty dict.

Half-precision storage (:func:`write_float16_copy`): the float32 arrays of
``model.weights.h5`` are stored as float16 (half the size of a shipped model); Keras casts them
back when it loads the file, so the model still computes in float32. Backend-agnostic (no
TensorFlow).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Mapping

import h5py
import keras
import numpy as np

from yoto_tf.files import write_atomically

INFO_ENTRY = "yoto_tf_info.json"
WEIGHTS_ENTRY = "model.weights.h5"


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


def _float16_weights(weights: bytes) -> bytes:
    """An HDF5 weights file with every float32 dataset stored as float16 (attributes kept)."""
    target = io.BytesIO()
    with h5py.File(io.BytesIO(weights), "r") as original, h5py.File(target, "w") as copy:
        copy.attrs.update(original.attrs)

        def copy_item(name, item):
            if isinstance(item, h5py.Group):
                copy.require_group(name).attrs.update(item.attrs)
                return
            array = item[()]
            if isinstance(array, np.ndarray) and array.dtype == np.float32:
                array = array.astype(np.float16)
            copy.create_dataset(name, data=array).attrs.update(item.attrs)

        original.visititems(copy_item)
    return target.getvalue()


def write_float16_copy(source: str, destination: str) -> None:
    """Copies the ``.keras`` file ``source`` with its weights stored in float16 (atomically).

    Every other entry (config, metadata, training info) is copied unchanged.
    """

    def write(tmp: str) -> None:
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(
            tmp, "w", zipfile.ZIP_DEFLATED
        ) as copy:
            for item in original.namelist():
                content = original.read(item)
                if item == WEIGHTS_ENTRY:
                    content = _float16_weights(content)
                copy.writestr(item, content)

    write_atomically(destination, write, suffix=".keras")
