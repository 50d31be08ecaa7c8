"""The loss-conditional training step, and proof that conditioning on lambda works."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from keras import ops

from yoto_tf import LossConditionalModel, toy

HELD_OUT = np.geomspace(0.013, 77.0, 20).astype(np.float32)  # inside [0.01, 100], not on a grid
TOLERANCE = 0.1  # max Euclidean distance to y*(lambda) required of the conditioned model


def _train_toy(conditioned, steps=1500, seed=0):
    keras.utils.set_random_seed(seed)
    space = toy.loss_space()
    model = LossConditionalModel(
        toy.build_network(space, conditioned), toy.loss_terms, loss_space=space, seed=seed
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = tf.data.Dataset.from_tensors(tf.ones([64, 1])).repeat()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    lam = np.stack([np.ones_like(HELD_OUT), HELD_OUT], axis=-1)
    y = model.network.predict([np.ones([len(HELD_OUT), 1], np.float32), lam], verbose=0)
    return np.linalg.norm(y - toy.optimum(HELD_OUT), axis=-1)


def test_conditioned_model_follows_the_nonlinear_optimum_unconditioned_cannot():
    conditioned = _train_toy(conditioned=True)
    unconditioned = _train_toy(conditioned=False)
    # y*(lambda) moves by |a - b| = 4.03 across the range; one fixed point misses by ~2.
    assert conditioned.max() < TOLERANCE, conditioned
    assert unconditioned.max() > 10 * TOLERANCE, unconditioned
    assert unconditioned.mean() > 5 * conditioned.mean()


def _capture_model(normalize_terms=False, **kwargs):
    """A model whose loss terms record the lambdas and inputs they saw."""
    space = toy.loss_space()
    network = toy.build_network(space)

    def terms(inputs, y):
        # Term values depend on the example's input so per-example weighting is visible.
        scale = inputs[:, 0]
        return {"to_b": scale * ops.sum(ops.square(y), -1), "to_a": 2.0 * scale + 0.0 * y[:, 0]}

    return LossConditionalModel(network, terms, normalize_terms=normalize_terms, seed=3, **kwargs), space


def test_lambda_is_sampled_per_example_and_weights_the_per_example_terms():
    model, space = _capture_model()
    x = np.linspace(1.0, 2.0, 16, dtype=np.float32)[:, None]
    out = model(x)
    lam = ops.convert_to_numpy(out["lambda"])
    assert lam.shape == (16, 2) and len(np.unique(lam[:, 1])) == 16
    space.validate(lam)
    total = float(model.compute_loss(x=x, y_pred=out, training=False))
    y = ops.convert_to_numpy(out["outputs"])
    expected = np.mean(lam[:, 0] * x[:, 0] * (y**2).sum(-1) + lam[:, 1] * 2.0 * x[:, 0])
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_geometric_mean_weight_normalization_rescales_each_example():
    model, space = _capture_model(weight_normalization="geometric_mean")
    x = np.linspace(1.0, 2.0, 8, dtype=np.float32)[:, None]
    out = model(x)
    lam = ops.convert_to_numpy(out["lambda"])  # the network and the outputs keep the raw lambda
    space.validate(lam)
    weights = lam / np.sqrt(lam[:, :1] * lam[:, 1:])  # [1, beta] / sqrt(beta) per example
    y = ops.convert_to_numpy(out["outputs"])
    expected = np.mean(weights[:, 0] * x[:, 0] * (y**2).sum(-1) + weights[:, 1] * 2.0 * x[:, 0])
    np.testing.assert_allclose(float(model.compute_loss(x=x, y_pred=out)), expected, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(model.loss_weights(lam)), weights, rtol=1e-5)
    with pytest.raises(ValueError, match=r"weight_normalization must be one of \('none', "
                                         r"'geometric_mean'\), got 'sum'"):
        _capture_model(weight_normalization="sum")


def test_fixed_lambda_batches_and_metrics_per_term():
    model, space = _capture_model()
    model.compile(optimizer="adam")
    x = np.ones((8, 1), np.float32)
    lam = space.make(8, to_a=5.0)
    logs = model.evaluate({"inputs": x, "lambda": lam}, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "to_a", "to_b"}
    np.testing.assert_allclose(logs["to_a"], 2.0, rtol=1e-6)
    out = model({"inputs": x, "lambda": lam})
    np.testing.assert_allclose(ops.convert_to_numpy(out["lambda"]), lam)


def test_term_normalization_divides_by_running_mean():
    model, _ = _capture_model(normalize_terms=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # weights frozen: terms stay put
    x = np.full((32, 1), 3.0, np.float32)
    model.fit(x, batch_size=32, epochs=3, verbose=0)
    means = ops.convert_to_numpy(model.term_means)
    np.testing.assert_allclose(means[1], 6.0, rtol=1e-5)  # to_a = 2 * 3 for every example
    out = model(x)
    total = float(model.compute_loss(x=x, y_pred=out, training=False))
    lam = ops.convert_to_numpy(out["lambda"])
    y = ops.convert_to_numpy(out["outputs"])
    to_b = 3.0 * (y**2).sum(-1)
    expected = np.mean(lam[:, 0] * to_b / means[0] + lam[:, 1] * 1.0)
    np.testing.assert_allclose(total, expected, rtol=1e-4)


def test_every_conditioning_weight_receives_gradient():
    """A public port's conditioner never got gradients: check ours does (after step 1,
    once the zero-initialized FiLM heads have moved)."""
    space = toy.loss_space()
    model = LossConditionalModel(toy.build_network(space), toy.loss_terms, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.ones((16, 1), np.float32)
    model(x)
    before = {v.path: v.numpy().copy() for v in model.network.trainable_variables}
    model.fit(x, batch_size=16, epochs=3, verbose=0)
    after = {v.path: v.numpy() for v in model.network.trainable_variables}
    unchanged = [path for path, value in before.items() if np.array_equal(value, after[path])]
    assert not unchanged
    assert any("conditioning" in path for path in before)


def test_loss_terms_must_match_the_loss_space():
    space = toy.loss_space()
    model = LossConditionalModel(
        toy.build_network(space), lambda x, y: {"to_b": ops.sum(y, -1)}, seed=0
    )
    x = np.ones((2, 1), np.float32)
    with pytest.raises(ValueError, match=r"returned terms \['to_b'\] but the LossSpace weights"):
        model.compute_loss(x=x, y_pred=model(x))
    bad_shape = LossConditionalModel(
        toy.build_network(space), lambda x, y: {"to_b": y, "to_a": y}, seed=0
    )
    with pytest.raises(ValueError, match="must be per-example with shape"):
        bad_shape.compute_loss(x=x, y_pred=bad_shape(x))


MIRRORED_LAMBDAS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from yoto_tf import LossConditionalModel, toy
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = LossConditionalModel(toy.build_network(toy.loss_space()), toy.loss_terms, seed=0)
data = iter(strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensors(tf.ones([16, 1])).repeat()))
step = tf.function(lambda x: strategy.run(lambda x: model(x)["lambda"], args=(x,)))
draws = [np.concatenate([r.numpy()[:, 1] for r in strategy.experimental_local_results(step(next(data)))])
         for _ in range(3)]
all_values = np.concatenate(draws)
print("DISTINCT", len(np.unique(all_values)), "OF", all_values.size)
"""


def test_replicas_and_steps_draw_different_lambdas():
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", MIRRORED_LAMBDAS], cwd=root,
                            env=dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="2"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DISTINCT 48 OF 48" in result.stdout, result.stdout
