"""Conditional instance normalization (Dumoulin et al. 2017; Babaeizadeh & Ghiasi 2020)."""

from __future__ import annotations

import keras
from keras import ops

from yoto_tf.layers._inputs import (
    check_conditioning_shape,
    modulation_at,
    split_conditioned_inputs,
)


@keras.saving.register_keras_serializable(package="yoto_tf")
class ConditionalInstanceNormalization(keras.layers.Layer):
    """Instance normalization whose scale and offset are functions of a conditioning vector.

    ``out = (x - mean_hw(x)) / sqrt(var_hw(x) + epsilon) * gamma(c) + beta(c)`` with
    ``gamma(c) = c @ W_gamma + gamma_0`` and ``beta(c) = c @ W_beta + beta_0`` computed per
    example, or per pixel when ``c`` is a map (a lambda map: spatially varying loss weights;
    the statistics stay per instance, only the modulation varies, as in spatial feature
    transforms and Dumoulin et al.'s spatial style blending). With the default initializers (``W = 0``, ``gamma_0 = 1``, ``beta_0 = 0``)
    the layer starts as plain instance normalization. ``c`` is typically the embedding of
    a :class:`ConditioningNetwork` (the loss weights lambda); concatenate a one-hot style
    index to it for multi-style models (Dumoulin et al.'s per-style parameters).

    Argument names follow ``keras.layers.GroupNormalization``.

    Args:
      epsilon: added to the variance.
      center: learn an offset beta(c).
      scale: learn a scale gamma(c).
      beta_initializer, gamma_initializer: initializers of beta_0 and gamma_0.
      kernel_initializer: initializer of W_gamma and W_beta (default zeros: exact identity
        modulation at the start, as Adjustable Style Transfer starts from plain CIN).
      kernel_regularizer, beta_regularizer, gamma_regularizer: optional regularizers.

    Call arguments:
      inputs: a pair ``(x, conditioning)``: x [B, H, W, C], conditioning [B, d] (one lambda
        per example) or [B, h, w, d] (a lambda map, resized bilinearly to H x W).

    Returns:
      [B, H, W, C], the same dtype as x.
    """

    def __init__(
        self,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        kernel_initializer="zeros",
        kernel_regularizer=None,
        beta_regularizer=None,
        gamma_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        x_shape, cond_shape = split_conditioned_inputs(self.name, input_shape)
        check_conditioning_shape(self.name, x_shape, cond_shape, x_ranks=(4,))
        channels, d = x_shape[-1], cond_shape[-1]
        if self.scale:
            self.gamma_kernel = self.add_weight(
                name="gamma_kernel", shape=(d, channels),
                initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            )
            self.gamma = self.add_weight(
                name="gamma", shape=(channels,),
                initializer=self.gamma_initializer, regularizer=self.gamma_regularizer,
            )
        if self.center:
            self.beta_kernel = self.add_weight(
                name="beta_kernel", shape=(d, channels),
                initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            )
            self.beta = self.add_weight(
                name="beta", shape=(channels,),
                initializer=self.beta_initializer, regularizer=self.beta_regularizer,
            )

    def call(self, inputs):
        x, cond = split_conditioned_inputs(self.name, inputs)
        cond = ops.cast(cond, self.compute_dtype)
        if len(cond.shape) == 4:
            return self._call_with_map(x, cond)
        mean, variance = ops.moments(x, axes=[1, 2], keepdims=True)
        multiplier = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            gamma = ops.matmul(cond, self.gamma_kernel) + self.gamma
            multiplier = multiplier * gamma[:, None, None, :]
        offset = -mean * multiplier
        if self.center:
            beta = ops.matmul(cond, self.beta_kernel) + self.beta
            offset = offset + beta[:, None, None, :]
        # Two full-size ops: one multiply, one add (the statistics are [B, 1, 1, C]).
        return x * multiplier + offset

    def _call_with_map(self, x, cond):
        """x [B, H, W, C], cond [B, h, w, d] -> per-pixel gamma and beta (computed on the
        coarser of the two grids, then resized: see ``modulation_at``)."""
        mean, variance = ops.moments(x, axes=[1, 2], keepdims=True)
        out = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            out = out * modulation_at(cond, x, lambda c: ops.matmul(c, self.gamma_kernel) + self.gamma)
        if self.center:
            out = out + modulation_at(cond, x, lambda c: ops.matmul(c, self.beta_kernel) + self.beta)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.beta_initializer),
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            beta_regularizer=keras.regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=keras.regularizers.serialize(self.gamma_regularizer),
        )
        return config


@keras.saving.register_keras_serializable(package="yoto_tf")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalization with fixed learned per-channel gamma/beta: the arithmetic of
    ConditionalInstanceNormalization without conditioning (the unconditioned baseline the
    conditioned networks are compared with).

    Call arguments:
      x: [B, H, W, C].

    Returns:
      [B, H, W, C].
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(input_shape[-1],), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        mean, variance = ops.moments(x, axes=[1, 2], keepdims=True)
        multiplier = ops.rsqrt(variance + self.epsilon) * self.gamma
        return x * multiplier + (self.beta - mean * multiplier)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
