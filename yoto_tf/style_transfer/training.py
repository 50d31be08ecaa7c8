"""Training glue: the LossConditionalModel of style transfer and its input pipeline."""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yoto_tf import data
from yoto_tf.style_transfer.loss_space import style_names
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.transformer import IMAGE_INPUT, LAMBDA_INPUT, STYLE_INPUT, build_network
from yoto_tf.training import LossConditionalModel


class StyleTransferModel(LossConditionalModel):
    """A LossConditionalModel whose inputs are ``{"image": ..., "style_index": ...}`` dicts.

    Batches are ``{"inputs": {"image": float32 [B, H, W, 3] in [0, 1], "style_index":
    int32 [B]}}`` (``style_index`` only for multi-style networks), optionally with
    ``"lambda": [B, k]`` to fix the weighting. Every loss term is divided by its running
    mean (``normalize_terms=True``), so lambda holds relative weights, and each example's
    weights are rescaled to a constant sum before weighting (only their ratios matter).

    Lambda sampling: every coefficient keeps its LossSpace distribution (log-uniform over
    its range), but for a fraction ``diagonal_fraction`` of the examples the five style
    weights share ONE draw (the same position in their log ranges). Independent draws
    alone almost never put all five style weights near their bounds together, so the
    strength knob (all style weights scaled together) would be untrained at its ends.

    Args:
      network: a transformer from :func:`~yoto_tf.style_transfer.build_network`.
      losses: the :class:`StyleTransferLoss` of the network's styles.
      seed: seed of the lambda sampler.
      ema_decay: decay of the running means of the loss terms.
      diagonal_fraction: share of examples whose style weights move together.
      normalize_weight_sum: weight each example's loss terms with lambda rescaled to a
        constant sum (see :meth:`loss_weights`); the network still sees the raw lambda.
    """

    def __init__(
        self, network, losses: StyleTransferLoss, seed=None, ema_decay=0.99,
        diagonal_fraction=0.5, normalize_weight_sum=True, **kwargs,
    ):
        super().__init__(
            network, losses, normalize_terms=True, ema_decay=ema_decay, seed=seed, **kwargs
        )
        if not 0.0 <= diagonal_fraction <= 1.0:
            raise ValueError(f"diagonal_fraction must be in [0, 1], got {diagonal_fraction}.")
        self.diagonal_fraction = float(diagonal_fraction)
        self.normalize_weight_sum = bool(normalize_weight_sum)
        self._style_columns = np.isin(self.loss_space.names, style_names(self.loss_space))

    def sample_lambda(self, batch_size):
        """lambda [B, k]: the LossSpace's draws, style weights tied on a fraction of rows.

        Tying happens on the uniform noise the LossSpace maps to lambda (inverse CDFs), so
        every marginal keeps its distribution. The noise comes from the engine's sampler,
        which draws differently on every replica of a tf.distribute strategy.
        """
        noise = self.uniform_noise(batch_size)  # [B, k]
        extra = self.uniform_noise(batch_size)  # [B, k]: column 0 the shared draw
        tie = ops.logical_and(extra[:, 1:2] < self.diagonal_fraction, self._style_columns)
        return self.loss_space.from_uniform(ops.where(tie, extra[:, :1], noise))

    def call(self, x, training=False):
        inputs, lam = self._split(x)
        if lam is None:
            lam = self.sample_lambda(ops.shape(inputs[IMAGE_INPUT])[0])
        if training:
            inputs = {**inputs, IMAGE_INPUT: self.dither(inputs[IMAGE_INPUT])}
        return super().call({"inputs": inputs, "lambda": lam}, training=training)

    def loss_weights(self, lam):
        """lambda [B, k] scaled per example so its sum equals the default lambda's sum
        (with ``normalize_weight_sum``; else lambda itself). The network sees the raw lambda.

        Only the ratios of the weights decide an example's optimum; without this, examples
        whose weights are all large (e.g. content 10 with strength 10) would dominate every
        batch's gradient and those with small weights would barely train (YOTO suggests
        the same kind of normalization, by the geometric mean).
        """
        if not self.normalize_weight_sum:
            return lam
        target = float(np.sum(self.loss_space.default()))
        return lam * (target / ops.sum(lam, axis=-1, keepdims=True))

    def dither(self, images):
        """Adds uniform noise of +-half a grey level (8-bit), clipped to [0, 1].

        Invisible, but it keeps perfectly flat crops (black borders, clipped sky) trainable:
        on a constant image every instance norm sees zero variance, and backpropagation
        multiplies the gradient by about 1/sqrt(epsilon) at each of the 16 norms, which
        overflows to inf/NaN. The noise gives the first norm a non-zero variance, so the
        layers after it see normalized, varying activations again.
        """
        noise = keras.random.uniform(
            ops.shape(images), -0.5 / 255.0, 0.5 / 255.0, seed=self.seed_generator
        )
        return ops.clip(images + noise, 0.0, 1.0)

    def call_network(self, inputs: Mapping, lam, training=False):
        feed = {IMAGE_INPUT: inputs[IMAGE_INPUT], LAMBDA_INPUT: lam}
        if STYLE_INPUT in inputs:
            feed[STYLE_INPUT] = inputs[STYLE_INPUT]
        return self.network(feed, training=training)



def build_model(
    losses: StyleTransferLoss,
    loss_space,
    *,
    width_multiplier: float = 1.0,
    conditioning_units: int = 256,
    seed: int | None = None,
    diagonal_fraction: float = 0.5,
) -> StyleTransferModel:
    """The uncompiled training model of a new style network (the network is its
    ``.network``): what ``trainers.style_transfer`` trains and ``benchmarks.yoto_vs_fixed``
    compares.

    Args:
      losses: the :class:`StyleTransferLoss` of the paintings (built by the caller, so that
        several models can share one VGG); the network gets a style input when it holds
        more than one painting.
      loss_space: the style-transfer LossSpace (or one with some weights fixed).
      width_multiplier, conditioning_units: of :func:`build_network`.
      seed, diagonal_fraction: of the :class:`StyleTransferModel`.
    """
    network = build_network(loss_space, num_styles=losses.num_styles, width_multiplier=width_multiplier,
                            conditioning_units=conditioning_units)
    return StyleTransferModel(network, losses, seed=seed, diagonal_fraction=diagonal_fraction)


def training_dataset(
    content: str,
    image_size: int,
    batch_size: int,
    num_styles: int = 1,
    seed: int | None = None,
    **dataset_kwargs,
) -> tf.data.Dataset:
    """Infinite batches for :class:`StyleTransferModel`.

    Args:
      content: a ``yoto_tf.data.parse_source`` spec (``builtin``, ``folder:GLOB``,
        ``tfds:NAME[:SPLIT]``).
      image_size: side of the random square content crops.
      batch_size: examples per batch.
      num_styles: > 1 adds a uniformly random ``style_index`` per example.
      seed: makes crops, order and style indices reproducible.
      **dataset_kwargs: passed to ``yoto_tf.data.image_dataset`` (e.g. ``tfds_data_dir``).

    Returns:
      ``{"inputs": {"image": float32 [B, S, S, 3], "style_index": int32 [B]}}`` batches.
    """
    images = data.image_dataset(content, image_size, batch_size, seed=seed, **dataset_kwargs)
    if num_styles == 1:
        return images.map(lambda x: {"inputs": {IMAGE_INPUT: x}})
    indices = (
        tf.data.Dataset.random(seed=seed)
        .map(lambda r: tf.cast(r % num_styles, tf.int32))
        .batch(batch_size, drop_remainder=True)
    )
    return tf.data.Dataset.zip(images, indices).map(
        lambda x, i: {"inputs": {IMAGE_INPUT: x, STYLE_INPUT: i}}
    )
