"""Keras model -> SavedModel with one named signature (the input of the TFLite converter).

Keras 3 ``ExportArchive`` writes the SavedModel; ``tf.lite.TFLiteConverter.from_saved_model``
then converts that signature. (``from_concrete_functions`` with a Keras 3 model converts
but computes wrong numbers on this stack, so it is never used.)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mobile.model_io import IMAGE, LOSS_WEIGHTS, STYLE_INDEX, ModelInputs


def input_specs(
    inputs: ModelInputs, image_size: int | None, downsampling: int = 1, map_stride: int = 1,
) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the exported signature, batch size 1, keyed by input name.

    Args:
      inputs: the model's named inputs.
      image_size: the side of the ``image`` input (and of other data inputs with unknown
        spatial size, divided by ``downsampling``); None exports dynamic H and W.
      downsampling: spatial factor between ``image`` and the other data inputs (e.g. 16
        for a compression latent).
      map_stride: for a lambda-map model, the factor between ``image_size`` and the map.

    Returns:
      ``{name: TensorSpec}``: data inputs float32 [1, H, W, C], ``loss_weights`` float32
      [1, k] (a map: [1, ceil(H / map_stride), ceil(W / map_stride), k]), ``style_index``
      int32 [1] for multi-style models.
    """
    specs = {}
    for name, shape in inputs.data_inputs.items():
        if len(shape) == 3:  # [H, W, C]: H and W from image_size (or dynamic)
            side = None
            if image_size is not None:
                side = image_size if name == IMAGE else image_size // downsampling
            shape = (side, side, shape[-1])
        specs[name] = tf.TensorSpec([1, *shape], tf.float32, name=name)
    lam_shape = [1, inputs.loss_space.size]
    if inputs.lambda_map:
        side = None if image_size is None else -(-image_size // map_stride)
        lam_shape = [1, side, side, inputs.loss_space.size]
    specs[LOSS_WEIGHTS] = tf.TensorSpec(lam_shape, tf.float32, name=LOSS_WEIGHTS)
    if inputs.num_styles:
        specs[STYLE_INDEX] = tf.TensorSpec([1], tf.int32, name=STYLE_INDEX)
    return specs


def export_saved_model(
    model: keras.Model,
    directory: str,
    specs: dict[str, tf.TensorSpec],
    signature_key: str,
    output_name: str,
    fixed_inputs: dict[str, np.ndarray] | None = None,
) -> None:
    """Writes ``model`` as a SavedModel whose signature ``signature_key`` maps the named
    inputs ``specs`` to ``{output_name: model(inputs)}``.

    ``fixed_inputs`` (e.g. ``{"loss_weights": lam [1, k]}``) are baked in as constants and
    dropped from the signature: the converter then folds the conditioning into the
    weights, which gives the same network WITHOUT a lambda input (for benchmarks).
    """
    fixed = {name: tf.constant(value) for name, value in (fixed_inputs or {}).items()}
    names = [name for name in specs if name not in fixed]

    def serve(*args):
        feed = dict(zip(names, args))
        feed.update(fixed)
        return {output_name: model(feed, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(signature_key, serve, input_signature=[specs[n] for n in names])
    archive.write_out(directory, verbose=False)
