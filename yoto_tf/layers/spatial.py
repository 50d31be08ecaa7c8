"""Spatial layers that convert to TFLite builtin ops with dynamic image sizes."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yoto_tf")
class NearestUpsampling2D(keras.layers.Layer):
    """Nearest-neighbour upsampling by an integer factor, for any input size.

    ``keras.layers.UpSampling2D(interpolation="nearest")`` followed by a Conv2D does not
    convert to TFLite builtin ops unless every dimension is static; on the TensorFlow
    backend this layer calls ``tf.image.resize(x, factor * shape, "nearest")``, which
    converts to RESIZE_NEAREST_NEIGHBOR with dynamic H and W. Other backends use
    ``keras.ops.repeat``.

    Args:
      factor: integer upsampling factor for both H and W.

    Call arguments:
      x: [B, H, W, C].

    Returns:
      [B, factor * H, factor * W, C].
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        if int(factor) < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}.")
        self.factor = int(factor)

    def call(self, x):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            size = self.factor * tf.shape(x)[1:3]
            return tf.cast(tf.image.resize(x, size, method="nearest"), x.dtype)
        return ops.repeat(ops.repeat(x, self.factor, axis=1), self.factor, axis=2)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (
            b,
            None if h is None else h * self.factor,
            None if w is None else w * self.factor,
            c,
        )

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


@keras.saving.register_keras_serializable(package="yoto_tf")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads H and W by ``padding`` pixels on each side with reflection (MIRROR_PAD).

    Call arguments:
      x: [B, H, W, C] with H, W > padding.

    Returns:
      [B, H + 2 * padding, W + 2 * padding, C].
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if int(padding) < 0:
            raise ValueError(f"padding must be >= 0, got {padding}.")
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = 2 * self.padding
        return (b, None if h is None else h + grow, None if w is None else w + grow, c)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config
