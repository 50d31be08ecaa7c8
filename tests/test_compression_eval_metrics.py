"""Tests of the compression-evaluation metrics (PSNR, MS-SSIM, Bjontegaard) and baselines."""

import math

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from yoto_tf.compression.baselines import encode_decode
from yoto_tf.compression.metrics import (
    MS_SSIM_MIN_SIZE,
    bd_psnr,
    bd_rate,
    ms_ssim,
    ms_ssim_db,
    psnr,
)


def _noisy(image, sigma, seed=0):
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------- PSNR


def test_psnr_of_known_error():
    reference = np.full((16, 20, 3), 100, np.uint8)
    distorted = reference.copy()
    distorted[::2] += 10  # half the values off by 10 -> MSE 50
    assert psnr(reference, distorted) == pytest.approx(10 * math.log10(255**2 / 50.0), abs=1e-12)


def test_psnr_of_gaussian_noise_matches_its_variance():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.0, 1.0, (200, 300, 3))
    noise_sigma = 0.05
    distorted = reference + rng.normal(0.0, noise_sigma, reference.shape)
    expected = 10 * math.log10(1.0 / noise_sigma**2)  # about 26.02 dB
    assert psnr(reference, distorted, data_range=1.0) == pytest.approx(expected, abs=0.05)


def test_psnr_identical_is_infinite_and_shape_mismatch_is_an_error():
    image = skimage.data.chelsea()
    assert psnr(image, image) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(image, image[:-1])


# --------------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_of_identical_images_is_one():
    image = skimage.data.astronaut()
    assert ms_ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_db(1.0) == math.inf


@pytest.mark.parametrize(
    "name, crop, sigma",
    [
        ("astronaut", None, 12.0),
        ("coffee", None, 25.0),
        ("chelsea", (173, 201), 40.0),  # odd sizes exercise the padded downsampling
        ("rocket", (MS_SSIM_MIN_SIZE, MS_SSIM_MIN_SIZE + 6), 8.0),  # smallest valid size
    ],
)
def test_ms_ssim_matches_tensorflow(name, crop, sigma):
    image = getattr(skimage.data, name)()
    if crop:
        image = image[: crop[0], : crop[1]]
    distorted = _noisy(image, sigma)
    expected = float(
        tf.image.ssim_multiscale(
            tf.constant(image, tf.float64), tf.constant(distorted, tf.float64), max_val=255.0
        )
    )
    value = ms_ssim(image, distorted)
    assert 0.3 < value < 0.999
    assert value == pytest.approx(expected, abs=1e-5)


def test_ms_ssim_falls_with_more_noise():
    image = skimage.data.coffee()
    values = [ms_ssim(image, _noisy(image, sigma)) for sigma in (2, 10, 30)]
    assert values[0] > values[1] > values[2]


def test_ms_ssim_rejects_images_too_small_for_five_scales():
    image = skimage.data.chelsea()[: MS_SSIM_MIN_SIZE - 1]
    with pytest.raises(ValueError, match="at least 161x161"):
        ms_ssim(image, image)


# --------------------------------------------------------------------------------- BD-rate

RATES = np.array([0.13, 0.32, 0.67, 1.10, 1.66])
PSNRS = np.array([27.6, 31.0, 34.5, 37.2, 40.6])


def test_bd_rate_of_a_curve_against_itself_is_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_of_ten_percent_fewer_bits_is_minus_ten_percent():
    assert bd_rate(RATES, PSNRS, 0.9 * RATES, PSNRS) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(0.9 * RATES, PSNRS, RATES, PSNRS) == pytest.approx(100 / 9, abs=1e-6)


def test_bd_rate_with_shifted_sample_points_on_the_same_curve():
    # Test points sampled elsewhere on the same smooth curve (log-rate linear in PSNR
    # over the overlap) still give ~0, and a 0.5 dB better curve gives a negative BD-rate.
    slope, intercept = 0.17, -6.6
    anchor_psnr = np.array([28.0, 30.0, 32.0, 34.0, 36.0])
    test_psnr = np.array([29.0, 31.5, 33.0, 35.5, 38.0])
    anchor_rate = np.exp(slope * anchor_psnr + intercept)
    same_curve = np.exp(slope * test_psnr + intercept)
    assert bd_rate(anchor_rate, anchor_psnr, same_curve, test_psnr) == pytest.approx(0.0, abs=1e-6)
    better = np.exp(slope * (test_psnr - 0.5) + intercept)
    assert bd_rate(anchor_rate, anchor_psnr, better, test_psnr) == pytest.approx(
        100 * math.expm1(-0.5 * slope), abs=1e-6
    )
    assert bd_psnr(anchor_rate, anchor_psnr, better, test_psnr) == pytest.approx(0.5, abs=1e-6)


def test_bd_rate_with_few_points_uses_a_lower_degree_fit():
    # Three fixed-lambda models: the interpolation still gives exact answers for a rescale.
    assert bd_rate(RATES[:3], PSNRS[:3], 0.8 * RATES[:3], PSNRS[:3]) == pytest.approx(-20.0, abs=1e-6)


def test_bd_rate_of_non_overlapping_curves_is_an_error():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATES, PSNRS, RATES, PSNRS + 20.0)
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(RATES, PSNRS, RATES * 100.0, PSNRS)


@pytest.mark.parametrize(
    "rates, psnrs, match",
    [
        ([0.5], [30.0], "at least 2 points"),
        ([0.5, -1.0], [30.0, 31.0], "positive"),
        ([0.5, 0.7], [30.0, 30.0], "repeated"),
        ([0.5, 0.7], [30.0, float("nan")], "finite"),
        ([0.5, 0.7, 0.9], [30.0, 31.0], "3 rates but 2"),
    ],
)
def test_bd_rate_rejects_bad_curves(rates, psnrs, match):
    with pytest.raises(ValueError, match=match):
        bd_rate(RATES, PSNRS, rates, psnrs)


# --------------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_baseline_rate_and_quality_increase_with_quality(codec):
    image = skimage.data.astronaut()
    results = [encode_decode(image, codec, quality) for quality in (10, 40, 70, 95)]
    bpps = [result.bpp for result in results]
    psnrs = [psnr(image, result.reconstruction) for result in results]
    assert all(a < b for a, b in zip(bpps, bpps[1:])), bpps
    assert all(a < b for a, b in zip(psnrs, psnrs[1:])), psnrs
    first = results[0]
    assert first.bpp == len(first.data) * 8 / (512 * 512)
    assert first.reconstruction.shape == image.shape and first.reconstruction.dtype == np.uint8
    magic = b"\xff\xd8" if codec == "jpeg" else b"RIFF"
    assert first.data.startswith(magic)
    assert first.encode_seconds > 0 and first.decode_seconds > 0


def test_baseline_rejects_bad_quality_codec_and_image():
    image = skimage.data.chelsea()
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        encode_decode(image, "jpeg", 101)
    with pytest.raises(ValueError, match="unknown baseline codec"):
        encode_decode(image, "png", 50)
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        encode_decode(image.astype(np.float32), "jpeg", 50)


def test_tensorflow_ms_ssim_also_needs_161_pixels():
    # Why ms_ssim checks the size itself: below 161x161 TensorFlow fails too, opaquely.
    image = tf.constant(skimage.data.chelsea()[: MS_SSIM_MIN_SIZE - 1, : MS_SSIM_MIN_SIZE - 1], tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.image.ssim_multiscale(image, image, max_val=255.0)
