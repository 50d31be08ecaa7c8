"""Lambda maps: per-pixel conditioning in the layers, the transformer's map twin, and the
strength-map stylization of trainers.stylize."""

import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from yoto_tf.images import load_image, save_image
from yoto_tf.layers import ConditionalInstanceNormalization, FiLM
from yoto_tf.style_transfer import lambda_maps
from yoto_tf.style_transfer.inference import stylize
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space, with_strength
from yoto_tf.style_transfer.transformer import build_network, lambda_map_network

RNG = np.random.default_rng(0)


def _random_heads(layer_class):
    layer = layer_class(kernel_initializer="random_normal")
    return layer


@pytest.mark.parametrize("layer_class", [ConditionalInstanceNormalization, FiLM])
def test_constant_map_equals_per_example_conditioning(layer_class):
    x = RNG.normal(size=(2, 12, 10, 6)).astype(np.float32)
    cond = RNG.normal(size=(2, 5)).astype(np.float32)
    layer = _random_heads(layer_class)
    per_example = ops.convert_to_numpy(layer([x, cond]))
    as_map = np.tile(cond[:, None, None, :], (1, 3, 4, 1))  # other resolution: resized
    np.testing.assert_allclose(ops.convert_to_numpy(layer([x, as_map])), per_example, atol=1e-5)


@pytest.mark.parametrize("layer_class", [ConditionalInstanceNormalization, FiLM])
def test_map_modulates_each_region_by_its_own_conditioning(layer_class):
    x = RNG.normal(size=(1, 8, 16, 4)).astype(np.float32)
    a, b = RNG.normal(size=(2, 1, 3)).astype(np.float32)
    layer = _random_heads(layer_class)
    split = np.concatenate([np.tile(a[:, None, None], (1, 8, 8, 1)),
                            np.tile(b[:, None, None], (1, 8, 8, 1))], axis=2)
    out = ops.convert_to_numpy(layer([x, split]))
    with_a = ops.convert_to_numpy(layer([x, a]))
    with_b = ops.convert_to_numpy(layer([x, b]))
    # Same instance statistics, modulation per pixel: each half is exactly its own setting.
    np.testing.assert_allclose(out[:, :, :7], with_a[:, :, :7], atol=1e-5)
    np.testing.assert_allclose(out[:, :, 9:], with_b[:, :, 9:], atol=1e-5)


@pytest.mark.parametrize("layer_class", [ConditionalInstanceNormalization, FiLM])
@pytest.mark.parametrize("map_size", [(3, 5), (24, 20)])  # coarser, finer than x
def test_random_map_is_the_map_resized_to_x_then_projected(layer_class, map_size):
    """The layers project on the coarser grid and resize the modulation: the same function
    as resizing the map to x and projecting per pixel (the definition)."""
    x = RNG.normal(size=(2, 12, 10, 6)).astype(np.float32)
    cond_map = RNG.normal(size=(2, *map_size, 5)).astype(np.float32)
    layer = _random_heads(layer_class)
    out = ops.convert_to_numpy(layer([x, cond_map]))
    pixels = ops.convert_to_numpy(ops.image.resize(cond_map, (12, 10), interpolation="bilinear"))
    expected = np.stack([
        np.stack([ops.convert_to_numpy(layer([x[i:i + 1], pixels[i:i + 1, r, c]]))[0, r, c]
                  for c in range(10)]) for i in range(2) for r in range(12)
    ]).reshape(out.shape)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_conditioning_of_wrong_rank_is_explained():
    with pytest.raises(ValueError, match=r"conditioning must be \[batch, d\] or a map"):
        ConditionalInstanceNormalization()([np.zeros((1, 4, 4, 2)), np.zeros((1, 4, 2))])
    with pytest.raises(ValueError, match=r"conditioning must be \[batch, d\] with known d"):
        FiLM()([np.zeros((1, 3)), np.zeros((1, 2, 2, 3))])


@pytest.fixture(scope="module")
def network():
    space = style_transfer_loss_space()
    net = build_network(space, num_styles=2, width_multiplier=0.125, conditioning_units=16)
    rng = np.random.default_rng(1)
    for layer in net.layers:
        if layer.name.endswith("_cin"):  # make lambda matter
            layer.set_weights([w + 0.3 * rng.normal(size=w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    return net


def test_map_twin_shares_weights_and_matches_with_a_constant_map(network, tmp_path):
    space = style_transfer_loss_space()
    twin = lambda_map_network(network)
    photo = RNG.uniform(size=(40, 36, 3)).astype(np.float32)
    lam = with_strength(space, 3.0)
    expected = stylize(network, photo, lam, style_index=1)
    constant = np.broadcast_to(lam, (10, 9, space.size))
    got = lambda_maps.stylize_with_map(twin, photo, constant, style_index=1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    twin.save(tmp_path / "twin.keras")
    reloaded = keras.saving.load_model(tmp_path / "twin.keras")
    np.testing.assert_allclose(
        lambda_maps.stylize_with_map(reloaded, photo, constant, style_index=1), expected, atol=1e-5)


def test_map_twin_tiles_large_images(network):
    space = style_transfer_loss_space()
    twin = lambda_map_network(network)
    photo = RNG.uniform(size=(70, 90, 3)).astype(np.float32)
    lam = with_strength(space, 0.5)
    tiling = dict(max_pixels=1000, tile_size=48, overlap=8)
    tiled = lambda_maps.stylize_with_map(twin, photo, np.broadcast_to(lam, (5, 5, space.size)),
                                         **tiling)
    np.testing.assert_allclose(tiled, stylize(network, photo, lam, **tiling), atol=1e-5)


def test_blend_weights_are_exact_at_levels_and_sum_to_one():
    levels = np.array([0.1, 1.0, 10.0])
    strengths = np.array([[0.1, 1.0, 10.0, np.sqrt(10.0)]])
    weights = lambda_maps.blend_weights(strengths, levels)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(weights[:, 0, :3], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(weights[1:, 0, 3], [0.5, 0.5], atol=1e-6)
    assert len(lambda_maps.strength_levels(np.array([1.0, 1.0, 2.0]))) == 2
    np.testing.assert_allclose(lambda_maps.strength_levels(np.geomspace(0.1, 10, 50)),
                               np.geomspace(0.1, 10, 5))


def test_strength_map_has_no_bleed_across_a_sharp_edge(network):
    space = style_transfer_loss_space()
    photo = RNG.uniform(size=(32, 48, 3)).astype(np.float32)
    strengths = np.where(np.arange(48) < 24, 0.1, 10.0) * np.ones((32, 1))
    out = lambda_maps.stylize_strength_map(network, photo, strengths, style_index=1)
    low = stylize(network, photo, with_strength(space, 0.1), 1)
    high = stylize(network, photo, with_strength(space, 10.0), 1)
    assert np.abs(high - low).mean() > 1e-3
    np.testing.assert_allclose(out[:, :24], low[:, :24], atol=1e-6)
    np.testing.assert_allclose(out[:, 24:], high[:, 24:], atol=1e-6)
    with pytest.raises(ValueError, match="allowed range"):
        lambda_maps.stylize_strength_map(network, photo, strengths * 100)


def test_gray_to_strength_is_log_interpolated():
    gray = np.array([[0, 255]], np.uint8)
    np.testing.assert_allclose(lambda_maps.strengths_from_gray(gray, 0.1, 10.0), [[0.1, 10.0]],
                               rtol=1e-6)
    np.testing.assert_allclose(lambda_maps.strengths_from_gray(np.array([[0.5]]), 0.1, 10.0),
                               [[1.0]], rtol=1e-6)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "trainers.stylize", *args],
                          capture_output=True, text=True, timeout=300)


def test_stylize_cli_strength_map(network, tmp_path):
    model = tmp_path / "m.keras"
    network.save(model)
    photo = tmp_path / "photo.png"
    save_image(str(photo), (RNG.uniform(size=(40, 60, 3)) * 255).astype(np.uint8))
    brush = np.zeros((20, 30, 3), np.uint8)
    brush[:, 15:] = 255
    save_image(str(tmp_path / "map.png"), brush)
    out = tmp_path / "out.png"
    done = _cli(f"--model={model}", f"--image={photo}", f"--out={out}", "--style=1",
                f"--strength_map={tmp_path / 'map.png'}", "--strength_map_range=0.2,5")
    assert done.returncode == 0, done.stderr
    assert "resized to the photo's 60x40" in done.stderr
    assert load_image(str(out)).shape == (40, 60, 3)
    bad = _cli(f"--model={model}", f"--image={photo}", f"--out={out}",
               f"--strength_map={tmp_path / 'map.png'}", "--strength_map_range=0.01,5")
    assert bad.returncode != 0 and "allowed strengths" in bad.stderr
    (tmp_path / "notes.txt").write_text("not an image")
    bad = _cli(f"--model={model}", f"--image={photo}", f"--out={out}",
               f"--strength_map={tmp_path / 'notes.txt'}")
    assert bad.returncode != 0 and "notes.txt" in bad.stderr and "Traceback" not in bad.stderr


def test_stylize_cli_one_pass_strength_map_is_the_map_twins_output(network, tmp_path):
    model = tmp_path / "m.keras"
    network.save(model)
    photo = (RNG.uniform(size=(40, 60, 3)) * 255).astype(np.uint8)
    save_image(str(tmp_path / "photo.png"), photo)
    brush = np.zeros((40, 60, 3), np.uint8)
    brush[:, 30:] = 255
    save_image(str(tmp_path / "map.png"), brush)
    out = tmp_path / "out.png"
    done = _cli(f"--model={model}", f"--image={tmp_path / 'photo.png'}", f"--out={out}", "--style=1",
                f"--strength_map={tmp_path / 'map.png'}", "--strength_map_range=0.2,5", "--one_pass")
    assert done.returncode == 0, done.stderr
    space = style_transfer_loss_space()
    strengths = lambda_maps.strengths_from_gray(brush[..., 0], 0.2, 5.0)
    expected = lambda_maps.stylize_with_map(lambda_map_network(network), photo,
                                            lambda_maps.lambda_map(space, strengths), style_index=1)
    assert np.abs(load_image(str(out)).astype(np.float32) / 255.0 - expected).max() <= 1.0 / 255.0 + 1e-6
    blended = lambda_maps.stylize_strength_map(network, photo, strengths, style_index=1)
    assert np.abs(blended - expected).mean() > 2.0 / 255.0  # a different computation
    lonely = _cli(f"--model={model}", f"--image={tmp_path / 'photo.png'}", f"--out={out}", "--one_pass")
    assert lonely.returncode != 0 and "--strength_map" in lonely.stderr and "Traceback" not in lonely.stderr
