"""Perceptual loss terms of style transfer: content, per-layer style (Gram) and TV.

:class:`StyleTransferLoss` is a Keras layer holding the frozen VGG and the style targets,
so a :class:`~yoto_tf.LossConditionalModel` tracks, checkpoints and distributes it like any
other sub-layer. It returns the UNWEIGHTED per-example terms; the weighting by lambda (and
the running-mean normalization) happens in the LossConditionalModel.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np
from keras import ops

from yoto_tf.style_transfer.loss_space import CONTENT, STYLE_NAMES, TOTAL_VARIATION
from yoto_tf.style_transfer.transformer import IMAGE_INPUT, STYLE_INPUT
from yoto_tf.style_transfer.vgg import STYLE_LAYERS, VGG_SPECS, build_vgg_features

TERM_NAMES = (CONTENT, *STYLE_NAMES, TOTAL_VARIATION)
"""The names of the terms :class:`StyleTransferLoss` returns (the LossSpace's names)."""


def gram_matrix(features):
    """Gram matrices normalized by H * W * C.

    Args:
      features: [B, H, W, C].

    Returns:
      [B, C, C]: ``sum_hw f[h, w, c] * f[h, w, d] / (H * W * C)``.
    """
    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], -1, shape[3]))
    gram = ops.matmul(ops.transpose(flat, (0, 2, 1)), flat)
    return gram / ops.cast(shape[1] * shape[2] * shape[3], gram.dtype)


def masked_gram_matrix(features, weights):
    """Gram matrices of the pixels a soft mask selects, normalized like :func:`gram_matrix`.

    Args:
      features: [B, H, W, C].
      weights: [B, H, W] in [0, 1], each pixel's share in the region.

    Returns:
      [B, C, C]: ``sum_hw w f f^T / (sum_hw w * C)`` (the Gram matrix of the whole image when
      ``weights`` is all ones; zero for an empty region).
    """
    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], -1, shape[3]))
    flat_weights = ops.reshape(weights, (shape[0], -1, 1))
    gram = ops.matmul(ops.transpose(flat * flat_weights, (0, 2, 1)), flat)
    area = ops.maximum(ops.sum(flat_weights, axis=(1, 2)), 1e-6)
    return gram / (area * ops.cast(shape[3], gram.dtype))[:, None, None]


def masked_mean(values, weights):
    """Per-example mean of ``values`` [B, H, W] over the pixels ``weights`` [B, H, W] select
    (0 for an empty region) -> [B]."""
    return ops.sum(values * weights, axis=(1, 2)) / ops.maximum(ops.sum(weights, axis=(1, 2)), 1e-6)


def resize_mask(mask, height, width):
    """Region mask [B, H, W] -> [B, height, width] by area averaging (a soft edge where a
    lower-resolution pixel straddles the region's boundary); H, W are multiples of height, width."""
    factor = mask.shape[1] // height
    if factor == 1:
        return mask
    return ops.average_pool(mask[..., None], factor, factor)[..., 0]


def total_variation(images):
    """Per-example total variation: mean squared vertical + horizontal neighbour differences.

    Args:
      images: [B, H, W, C].

    Returns:
      [B].
    """
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return ops.mean(ops.square(dy), axis=(1, 2, 3)) + ops.mean(ops.square(dx), axis=(1, 2, 3))


def resize_longer_side(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 or float [H, W, 3] -> float32 [H', W', 3] in [0, 1] with max(H', W') = size."""
    import tensorflow as tf  # host-side preprocessing only

    image = np.asarray(image)
    pixels = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    height, width = pixels.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = tf.image.resize(pixels, target, method="area" if scale < 1 else "bilinear",
                              antialias=True)
    return np.clip(resized.numpy(), 0.0, 1.0)


class StyleTransferLoss(keras.layers.Layer):
    """Content, per-layer style and total-variation terms for each example.

    * ``content``: mean squared difference of VGG features at the content layer (block3's
      last conv) between the stylized output and the content input.
    * ``style_block1`` .. ``style_block5``: mean squared difference between the Gram matrix
      (normalized by H*W*C) of the output's ``blockN_conv1`` features and that of the
      example's style image.
    * ``tv``: :func:`total_variation` of the output.

    Not serializable to ``.keras`` (it holds the style targets and the VGG); the trainer
    rebuilds it from its flags, and checkpoints restore its variables.

    Args:
      style_images: one or more style images, uint8 or float [0, 1] [H, W, 3] (sizes may
        differ); index i is style i of a multi-style model.
      vgg: ``"vgg19"`` (default: ImageNet weights exist offline for it) or ``"vgg16"``
        (Magenta's loss network).
      vgg_weights: ``"imagenet"``, ``"imagenet8bit"``, ``"auto"``, ``"none"`` (seeded random
        weights) or a ``.h5`` path; see :mod:`yoto_tf.style_transfer.vgg`.
      style_size: every style image is resized so its longer side has this many pixels
        before its Gram matrices are computed.

    Call arguments:
      inputs: the content images float32 [B, H, W, 3] in [0, 1], or a dict with ``image``
        and (multi-style) ``style_index`` int [B].
      outputs: the stylized images float32 [B, H, W, 3].

    Returns:
      ``{name: float32 [B]}`` for every name in :data:`TERM_NAMES`.
    """

    def __init__(
        self,
        style_images: Sequence[np.ndarray],
        vgg: str = "vgg19",
        vgg_weights: str = "imagenet",
        style_size: int = 256,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(style_images, np.ndarray) and style_images.ndim == 3:
            style_images = [style_images]
        if len(style_images) < 1:
            raise ValueError("StyleTransferLoss needs at least one style image.")
        for i, image in enumerate(style_images):
            if np.ndim(image) != 3 or np.shape(image)[-1] != 3:
                raise ValueError(
                    f"Style image {i} must be [H, W, 3], got shape {np.shape(image)}."
                )
        if vgg not in VGG_SPECS:
            raise ValueError(f"Unknown VGG {vgg!r}; expected one of {sorted(VGG_SPECS)}.")
        self.vgg_name = vgg
        self.style_size = int(style_size)
        self.num_styles = len(style_images)
        self.content_layer = VGG_SPECS[vgg].content_layer
        self.features = build_vgg_features(
            vgg, vgg_weights, layers=STYLE_LAYERS + (self.content_layer,)
        )
        self.content_features = keras.Model(
            self.features.inputs, self.features.outputs[-1], name=f"{vgg}_content"
        )
        self.content_features.trainable = False
        targets = self._style_grams([resize_longer_side(s, self.style_size) for s in style_images])
        self.gram_targets = [
            self.add_weight(
                name=f"gram_target_{name}", shape=target.shape,
                initializer=keras.initializers.Constant(target), trainable=False,
            )
            for name, target in zip(STYLE_NAMES, targets)
        ]

    def _style_grams(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Per style layer: float32 [num_styles, C, C] target Gram matrices."""
        per_image = []
        for image in images:
            feats = self.features(image[None])[: len(STYLE_LAYERS)]
            per_image.append([ops.convert_to_numpy(gram_matrix(f))[0] for f in feats])
        return [np.stack(layer).astype(np.float32) for layer in zip(*per_image)]

    def _content_and_style(self, inputs):
        """(content images [B, H, W, 3], style indices int32 [B]) of a call's inputs."""
        if isinstance(inputs, Mapping):
            content = inputs[IMAGE_INPUT]
            style_index = inputs.get(STYLE_INPUT)
        else:
            content, style_index = inputs, None
        if style_index is None:
            if self.num_styles > 1:
                raise ValueError(
                    f"This loss holds {self.num_styles} styles: pass inputs as a dict with "
                    f"'{IMAGE_INPUT}' and '{STYLE_INPUT}'."
                )
            style_index = ops.zeros((ops.shape(content)[0],), "int32")
        return content, ops.cast(style_index, "int32")

    def call(self, inputs, outputs):
        content, style_index = self._content_and_style(inputs)
        *style_feats, out_content = self.features(outputs)
        target_content = ops.stop_gradient(self.content_features(content))
        terms = {
            CONTENT: ops.mean(ops.square(out_content - target_content), axis=(1, 2, 3)),
            TOTAL_VARIATION: total_variation(outputs),
        }
        for name, feats, targets in zip(STYLE_NAMES, style_feats, self.gram_targets):
            target = ops.take(targets, style_index, axis=0)  # [B, C, C]
            terms[name] = ops.mean(ops.square(gram_matrix(feats) - target), axis=(1, 2))
        return terms

    def region_terms(self, inputs, outputs, masks):
        """The terms of each region of each example: the content and TV terms averaged over
        the region's pixels, the style terms from the Gram matrices of the region's
        features only (:func:`masked_gram_matrix`). With one all-ones mask these are the
        terms :meth:`call` returns.

        Args:
          inputs, outputs: as in :meth:`call`; H and W multiples of 16 (the VGG's pooling).
          masks: float32 [B, R, H, W], each pixel's share in each of R regions.

        Returns:
          ``{name: float32 [B, R]}`` for every name in :data:`TERM_NAMES`.
        """
        content, style_index = self._content_and_style(inputs)
        *style_feats, out_content = self.features(outputs)
        target_content = ops.stop_gradient(self.content_features(content))
        num_regions = masks.shape[1]

        def per_region(fn):
            return ops.stack([fn(masks[:, r]) for r in range(num_regions)], axis=1)

        squared = ops.mean(ops.square(out_content - target_content), axis=-1)
        dy = ops.mean(ops.square(outputs[:, 1:] - outputs[:, :-1]), axis=-1)
        dx = ops.mean(ops.square(outputs[:, :, 1:] - outputs[:, :, :-1]), axis=-1)
        terms = {
            CONTENT: per_region(lambda m: masked_mean(
                squared, resize_mask(m, squared.shape[1], squared.shape[2]))),
            TOTAL_VARIATION: per_region(lambda m: masked_mean(dy, m[:, 1:]) + masked_mean(dx, m[:, :, 1:])),
        }
        for name, feats, targets in zip(STYLE_NAMES, style_feats, self.gram_targets):
            target = ops.take(targets, style_index, axis=0)  # [B, C, C]
            terms[name] = per_region(lambda m, feats=feats, target=target: ops.mean(ops.square(
                masked_gram_matrix(feats, resize_mask(m, feats.shape[1], feats.shape[2])) - target),
                axis=(1, 2)))
        return terms

    def get_config(self):
        config = super().get_config()
        config.update(vgg=self.vgg_name, style_size=self.style_size, num_styles=self.num_styles)
        return config
