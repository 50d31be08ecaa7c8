"""Training wiring: the conditioner really learns (a public port forgot this), data, model."""

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from yoto_tf import ConditionalInstanceNormalization, ConditioningNetwork
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.training import StyleTransferModel, training_dataset
from yoto_tf.style_transfer.transformer import build_network


def _conditioning_variables(network):
    variables = []
    for layer in network.layers:
        if isinstance(layer, (ConditioningNetwork, ConditionalInstanceNormalization)):
            variables += layer.trainable_weights
    return variables


@pytest.fixture(scope="module")
def two_style_model():
    keras.utils.set_random_seed(0)
    space = style_transfer_loss_space()
    styles = [skimage.data.coffee()[::8, ::8], skimage.data.astronaut()[::16, ::16]]
    losses = StyleTransferLoss(styles, vgg_weights="none", style_size=32)
    network = build_network(space, num_styles=2, width_multiplier=0.25, conditioning_units=32)
    model = StyleTransferModel(network, losses, seed=0)
    model.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)  # no tracing: faster here
    return model


def _batch(seed, size=16, batch=4):
    rng = np.random.default_rng(seed)
    return {"inputs": {"image": rng.random((batch, size, size, 3)).astype(np.float32),
                       "style_index": np.array([0, 1, 0, 1], np.int32)}}


def test_every_conditioning_weight_learns(two_style_model):
    model = two_style_model
    network = model.network
    model.train_on_batch(_batch(0))  # the first step moves the zero-initialized CIN heads
    variables = _conditioning_variables(network)
    # 2 Dense layers (kernel, bias) + 16 CINs x (gamma_kernel, gamma, beta_kernel, beta).
    assert len(variables) == 2 * 2 + 16 * 4
    # Gradients of the weighted loss reach every conditioning weight ...
    batch = _batch(1)
    with tf.GradientTape() as tape:
        outputs = model(batch, training=True)
        loss = model.compute_loss(x=batch, y_pred=outputs)
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads):
        assert grad is not None, var.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0.0, var.path
    # ... and two more optimizer steps change every one of them.
    before = [v.numpy().copy() for v in variables]
    model.train_on_batch(_batch(2))
    model.train_on_batch(_batch(3))
    for var, old in zip(variables, before):
        changed = np.mean(var.numpy() != old)
        assert changed > 0.5, f"{var.path}: only {changed:.0%} of its entries changed"


def test_terms_are_normalized_by_running_means(two_style_model):
    means = two_style_model.term_means.numpy()
    assert means.shape == (7,) and np.all(means > 0) and not np.allclose(means, 1.0)


def test_training_dataset_adds_random_style_indices():
    dataset = training_dataset("builtin", 24, 6, num_styles=3, seed=0)
    batch = next(iter(dataset))
    assert batch["inputs"]["image"].shape == (6, 24, 24, 3)
    indices = batch["inputs"]["style_index"].numpy()
    assert indices.dtype == np.int32 and indices.shape == (6,)
    assert set(indices) <= {0, 1, 2}
    single = next(iter(training_dataset("builtin", 24, 2, seed=0)))
    assert set(single["inputs"]) == {"image"}


def test_lambda_sampler_ties_style_weights_on_some_rows(two_style_model):
    model = two_style_model
    space = model.loss_space
    lam = keras.ops.convert_to_numpy(model.sample_lambda(4000))
    assert np.all(lam >= space.low * (1 - 1e-6)) and np.all(lam <= space.high * (1 + 1e-6))
    styles = lam[:, 1:6]  # the five style weights share one range here
    tied = np.all(np.isclose(styles, styles[:, :1], rtol=1e-5), axis=1)
    assert 0.45 < tied.mean() < 0.55
    # Marginals stay log-uniform: log of each style weight spreads evenly over its range.
    positions = np.log(styles / space.low[1]) / np.log(space.high[1] / space.low[1])
    np.testing.assert_allclose(np.histogram(positions, bins=4, range=(0, 1))[0] / positions.size,
                               0.25, atol=0.02)
    # Content and TV are never tied to the style weights.
    assert np.mean(np.isclose(lam[:, 0] / space.default()[0], styles[:, 0] / space.default()[1])) < 0.01


def test_flat_training_crops_give_finite_gradients():
    # Black borders / clipped sky make perfectly flat crops; without the training-time
    # dithering every instance norm sees zero variance and the gradient overflows.
    keras.utils.set_random_seed(0)
    space = style_transfer_loss_space()
    losses = StyleTransferLoss([skimage.data.coffee()[::8, ::8]], vgg_weights="none", style_size=32)
    network = build_network(space, width_multiplier=0.25, conditioning_units=16)
    rng = np.random.default_rng(0)
    for layer in network.layers:  # a trained-like state: non-zero CIN offsets
        if isinstance(layer, ConditionalInstanceNormalization):
            layer.beta.assign(0.5 * rng.standard_normal(layer.beta.shape))
    model = StyleTransferModel(network, losses, seed=0)
    model.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    flat = np.stack([np.full((24, 24, 3), v, np.float32) for v in (0.0, 0.5, 1.0, 0.2)])
    batch = {"inputs": {"image": flat}}
    with tf.GradientTape() as tape:
        outputs = model(batch, training=True)
        loss = model.compute_loss(x=batch, y_pred=outputs)
    for var, grad in zip(network.trainable_variables,
                         tape.gradient(loss, network.trainable_variables)):
        assert np.all(np.isfinite(grad.numpy())), var.path
    model.train_on_batch(batch)
    assert all(np.all(np.isfinite(v.numpy())) for v in network.weights)
