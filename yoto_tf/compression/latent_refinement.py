"""Encode-time latent refinement: smaller files at the same quality, same model, same decoder.

Why: the analysis transform is *amortized*: one network maps every image to latents, and
for a given image its ``y`` and ``z`` are good but not the best the synthesis and entropy
model can use. The difference (the amortization gap; Campos et al. 2019, "Content adaptive
optimization for neural image compression"; Yang, Bamler & Mandt 2020, "Improving
inference for neural image compression") can be closed per image at encode time by
minimizing the model's own objective over ``y`` and ``z`` directly:

    loss(y, z) = lam_r * bpp(y_q, z_q) + mean_pixels(lam(x) * 255^2 * (x - x_hat(y_q, z_q))^2)

(one lambda, or a quality map's lambda per pixel, weighted as in training). Only the
encoder does more work: the file is an ordinary file of the same model, decoded as fast as
any other.

Quantization: rounding has no useful gradient, and the straight-through estimator moves
latents across rounding boundaries at random (measured on kodim01 with mean_scale_64_30k,
30 Adam steps: the loss *rose* at lambda 0.0018, BD-rate +14 % at learning rate 0.01).
This module uses Yang et al.'s **stochastic Gumbel annealing** (SGA): each latent ``v`` is
a random soft choice between ``floor(v)`` and ``ceil(v)``, with probabilities that favour
the nearer integer (logits ``-atanh(distance) / tau``) and a temperature ``tau`` annealed
from 0.5 towards 0, so the relaxation becomes rounding by the end; the refined latents are
then rounded as usual (``CompressionCodec.quantize_latents``). ``y`` is relaxed around the
means predicted from the relaxed ``z`` (what the codec codes is ``round(y - mu)``).
The Gumbel noise comes from a stateless generator seeded per step, so a refinement is
reproducible.

Cost: one forward and backward pass of the synthesis and hyper-synthesis per step (the
analysis runs once). The measured gains and times are in the compression model cards.
TensorFlow backend only (gradients), like ``diagnostics.optimized_latents``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from yoto_tf.compression import entropy_models
from yoto_tf.compression.model import DISTORTION_SCALE

DEFAULT_STEPS = 100
DEFAULT_LEARNING_RATE = 0.01
INITIAL_TEMPERATURE = 0.5
TEMPERATURE_DECAY = 4.0  # tau(t) = 0.5 * exp(-4 t / steps): 0.5 -> 0.009 over the run
_ATANH_EPSILON = 1e-5


class LatentRefiner:
    """Refines the latents of one image through a trained CompressionNetwork.

    Built once per codec, by ``CompressionCodec.refine_latents``; the gradient function is
    traced once per image size and kind of conditioning (one lambda or a map).

    Args:
      network: the float32 CompressionNetwork whose synthesis and entropy model are used.
      z_medians: float32 [N], the hyperprior medians z is rounded around (the codec's).
    """

    def __init__(self, network, z_medians: np.ndarray):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  # gradients: TF backend only

        self._tf = tf
        self._network = network
        self._z_medians = tf.constant(np.asarray(z_medians, np.float32))
        self._distortion = network.loss_space.index("distortion")
        self._rate = network.loss_space.index("rate")
        self._gradient = tf.function(self._loss_and_gradients)

    def refine(self, padded: np.ndarray, height: int, width: int, lam_vec: np.ndarray,
               y: np.ndarray, z: np.ndarray, steps: int = DEFAULT_STEPS,
               learning_rate: float = DEFAULT_LEARNING_RATE, seed: int = 0):
        """Latents that code the image at a lower rate-distortion loss.

        Args:
          padded: float32 [1, PH, PW, 3] in [0, 1], the edge-padded image ``y`` and ``z``
            were computed from; only its top-left ``height`` x ``width`` pixels count.
          lam_vec: float32 [k] loss weights, or a conditioning map [gh, gw, k] over the padded
            image (``CompressionCodec.quality_map``).
          y, z: float32 [1, PH/16, PW/16, M] and [1, PH/64, PW/64, N] from
            ``CompressionCodec.analyze``.
          steps: Adam steps (0 returns ``y``, ``z`` unchanged).
          learning_rate: Adam's step size, in latent units.
          seed: seed of the annealing noise.

        Returns:
          (y, z): refined float32 arrays of the same shapes, to be quantized by
          ``CompressionCodec.quantize_latents``.

        Raises:
          ValueError: a negative step count or a non-positive learning rate.
        """
        if int(steps) != steps or steps < 0:
            raise ValueError(f"refine steps must be a whole number >= 0, got {steps}")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"the refinement learning rate must be positive, got {learning_rate}")
        if steps == 0:
            return y, z
        tf = self._tf
        lam_vec = np.asarray(lam_vec, np.float32)
        emb = self._network.embed(lam_vec[None])
        weights = self._pixel_weights(lam_vec, padded.shape[1:3], height, width)
        rate_weight = tf.constant(float(np.mean(lam_vec[..., self._rate])), tf.float32)
        y_var, z_var = keras.Variable(y, name="refined_y"), keras.Variable(z, name="refined_z")
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build([y_var, z_var])
        x = tf.constant(padded, tf.float32)
        for step in range(int(steps)):
            tau = INITIAL_TEMPERATURE * math.exp(-TEMPERATURE_DECAY * step / steps)
            grads = self._gradient(x, y_var.value, z_var.value, emb, weights, rate_weight,
                                   tf.constant(tau, tf.float32), tf.constant([int(seed), step], tf.int32))
            optimizer.apply(list(grads), [y_var, z_var])
        return np.asarray(y_var.value), np.asarray(z_var.value)

    def _pixel_weights(self, lam_vec, padded_size, height, width):
        """float32 [1, PH, PW, 1]: each real pixel's distortion weight divided by the number
        of real pixels (0 on the padding), so their sum is the mean weighted distortion."""
        tf = self._tf
        if lam_vec.ndim == 1:
            lam = np.full(padded_size, lam_vec[self._distortion], np.float32)
        else:  # a conditioning map: bilinear, as the training loss weights a map
            lam = np.asarray(tf.image.resize(lam_vec[None, ..., self._distortion:self._distortion + 1],
                                             padded_size, method="bilinear"))[0, ..., 0]
        mask = np.zeros(padded_size, np.float32)
        mask[:height, :width] = 1.0 / (height * width)
        return tf.constant((lam * mask)[None, ..., None])

    def _loss_and_gradients(self, x, y, z, emb, weights, rate_weight, tau, seed):
        tf = self._tf
        with tf.GradientTape() as tape:
            tape.watch([y, z])
            z_hat = self._relaxed_round(z - self._z_medians, tau, seed) + self._z_medians
            out = self._network.hyper_synthesis((z_hat, emb))
            hyper_mean, hyper_raw_index = out if self._network.mean_scale else (None, out)
            y_nats = []

            def code_slice(start, stop, mean, raw_index):
                part = self._network.latent_slice(y, start, stop)
                centered = part if mean is None else part - mean
                centered_hat = self._relaxed_round(centered, tau, seed + [start, 1 << 20])
                y_nats.append(-tf.reduce_sum(tf.math.log(entropy_models.index_likelihood(centered_hat, raw_index))))
                return centered_hat if mean is None else centered_hat + mean

            y_hat = self._network.code_slices(hyper_mean, hyper_raw_index, emb, code_slice)
            bits = ((y_nats[0] if len(y_nats) == 1 else tf.add_n(y_nats))
                    - tf.reduce_sum(tf.math.log(self._network.hyperprior(z_hat)))) / math.log(2.0)
            x_hat = self._network.synthesis((y_hat, emb))
            pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
            distortion = DISTORTION_SCALE * tf.reduce_sum(weights * tf.reduce_mean(tf.square(x - x_hat), -1, keepdims=True))
            loss = rate_weight * bits / pixels + distortion
        return tape.gradient(loss, [y, z])

    def _relaxed_round(self, v, tau, seed):
        """Stochastic Gumbel annealing of ``v`` (any shape): ``floor(v) + w``, ``w`` in
        (0, 1) a relaxed Bernoulli choice of the ceiling (logits ``-atanh(distance) / tau``,
        logistic noise = the difference of two Gumbel draws)."""
        tf = self._tf
        floor = tf.stop_gradient(tf.floor(v))
        limit = 1.0 - _ATANH_EPSILON
        floor_logit = -tf.atanh(tf.clip_by_value(v - floor, -limit, limit)) / tau
        ceil_logit = -tf.atanh(tf.clip_by_value(floor + 1.0 - v, -limit, limit)) / tau
        u = tf.random.stateless_uniform(tf.shape(v), seed, minval=1e-7, maxval=1.0 - 1e-7)
        logistic = tf.math.log(u) - tf.math.log1p(-u)
        return floor + tf.sigmoid((ceil_logit - floor_logit + logistic) / tau)
