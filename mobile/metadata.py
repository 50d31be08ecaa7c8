"""The JSON sidecar written next to every .tflite: what an app needs to build its sliders.

``<name>.tflite`` gets ``<name>.json`` with the signature (input / output names, shapes,
dtypes, value ranges), one entry per loss coefficient (name, index in the
``loss_weights`` vector, range, default, distribution and how a slider position in
[0, 1] maps to a value), the number of styles, and the parity figures. It also stores
the SHA-256 of the .tflite so a stale sidecar is detected.

Slider mapping (what the network was trained on, so equal slider steps are equal steps
in what the network sees):

* ``log_uniform``: ``value = low * (high / low) ** position``
* ``uniform``:     ``value = low + (high - low) * position``
* ``fixed``:       no slider; always ``default``.

This module needs only NumPy (no TensorFlow), like an app.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Mapping, Sequence

import numpy as np

from yoto_tf.files import write_json_atomically

FORMAT = "yoto_tf.tflite_metadata"
FORMAT_VERSION = 1

SLIDER_SCALES = {"log_uniform": "log", "uniform": "linear", "fixed": "none"}


class MetadataError(ValueError):
    """Missing, unreadable or stale sidecar, or loss weights that do not fit it."""


def sidecar_path(tflite_path: str) -> str:
    return os.path.splitext(tflite_path)[0] + ".json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def slider_to_value(coefficient: Mapping, position: float) -> float:
    """Maps a slider position in [0, 1] to the coefficient value (see module docstring)."""
    if not 0.0 <= position <= 1.0:
        raise MetadataError(
            f"Slider position {position} for {coefficient['name']!r} must be in [0, 1]."
        )
    low, high = coefficient["low"], coefficient["high"]
    if coefficient["distribution"] == "log_uniform":
        return float(low * (high / low) ** position)
    if coefficient["distribution"] == "uniform":
        return float(low + (high - low) * position)
    return float(coefficient["default"])


def value_to_slider(coefficient: Mapping, value: float) -> float:
    """The inverse of :func:`slider_to_value` (0 for fixed coefficients)."""
    low, high = coefficient["low"], coefficient["high"]
    if high == low:
        return 0.0
    if coefficient["distribution"] == "log_uniform":
        return float(math.log(value / low) / math.log(high / low))
    return float((value - low) / (high - low))


def coefficient_entries(loss_space) -> list[dict]:
    """Sidecar entries of a yoto_tf LossSpace's coefficients, in ``loss_weights`` order."""
    entries = []
    for index, c in enumerate(loss_space.coefficients):
        entry = {
            "index": index,
            "name": c.name,
            "low": c.low,
            "high": c.high,
            "default": c.default,
            "distribution": c.distribution,
            "slider": {"scale": SLIDER_SCALES[c.distribution]},
        }
        if c.distribution != "fixed":
            entry["slider"]["default_position"] = round(value_to_slider(entry, c.default), 6)
        entries.append(entry)
    return entries


def build(
    *,
    tflite: bytes,
    model_file: str,
    variant: str,
    signature_key: str,
    inputs: Sequence[Mapping],
    outputs: Sequence[Mapping],
    loss_space,
    num_styles: int = 0,
    parity: Mapping | None = None,
    source_model: str | None = None,
    gpu_delegate: Mapping | None = None,
) -> dict:
    """The sidecar dict (JSON-able).

    Args:
      inputs, outputs: ``{"name", "dtype", "shape" (-1 = any size), ...}`` per tensor, with
        optional ``"range"`` ([lo, hi] of the values) and ``"description"``; a lambda-map
        ``loss_weights`` input has ``"kind": "lambda_map"`` and ``"map_stride"`` (pixels per cell).
      loss_space: the model's yoto_tf LossSpace.
      parity: the parity gate's report; gpu_delegate: mobile.gpu_delegate's report.
    """
    conditioning = (
        "Feed RAW coefficient values (not slider positions, not logs) as loss_weights, "
        "ordered by 'index'. The model normalizes them itself: log for log_uniform "
        "coefficients, then scaled so [low, high] maps to [-1, 1]; fixed ones map to 0."
    )
    maps = [i for i in inputs if i.get("kind") == "lambda_map"]
    if maps:
        conditioning += (
            f" loss_weights is a MAP of shape {maps[0]['shape']}: one such vector per cell of "
            f"{maps[0]['map_stride']}x{maps[0]['map_stride']} pixels (see the input's description)."
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": os.path.basename(model_file),
        "sha256": sha256(tflite),
        "source_model": source_model,
        "variant": variant,
        "signature_key": signature_key,
        "inputs": [dict(i) for i in inputs],
        "outputs": [dict(o) for o in outputs],
        "num_styles": int(num_styles),
        "coefficients": coefficient_entries(loss_space),
        "conditioning": conditioning,
        "parity": dict(parity) if parity else None,
        "gpu_delegate": dict(gpu_delegate) if gpu_delegate else None,
    }


def write(tflite_path: str, metadata: Mapping) -> str:
    """Writes the sidecar next to ``tflite_path``; returns its path."""
    path = sidecar_path(tflite_path)
    write_json_atomically(path, metadata)
    return path


def read(tflite_path: str, tflite: bytes | None = None) -> dict:
    """Reads and checks the sidecar of ``tflite_path`` (and, given the model bytes, that
    it was written for exactly this file)."""
    path = sidecar_path(tflite_path)
    if not os.path.exists(path):
        raise MetadataError(
            f"No metadata sidecar {path!r} next to {tflite_path!r}; convert the model with "
            "python -m mobile.convert, which writes it."
        )
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise MetadataError(f"Cannot read metadata sidecar {path!r}: {error}.") from None
    if metadata.get("format") != FORMAT:
        raise MetadataError(f"{path!r} is not a {FORMAT} file.")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise MetadataError(
            f"{path!r} has format_version {metadata['format_version']}; this reader knows "
            f"up to {FORMAT_VERSION}."
        )
    if tflite is not None and metadata.get("sha256") != sha256(tflite):
        raise MetadataError(
            f"{path!r} was written for a different model file than {tflite_path!r} "
            "(SHA-256 mismatch); re-run the conversion."
        )
    return metadata


def loss_weights_from_sliders(metadata: Mapping, positions: Mapping[str, float]) -> np.ndarray:
    """Builds the float32 ``loss_weights`` [1, k] from slider positions by coefficient
    name; coefficients not given take their default."""
    coefficients = metadata["coefficients"]
    names = [c["name"] for c in coefficients]
    unknown = sorted(set(positions) - set(names))
    if unknown:
        raise MetadataError(f"Unknown coefficients {unknown}; the model has {names}.")
    values = [
        slider_to_value(c, positions[c["name"]]) if c["name"] in positions else c["default"]
        for c in coefficients
    ]
    return np.asarray([values], np.float32)


def check_loss_weights(metadata: Mapping, loss_weights) -> np.ndarray:
    """Checks a user-given coefficient vector ([k] or [1, k]) against the sidecar and
    returns it as float32 [1, k].

    Raises:
      MetadataError: wrong length, a non-finite value, or a value outside its range,
        naming the coefficient and the allowed range.
    """
    coefficients = metadata["coefficients"]
    k = len(coefficients)
    values = np.asarray(loss_weights, np.float64)
    if values.shape not in ((k,), (1, k)):
        raise MetadataError(
            f"loss_weights must have {k} values "
            f"({', '.join(c['name'] for c in coefficients)}), got shape {values.shape}."
        )
    values = values.reshape(k)
    for c, value in zip(coefficients, values):
        tolerance = 1e-6 * max(abs(c["low"]), abs(c["high"]))
        if not math.isfinite(value) or not (
            c["low"] - tolerance <= value <= c["high"] + tolerance
        ):
            raise MetadataError(
                f"Coefficient {c['name']!r} = {value:g} is outside its allowed range "
                f"[{c['low']:g}, {c['high']:g}]."
            )
    return values.astype(np.float32)[None]
