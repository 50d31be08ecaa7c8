import numpy as np
import pytest
import keras
from keras import ops

from yoto_tf.layers import InstanceNormalization
from yoto_tf import (
    Coefficient,
    ConditionalInstanceNormalization,
    ConditioningNetwork,
    FiLM,
    GDN,
    LossSpace,
    NearestUpsampling2D,
    ReflectionPadding2D,
    find_loss_space,
)

SPACE = LossSpace([Coefficient("content", 0.1, 10.0), Coefficient("style", 1e-3, 1.0)])


def _conditioned_net(extra=None):
    image = keras.Input((None, None, 3), name="image")
    lam = keras.Input((SPACE.size,), name="loss_weights")
    emb = ConditioningNetwork(SPACE, units=16, name="conditioning")(lam)
    h = keras.layers.Conv2D(8, 3, padding="same")(ReflectionPadding2D(1)(image))
    h = ConditionalInstanceNormalization(name="cin")([h, emb])
    h = FiLM(name="film")([h, emb])
    h = GDN(name="gdn")(h)
    h = GDN(inverse=True, name="igdn")(h)
    h = NearestUpsampling2D(2)(h)
    out = keras.layers.Conv2D(3, 3, padding="same")(h)
    return keras.Model([image, lam], out)


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(w.numpy() + 0.1 * rng.standard_normal(w.shape).astype("float32"))


def test_cin_starts_as_instance_norm_and_normalizes():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 8, 8, 4)).astype("float32")
    emb = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    y = ops.convert_to_numpy(ConditionalInstanceNormalization()([x, emb]))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_cin_scale_and_offset_depend_on_conditioning_per_example():
    layer = ConditionalInstanceNormalization(kernel_initializer="ones")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    emb = np.array([[0.0, 0.0], [1.0, 2.0]], "float32")
    y = ops.convert_to_numpy(layer([x, emb]))
    # Example 0: gamma = 1, beta = 0. Example 1: gamma = 1 + 3, beta = 0 + 3.
    np.testing.assert_allclose(y[0].std(axis=(0, 1)), 1.0, atol=1e-3)
    np.testing.assert_allclose(y[1].std(axis=(0, 1)), 4.0, atol=1e-2)
    np.testing.assert_allclose(y[1].mean(axis=(0, 1)), 3.0, atol=1e-3)


def test_film_identity_at_init_and_modulation():
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    emb = np.ones((2, 5), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(FiLM()([x, emb])), x, atol=1e-6)
    film = FiLM(kernel_initializer="ones")
    y = ops.convert_to_numpy(film([x[:, 0, 0], emb]))  # rank 2 input
    np.testing.assert_allclose(y, x[:, 0, 0] * 6.0 + 5.0, rtol=1e-5)


@pytest.mark.parametrize("layer", [ConditionalInstanceNormalization(), FiLM()])
def test_conditioned_layer_without_conditioning_is_a_clear_error(layer):
    x = np.zeros((1, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match=r"is conditioned: call it on a pair \(x, conditioning\)"):
        layer(x)


def test_gdn_matches_formula_and_inverse_inverts():
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype("float32")
    gdn, igdn = GDN(), GDN(inverse=True)
    y = ops.convert_to_numpy(gdn(x))
    gamma = ops.convert_to_numpy(gdn.gamma)
    beta = ops.convert_to_numpy(gdn.beta)
    expected = x / np.sqrt(beta + (x**2) @ gamma)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_allclose(beta, 1.0, rtol=1e-5)
    np.testing.assert_allclose(gamma, 0.1 * np.eye(3), atol=1e-5)
    # Same parameters: inverse GDN undoes GDN up to the (small) change in the norm's input.
    igdn.build(x.shape)
    back = ops.convert_to_numpy(igdn(y))
    assert np.abs(back - x).max() < np.abs(y - x).max()


def test_gdn_parameters_stay_nonnegative_after_bad_updates():
    gdn = GDN()
    gdn.build((1, 4, 4, 2))
    gdn.beta_param.assign(-np.ones(2, "float32"))
    gdn.gamma_param.assign(-np.ones((2, 2), "float32"))
    assert ops.convert_to_numpy(gdn.beta).min() >= 1e-6 - 1e-9
    assert ops.convert_to_numpy(gdn.gamma).min() >= 0.0


def _fit_gdn_below_its_bound(target):
    """A GDN whose off-diagonal gamma parameters sit below their bound (effective gamma 0),
    fitted with SGD towards ``target``; returns the effective gamma and the raw parameters."""
    x = np.random.default_rng(0).normal(size=(16, 4, 4, 2)).astype("float32")
    inputs = keras.Input((4, 4, 2))
    gdn = GDN()
    model = keras.Model(inputs, gdn(inputs))
    gdn.gamma_param.assign(np.array([[0.3, 0.0015], [0.0015, 0.3]], "float32"))  # bound 2**-9
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x, np.full_like(x, target), epochs=20, batch_size=16, verbose=0)
    return ops.convert_to_numpy(gdn.gamma), ops.convert_to_numpy(gdn.gamma_param)


def test_gdn_gamma_below_its_bound_comes_back_when_the_loss_wants_it():
    # Target 0: the loss wants a larger denominator, so the off-diagonal gammas must grow
    # back from 0 (with a plain max() bound their gradient would be 0 forever).
    gamma, _ = _fit_gdn_below_its_bound(0.0)
    assert gamma[0, 1] > 1e-4 and gamma[1, 0] > 1e-4
    # A large target wants a smaller denominator: the gradient would push the parameters
    # further below the bound, and is stopped there (they do not drift).
    gamma, param = _fit_gdn_below_its_bound(10.0)
    assert gamma[0, 1] == 0 and param[0, 1] == np.float32(0.0015)


def test_upsampling_and_padding_shapes_and_values():
    x = np.arange(2 * 3 * 3 * 1, dtype="float32").reshape(2, 3, 3, 1)
    up = ops.convert_to_numpy(NearestUpsampling2D(2)(x))
    assert up.shape == (2, 6, 6, 1)
    np.testing.assert_array_equal(up[:, ::2, ::2], x)
    np.testing.assert_array_equal(up[:, 1::2, 1::2], x)
    pad = ops.convert_to_numpy(ReflectionPadding2D(1)(x))
    assert pad.shape == (2, 5, 5, 1)
    np.testing.assert_array_equal(pad[:, 0, 1:-1], x[:, 1])  # reflect, not edge


def test_conditioning_network_checks_lambda_width_and_carries_space():
    net = _conditioned_net()
    assert find_loss_space(net) == SPACE
    with pytest.raises(ValueError, match="2 \\(content, style\\)"):
        ConditioningNetwork(SPACE)(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="not a loss-conditioned yoto_tf model"):
        find_loss_space(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    net = _conditioned_net()
    _randomize(net)
    image = np.random.default_rng(2).random((2, 12, 10, 3)).astype("float32")
    lam = SPACE.sample_numpy(2, rng=0)
    before = net.predict([image, lam], verbose=0)
    path = tmp_path / "net.keras"
    net.save(path)
    restored = keras.models.load_model(path)
    after = restored.predict([image, lam], verbose=0)
    np.testing.assert_array_equal(before, after)
    assert find_loss_space(restored) == SPACE
    # The output really depends on lambda (conditioning survives the round trip).
    other = restored.predict([image, SPACE.sample_numpy(2, rng=5)], verbose=0)
    assert np.abs(other - after).max() > 1e-3


@pytest.mark.parametrize(
    "layer",
    [
        ConditionalInstanceNormalization(epsilon=1e-3, center=False),
        InstanceNormalization(epsilon=1e-3),
        FiLM(),
        GDN(inverse=True, beta_min=1e-4),
        NearestUpsampling2D(3),
        ReflectionPadding2D(2),
        ConditioningNetwork(SPACE, units=8, num_layers=3),
    ],
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
