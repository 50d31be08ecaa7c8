"""Entropy models of the scale hyperprior (Balle et al. 2018).

* ``z`` (the hyper-latents) has a learned per-channel **deep factorized density**
  (:class:`DeepFactorizedDensity`, Balle et al. 2018, appendix 6.1).
* ``y`` (the latents) is modelled as a zero-mean Gaussian convolved with a unit-width box,
  whose scale the hyper-synthesis transform predicts as a continuous **scale index** into a
  table of ``NUM_SCALES`` log-spaced scales from ``SCALE_MIN`` to ``SCALE_MAX``
  (``scale(i) = SCALE_MIN * (SCALE_MAX / SCALE_MIN) ** (i / (NUM_SCALES - 1))``, as in
  tensorflow-compression's ``bmshj2018.py``). Training uses the continuous index; coding
  rounds it to an integer, so the coder only ever sees one of ``NUM_SCALES`` integer tables.

Training replaces rounding by additive uniform noise (:func:`quantize`); likelihoods are
bounded below by ``LIKELIHOOD_BOUND``. The Keras functions here run in the model graph
(``keras.ops``); the ``*_numpy`` functions evaluate the same densities in float64 on the
host, where the integer coding tables are built (see ``ans_coder.py``), so that encoder and
decoder derive bit-identical tables from the weights.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops
from scipy import special

SCALE_MIN = 0.11
SCALE_MAX = 256.0
NUM_SCALES = 64
LIKELIHOOD_BOUND = 1e-9

_LOG_SCALE_MIN = math.log(SCALE_MIN)
_LOG_SCALE_STEP = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (NUM_SCALES - 1)


# ------------------------------------------------------------------------ quantization
def quantize(x, training, seed=None):
    """Training: ``x + u`` with ``u ~ U(-0.5, 0.5)`` (the differentiable proxy of
    rounding); otherwise ``round(x)``. Any shape; float."""
    if training:
        return x + keras.random.uniform(ops.shape(x), -0.5, 0.5, dtype=x.dtype, seed=seed)
    return ops.round(x)


def straight_through_round(x):
    """``round(x)`` in the forward pass, the identity's gradient in the backward pass."""
    return x + ops.stop_gradient(ops.round(x) - x)


# ------------------------------------------------------------------------ scale table
def scale_table() -> np.ndarray:
    """The ``NUM_SCALES`` coding scales, float64 [NUM_SCALES], log-spaced, ascending."""
    return np.exp(_LOG_SCALE_MIN + _LOG_SCALE_STEP * np.arange(NUM_SCALES, dtype=np.float64))


def scale_from_index(index):
    """Continuous scale index (any shape, already bounded to [0, NUM_SCALES - 1]) ->
    Gaussian scale of the same shape."""
    return ops.exp(_LOG_SCALE_MIN + _LOG_SCALE_STEP * index)


@ops.custom_gradient
def bound_scale_index(index):
    """Clips the hyper-synthesis output to [0, NUM_SCALES - 1].

    The gradient passes where the value is inside the range, and outside it only when the
    update would move the value back towards the range (tensorflow-compression's
    "identity_if_towards" bound), so a scale that starts out of range is not stuck.
    """
    high = float(NUM_SCALES - 1)

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        # Gradient descent moves x by -upstream.
        inside = ops.logical_and(index >= 0.0, index <= high)
        rising_from_below = ops.logical_and(index < 0.0, upstream < 0.0)
        falling_from_above = ops.logical_and(index > high, upstream > 0.0)
        passes = ops.logical_or(inside, ops.logical_or(rising_from_below, falling_from_above))
        return ops.where(passes, upstream, ops.zeros_like(upstream))

    return ops.clip(index, 0.0, high), grad


def coding_scale_indices(raw_index: np.ndarray) -> np.ndarray:
    """Rounds hyper-synthesis outputs (float64 NumPy) to table indices (int32).

    Both encoder and decoder call this on float64 values they compute the same way, so a
    value would have to fall within ~1e-13 of a rounding boundary for the two to disagree.
    """
    raw_index = np.asarray(raw_index, dtype=np.float64)
    return np.clip(np.round(raw_index), 0, NUM_SCALES - 1).astype(np.int32)


# ------------------------------------------------------------------------ Gaussian
def _standard_normal_cdf(x):
    return 0.5 * ops.erfc(-x * (2.0**-0.5))


def gaussian_likelihood(y, scale):
    """Probability mass of the unit box around ``y`` under N(0, scale^2).

    Uses ``|y|`` (the density is symmetric) so both CDF values lie in the lower tail,
    where erfc is accurate. Shapes broadcast; returns ``max(p, LIKELIHOOD_BOUND)``.
    """
    v = ops.abs(y)
    upper = _standard_normal_cdf((0.5 - v) / scale)
    lower = _standard_normal_cdf((-0.5 - v) / scale)
    return ops.maximum(upper - lower, LIKELIHOOD_BOUND)


def index_likelihood(y, raw_index):
    """:func:`gaussian_likelihood` of ``y`` with the scale of the unbounded continuous scale
    index ``raw_index`` (bounded to the table first, with :func:`bound_scale_index`'s
    gradient): how the network rates a latent. Shapes broadcast."""
    return gaussian_likelihood(y, scale_from_index(bound_scale_index(raw_index)))


def gaussian_pmf_numpy(values: np.ndarray, scale: float) -> np.ndarray:
    """float64 probability of each integer in ``values`` under the quantized N(0, scale^2)."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    return special.ndtr((0.5 - v) / scale) - special.ndtr((-0.5 - v) / scale)


def gaussian_tail_bound(scale: float, tail_mass: float) -> int:
    """Smallest integer R with P(|Y| > R + 0.5) <= tail_mass for Y ~ N(0, scale^2)."""
    return int(math.ceil(scale * -special.ndtri(tail_mass / 2.0)))


# ------------------------------------------------------------------------ deep factorized
@keras.saving.register_keras_serializable(package="yoto_tf")
class DeepFactorizedDensity(keras.layers.Layer):
    """A learned univariate density per channel (Balle et al. 2018, appendix 6.1).

    The cumulative ``c(x) = sigmoid(f_K(...f_1(x)))`` where ``f_k(x) = H_k x + b_k`` (with
    ``+ tanh(a_k) * tanh(.)`` for ``k < K``) and ``H_k = softplus(matrix_k) > 0``, so
    ``c`` is monotone. The density of the noisy/rounded variable is the mass of the unit
    box: ``c(x + 0.5) - c(x - 0.5)``.

    Args:
      channels: number of channels C (one density each).
      filters: hidden widths of the per-channel network (paper: (3, 3, 3)).
      init_scale: initial width of the densities.

    Call arguments:
      z: [B, H, W, C] (noisy or rounded values).

    Returns:
      likelihoods [B, H, W, C], bounded below by ``LIKELIHOOD_BOUND``.
    """

    def __init__(self, channels, filters=(3, 3, 3), init_scale=10.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)

    def build(self, input_shape=None):
        widths = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        self.matrices, self.biases, self.factors = [], [], []
        for k in range(len(widths) - 1):
            init = math.log(math.expm1(1.0 / scale / widths[k + 1]))
            self.matrices.append(self.add_weight(
                name=f"matrix_{k}", shape=(self.channels, widths[k + 1], widths[k]),
                initializer=keras.initializers.Constant(init),
            ))
            self.biases.append(self.add_weight(
                name=f"bias_{k}", shape=(self.channels, widths[k + 1], 1),
                initializer=keras.initializers.RandomUniform(-0.5, 0.5),
            ))
            if k < len(widths) - 2:
                self.factors.append(self.add_weight(
                    name=f"factor_{k}", shape=(self.channels, widths[k + 1], 1),
                    initializer="zeros",
                ))

    def cumulative_logits(self, x):
        """x [C, 1, N] -> logits of the CDF [C, 1, N]."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = ops.matmul(ops.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + ops.tanh(self.factors[k]) * ops.tanh(x)
        return x

    def call(self, z):
        shape = ops.shape(z)
        flat = ops.reshape(ops.transpose(z, (3, 0, 1, 2)), (self.channels, 1, -1))
        lower = self.cumulative_logits(flat - 0.5)
        upper = self.cumulative_logits(flat + 0.5)
        # Subtract in the tail where both sigmoids are small (numerically stable).
        sign = -ops.sign(lower + upper)
        likelihood = ops.abs(ops.sigmoid(sign * upper) - ops.sigmoid(sign * lower))
        likelihood = ops.reshape(likelihood, (self.channels, shape[0], shape[1], shape[2]))
        return ops.maximum(ops.transpose(likelihood, (1, 2, 3, 0)), LIKELIHOOD_BOUND)

    def numpy_parameters(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The effective parameters as float64 NumPy: ``[(H_k, b_k, tanh(a_k) or None)]``."""
        params = []
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            h = np.logaddexp(0.0, np.asarray(matrix, np.float64))  # softplus
            b = np.asarray(bias, np.float64)
            a = np.tanh(np.asarray(self.factors[k], np.float64)) if k < len(self.factors) else None
            params.append((h, b, a))
        return params

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, filters=self.filters, init_scale=self.init_scale)
        return config


def factorized_cumulative_logits_numpy(params, x: np.ndarray) -> np.ndarray:
    """float64 CDF logits of every channel: x [C, N] -> [C, N] (``params`` from
    :meth:`DeepFactorizedDensity.numpy_parameters`). Pure elementwise NumPy (the tiny
    per-channel matrix products are written as sums), so the result does not depend on
    BLAS threading."""
    h_in = x[:, None, :]  # [C, 1, N]
    for h, b, a in params:
        # [C, out, in] x [C, in, N] -> [C, out, N], summed over `in` in a fixed order.
        out = np.zeros((h.shape[0], h.shape[1], h_in.shape[2]))
        for j in range(h.shape[2]):
            out += h[:, :, j : j + 1] * h_in[:, j : j + 1, :]
        h_in = out + b
        if a is not None:
            h_in = h_in + a * np.tanh(h_in)
    return h_in[:, 0, :]
