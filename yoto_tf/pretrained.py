"""Pretrained models shipped inside the package, used by name.

``yoto_tf/pretrained_models/models.json`` lists every shipped model: its file (a ``.keras``
beside the manifest), the file's sha256 (checked before loading, so a corrupt or altered file
gives a clear error instead of a deep Keras traceback), the task, a one-line description, a
model card, and for style models the styles in ``style_index`` order with each painting's
title, artist, date, source and licence; for compression models the codec fingerprint that
their files carry (so ``decompress`` loads only the model that wrote a file).

Its ``retired`` list names models that shipped before and were taken out of the package to
keep it small (under PyPI's 100 MB per file): their cards stay, their files are in the
repository's history, and asking for one, by name or by decoding a file it wrote, gives an
error that says how to get it back (README, "Retired models").

* :func:`list_models` / :func:`get_model` / :func:`default_model`: the manifest entries.
* :func:`list_retired` / :func:`retired_model_with_fingerprint`: the retired ones.
* :func:`resolve_model_path`: a shipped name or a path to a ``.keras`` file -> a verified path.
* :func:`load_network`: the same, loaded (float32 compute).
* :func:`resolve_style`: ``"2"`` or ``"great_wave"`` -> a style index, with an error listing
  the styles that exist.
* :func:`ship`: (maintainers) writes a trained model as a manifest entry's file.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os

import keras

from yoto_tf.files import sha256_of, write_json_atomically
from yoto_tf.model_files import read_model_info, write_float16_copy

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(PACKAGE_DIR, "pretrained_models")
MANIFEST = os.path.join(MODELS_DIR, "models.json")


class ShippedModelError(ValueError):
    """Unknown model or style name, or a shipped file that fails its check."""


@dataclasses.dataclass(frozen=True)
class ShippedStyle:
    """One painting of a shipped style model (``style_index`` = its position)."""

    name: str
    title: str
    artist: str
    date: str
    source: str
    licence: str
    image: str

    @property
    def image_path(self) -> str:
        """The painting (a small JPEG shipped in the package; ``image`` is relative to it)."""
        return os.path.join(PACKAGE_DIR, self.image)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _ManifestEntry:
    """What the manifest records for every model, shipped or retired."""

    name: str
    task: str
    file: str
    sha256: str
    card: str
    fingerprint: str = ""
    """Compression models: the 16 hex digits their files carry (written by :func:`ship`)."""

    @property
    def card_path(self) -> str:
        return os.path.join(MODELS_DIR, self.card)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShippedModel(_ManifestEntry):
    description: str
    styles: tuple[ShippedStyle, ...] = ()

    @property
    def path(self) -> str:
        return os.path.join(MODELS_DIR, self.file)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetiredModel(_ManifestEntry):
    """A model that shipped in an earlier version of the package and no longer does."""

    last_commit: str
    """A commit of the yoto_tf repository whose ``yoto_tf/pretrained_models`` holds the file."""

    def how_to_restore(self) -> str:
        """Why the model is missing, where its file is, and how to use it (two sentences)."""
        return (f"it is no longer shipped in the package (its card: {self.card_path}). "
                f"Its file is in the yoto_tf repository at commit {self.last_commit}: in a clone, run "
                f"`git show {self.last_commit}:yoto_tf/pretrained_models/{self.file} > {self.file}`, "
                f"check that its sha256 is {self.sha256}, and pass --model {self.file}")


def _manifest() -> dict:
    with open(MANIFEST) as f:
        return json.load(f)


def list_retired(task: str | None = None) -> list[RetiredModel]:
    """The retired models (of ``task`` when given), in manifest order."""
    retired = [RetiredModel(**entry) for entry in _manifest().get("retired", [])]
    return [m for m in retired if task is None or m.task == task]


def retired_model_with_fingerprint(fingerprint: str) -> RetiredModel | None:
    """The retired compression model whose files carry ``fingerprint`` (16 hex digits), if any."""
    return next((m for m in list_retired("compression") if m.fingerprint == fingerprint), None)


def list_models(task: str | None = None) -> list[ShippedModel]:
    """The shipped models (of ``task`` when given), in manifest order."""
    models = []
    for entry in _manifest()["models"]:
        styles = tuple(ShippedStyle(**style) for style in entry.pop("styles", []))
        models.append(ShippedModel(styles=styles, **entry))
    return [m for m in models if task is None or m.task == task]


def get_model(name: str) -> ShippedModel:
    """The shipped model ``name``.

    Raises:
      ShippedModelError: a retired model (saying how to get its file back), or an unknown
        name (listing the shipped names).
    """
    models = list_models()
    for model in models:
        if model.name == name:
            return model
    shipped = ", ".join(m.name for m in models) or "none"
    for model in list_retired():
        if model.name == name:
            raise ShippedModelError(f"{name} is retired: {model.how_to_restore()}. "
                                    f"The shipped models are {shipped}.")
    raise ShippedModelError(f"Unknown model {name!r}: not a file, and the shipped models are {shipped}.")


def default_model(task: str) -> ShippedModel:
    """The first shipped model of ``task`` (what a command uses when no model is given).

    Raises:
      ShippedModelError: no model of that task is shipped.
    """
    models = list_models(task)
    if not models:
        raise ShippedModelError(f"No {task} model is shipped with this version of yoto_tf; "
                                "pass a trained model.keras.")
    return models[0]


def verify(model: ShippedModel) -> str:
    """The model's path after checking its sha256; raises ShippedModelError if it differs."""
    if not os.path.isfile(model.path):
        raise ShippedModelError(f"Shipped model {model.name!r}: {model.path} is missing; "
                                "reinstall yoto_tf.")
    actual = sha256_of(model.path)
    if actual != model.sha256:
        raise ShippedModelError(
            f"Shipped model {model.name!r}: {model.path} is corrupt (sha256 {actual}, expected "
            f"{model.sha256}); reinstall yoto_tf."
        )
    return model.path


def resolve_model_path(name_or_path: str) -> str:
    """A path to an existing file, ``DIR/model.keras`` for a training run's directory, or
    the verified file of a shipped model named so."""
    if os.path.isfile(name_or_path):
        return name_or_path
    if os.path.isfile(os.path.join(name_or_path, "model.keras")):
        return os.path.join(name_or_path, "model.keras")
    if os.sep in name_or_path or name_or_path.endswith(".keras"):
        raise ShippedModelError(
            f"Model file {name_or_path!r} does not exist (shipped models: "
            f"{', '.join(m.name for m in list_models()) or 'none'})."
        )
    return verify(get_model(name_or_path))


_TASK_MODULES = ("yoto_tf.style_transfer.transformer", "yoto_tf.compression.model", "yoto_tf.beta_vae.model")
"""Modules whose import registers the tasks' Keras classes (needed before loading a file)."""


def load_network(name_or_path: str) -> keras.Model:
    """Loads a shipped model by name, or a ``.keras`` file by path, computing in float32."""
    path = resolve_model_path(name_or_path)
    for module in _TASK_MODULES:
        importlib.import_module(module)
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError) as error:
        raise ShippedModelError(f"cannot load model {path!r}: {error}") from None


def style_names(name_or_path: str) -> list[str]:
    """The style names of a model in ``style_index`` order (manifest, else training info)."""
    if not os.path.isfile(name_or_path):
        return [style.name for style in get_model(name_or_path).styles]
    stored = read_model_info(name_or_path).get("style_images", [])
    return [os.path.splitext(os.path.basename(p))[0] for p in stored]


def resolve_style(style: str | int, names: list[str], num_styles: int) -> int:
    """A style index from an index or a style name (exact, or a unique part of one).

    Raises:
      ShippedModelError: out-of-range index or unknown / ambiguous name; lists the styles.
    """
    listing = ", ".join(f"{i}={n}" for i, n in enumerate(names)) or f"indices 0..{num_styles - 1}"
    text = str(style).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < num_styles:
            raise ShippedModelError(f"Style {index} does not exist; the model has {listing}.")
        return index
    matches = [i for i, n in enumerate(names) if n == text] or [
        i for i, n in enumerate(names) if text.lower() in n.lower()
    ]
    if len(matches) != 1:
        reason = "is ambiguous" if matches else "is unknown"
        raise ShippedModelError(f"Style {text!r} {reason}; the model has {listing}.")
    return matches[0]


MAX_SHIPPED_BYTES = {"compression": 12_000_000}
"""Largest shipped file per task (10 MB for the others)."""


def _codec_fingerprint(path: str) -> str:
    """The fingerprint (hex) of the compression model file ``path`` as loaded (float32)."""
    from yoto_tf.compression import load_compression_model  # pylint: disable=import-outside-toplevel

    return load_compression_model(path).fingerprint.hex()


def ship(model_path: str, name: str, max_bytes: int | None = None) -> str:
    """Writes ``model_path`` as the shipped file of the manifest entry ``name`` (float16
    weights) and records its sha256 (and a compression model's fingerprint) in the manifest;
    returns a one-line summary.

    Raises:
      ShippedModelError: unknown entry; ValueError: the file would exceed ``max_bytes``.
    """
    entry = get_model(name)
    max_bytes = max_bytes or MAX_SHIPPED_BYTES.get(entry.task, 10_000_000)
    write_float16_copy(model_path, entry.path)
    size = os.path.getsize(entry.path)
    if size > max_bytes:
        os.remove(entry.path)
        raise ValueError(f"{entry.path}: {size / 1e6:.1f} MB exceeds {max_bytes / 1e6:.0f} MB.")
    manifest = _manifest()
    sha = sha256_of(entry.path)
    for item in manifest["models"]:
        if item["name"] == name:
            item["sha256"] = sha
            if entry.task == "compression":
                item["fingerprint"] = _codec_fingerprint(entry.path)

    write_json_atomically(MANIFEST, manifest)
    return f"Shipped {model_path} as {entry.path} ({size / 1e6:.2f} MB, sha256 {sha})."
