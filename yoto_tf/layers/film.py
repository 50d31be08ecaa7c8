"""Feature-wise linear modulation (Perez et al. 2018), as YOTO uses it."""

from __future__ import annotations

import keras
from keras import ops

from yoto_tf.layers._inputs import (
    check_conditioning_shape,
    modulation_at,
    split_conditioned_inputs,
)


@keras.saving.register_keras_serializable(package="yoto_tf")
class FiLM(keras.layers.Layer):
    """``out = x * (1 + s(c)) + t(c)`` with per-example, per-channel ``s`` and ``t``.

    ``s = c @ W_s + b_s`` and ``t = c @ W_t + b_t`` are this layer's own Dense heads on the conditioning (YOTO's
    "separate small heads per block on a shared MLP over log(lambda)"). YOTO places FiLM
    after the last conv of each block, before the nonlinearity. With the default zero
    initializers the layer is exactly the identity at the start (YOTO's near-identity
    start: ``scale = 1 + eps * raw``); the conditioning network still gets gradients from
    the first update on.

    Args:
      kernel_initializer, bias_initializer: initializers of W_s, W_t [d, C] and b_s, b_t [C].
      kernel_regularizer: optional regularizer of W_s and W_t.

    Call arguments:
      inputs: a pair ``(x, conditioning)``: x [B, C] or [B, H, W, C], conditioning [B, d]
        (one lambda per example) or, for x [B, H, W, C], a map [B, h, w, d] (a lambda map:
        per-pixel s and t, a spatial feature transform, computed on the coarser grid and
        resized bilinearly to H x W, the same as resizing the map first).

    Returns:
      The shape and dtype of x.
    """

    def __init__(
        self,
        kernel_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        x_shape, cond_shape = split_conditioned_inputs(self.name, input_shape)
        check_conditioning_shape(self.name, x_shape, cond_shape, x_ranks=(2, 4))
        self._x_rank = len(x_shape)
        channels, d = x_shape[-1], cond_shape[-1]
        # Separate scale and shift heads (rather than one [d, 2C] head sliced in two): the
        # TFLite GPU delegate rejects the rank-2 slice the split would need.
        self.scale_kernel = self.add_weight(
            name="scale_kernel", shape=(d, channels),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
        )
        self.scale_bias = self.add_weight(
            name="scale_bias", shape=(channels,), initializer=self.bias_initializer
        )
        self.shift_kernel = self.add_weight(
            name="shift_kernel", shape=(d, channels),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
        )
        self.shift_bias = self.add_weight(
            name="shift_bias", shape=(channels,), initializer=self.bias_initializer
        )

    def call(self, inputs):
        x, cond = split_conditioned_inputs(self.name, inputs)
        cond = ops.cast(cond, self.compute_dtype)
        if len(cond.shape) == 4:
            channels = self.scale_bias.shape[0]
            modulation = modulation_at(cond, x, self._scale_and_shift)  # [B, H, W, 2C]
            return x * (1.0 + modulation[..., :channels]) + modulation[..., channels:]
        scale = ops.matmul(cond, self.scale_kernel) + self.scale_bias
        shift = ops.matmul(cond, self.shift_kernel) + self.shift_bias
        if self._x_rank == 4:
            scale, shift = scale[:, None, None, :], shift[:, None, None, :]
        return x * (1.0 + scale) + shift

    def _scale_and_shift(self, cond):
        """cond [..., d] -> [..., 2C]: s then t, concatenated (one resize for both)."""
        return ops.concatenate([ops.matmul(cond, self.scale_kernel) + self.scale_bias,
                                ops.matmul(cond, self.shift_kernel) + self.shift_bias], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config
