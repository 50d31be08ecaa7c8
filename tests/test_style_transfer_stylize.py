"""Inference: any size, tiling of large images, knob validation, sweeps, the stylize CLI."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image

from yoto_tf import ConditionalInstanceNormalization
from yoto_tf.style_transfer import inference as st
from yoto_tf.style_transfer.grid import labelled_grid
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space
from yoto_tf.style_transfer.transformer import build_network

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LAMBDA = style_transfer_loss_space().default()


@pytest.fixture(scope="module")
def network():
    keras.utils.set_random_seed(0)
    net = build_network(style_transfer_loss_space(), width_multiplier=0.25,
                            conditioning_units=16)
    rng = np.random.default_rng(0)
    for layer in net.layers:  # make lambda matter (the heads start at zero)
        if isinstance(layer, ConditionalInstanceNormalization):
            layer.gamma_kernel.assign(0.3 * rng.standard_normal(layer.gamma_kernel.shape))
            layer.beta_kernel.assign(0.3 * rng.standard_normal(layer.beta_kernel.shape))
    return net


@pytest.fixture(scope="module")
def model_path(network, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "model.keras")
    network.save(path)
    return path


def test_stylize_keeps_size_and_range(network):
    image = skimage.data.chelsea()[:61, :83]
    out = st.stylize(network, image, DEFAULT_LAMBDA)
    assert out.shape == (61, 83, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_bad_inputs_are_explained(network):
    image = skimage.data.chelsea()[:32, :32]
    lam = DEFAULT_LAMBDA
    too_strong = lam.copy()
    too_strong[1] = 50.0
    with pytest.raises(ValueError, match=r"'style_block1' = 50 is outside its allowed range \[0.01, 1\]"):
        st.stylize(network, image, too_strong)
    with pytest.raises(ValueError, match="style_index 2 is out of range: this model holds 1 style"):
        st.stylize(network, image, lam, style_index=2)
    with pytest.raises(ValueError, match="too small"):
        st.stylize(network, image[:3], lam)
    with pytest.raises(ValueError, match=r"Expected an RGB image \[H, W, 3\]"):
        st.stylize(network, image[..., 0], lam)


def test_tile_starts_cover_the_image_with_overlap():
    assert st.tile_starts(500, 1024, 128) == [0]
    starts = st.tile_starts(2000, 1024, 128)
    assert starts[0] == 0 and starts[-1] == 2000 - 1024
    for a, b in zip(starts, starts[1:]):
        assert 0 < b - a <= 1024 - 128


def test_tiles_blend_seamlessly(network):
    # A flat image gives every tile the same flat output, so any seam or blending-weight
    # error would show as a difference from the one-pass result.
    flat = np.full((150, 170, 3), 0.4, np.float32)
    lam = DEFAULT_LAMBDA
    whole = st.stylize(network, flat, lam)
    tiled = st.stylize(network, flat, lam, max_pixels=1000, tile_size=64, overlap=16)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_large_image_is_tiled_within_the_tile_budget(network, monkeypatch):
    rng = np.random.default_rng(0)
    image = (rng.random((1500, 2000, 3)) * 255).astype(np.uint8)  # 3 MP
    calls = []
    run = st._run

    def recording_run(net, images, lam, style_index):
        calls.append(images.shape[1:3])
        return run(net, images, lam, style_index)

    monkeypatch.setattr(st, "_run", recording_run)
    out = st.stylize(network, image, DEFAULT_LAMBDA, max_pixels=2**20)
    assert out.shape == (1500, 2000, 3) and np.isfinite(out).all()
    assert len(calls) == 6  # 2 x 3 tiles of at most 1024 x 1024
    assert all(h <= st.DEFAULT_TILE_SIZE and w <= st.DEFAULT_TILE_SIZE for h, w in calls)


def test_sweep_labels_and_changes_outputs(network):
    image = skimage.data.coffee()[::8, ::8]
    cells = st.sweep(network, image, "strength", num=3)
    assert [label for label, _ in cells] == ["strength=0.1", "strength=1", "strength=10"]
    assert np.abs(cells[0][1] - cells[2][1]).mean() > 1e-3
    tv = st.sweep(network, image, "tv", num=2)
    assert [label for label, _ in tv] == ["tv=0.001", "tv=0.1"]
    with pytest.raises(ValueError, match="Cannot sweep 'colour'"):
        st.sweep(network, image, "colour")
    grid = labelled_grid([[("input", image)] + cells], ["coffee"])
    assert grid.dtype == np.uint8 and grid.shape[1] > 4 * image.shape[1]


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainers.stylize", *args], cwd=REPO, capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO},
    )


def test_stylize_cli_writes_image_and_rejects_bad_values(model_path, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(skimage.data.rocket()[::4, ::4]).save(photo)
    out = tmp_path / "styled.png"
    done = _cli(f"--model={model_path}", f"--image={photo}", f"--out={out}",
                "--strength=2", "--style_weights=0.1,0.2,0.3,0.4,0.5", "--content_weight=3")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == Image.open(photo).size
    bad = _cli(f"--model={model_path}", f"--image={photo}", f"--out={out}", "--strength=50")
    assert bad.returncode == 1
    assert "strength 50 is outside its allowed range [0.1, 10]" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_stylize_cli_sweep(model_path, tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo)
    grid = tmp_path / "grid.png"
    done = _cli(f"--model={model_path}", f"--image={photo}", f"--out={grid}",
                "--sweep=style_block3", "--sweep_num=3", "--sweep_size=64")
    assert done.returncode == 0, done.stderr
    assert Image.open(grid).size[0] > 4 * 64
