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

    def call(self, inputs, outputs):
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
        style_index = ops.cast(style_index, "int32")

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

    def get_config(self):
        config = super().get_config()
        config.update(vgg=self.vgg_name, style_size=self.style_size, num_styles=self.num_styles)
        return config
