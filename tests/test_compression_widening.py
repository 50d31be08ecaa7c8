"""Widening a trained network's synthesis transform (widening.py): the same codec at the
start, extra channels that training uses, and `train --init_from X --synthesis_filters N`."""

import json

import numpy as np
import pytest
import skimage.data

from tests.compression_cli_helpers import train, write_image_folder
from yoto_tf import pretrained
from yoto_tf.compression import (
    CompressionNetwork,
    compress_image,
    compression_loss_space,
    decompress_image,
    load_compression_model,
)
from yoto_tf.compression.codec import model_fingerprint
from yoto_tf.compression.training import CompressionTrainingModel
from yoto_tf.compression.widening import widen_synthesis



@pytest.fixture(scope="module")
def shipped():
    return load_compression_model(pretrained.verify(pretrained.default_model("compression"))).network


def test_the_widened_network_codes_as_the_trained_one(shipped, tmp_path):
    wide = widen_synthesis(shipped, shipped.synthesis_filters + 32)
    assert wide.synthesis_filters == shipped.synthesis_filters + 32
    assert wide.synthesis.convs[0].kernel.shape[2] == shipped.synthesis_filters + 32
    photo = skimage.data.astronaut()[40:160, 150:350]
    x = photo[None, :64, :128].astype(np.float32) / 255.0
    for lam in (np.array([[0.0018, 1.0]], np.float32), np.full((1, 4, 8, 2), 0.05, np.float32)):
        narrow_out, wide_out = shipped((x, lam)), wide((x, lam))
        np.testing.assert_allclose(np.asarray(wide_out["x_hat"]), np.asarray(narrow_out["x_hat"]), atol=2e-5)
        np.testing.assert_array_equal(np.asarray(wide_out["y_bits"]), np.asarray(narrow_out["y_bits"]))
    narrow_file, wide_file = compress_image(shipped, photo, 0.02), compress_image(wide, photo, 0.02)
    assert len(wide_file) == len(narrow_file)
    # The same latents; the wider sums round differently in float32, which can move a pixel
    # that sits at a rounding boundary by one level (1 of 72,000 values with the shipped model).
    difference = np.abs(decompress_image(wide, wide_file).astype(int) - decompress_image(shipped, narrow_file))
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3, (difference.max(), np.mean(difference > 0))
    path = str(tmp_path / "wide.keras")
    wide.save(path)  # the width is part of the saved config
    assert load_compression_model(path).network.synthesis_filters == wide.synthesis_filters


def test_training_reaches_the_new_channels():
    network = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=8, conditioning_units=8, seed=0)
    network.build()
    wide = widen_synthesis(network, 12)
    outgoing = lambda: np.abs(np.asarray(wide.synthesis.convs[1].kernel)[:, :, :8, 8:]).max()  # noqa: E731
    assert outgoing() == 0.0  # the old channels do not read the new ones yet
    model = CompressionTrainingModel(wide, seed=0)
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).uniform(size=(4, 64, 64, 3)).astype(np.float32)
    model.fit(images, epochs=1, batch_size=2, verbose=0)
    assert outgoing() > 0.0  # after two steps the new channels feed the image


def test_narrowing_is_refused_and_an_unwidened_network_keeps_its_fingerprint():
    space = compression_loss_space()
    plain = CompressionNetwork(space, num_filters=8, num_latent=8, conditioning_units=8, seed=0)
    plain.build()
    explicit = CompressionNetwork.from_config({**plain.get_config(), "synthesis_filters": 8})
    explicit.build()
    explicit.set_weights(plain.get_weights())
    assert model_fingerprint(explicit) == model_fingerprint(plain)  # shipped files keep decoding
    assert model_fingerprint(widen_synthesis(plain, 9)) != model_fingerprint(plain)
    with pytest.raises(ValueError, match="can only be widened: it has 8 channels, asked for 4"):
        widen_synthesis(plain, 4)


def test_train_init_from_with_synthesis_filters_widens_then_trains(tmp_path, capsys):
    common = dict(patch_size=64, batch_size=2, log_every=1, checkpoint_every=1, learning_rate=1e-3, steps=1,
                  train_data=write_image_folder(str(tmp_path / "images"), count=2))
    source = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=8, conditioning_units=8, seed=0)
    source.build()
    source.save(str(tmp_path / "source.keras"))
    train(model_dir=str(tmp_path / "wide"), init_from=str(tmp_path / "source.keras"), synthesis_filters=16, **common)
    wide = pretrained.load_network(str(tmp_path / "wide"))
    assert (wide.num_filters, wide.synthesis_filters) == (8, 16)
    config = json.loads((tmp_path / "wide" / "train_config.json").read_text())
    assert (config["task"]["synthesis_filters"], config["task"]["num_filters"], config["task"]["num_latent"]) == (16, 8, 8)
    with pytest.raises(SystemExit):
        train(model_dir=str(tmp_path / "narrow"), init_from=str(tmp_path / "wide"), synthesis_filters=8, **common)
    assert "can only be widened: it has 16 channels, asked for 8" in capsys.readouterr().err
