"""Shared test set-up: quiet TensorFlow logs, deterministic seeds, repo root importable."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def trained_compression(tmp_path_factory):
    """``(codec, path)`` of a small compression model (N/M 24/32, lambda range [1e-4, 1e-2],
    one lambda per example) trained briefly: 700 steps of 64x64 patches of three
    scikit-image photos, about 35 s on 2 idle cores. Shared by the codec and quality-map tests."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    from yoto_tf.compression import (  # pylint: disable=import-outside-toplevel
        CompressionNetwork,
        compression_loss_space,
        load_compression_model,
        rate_distortion_terms,
    )
    from yoto_tf.training import LossConditionalModel  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    network = CompressionNetwork(compression_loss_space((1e-4, 1e-2)), 24, 32, 32, seed=0)
    model = LossConditionalModel(network, rate_distortion_terms, seed=0)
    model.compile(keras.optimizers.Adam(3e-3, global_clipnorm=1.0))
    rng = np.random.default_rng(0)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    patches = []
    for _ in range(700 * 8):
        image = photos[rng.integers(len(photos))]
        y, x = rng.integers(image.shape[0] - 64), rng.integers(image.shape[1] - 64)
        patches.append(image[y : y + 64, x : x + 64])
    model.fit(np.stack(patches).astype(np.float32) / 255.0, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path_factory.mktemp("trained") / "model.keras")
    network.save(path)
    return load_compression_model(path), path
