"""The mean-scale hyperprior and mixed quantization options, and files written before them."""

import os

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from yoto_tf.compression import (
    CompressionNetwork,
    compress_image,
    compression_loss_space,
    decompress_image,
    load_compression_model,
    reconstruct_image,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _model(**options):
    keras.utils.set_random_seed(0)
    model = CompressionNetwork(compression_loss_space((1e-4, 1e-2)), 16, 24, 16, seed=0, **options)
    model.build()
    return model


@pytest.fixture(scope="module")
def mean_scale_model(tmp_path_factory):
    model = _model(mean_scale=True, mixed_quantization=True)
    # An untrained model predicts means near 0; give them fractional offsets so that coding
    # around the means differs visibly from coding around 0.
    bias = model.hyper_synthesis.convs[-1].bias
    offsets = np.random.default_rng(0).uniform(-0.5, 0.5, 24)
    bias.assign(np.concatenate([offsets, np.asarray(bias)[24:]]).astype(np.float32))
    path = str(tmp_path_factory.mktemp("mean_scale") / "model.keras")
    model.save(path)
    return load_compression_model(path)


def test_mean_scale_round_trip_codes_latents_around_their_means(mean_scale_model):
    codec = mean_scale_model
    image = skimage.data.coffee()[:100, :140]
    lam_vec = codec.lambda_vector(1e-3)
    y, z = codec.analyze(image, lam_vec)
    y_symbols, z_symbols = codec.quantize_latents(y, z, lam_vec)
    means, _ = codec.entropy_parameters(z_symbols, lam_vec)
    assert np.abs(means).max() > 0.1  # the hyper-synthesis predicts the means
    np.testing.assert_array_equal(y_symbols, np.round(y - means.astype(np.float32)))
    assert np.any(y_symbols != np.round(y))

    data = compress_image(codec, image, 1e-3)
    np.testing.assert_array_equal(decompress_image(codec, data), reconstruct_image(codec, image, 1e-3))


def test_mean_scale_model_saves_and_loads_its_options(mean_scale_model, tmp_path):
    network = mean_scale_model.network
    assert network.mean_scale and network.mixed_quantization
    assert network.get_config()["mean_scale"] is True
    means, index = network.entropy_parameters(np.zeros((1, 1, 1, 16), np.float32), network.embed(
        mean_scale_model.lambda_vector(1e-3)[None]))
    assert means.shape == index.shape == (1, 4, 4, 24)


def test_mixed_quantization_feeds_rounded_latents_to_the_synthesis_with_gradients():
    model = _model(mean_scale=True, mixed_quantization=True)
    x = tf.constant(skimage.data.astronaut()[:64, :64][None] / 255.0, tf.float32)
    lam = tf.constant(model.loss_space.make(1, distortion=1e-3))
    with tf.GradientTape() as tape:
        out = model((x, lam), training=True)
        distortion = tf.reduce_mean(tf.square(out["x_hat"] - x))
    grads = tape.gradient(distortion, model.analysis.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)



def test_mixed_quantization_trains_the_synthesis_on_the_decoded_latents():
    # Scale hyperprior: y_hat does not depend on z, so with mixed quantization the
    # training-mode reconstruction is exactly the inference one (rounded y); without it,
    # it is not (noisy y).
    x = tf.constant(skimage.data.astronaut()[:64, :64][None] / 255.0, tf.float32)
    for mixed in (True, False):
        model = _model(mixed_quantization=mixed)
        lam = tf.constant(model.loss_space.make(1, distortion=1e-3))
        training = np.asarray(model((x, lam), training=True)["x_hat"])
        inference = np.asarray(model((x, lam), training=False)["x_hat"])
        if mixed:
            np.testing.assert_allclose(training, inference, atol=1e-6)
        else:
            assert np.abs(training - inference).max() > 1e-4


def test_files_written_before_the_options_still_decode():
    """tests/data holds a scale-hyperprior model and a file written by the codec as it was
    before mean_scale existed (commit 7f4c76a); both fingerprint and pixels must match."""
    codec = load_compression_model(os.path.join(DATA, "scale_hyperprior_v1.keras"))
    assert not codec.network.mean_scale
    with open(os.path.join(DATA, "scale_hyperprior_v1.yotc"), "rb") as f:
        decoded = decompress_image(codec, f.read())
    expected = np.asarray(Image.open(os.path.join(DATA, "scale_hyperprior_v1_decoded.png")))
    np.testing.assert_array_equal(decoded, expected)
