"""Latent residual prediction (``residual_prediction``): added to a trained network it changes
nothing, trained it changes the decoded latents (never the bits of the slice it corrects) and
still codes losslessly, training reaches it, and `train --residual_prediction`."""

import json

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from tests.compression_cli_helpers import train, write_image_folder
from tests.compression_network_helpers import randomize_slice_outputs, small_mean_scale_network
from yoto_tf import pretrained
from yoto_tf.compression import (
    CompressionNetwork,
    compress_image,
    compression_loss_space,
    decompress_image,
    estimate_bpp,
    load_compression_model,
    reconstruct_image,
)
from yoto_tf.compression import container
from yoto_tf.compression.codec import CompressionCodec, model_fingerprint
from yoto_tf.compression.widening import add_channel_context, add_residual_prediction, drop_residual_prediction, grow

LAM = 1e-3


def _trained_context_network():
    """A small network with a trained-looking 3-slice context (the same weights every call)."""
    return randomize_slice_outputs(small_mean_scale_network(channel_slices=3))


@pytest.fixture(scope="module")
def image():
    return skimage.data.coffee()[:100, :140]


def test_a_new_residual_prediction_codes_exactly_as_the_network_it_was_added_to(image):
    plain = _trained_context_network()
    grown = add_residual_prediction(plain)
    assert grown.residual_prediction and len(grown.residual_predictors) == 3
    before, after = CompressionCodec(plain), CompressionCodec(grown)
    assert after.fingerprint != before.fingerprint
    np.testing.assert_array_equal(reconstruct_image(after, image, LAM), reconstruct_image(before, image, LAM))
    data = compress_image(after, image, LAM)
    assert container.unpack(data).payloads == container.unpack(compress_image(before, image, LAM)).payloads
    np.testing.assert_array_equal(decompress_image(after, data), reconstruct_image(before, image, LAM))


def test_a_trained_residual_prediction_corrects_the_latents_and_round_trips(image, tmp_path):
    network = randomize_slice_outputs(add_residual_prediction(_trained_context_network()))
    path = str(tmp_path / "lrp.keras")
    network.save(path)
    codec = load_compression_model(path)
    assert codec.network.residual_prediction
    assert codec.fingerprint == CompressionCodec(network).fingerprint

    lam_vec = codec.lambda_vector(LAM)
    y_symbols, z_symbols = codec.quantize_latents(*codec.analyze(image, lam_vec), lam_vec)
    means, _ = codec.entropy_parameters(z_symbols, lam_vec, y_symbols)
    correction = codec.decoded_latents(y_symbols, z_symbols, lam_vec) - (y_symbols + means)
    assert 0.01 < np.abs(correction).max() < 0.5  # bounded by 0.5 * tanh

    data = compress_image(codec, image, LAM)
    np.testing.assert_array_equal(decompress_image(codec, data), reconstruct_image(codec, image, LAM))
    assert len(data) * 8 / (100 * 140) == pytest.approx(estimate_bpp(codec, image, LAM), rel=0.1, abs=0.05)
    quality_map = np.tile(np.linspace(1e-4, 1e-2, 140), (100, 1))
    data = compress_image(codec, image, lambda_map=quality_map)
    np.testing.assert_array_equal(decompress_image(codec, data),
                                  reconstruct_image(codec, image, lambda_map=quality_map))


def test_dropping_the_prediction_keeps_every_other_weight(image):
    with_prediction = randomize_slice_outputs(add_residual_prediction(_trained_context_network()))
    dropped = drop_residual_prediction(with_prediction)
    assert not dropped.residual_prediction and not dropped.residual_predictors
    # Without its prediction it is the network the prediction was added to, weight for weight.
    np.testing.assert_array_equal(reconstruct_image(CompressionCodec(dropped), image, LAM),
                                  reconstruct_image(CompressionCodec(_trained_context_network()), image, LAM))
    assert np.any(reconstruct_image(CompressionCodec(with_prediction), image, LAM)
                  != reconstruct_image(CompressionCodec(dropped), image, LAM))
    with pytest.raises(ValueError, match="no latent residual prediction to drop"):
        drop_residual_prediction(dropped)


def test_a_slice_is_corrected_after_it_is_coded_and_the_later_slices_see_the_correction(image):
    network = randomize_slice_outputs(add_residual_prediction(_trained_context_network()))
    without = _trained_context_network()  # the same weights, no residual prediction
    with_codec, without_codec = CompressionCodec(network), CompressionCodec(without)
    lam_vec = with_codec.lambda_vector(LAM)
    y_symbols, z_symbols = with_codec.quantize_latents(*with_codec.analyze(image, lam_vec), lam_vec)
    means, indices = with_codec.entropy_parameters(z_symbols, lam_vec, y_symbols)
    plain_means, plain_indices = without_codec.entropy_parameters(z_symbols, lam_vec, y_symbols)
    np.testing.assert_array_equal(means[..., :8], plain_means[..., :8])  # the first slice: no correction yet
    np.testing.assert_array_equal(indices[..., :8], plain_indices[..., :8])
    assert np.abs(means[..., 8:] - plain_means[..., 8:]).max() > 1e-4  # the next ones see corrected slices


def test_training_reaches_the_residual_prediction():
    network = add_residual_prediction(small_mean_scale_network(channel_slices=3))
    images = tf.constant(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32))
    lam = tf.constant(np.stack([network.loss_space.make(distortion=LAM)] * 2))
    last_convs = [layer.convs[-1].kernel for layer in network.residual_predictors]
    with tf.GradientTape() as tape:
        outputs = network((images, lam), training=True)
        distortion = tf.reduce_mean(tf.square(images - outputs["x_hat"]))
    gradients = tape.gradient(distortion, last_convs)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0.0 for g in gradients)


def test_residual_prediction_needs_a_context_and_old_networks_keep_their_fingerprint():
    with pytest.raises(ValueError, match="needs a channel context"):
        CompressionNetwork(compression_loss_space(), 16, 24, 16, mean_scale=True, residual_prediction=True)
    plain = CompressionNetwork(compression_loss_space(), 16, 24, 16, seed=0, mean_scale=True)
    plain.build()
    with pytest.raises(ValueError, match="needs a channel context"):
        grow(plain, synthesis_filters=32, residual_prediction=True)  # refused before widening
    grown = grow(plain, channel_slices=2, residual_prediction=True)  # a context first, then the prediction
    assert (grown.channel_slices, grown.residual_prediction) == (2, True)
    with pytest.raises(ValueError, match="has latent residual prediction already"):
        add_residual_prediction(grown)
    assert grow(grown, residual_prediction=True) is grown

    context = add_channel_context(plain, 2)
    explicit = CompressionNetwork.from_config({**context.get_config(), "residual_prediction": False})
    explicit.build()
    explicit.set_weights(context.get_weights())
    assert model_fingerprint(explicit) == model_fingerprint(context)  # shipped files keep decoding


def test_train_residual_prediction_adds_it_to_init_from_and_refuses_it_without_a_context(tmp_path, capsys):
    common = dict(patch_size=64, batch_size=2, log_every=1, checkpoint_every=1, learning_rate=1e-3, steps=1,
                  train_data=write_image_folder(str(tmp_path / "images"), count=2))
    source = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=8, conditioning_units=8,
                                seed=0, mean_scale=True, channel_slices=2)
    source.build()
    source.save(str(tmp_path / "source.keras"))
    train(model_dir=str(tmp_path / "lrp"), init_from=str(tmp_path / "source.keras"), residual_prediction=True,
          **common)
    trained = pretrained.load_network(str(tmp_path / "lrp"))
    assert trained.residual_prediction and len(trained.residual_predictors) == 2
    config = json.loads((tmp_path / "lrp" / "train_config.json").read_text())
    assert config["task"]["residual_prediction"] is True

    with pytest.raises(SystemExit):
        train(model_dir=str(tmp_path / "no_context"), residual_prediction=True, mean_scale=True, num_filters=8,
              num_latent=8, **common)
    assert "--residual_prediction: latent residual prediction" in capsys.readouterr().err
