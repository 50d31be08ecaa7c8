"""Where a compression model loses quality: quantization, or the transforms themselves.

:func:`transform_probe` runs a model on images at several lambdas and reports, per lambda:

* ``psnr_rounded``: the decoded image's PSNR (the codec's rounding, what a file gives);
* ``psnr_unquantized``: the synthesis applied to the UNquantized latents y. If this also
  stops rising with lambda, the transforms cannot use more bits (too few steps, too small,
  conditioning that saturates), and no entropy model or quantization trick will help;
* ``mean_abs_y``: the latents' mean magnitude (the scale of y relative to the unit
  quantization step; it grows with lambda as the model spends more bits);
* ``estimated_bpp``: the model's own rate estimate;
* ``latent_channels_used``: how many of the M latent channels carry information, i.e. have
  a non-zero symbol at more than ``USED_CHANNEL_SHARE`` of the positions (pooled over the
  images). Training often leaves channels whose symbols are all 0 at every lambda (their y
  stays near the predicted mean); if the count does not grow with lambda, the model does
  not spend its extra bits on more channels (unused channels suggest, without proving,
  that a wider latent would not help either);
* ``psnr_optimized_latents`` (with ``latent_steps`` > 0): the synthesis applied to latents
  optimized for that image's MSE alone (Adam from the encoder's y, no rate, no
  quantization): the decoder's ceiling. If it is barely above ``psnr_unquantized``, neither
  the encoder (the amortization gap), nor the rate, nor quantization is the limit: the
  synthesis transform cannot draw the image better from ANY latents of this shape.

:func:`film_spread` measures how much the lambda conditioning changes the transforms: the
mean absolute FiLM scale and shift at each lambda, and their change between the ends of
the range (if it is near 0, the transforms barely depend on lambda).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from yoto_tf.compression import codec as codec_lib
from yoto_tf.compression.metrics import psnr

PROBE_FIELDS = ("lambda", "psnr_rounded", "psnr_unquantized", "mean_abs_y", "estimated_bpp",
                "latent_channels_used")
"""Fields of every :func:`transform_probe` row; ``psnr_optimized_latents`` is added when
``latent_steps`` > 0."""

USED_CHANNEL_SHARE = 0.01
"""A latent channel counts as used when more than this share of its symbols is non-zero."""


def center_crops(images, size: int) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 [H, W, 3])`` pairs -> their central ``size`` x ``size`` crops (images
    smaller than ``size`` on a side are kept whole on that side)."""
    crops = []
    for name, image in images:
        height, width = image.shape[:2]
        top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
        crops.append((name, image[top : top + size, left : left + size]))
    return crops


def transform_probe(model, images, lambdas: Sequence[float], latent_steps: int = 0,
                    latent_learning_rate: float = 0.01) -> list[dict]:
    """One row per lambda (fields ``PROBE_FIELDS``, and ``psnr_optimized_latents`` when
    ``latent_steps`` > 0: see the module docstring), averaged over ``images`` (pairs of name
    and uint8 [H, W, 3]). ``model``: a CompressionCodec or CompressionNetwork."""
    if latent_steps < 0:
        raise ValueError(f"latent_steps must be >= 0, got {latent_steps}")
    codec = codec_lib.as_codec(model)
    rows = []
    for lam in lambdas:
        lam_vec = codec.lambda_vector(lam)
        emb = codec.network.embed(lam_vec[None])
        rounded, unquantized, magnitude, bpp, optimized = [], [], [], [], []
        nonzero_symbols, positions = 0, 0
        for _, image in images:
            height, width = image.shape[:2]
            y, z = codec.analyze(image, lam_vec)
            y_symbols, z_symbols = codec.quantize_latents(y, z, lam_vec)
            rounded.append(psnr(image, codec.synthesize(y_symbols, z_symbols, lam_vec, height, width)))
            x_hat = np.asarray(codec.network.synthesis((y, emb)))[0, :height, :width]
            unquantized.append(psnr(image, np.round(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.uint8)))
            magnitude.append(float(np.mean(np.abs(y))))
            bpp.append(codec.estimated_bits(y_symbols, z_symbols, lam_vec) / (height * width))
            nonzero_symbols = nonzero_symbols + np.count_nonzero(y_symbols, axis=(0, 1, 2))
            positions += y_symbols.shape[1] * y_symbols.shape[2]
            if latent_steps:
                best = optimized_latents(codec.network, image, y, emb, latent_steps, latent_learning_rate)
                x_hat = np.asarray(codec.network.synthesis((best, emb)))[0, :height, :width]
                optimized.append(psnr(image, np.round(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.uint8)))
        row = {
            "lambda": float(lam), "psnr_rounded": float(np.mean(rounded)),
            "psnr_unquantized": float(np.mean(unquantized)), "mean_abs_y": float(np.mean(magnitude)),
            "estimated_bpp": float(np.mean(bpp)),
            "latent_channels_used": int(np.sum(nonzero_symbols > USED_CHANNEL_SHARE * positions)),
        }
        if latent_steps:
            row["psnr_optimized_latents"] = float(np.mean(optimized))
        rows.append(row)
    return rows


def optimized_latents(network, image, y, emb, steps: int, learning_rate: float) -> np.ndarray:
    """Latents [1, h, w, M] that minimize the MSE between ``network.synthesis((latents,
    emb))`` and ``image`` (uint8 [H, W, 3]; compared on its H x W pixels, the padding
    ignored), found by ``steps`` Adam steps from the encoder's ``y`` [1, h, w, M]."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  # gradients: TF backend only

    target = tf.constant(np.asarray(image, np.float32)[None] / 255.0)
    height, width = image.shape[:2]
    latents = tf.Variable(np.asarray(y, np.float32))
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            x_hat = network.synthesis((latents, emb))[:, :height, :width]
            loss = tf.reduce_mean(tf.square(x_hat - target))
        optimizer.apply_gradients([(tape.gradient(loss, latents), latents)])

    for _ in range(steps):
        step()
    return latents.numpy()


def film_spread(model, lambdas: Sequence[float]) -> dict:
    """Mean |s| and |t| of every FiLM layer (``x * (1 + s) + t``) of the four transforms at
    each lambda.

    Returns:
      ``{"lambdas": [...], "mean_abs_scale": [...], "mean_abs_shift": [...],
      "scale_change": float, "shift_change": float}``: the means over all FiLM layers and
      channels at each lambda, and the mean absolute change of the per-channel values
      between the first and the last lambda.
    """
    codec = codec_lib.as_codec(model)
    network = codec.network
    transforms = (network.analysis, network.synthesis, network.hyper_analysis, network.hyper_synthesis)
    per_lambda = []
    for lam in lambdas:
        c = np.asarray(network.embed(codec.lambda_vector(lam)[None]))
        scales, shifts = [], []
        for transform in transforms:
            for film in transform.films:
                scales.append((c @ np.asarray(film.scale_kernel) + np.asarray(film.scale_bias)).ravel())
                shifts.append((c @ np.asarray(film.shift_kernel) + np.asarray(film.shift_bias)).ravel())
        per_lambda.append((np.concatenate(scales), np.concatenate(shifts)))
    first, last = per_lambda[0], per_lambda[-1]
    return {
        "lambdas": [float(v) for v in lambdas],
        "mean_abs_scale": [float(np.mean(np.abs(s))) for s, _ in per_lambda],
        "mean_abs_shift": [float(np.mean(np.abs(b))) for _, b in per_lambda],
        "scale_change": float(np.mean(np.abs(last[0] - first[0]))),
        "shift_change": float(np.mean(np.abs(last[1] - first[1]))),
    }
