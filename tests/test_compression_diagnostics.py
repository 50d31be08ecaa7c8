"""The compression probe: decoded vs unquantized PSNR, latent magnitude, FiLM spread."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image

from yoto_tf.compression import (
    CompressionNetwork,
    compression_loss_space,
    diagnostics,
    estimate_bpp,
    reconstruct_image,
)
from yoto_tf.compression.codec import as_codec
from yoto_tf.compression.metrics import psnr

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    network = CompressionNetwork(compression_loss_space((1e-3, 1e-1)), 16, 24, 16, seed=0, mean_scale=True)
    network.build()
    # Give the FiLM layers a lambda dependence, as training would.
    for film in network.synthesis.films:
        film.scale_kernel.assign(np.full(film.scale_kernel.shape, 0.01, np.float32))
    return network


def test_probe_rows_agree_with_the_codec(model):
    images = diagnostics.center_crops([("coffee", skimage.data.coffee())], 128)
    assert images[0][1].shape == (128, 128, 3)
    rows = diagnostics.transform_probe(model, images, [1e-3, 1e-1])
    assert [r["lambda"] for r in rows] == [1e-3, 1e-1]
    image = images[0][1]
    for row in rows:
        assert set(row) == set(diagnostics.PROBE_FIELDS)
        assert row["psnr_rounded"] == pytest.approx(psnr(image, reconstruct_image(model, image, row["lambda"])))
        assert row["estimated_bpp"] == pytest.approx(estimate_bpp(model, image, row["lambda"]), rel=1e-5)
        assert row["mean_abs_y"] > 0 and np.isfinite(row["psnr_unquantized"])


def test_probe_counts_the_latent_channels_that_carry_bits():
    """The count is the number of channels with non-zero symbols at more than
    USED_CHANNEL_SHARE of the positions, and silencing used channels of the analysis (zero
    kernel and bias) removes them from it."""
    keras.utils.set_random_seed(1)
    network = CompressionNetwork(compression_loss_space((1e-3, 1e-1)), 16, 24, 16, seed=0, mean_scale=True)
    network.build()
    image = diagnostics.center_crops([("coffee", skimage.data.coffee())], 128)
    codec = as_codec(network)
    lam_vec = codec.lambda_vector(1e-2)

    def used_by_probe():
        return diagnostics.transform_probe(network, image, [1e-2])[0]["latent_channels_used"]

    def used_channels():
        y_symbols, _ = codec.quantize_latents(*codec.analyze(image[0][1], lam_vec), lam_vec)
        share = np.count_nonzero(y_symbols, axis=(0, 1, 2)) / (y_symbols.shape[1] * y_symbols.shape[2])
        return set(np.flatnonzero(share > diagnostics.USED_CHANNEL_SHARE).tolist())

    before = used_channels()
    assert 2 <= len(before) < 24 and used_by_probe() == len(before)
    silenced = sorted(before)[:2]
    last = network.analysis.convs[-1]
    kernel, bias = np.asarray(last.kernel), np.asarray(last.bias)
    kernel[..., silenced], bias[silenced] = 0.0, 0.0
    last.kernel.assign(kernel)
    last.bias.assign(bias)
    after = used_channels()
    assert not after & set(silenced)
    assert used_by_probe() == len(after) < len(before)


def test_optimized_latents_raise_the_synthesis_psnr(model):
    """The decoder's ceiling: latents fitted to the crop beat the encoder's (an untrained
    encoder and decoder here: +0.8 dB measured), and the other fields stay those of the
    plain probe."""
    image = diagnostics.center_crops([("coffee", skimage.data.coffee())], 64)
    plain = diagnostics.transform_probe(model, image, [1e-2])[0]
    row = diagnostics.transform_probe(model, image, [1e-2], latent_steps=40, latent_learning_rate=0.5)[0]
    assert set(row) == set(diagnostics.PROBE_FIELDS) | {"psnr_optimized_latents"}
    assert row["psnr_optimized_latents"] > row["psnr_unquantized"] + 0.5, row
    assert row["psnr_unquantized"] == pytest.approx(plain["psnr_unquantized"])
    with pytest.raises(ValueError, match="latent_steps must be >= 0"):
        diagnostics.transform_probe(model, image, [1e-2], latent_steps=-1)


def test_film_spread_sees_the_lambda_dependence(model):
    spread = diagnostics.film_spread(model, [1e-3, 1e-1])
    assert spread["scale_change"] > 0 and spread["shift_change"] == 0
    assert spread["mean_abs_scale"][0] != spread["mean_abs_scale"][1]


def test_cli_names_an_unknown_model(tmp_path):
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.png")
    result = subprocess.run(
        [sys.executable, "-m", "trainers.probe_compression", "--models", "no_such_model",
         "--images", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 1
    assert "probe_compression: error: Unknown model 'no_such_model'" in result.stderr
    assert "Traceback" not in result.stderr
