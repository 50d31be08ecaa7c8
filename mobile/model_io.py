"""Loading a yoto_tf Keras model and reading what the TFLite exporter needs from it.

An exportable model is a Keras model whose inputs are NAMED:

* ``loss_weights``: float32 [B, k], the raw loss coefficients lambda in the order of the
  model's LossSpace (``yoto_tf.find_loss_space(model).names``), or a lambda map
  [B, h, w, k] (one weighting per cell, see mobile/lambda_maps.py);
* ``style_index`` (optional): int32 [B], which style of a multi-style model to apply;
* one or more float32 data inputs, e.g. ``image`` [B, H, W, 3] in [0, 1] (the style
  transformer, the compression analysis transform) or a latent [B, h, w, M] (the
  compression synthesis transform).

It has one output tensor. Functional models built from named ``keras.Input`` layers
qualify whatever order the inputs were declared in; the exporter always feeds them by
name (the order of raw TFLite input tensors is not the declared order).
"""

from __future__ import annotations

import dataclasses
import importlib
import os

import keras

import yoto_tf
from yoto_tf.coefficients import LossSpace
from yoto_tf.layers import LAMBDA_INPUT

LOSS_WEIGHTS = LAMBDA_INPUT
STYLE_INDEX = "style_index"
IMAGE = "image"

# Modules whose Keras classes a saved yoto_tf model may reference; importing them
# registers the classes (`@keras.saving.register_keras_serializable`) before loading.
_MODEL_MODULES = (
    "yoto_tf.style_transfer.transformer",
    "yoto_tf.compression.model",
)


class ModelFileError(ValueError):
    """The file is missing, not a .keras archive, or not a loss-conditioned yoto_tf model."""


def _register_yoto_classes() -> None:
    for name in _MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # that part of yoto_tf is not installed / not written yet


def load_model(path: str) -> keras.Model:
    """Loads a ``.keras`` file saved from a yoto_tf network.

    Raises:
      ModelFileError: naming the file and the problem (missing, wrong format, not loadable).
    """
    if not os.path.exists(path):
        raise ModelFileError(f"Model file {path!r} does not exist.")
    if not path.endswith(".keras"):
        raise ModelFileError(
            f"Model file {path!r} is not a Keras 3 '.keras' archive; save the network with "
            "network.save('name.keras')."
        )
    _register_yoto_classes()
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types; name the file and the cause.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelFileError(
            f"Could not load {path!r} as a Keras model ({type(error).__name__}: "
            f"{first_line[:300]})."
        ) from error
    return model


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """The named inputs of an exportable model.

    Attributes:
      loss_space: the model's LossSpace (read from its ConditioningNetwork).
      data_inputs: ``{name: shape}`` of the float inputs other than ``loss_weights``, shapes
        without the batch axis (``None`` for dynamic sizes), e.g. ``{"image": (None, None, 3)}``.
      num_styles: number of styles when the model has a ``style_index`` input, else 0.
      lambda_map: True when ``loss_weights`` is a map [B, h, w, k].
    """

    loss_space: LossSpace
    data_inputs: dict
    num_styles: int = 0
    lambda_map: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        extra = (STYLE_INDEX,) if self.num_styles else ()
        return tuple(self.data_inputs) + (LOSS_WEIGHTS,) + extra


def read_inputs(model: keras.Model, num_styles: int | None = None) -> ModelInputs:
    """Checks that ``model`` is an exportable yoto_tf model and describes its inputs.

    Args:
      model: a functional Keras model (see the module docstring).
      num_styles: the number of styles of a model with a ``style_index`` input; read from
        the model (a ``num_styles`` attribute of the model or of a layer, or its one
        ``Embedding`` layer) when None.

    Raises:
      ModelFileError: the model has no ConditioningNetwork (not a yoto_tf model), its
        inputs are not named as described above, or it has several outputs.
    """
    try:
        space = yoto_tf.find_loss_space(model)
    except ValueError as error:
        raise ModelFileError(str(error)) from None
    tensors = getattr(model, "inputs", None)
    if not tensors:
        raise ModelFileError(
            f"Model {model.name!r} has no symbolic inputs (a subclassed model?); the "
            "exporter needs a functional model with named keras.Input layers "
            f"({IMAGE!r}, {LOSS_WEIGHTS!r}, optionally {STYLE_INDEX!r})."
        )
    by_name = {t.name: t for t in tensors}
    if LOSS_WEIGHTS not in by_name:
        raise ModelFileError(
            f"Model {model.name!r} has inputs {sorted(by_name)}; none is named "
            f"{LOSS_WEIGHTS!r} (the raw lambda [B, {space.size}] input). Name the lambda "
            f"input keras.Input(({space.size},), name={LOSS_WEIGHTS!r})."
        )
    lam_shape = tuple(by_name[LOSS_WEIGHTS].shape[1:])
    if lam_shape[-1:] != (space.size,) or len(lam_shape) not in (1, 3):
        raise ModelFileError(
            f"Input {LOSS_WEIGHTS!r} has shape {lam_shape} per example, but the model's "
            f"LossSpace has {space.size} coefficients ({', '.join(space.names)}): expected "
            f"({space.size},) or a map (h, w, {space.size})."
        )
    if len(getattr(model, "outputs", None) or []) != 1:
        raise ModelFileError(
            f"Model {model.name!r} has {len(model.outputs or [])} outputs; the exporter "
            "expects exactly one."
        )
    data_inputs = {
        name: tuple(t.shape[1:])
        for name, t in by_name.items()
        if name not in (LOSS_WEIGHTS, STYLE_INDEX)
    }
    for name, shape in data_inputs.items():
        if "float" not in str(by_name[name].dtype):
            raise ModelFileError(
                f"Input {name!r} has dtype {by_name[name].dtype}; data inputs must be float."
            )
    if not data_inputs:
        raise ModelFileError(f"Model {model.name!r} has no data input besides lambda.")
    styles = 0
    if STYLE_INDEX in by_name:
        styles = _num_styles(model) if num_styles is None else int(num_styles)
        if styles < 1:
            raise ModelFileError(
                f"Model {model.name!r} has a {STYLE_INDEX!r} input but its number of styles "
                "could not be read; pass it explicitly (--num_styles)."
            )
    return ModelInputs(space, data_inputs, styles, lambda_map=len(lam_shape) == 3)


def _num_styles(model: keras.Model) -> int:
    """A ``num_styles`` attribute of the model or of its one style layer (e.g. the style
    transformer's StyleOneHot), else the size of its one Embedding layer; 0 if unknown."""
    declared = getattr(model, "num_styles", None)
    if declared:
        return int(declared)
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    counts = {int(layer.num_styles) for layer in layers if getattr(layer, "num_styles", None)}
    if len(counts) == 1:
        return counts.pop()
    embeddings = [layer for layer in layers if isinstance(layer, keras.layers.Embedding)]
    return int(embeddings[0].input_dim) if len(embeddings) == 1 else 0
