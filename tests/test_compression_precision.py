"""bfloat16 feature convs for training (yoto_tf/compression/precision.py): what computes in
bfloat16, that training sees nearly the float32 loss and gradients, and that the saved
network computes in float32."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from yoto_tf import pretrained
from yoto_tf.compression import precision
from yoto_tf.compression.training import CompressionTrainingModel


def _network():
    """A trained network (the smallest shipped one): an untrained one codes everything as 0."""
    return pretrained.load_network("mean_scale_64")


def _batch():
    rng = np.random.default_rng(0)
    # Smooth random images with some texture, like photos at this scale.
    coarse = rng.random((4, 8, 8, 3)).astype(np.float32)
    x = tf.image.resize(coarse, (64, 64), method="bicubic").numpy()
    x = (x + 0.05 * rng.standard_normal(x.shape)).clip(0, 1).astype(np.float32)
    lam = np.stack([np.geomspace(0.0018, 0.18, 4), np.ones(4)], axis=1).astype(np.float32)
    return {"inputs": x, "lambda": lam}


def _loss_and_gradient(network):
    model = CompressionTrainingModel(network, seed=1)
    batch = _batch()
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=batch, y_pred=model(batch, training=True), training=True)
    gradients = tape.gradient(loss, network.trainable_variables)
    return float(loss), tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in gradients], 0)


def test_only_the_feature_convs_compute_in_bfloat16_and_weights_stay_float32():
    network = _network()
    precision.set_conv_compute_dtype(network, "bfloat16")
    assert precision.conv_compute_dtype(network) == "bfloat16"
    feature = precision.feature_convs(network)
    assert len(feature) == 6
    assert all(conv.compute_dtype == "bfloat16" for conv in feature)
    assert network.analysis.convs[0].compute_dtype == "float32"  # sees the pixels
    assert network.synthesis.convs[-1].compute_dtype == "float32"  # draws the pixels
    assert all(conv.compute_dtype == "float32" for conv in network.hyper_analysis.convs)
    assert all(weight.dtype == "float32" for weight in network.weights)
    out = network((_batch()["inputs"], _batch()["lambda"]), training=False)
    assert all(value.dtype == "float32" for value in out.values())
    with pytest.raises(ValueError, match="float32, bfloat16"):
        precision.set_conv_compute_dtype(network, "float16")


def test_bfloat16_training_sees_nearly_the_float32_loss_and_gradient():
    reference, candidate = _network(), _network()
    assert all(np.array_equal(a, b) for a, b in zip(reference.get_weights(), candidate.get_weights()))
    precision.set_conv_compute_dtype(candidate, "bfloat16")
    loss32, gradient32 = _loss_and_gradient(reference)
    loss16, gradient16 = _loss_and_gradient(candidate)
    assert loss16 != loss32  # it does compute in bfloat16
    assert abs(loss16 - loss32) < 3e-3 * abs(loss32)
    cosine = float(tf.reduce_sum(gradient32 * gradient16) / (tf.norm(gradient32) * tf.norm(gradient16)))
    assert cosine > 0.99


def test_the_saved_network_and_computing_in_float32_give_the_float32_network(tmp_path):
    network = _network()
    x, lam = _batch()["inputs"], _batch()["lambda"]
    expected = network((x, lam))["x_hat"].numpy()
    precision.set_conv_compute_dtype(network, "bfloat16")
    assert not np.array_equal(network((x, lam))["x_hat"].numpy(), expected)
    with precision.computing_in_float32(network):
        np.testing.assert_array_equal(network((x, lam))["x_hat"].numpy(), expected)
    assert precision.conv_compute_dtype(network) == "bfloat16"  # restored
    path = os.path.join(tmp_path, "net.keras")
    network.save(path)
    loaded = keras.models.load_model(path)
    assert precision.conv_compute_dtype(loaded) == "float32"
    np.testing.assert_array_equal(loaded((x, lam))["x_hat"].numpy(), expected)


def test_cpu_bfloat16_support_is_read_from_cpuinfo_and_emulation_warned_on_cpus_only(tmp_path):
    with_bf16, without, empty = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nflags\t\t: fpu\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    empty.write_text("")
    assert precision.cpu_has_bfloat16(str(with_bf16)) is True
    assert precision.cpu_has_bfloat16(str(without)) is False
    assert precision.cpu_has_bfloat16(str(empty)) is False
    assert precision.cpu_has_bfloat16(str(tmp_path / "missing")) is None
    warn = precision.emulation_warning
    assert "no bfloat16 instructions" in warn("bfloat16", ["cpu:0"], str(without))
    assert warn("bfloat16", ["cpu:0"], str(with_bf16)) is None
    assert warn("bfloat16", ["cpu:0"], str(tmp_path / "missing")) is None  # unknown: no claim
    assert warn("bfloat16", ["cpu:0", "gpu:0"], str(without)) is None  # trains on the accelerator
    assert warn("float32", ["cpu:0"], str(without)) is None
    devices = keras.distribution.list_devices()  # by default, the devices of the Keras backend
    assert warn("bfloat16", None, str(without)) == warn("bfloat16", devices, str(without))
