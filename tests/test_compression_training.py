"""The compression training wrapper: geometric-mean normalization of the loss weights."""

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
