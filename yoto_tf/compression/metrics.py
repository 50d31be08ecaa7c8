"""Image-quality and rate-distortion metrics for compression evaluation.

* :func:`psnr`: peak signal-to-noise ratio over all pixels and channels (NumPy).
* :func:`ms_ssim`: multi-scale SSIM (Wang, Simoncelli & Bovik 2003) by
  ``tf.image.ssim_multiscale``: 5 scales with the standard weights, an 11x11 Gaussian
  window (sigma 1.5), K1 = 0.01, K2 = 0.03, 2x2 average-pool downsampling; per colour
  channel, averaged over channels (also CompressAI's convention). TensorFlow is imported on
  the first call only. Images need at least 161x161 pixels (TensorFlow's limit too).
* :func:`bd_rate` / :func:`bd_psnr`: Bjontegaard deltas (VCEG-M33, 2001) between two
  rate-distortion curves, by the ``bjontegaard`` package with piecewise cubic (PCHIP)
  interpolation, as current codec practice (JVET's common test conditions) does, rather
  than VCEG-M33's least-squares cubic: PCHIP passes through every point and works from 2
  points per curve, where the cubic fit needs 4.

Images are ``[H, W, C]`` (or ``[H, W]``) arrays, ``uint8`` or float, with values in
``[0, data_range]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import bjontegaard
import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW_SIZE = 11
SSIM_WINDOW_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# The coarsest of the 5 scales must still hold one 11x11 window:
# ceil(size / 2**4) >= 11  <=>  size >= 161.
MS_SSIM_MIN_SIZE = (SSIM_WINDOW_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def _as_image_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Checks two images have the same [H, W(, C)] shape; returns them as float64 [H, W, C]."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected a non-empty [H, W] or [H, W, C] image, got shape {a.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(reference, distorted, data_range: float = 255.0) -> float:
    """PSNR in dB, ``10 log10(data_range^2 / MSE)`` with the MSE over all pixels and channels.

    Returns ``inf`` for identical images.
    """
    a, b = _as_image_pair(reference, distorted)
    mse = float(np.mean(np.square(a - b)))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ms_ssim(reference, distorted, data_range: float = 255.0) -> float:
    """Multi-scale SSIM in [0, 1] (1 for identical images).

    ``prod_j relu(cs_j)^w_j`` over the first 4 scales times ``relu(ssim_5)^w_5``, per
    channel, then averaged over channels: ``tf.image.ssim_multiscale`` (float32), with the
    size checked first (TensorFlow's own check fails with an opaque InvalidArgumentError).

    Args:
      reference, distorted: ``[H, W, C]`` or ``[H, W]`` images of equal shape with
        ``H, W >= 161`` (the 5th scale needs one 11x11 window).
      data_range: the value range of the images (255 for uint8).

    Raises:
      ValueError: shapes differ, or the image is smaller than 161 x 161.
    """
    a, b = _as_image_pair(reference, distorted)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIZE:
        raise ValueError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} pixels "
            f"(5 scales of an 11x11 window), got {a.shape[0]}x{a.shape[1]}"
        )
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (heavy; only MS-SSIM needs it)

    value = tf.image.ssim_multiscale(
        tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=data_range,
        power_factors=MS_SSIM_WEIGHTS, filter_size=SSIM_WINDOW_SIZE, filter_sigma=SSIM_WINDOW_SIGMA,
        k1=SSIM_K1, k2=SSIM_K2,
    )
    return float(value)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - ms_ssim)`` (``inf`` at 1); the usual plot axis."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


# --------------------------------------------------------------------------------------------
# Bjontegaard deltas
# --------------------------------------------------------------------------------------------


BD_METHOD = "pchip"


def _rd_curve(rates, qualities, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validates one RD curve; returns (rates, qualities) as float64."""
    rates = np.asarray(rates, dtype=np.float64).reshape(-1)
    qualities = np.asarray(qualities, dtype=np.float64).reshape(-1)
    if rates.shape != qualities.shape:
        raise ValueError(f"{name} curve: {rates.size} rates but {qualities.size} quality values")
    if rates.size < 2:
        raise ValueError(f"{name} curve: a Bjontegaard delta needs at least 2 points, got {rates.size}")
    if not (np.all(np.isfinite(rates)) and np.all(rates > 0)):
        raise ValueError(f"{name} curve: rates must be finite and positive, got {rates.tolist()}")
    if not np.all(np.isfinite(qualities)):
        raise ValueError(f"{name} curve: quality values must be finite, got {qualities.tolist()}")
    if np.unique(qualities).size != qualities.size or np.unique(rates).size != rates.size:
        raise ValueError(f"{name} curve: repeated rate or quality values make the interpolation singular")
    return rates, qualities


def _sorted_by(key: np.ndarray, rates: np.ndarray, qualities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve's points in increasing ``key`` (the interpolators need increasing x)."""
    order = np.argsort(key)
    return rates[order], qualities[order]


def _overlap(x_anchor: np.ndarray, x_test: np.ndarray, axis: str) -> tuple[float, float]:
    low = max(x_anchor.min(), x_test.min())
    high = min(x_anchor.max(), x_test.max())
    if not high > low:
        raise ValueError(
            f"the two RD curves do not overlap in {axis}: anchor spans "
            f"[{x_anchor.min():.4g}, {x_anchor.max():.4g}], test spans "
            f"[{x_test.min():.4g}, {x_test.max():.4g}]"
        )
    return float(low), float(high)


def overlap_range(anchor_quality: Sequence[float], test_quality: Sequence[float]) -> tuple[float, float]:
    """The quality interval (e.g. PSNR dB) shared by two curves; ValueError when empty."""
    return _overlap(np.asarray(anchor_quality, float), np.asarray(test_quality, float), "quality")


def bd_rate(anchor_rates, anchor_quality, test_rates, test_quality, method: str = BD_METHOD) -> float:
    """Bjontegaard delta rate of ``test`` against ``anchor``, in percent.

    ``bjontegaard.bd_rate``: interpolates ``log(rate)`` as a function of quality (PSNR, or
    MS-SSIM dB) for each curve, integrates both over the quality range the curves share,
    and returns ``100 * (exp(mean log-rate difference) - 1)``: the average rate change at
    equal quality. Negative means ``test`` needs fewer bits than ``anchor``.

    Args:
      method: the ``bjontegaard`` interpolation: ``"pchip"`` (default; piecewise cubic
        Hermite, exact through every point, current codec practice), ``"akima"``, or
        ``"cubic"`` (VCEG-M33's least-squares cubic, which needs 4 points per curve).

    Raises:
      ValueError: a curve has fewer than 2 points, non-positive rates, repeated values,
        or the curves share no quality range.
    """
    rates_a, quality_a = _rd_curve(anchor_rates, anchor_quality, "anchor")
    rates_t, quality_t = _rd_curve(test_rates, test_quality, "test")
    _overlap(quality_a, quality_t, "quality")
    rates_a, quality_a = _sorted_by(quality_a, rates_a, quality_a)
    rates_t, quality_t = _sorted_by(quality_t, rates_t, quality_t)
    return float(bjontegaard.bd_rate(rates_a, quality_a, rates_t, quality_t, method=method,
                                     require_matching_points=False, min_overlap=0.0))


def bd_psnr(anchor_rates, anchor_quality, test_rates, test_quality, method: str = BD_METHOD) -> float:
    """Bjontegaard delta quality of ``test`` against ``anchor`` (dB for PSNR).

    ``bjontegaard.bd_psnr``: interpolates quality as a function of ``log(rate)`` per curve,
    integrates over the shared log-rate range and returns the mean difference; positive
    means ``test`` is better at equal rate. ``method`` as in :func:`bd_rate`.

    Raises:
      ValueError: as :func:`bd_rate`, with the overlap taken over log-rate.
    """
    rates_a, quality_a = _rd_curve(anchor_rates, anchor_quality, "anchor")
    rates_t, quality_t = _rd_curve(test_rates, test_quality, "test")
    _overlap(np.log(rates_a), np.log(rates_t), "log-rate")
    rates_a, quality_a = _sorted_by(rates_a, rates_a, quality_a)
    rates_t, quality_t = _sorted_by(rates_t, rates_t, quality_t)
    return float(bjontegaard.bd_psnr(rates_a, quality_a, rates_t, quality_t, method=method,
                                     require_matching_points=False, min_overlap=0.0))
