"""Training glue: the LossConditionalModel of style transfer and its input pipeline."""

from __future__ import annotations

import math
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yoto_tf import data
from yoto_tf.style_transfer.loss_space import style_names
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.transformer import (
    IMAGE_INPUT,
    LAMBDA_INPUT,
    STYLE_INPUT,
    build_network,
    lambda_map_network,
    per_image_network,
    takes_lambda_map,
)
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

    Lambda maps (``lambda_map_fraction`` f > 0): the network trained is the lambda-map twin
    (:func:`~yoto_tf.style_transfer.transformer.lambda_map_network`) of ``network``, fed a
    map [B, S/4, S/4, k] for every example. A share f of the examples get two weightings:
    ``a`` everywhere and ``b`` inside a random rectangle (each side 1/4 to all of the crop's,
    anywhere); the rest a constant map, which is exactly the per-image objective. A
    two-region example minimizes ``sum_r area_r * sum_i w_r,i * L_r,i``: the terms of each
    region (:meth:`StyleTransferLoss.region_terms`: content and TV over its pixels, style
    from the Gram matrices of its own features) weighted by that region's normalized
    weights. Without it, a network trained with one lambda per image washes out the strong
    side of a sharp map in one pass (instance norm mixes both regions' statistics).
    :meth:`saved_network` gives the per-image network with the trained weights.

    Args:
      network: a transformer from :func:`~yoto_tf.style_transfer.build_network` (per-image
        lambda; with ``lambda_map_fraction`` its map twin is built and trained).
      losses: the :class:`StyleTransferLoss` of the network's styles.
      seed: seed of the lambda sampler.
      ema_decay: decay of the running means of the loss terms.
      diagonal_fraction: share of examples whose style weights move together.
      normalize_weight_sum: weight each example's loss terms with lambda rescaled to a
        constant sum (see :meth:`loss_weights`); the network still sees the raw lambda.
      lambda_map_fraction: share of the examples trained on a two-region lambda map; 0
        trains the per-image network itself, as before.
    """

    MAP_DOWNSCALE = 4
    """Training maps hold one weighting per 4x4 pixels (the network's deepest resolution)."""

    def __init__(
        self, network, losses: StyleTransferLoss, seed=None, ema_decay=0.99,
        diagonal_fraction=0.5, normalize_weight_sum=True, lambda_map_fraction=0.0, **kwargs,
    ):
        if not 0.0 <= lambda_map_fraction <= 1.0:
            raise ValueError(f"lambda_map_fraction must be in [0, 1], got {lambda_map_fraction}.")
        if lambda_map_fraction and not takes_lambda_map(network):
            network = lambda_map_network(network)
        super().__init__(
            network, losses, normalize_terms=True, ema_decay=ema_decay, seed=seed, **kwargs
        )
        if not 0.0 <= diagonal_fraction <= 1.0:
            raise ValueError(f"diagonal_fraction must be in [0, 1], got {diagonal_fraction}.")
        self.diagonal_fraction = float(diagonal_fraction)
        self.normalize_weight_sum = bool(normalize_weight_sum)
        self.lambda_map_fraction = float(lambda_map_fraction)
        self._style_columns = np.isin(self.loss_space.names, style_names(self.loss_space))

    def saved_network(self):
        """The per-image network with the trained weights (what ``model.keras`` holds)."""
        if takes_lambda_map(self.network):
            return per_image_network(self.network)
        return self.network

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
        images = inputs[IMAGE_INPUT]
        if lam is None:
            lam = self.sample_lambda(ops.shape(images)[0])
            if takes_lambda_map(self.network):
                lam = self.sample_lambda_map(images, lam)
        elif takes_lambda_map(self.network) and len(lam.shape) == 2:
            lam = self.constant_map(images, ops.cast(lam, "float32"))
        if training:
            inputs = {**inputs, IMAGE_INPUT: self.dither(images)}
        return super().call({"inputs": inputs, "lambda": lam}, training=training)

    def constant_map(self, images, lam):
        """lambda [B, k] -> the map [B, H/4, W/4, k] holding it everywhere."""
        rows, cols = images.shape[1] // self.MAP_DOWNSCALE, images.shape[2] // self.MAP_DOWNSCALE
        return ops.broadcast_to(lam[:, None, None, :], (ops.shape(lam)[0], rows, cols, lam.shape[-1]))

    def sample_lambda_map(self, images, outside):
        """Training maps [B, H/4, W/4, k] for images [B, H, W, 3] whose per-image draws are
        ``outside`` [B, k]: with probability ``lambda_map_fraction`` a random rectangle of
        the map (each side 1/4 to all of the image's, anywhere) takes a second draw."""
        batch = ops.shape(images)[0]
        rows, cols = images.shape[1] // self.MAP_DOWNSCALE, images.shape[2] // self.MAP_DOWNSCALE
        inside = self.sample_lambda(batch)
        # 5 uniform draws per example: the rectangle's top, height, left, width, and whether
        # the example gets it (the replica-aware sampler draws k at a time).
        draws = ops.concatenate(
            [self.uniform_noise(batch) for _ in range(math.ceil(5 / self.loss_space.size))], axis=-1)

        def inside_span(size, start_draw, length_draw):  # [B, size] in {0, 1}
            length = (0.25 + 0.75 * length_draw) * size
            start = start_draw * (size - length)
            centres = ops.cast(ops.arange(size), "float32")[None, :] + 0.5
            return ops.cast((centres >= start[:, None]) & (centres < (start + length)[:, None]), "float32")

        chosen = ops.cast(draws[:, 4] < self.lambda_map_fraction, "float32")[:, None, None]
        mask = (inside_span(rows, draws[:, 0], draws[:, 1])[:, :, None]
                * inside_span(cols, draws[:, 2], draws[:, 3])[:, None, :] * chosen)[..., None]
        return outside[:, None, None, :] * (1.0 - mask) + inside[:, None, None, :] * mask

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

    def terms_and_example_losses(self, inputs, outputs, lam, training):
        """As the base class for a lambda [B, k]; for a map [B, h, w, k] (two weightings at
        most, as :meth:`sample_lambda_map` draws them), the whole-image terms and the
        area-weighted sum over the two regions of each region's terms weighted by its own
        weights (see the class docstring), all from one pass of the loss network.

        The regions: the cells whose weighting is that of the map's top-left cell, and the
        others (empty for a constant map, whose loss is then the per-image one).
        """
        if len(lam.shape) != 4:
            return super().terms_and_example_losses(inputs, outputs, lam, training)
        log_lam = ops.log(lam)
        distance = ops.sum(ops.abs(log_lam - log_lam[:, :1, :1, :]), axis=-1)  # [B, h, w]
        farthest = ops.max(distance, axis=(1, 2), keepdims=True)
        second = ops.cast((distance > 0.5 * farthest) & (farthest > 1e-6), "float32")
        cells = ops.stack([1.0 - second, second], axis=1)  # [B, 2, h, w]
        area = ops.mean(cells, axis=(2, 3))  # [B, 2]
        counts = ops.sum(cells, axis=(2, 3))[..., None]  # [B, 2, 1]
        region_lam = ops.where(  # an empty region (a constant map's second) takes the corner's
            counts > 0, ops.einsum("brhw,bhwk->brk", cells, lam) / ops.maximum(counts, 1.0),
            lam[:, None, 0, 0, :])  # [B, 2, k]
        size = self.MAP_DOWNSCALE
        pixel_masks = ops.repeat(ops.repeat(cells, size, axis=2), size, axis=3)  # [B, 2, H, W]
        whole = ops.ones_like(pixel_masks[:, :1])
        # Region 0 is the whole image: the terms call() returns, from the same features.
        all_terms = self.loss_terms.region_terms(inputs, outputs, ops.concatenate([whole, pixel_masks], axis=1))
        all_terms = ops.stack([all_terms[name] for name in self.loss_space.names], axis=-1)  # [B, 3, k]
        terms, region_terms = all_terms[:, 0], all_terms[:, 1:]
        means = ops.stop_gradient(self._update_term_means(terms, training))  # from the whole-image terms
        weights = self.loss_weights(ops.reshape(region_lam, (-1, self.loss_space.size)))
        weights = ops.reshape(weights, ops.shape(region_lam))
        per_region = ops.sum(weights * region_terms / means, axis=-1)  # [B, 2]
        return terms, ops.sum(area * per_region, axis=-1)

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
    lambda_map_fraction: float = 0.0,
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
      seed, diagonal_fraction, lambda_map_fraction: of the :class:`StyleTransferModel`.
    """
    network = build_network(loss_space, num_styles=losses.num_styles, width_multiplier=width_multiplier,
                            conditioning_units=conditioning_units)
    return StyleTransferModel(network, losses, seed=seed, diagonal_fraction=diagonal_fraction,
                              lambda_map_fraction=lambda_map_fraction)


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
      content: a ``yoto_tf.image_sources.parse_source`` spec (``builtin``, ``folder:GLOB``,
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
