"""The channel context of the mean-scale entropy model (``channel_slices``): added to a trained
network it changes nothing, a trained one codes losslessly slice after slice, each slice's
parameters depend only on the slices before it, and `train --channel_slices`."""

import json
import os
import subprocess
import sys

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
from yoto_tf.compression.codec import CompressionCodec, model_fingerprint
from yoto_tf.compression.training import CompressionTrainingModel
from yoto_tf.compression.widening import add_channel_context, grow

LAM = 1e-3
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def image():
    return skimage.data.coffee()[:100, :140]


def test_a_new_context_codes_exactly_as_the_network_it_was_added_to(image):
    plain = small_mean_scale_network()
    grown = add_channel_context(plain, 3)
    assert grown.channel_slices == 3 and len(grown.channel_context) == 3
    before, after = CompressionCodec(plain), CompressionCodec(grown)
    assert after.fingerprint != before.fingerprint  # a file names the model that can decode it
    np.testing.assert_array_equal(reconstruct_image(after, image, LAM), reconstruct_image(before, image, LAM))
    assert estimate_bpp(after, image, LAM) == pytest.approx(estimate_bpp(before, image, LAM), rel=1e-6)
    data = compress_image(after, image, LAM)
    assert len(data) == len(compress_image(before, image, LAM))
    np.testing.assert_array_equal(decompress_image(after, data), reconstruct_image(before, image, LAM))


def test_a_trained_context_changes_the_coding_and_round_trips(image, tmp_path):
    plain = small_mean_scale_network()
    network = randomize_slice_outputs(add_channel_context(plain, 3))
    path = str(tmp_path / "context.keras")
    network.save(path)
    codec = load_compression_model(path)
    assert codec.network.channel_slices == 3
    assert codec.fingerprint == CompressionCodec(network).fingerprint

    lam_vec = codec.lambda_vector(LAM)
    y_symbols, z_symbols = codec.quantize_latents(*codec.analyze(image, lam_vec), lam_vec)
    means, indices = codec.entropy_parameters(z_symbols, lam_vec, y_symbols)
    hyper_means, hyper_indices = CompressionCodec(plain).entropy_parameters(z_symbols, lam_vec)
    assert np.abs(means - hyper_means).max() > 0.01 and np.any(indices != hyper_indices)

    data = compress_image(codec, image, LAM)
    np.testing.assert_array_equal(decompress_image(codec, data), reconstruct_image(codec, image, LAM))
    assert len(data) * 8 / (100 * 140) == pytest.approx(estimate_bpp(codec, image, LAM), rel=0.1, abs=0.05)

    quality_map = np.tile(np.linspace(1e-4, 1e-2, 140), (100, 1))
    data = compress_image(codec, image, lambda_map=quality_map)
    np.testing.assert_array_equal(decompress_image(codec, data),
                                  reconstruct_image(codec, image, lambda_map=quality_map))


def test_each_slice_is_predicted_only_from_the_slices_before_it(image):
    codec = CompressionCodec(randomize_slice_outputs(small_mean_scale_network(channel_slices=3)))
    lam_vec = codec.lambda_vector(LAM)
    y_symbols, z_symbols = codec.quantize_latents(*codec.analyze(image, lam_vec), lam_vec)
    means, indices = codec.entropy_parameters(z_symbols, lam_vec, y_symbols)
    changed = y_symbols.copy()
    changed[..., 8:16] += 3  # the second slice of 8 channels
    new_means, new_indices = codec.entropy_parameters(z_symbols, lam_vec, changed)
    np.testing.assert_array_equal(new_means[..., :16], means[..., :16])
    np.testing.assert_array_equal(new_indices[..., :16], indices[..., :16])
    assert np.abs(new_means[..., 16:] - means[..., 16:]).max() > 1e-3
    with pytest.raises(ValueError, match="needs the y symbols"):
        codec.entropy_parameters(z_symbols, lam_vec)


def test_training_reaches_the_context():
    network = add_channel_context(small_mean_scale_network(), 2)
    model = CompressionTrainingModel(network, seed=0)
    images = tf.constant(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32))
    lam = tf.constant(np.stack([network.loss_space.make(distortion=LAM)] * 2))
    last_convs = [layer.convs[-1].kernel for layer in network.channel_context]
    with tf.GradientTape() as tape:
        outputs = network((images, lam), training=True)
        rate = tf.reduce_sum(outputs["y_bits"])
    gradients = tape.gradient(rate, last_convs)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0.0 for g in gradients)
    assert model.network is network


@pytest.mark.parametrize("options, message", [
    (dict(mean_scale=False), "mean_scale=True"),
    (dict(mean_scale=True, channel_slices=5), "dividing num_latent=24"),
    (dict(mean_scale=True, channel_slices=1), "at least 2"),
])
def test_bad_channel_slices_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        CompressionNetwork(compression_loss_space(), 16, 24, 16, **{"channel_slices": 2, **options})


def test_grow_widens_then_adds_a_context_and_refuses_before_building(image):
    plain = small_mean_scale_network()
    grown = grow(plain, synthesis_filters=24, channel_slices=3)
    assert (grown.synthesis_filters, grown.channel_slices) == (24, 3)
    np.testing.assert_allclose(reconstruct_image(CompressionCodec(grown), image, LAM),
                               reconstruct_image(CompressionCodec(plain), image, LAM), atol=1.0)
    assert grow(grown, synthesis_filters=24, channel_slices=3) is grown  # nothing to do
    with pytest.raises(ValueError, match="codes its latent in 3 slices already; a channel context cannot be changed"):
        grow(grown, channel_slices=4)
    with pytest.raises(ValueError, match="can only be widened: it has 24 channels, asked for 16"):
        grow(grown, synthesis_filters=16, channel_slices=3)
    scale_only = CompressionNetwork(compression_loss_space(), 16, 24, 16, seed=0)
    scale_only.build()
    with pytest.raises(ValueError, match="needs a mean-scale model"):
        grow(scale_only, synthesis_filters=32, channel_slices=2)  # refused before widening


def test_a_network_without_context_keeps_its_fingerprint():
    plain = small_mean_scale_network()
    explicit = CompressionNetwork.from_config({**plain.get_config(), "channel_slices": 0})
    explicit.build()
    explicit.set_weights(plain.get_weights())
    assert model_fingerprint(explicit) == model_fingerprint(plain)  # shipped files keep decoding


def test_train_channel_slices_adds_a_context_to_init_from_and_refuses_what_cannot_work(tmp_path, capsys):
    common = dict(patch_size=64, batch_size=2, log_every=1, checkpoint_every=1, learning_rate=1e-3, steps=1,
                  train_data=write_image_folder(str(tmp_path / "images"), count=2))
    source = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=8, conditioning_units=8,
                                seed=0, mean_scale=True)
    source.build()
    source.save(str(tmp_path / "source.keras"))
    train(model_dir=str(tmp_path / "context"), init_from=str(tmp_path / "source.keras"), channel_slices=2, **common)
    trained = pretrained.load_network(str(tmp_path / "context"))
    assert trained.channel_slices == 2
    config = json.loads((tmp_path / "context" / "train_config.json").read_text())
    assert config["task"]["channel_slices"] == 2

    with pytest.raises(SystemExit):
        train(model_dir=str(tmp_path / "change"), init_from=str(tmp_path / "context"), channel_slices=4, **common)
    assert "codes its latent in 2 slices already; a channel context cannot be changed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train(model_dir=str(tmp_path / "scale_only"), channel_slices=2, num_filters=8, num_latent=8, **common)
    assert "--channel_slices: a channel context (channel_slices=2) needs a mean-scale model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train(model_dir=str(tmp_path / "odd"), channel_slices=3, mean_scale=True, num_filters=8, num_latent=8,
               **common)
    assert "at least 2 and dividing num_latent=8, got 3" in capsys.readouterr().err


def _crops(count, side=64, seed=0):
    """Random float32 [side, side, 3] crops of skimage's astronaut, in batches of 8."""
    photo = skimage.data.astronaut().astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    crops = [photo[r:r + side, c:c + side] for r, c in rng.integers(0, 512 - side, (count, 2))]
    return [np.stack(crops[i:i + 8]) for i in range(0, count, 8)]


def test_fitting_the_context_lowers_the_held_out_rate_and_freezes_the_rest(image):
    from yoto_tf.compression import context_fitting

    network = add_channel_context(small_mean_scale_network(), 3)
    frozen = [np.asarray(w).copy() for w in network.synthesis.weights + network.hyper_synthesis.weights]
    train, held_out = (context_fitting.collect_latents(network, _crops(n, seed=s), seed=s) for n, s in ((64, 0), (16, 1)))
    assert train.y.shape == (64, 4, 4, 24) and train.loss_weights.shape == (64, 2)
    fitter = context_fitting.ContextFitter(network, learning_rate=3e-3)
    before = context_fitting.held_out_rates(fitter, held_out)
    assert before["change_percent"] == pytest.approx(0.0, abs=1e-4)  # a new context is the hyperprior
    assert fitter.fit(train, steps=150, batch_size=8) == 150
    after = context_fitting.held_out_rates(fitter, held_out)
    assert after["change_percent"] < -5.0, after
    for old, new in zip(frozen, network.synthesis.weights + network.hyper_synthesis.weights):
        np.testing.assert_array_equal(old, np.asarray(new))
    codec = CompressionCodec(network)
    np.testing.assert_array_equal(decompress_image(codec, compress_image(codec, image, LAM)),
                                  reconstruct_image(codec, image, LAM))


def test_fit_channel_context_cli_fits_resumes_and_refuses_a_scale_only_model(tmp_path):
    """The command in subprocesses (it defines --init_from and --steps, as the trainers do)."""

    def fit(init_from, steps, out_dir="fit", slices="2"):
        return subprocess.run(
            [sys.executable, "-m", "trainers.fit_channel_context", f"--init_from={tmp_path / init_from}",
             f"--channel_slices={slices}", f"--steps={steps}", f"--out_dir={tmp_path / out_dir}",
             "--train_data=builtin", "--patch_size=64", "--crops=16", "--held_out_crops=16", "--batch_size=4",
             "--log_every=5", "--checkpoint_every=5"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    small_mean_scale_network().save(str(tmp_path / "source.keras"))
    first = fit("source.keras", 10)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "fitted to step 10" in first.stdout and "with the hyperprior alone" in first.stdout
    assert load_compression_model(tmp_path / "fit" / "model.keras").network.channel_slices == 2
    resumed = fit("source.keras", 15)
    assert resumed.returncode == 0 and "fitted to step 15" in resumed.stdout
    assert "Resumed from" in resumed.stderr and os.path.exists(tmp_path / "fit" / "checkpoints" / "ckpt-15.index")

    scale_only = CompressionNetwork(compression_loss_space(), 8, 8, 8, seed=0)
    scale_only.build()
    scale_only.save(str(tmp_path / "scale_only.keras"))
    refused = fit("scale_only.keras", 5, out_dir="bad")
    assert refused.returncode == 1 and "mean_scale=True" in refused.stderr and "Traceback" not in refused.stderr
