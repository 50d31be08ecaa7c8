"""Adjustable style transfer (Babaeizadeh & Ghiasi 2020) on the yoto_tf engine.

One transformer network is trained on a distribution of loss weightings (content, five
per-layer style weights, total variation); at inference every weight is a knob.

* :func:`build_network`: the lambda-conditioned Johnson/Magenta network (inputs
  ``image`` [B, H, W, 3], ``loss_weights`` [B, 7], ``style_index`` [B] when multi-style).
* :func:`style_transfer_loss_space` and the knob helpers (:func:`with_strength`,
  :func:`lambda_from_values`).
* :class:`StyleTransferLoss`: VGG perceptual loss terms (frozen VGG built inside).
* :func:`stylize` / :func:`sweep`: inference at any image size (tiles very large images).
* Training: ``yoto_tf.style_transfer.training`` (``StyleTransferModel``,
  ``training_dataset``); the CLI is ``python -m trainers.style_transfer``.
"""

from yoto_tf.style_transfer.loss_space import (
    STYLE_NAMES,
    lambda_from_values,
    strength_grid,
    strength_range,
    style_transfer_loss_space,
    with_strength,
)
from yoto_tf.style_transfer.losses import StyleTransferLoss, gram_matrix, total_variation
from yoto_tf.style_transfer.inference import stylize, sweep
from yoto_tf.style_transfer.transformer import (
    IMAGE_INPUT,
    LAMBDA_INPUT,
    STYLE_INPUT,
    build_network,
)
from yoto_tf.style_transfer.vgg import VGGWeightsUnavailableError, build_vgg_features

__all__ = [
    "IMAGE_INPUT",
    "LAMBDA_INPUT",
    "STYLE_INPUT",
    "STYLE_NAMES",
    "StyleTransferLoss",
    "VGGWeightsUnavailableError",
    "build_network",
    "build_vgg_features",
    "gram_matrix",
    "lambda_from_values",
    "strength_grid",
    "strength_range",
    "style_transfer_loss_space",
    "stylize",
    "sweep",
    "total_variation",
    "with_strength",
]
