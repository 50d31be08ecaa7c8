"""The VGG weight options: imagenet (cached / unavailable), auto fallback, .h5 path, none."""

import logging

import keras
import numpy as np
import pytest

from yoto_tf.style_transfer import vgg


def _offline(*args, **kwargs):
    raise Exception("URL fetch failure: [Errno -2] Name or service not known")


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    """A KERAS_HOME without cached weights, and no network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(vgg, "_cached_imagenet_file", lambda name: None)
    monkeypatch.setattr(keras.utils, "get_file", _offline)
    return tmp_path / "keras_home"


def test_unavailable_imagenet_weights_say_where_to_put_the_file(empty_keras_home):
    with pytest.raises(vgg.VGGWeightsUnavailableError) as info:
        vgg.resolve_weights("vgg16", "imagenet")
    message = str(info.value)
    expected_path = str(empty_keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert expected_path in message
    assert "6d6bbae143d832006294945121d1f1fc" in message
    assert "--vgg_weights=none" in message


def test_vgg19_names_its_own_file(empty_keras_home):
    with pytest.raises(vgg.VGGWeightsUnavailableError, match="253f8cb515780f3b799900260a226db6"):
        vgg.resolve_weights("vgg19", "imagenet")


def test_auto_falls_back_to_random_weights_loudly(empty_keras_home, caplog):
    with caplog.at_level(logging.WARNING, logger=vgg.logger.name):
        assert vgg.resolve_weights("vgg16", "auto") == "none"
    assert "FALLING BACK TO RANDOM VGG WEIGHTS" in caplog.text
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in caplog.text


def test_explicit_none_is_silent(caplog):
    with caplog.at_level(logging.WARNING, logger=vgg.logger.name):
        assert vgg.resolve_weights("vgg16", "none") == "none"
    assert caplog.text == ""


def test_cached_imagenet_file_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", _offline)
    cached = tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"not checked here")
    assert vgg.resolve_weights("vgg16", "imagenet") == str(cached)


def test_missing_weights_path_and_unknown_vgg_are_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        vgg.resolve_weights("vgg16", str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="Unknown VGG 'vgg11'"):
        vgg.resolve_weights("vgg11", "none")


def test_local_h5_weights_are_loaded(tmp_path):
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg16.weights.h5")
    source.save_weights(path)
    features = vgg.build_vgg_features("vgg16", path, layers=("block2_conv1",))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(features.get_layer("block2_conv1").kernel),
        keras.ops.convert_to_numpy(source.get_layer("block2_conv1").kernel),
    )
    assert features.outputs[0].shape[-1] == 128
