"""The compression training wrapper: geometric-mean normalization of the loss weights."""

import keras
import numpy as np
import pytest

from yoto_tf.compression.model import CompressionNetwork, compression_loss_space, rate_distortion_terms
from yoto_tf.compression.training import CompressionTrainingModel

TINY = dict(num_filters=4, num_latent=4, conditioning_units=4)


def _loss(model, x, lam):
    y_pred = model({"inputs": x, "lambda": lam}, training=False)
    return float(model.compute_loss(x={"inputs": x, "lambda": lam}, y_pred=y_pred, training=False)), y_pred


def test_geometric_mean_weights_divide_each_example_by_sqrt_lambda():
    space = compression_loss_space((0.0018, 0.18))
    network = CompressionNetwork(space, seed=0, **TINY)
    x = np.random.default_rng(0).uniform(size=(3, 64, 64, 3)).astype(np.float32)
    lam = np.array([[0.0018, 1.0], [0.018, 1.0], [0.18, 1.0]], np.float32)
    normalized = CompressionTrainingModel(network, space, geometric_mean_weights=True, seed=0)
    plain = CompressionTrainingModel(network, space, geometric_mean_weights=False, seed=0)

    loss, y_pred = _loss(normalized, x, lam)
    plain_loss, _ = _loss(plain, x, lam)
    terms = {k: np.asarray(v) for k, v in rate_distortion_terms(x, y_pred["outputs"]).items()}
    d, r, l = terms["distortion"], terms["rate"], lam[:, 0]
    assert plain_loss == pytest.approx(np.mean(l * d + r), rel=1e-5)
    assert loss == pytest.approx(np.mean(np.sqrt(l) * d + r / np.sqrt(l)), rel=1e-5)
    # The point of it: the high-lambda example no longer outweighs the low-lambda one 100x.
    per_example = np.sqrt(l) * d + r / np.sqrt(l)
    assert per_example[2] / per_example[0] < (l[2] * d[2] + r[2]) / (l[0] * d[0] + r[0])


def test_fixed_lambda_model_is_only_rescaled():
    space = compression_loss_space(fixed_lambda=0.01)
    network = CompressionNetwork(space, seed=0, **TINY)
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    lam = np.array([[0.01, 1.0]] * 2, np.float32)
    loss, _ = _loss(CompressionTrainingModel(network, space, seed=0), x, lam)
    plain, _ = _loss(CompressionTrainingModel(network, space, geometric_mean_weights=False, seed=0), x, lam)
    assert loss == pytest.approx(plain / np.sqrt(0.01), rel=1e-5)


def _map_model(fraction=1.0):
    from yoto_tf.compression.model import compression_loss_space
    from yoto_tf.compression.training import build_model

    space = compression_loss_space()
    return space, build_model(space, 8, 8, 8, seed=0, mean_scale=True, lambda_map_fraction=fraction)


def test_a_uniform_lambda_map_trains_exactly_like_one_lambda_per_image():
    """Conditioned on a constant map, the network and the loss equal those of the same
    lambda given per example (so map training leaves ordinary examples' objective alone)."""
    space, model = _map_model()
    x = np.random.default_rng(0).random((3, 64, 64, 3)).astype("float32")
    lam = np.stack([space.make(distortion=v) for v in (0.002, 0.02, 0.15)]).astype("float32")
    maps = np.broadcast_to(lam[:, None, None, :], (3, 4, 4, 2)).copy()
    losses, images = [], []
    for conditioning in (lam, maps):
        batch = {"inputs": x, "lambda": conditioning}
        prediction = model(batch, training=False)
        losses.append(float(model.compute_loss(x=batch, y_pred=prediction, training=False)))
        images.append(np.asarray(prediction["outputs"]["x_hat"]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    np.testing.assert_allclose(images[1], images[0], atol=1e-5)


def test_a_lambda_map_weights_each_pixels_distortion_by_its_own_lambda():
    """Left half at lambda a, right half at b: the loss is (mean_x lam(x) 255^2 se(x) + bpp)
    divided by exp(mean_x log sqrt(lam(x))), computed here by hand from the outputs."""
    space, model = _map_model()
    x = np.random.default_rng(1).random((2, 64, 64, 3)).astype("float32")
    grid = np.empty((2, 4, 4, 2), np.float32)
    grid[..., 1] = 1.0
    grid[:, :, :2, 0], grid[:, :, 2:, 0] = 0.002, 0.15
    batch = {"inputs": x, "lambda": grid}
    prediction = model(batch, training=False)
    loss = float(model.compute_loss(x=batch, y_pred=prediction, training=False))
    outputs = {k: np.asarray(v, np.float64) for k, v in prediction["outputs"].items()}
    pixel_lam = np.asarray(keras.ops.image.resize(grid, (64, 64), interpolation="bilinear"), np.float64)[..., 0]
    se = 255.0 ** 2 * np.mean((x - outputs["x_hat"]) ** 2, axis=-1)
    bpp = (outputs["y_bits"] + outputs["z_bits"]) / (64 * 64)
    expected = (np.mean(pixel_lam * se, axis=(1, 2)) + bpp) / np.exp(np.mean(np.log(np.sqrt(pixel_lam)), axis=(1, 2)))
    assert loss == pytest.approx(float(np.mean(expected)), rel=1e-4)
    # and it is not the loss of one lambda per image at the mean lambda
    flat = {"inputs": x, "lambda": np.tile(space.make(distortion=float(pixel_lam.mean()))[None], (2, 1))}
    assert float(model.compute_loss(x=flat, y_pred=model(flat, training=False), training=False)) != pytest.approx(loss, rel=1e-2)


def _fills_its_box(cells):
    """Whether the True cells of a bool [h, w] grid are exactly a rectangle."""
    rows, cols = np.nonzero(cells)
    return cells[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_training_lambda_maps_are_two_level_rectangles_in_the_range():
    space, model = _map_model(fraction=0.5)
    maps = np.asarray(model.sample_lambda_map(keras.ops.zeros((64, 128, 128, 3))))
    assert maps.shape == (64, 8, 8, 2)
    coefficient = space.coefficient("distortion")
    assert coefficient.low <= maps[..., 0].min() and maps[..., 0].max() <= coefficient.high
    assert np.all(maps[..., 1] == 1.0)
    two_level = 0
    for lam_map in maps[..., 0]:
        levels = np.unique(lam_map)
        assert len(levels) <= 2
        if len(levels) == 2:
            two_level += 1
            assert _fills_its_box(lam_map == levels[0]) or _fills_its_box(lam_map == levels[1])
    assert 16 <= two_level <= 48  # about half of 64
    with pytest.raises(ValueError, match=r"lambda_map_fraction must be in \[0, 1\], got 1.5"):
        _map_model(fraction=1.5)
