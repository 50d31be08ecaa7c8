"""Fast tests of the style-transfer model, loss space and perceptual losses."""

import keras
import numpy as np
import pytest
import skimage.data

from yoto_tf import ConditionalInstanceNormalization, ConditioningNetwork, find_loss_space
from yoto_tf.style_transfer import loss_space as st_space
from yoto_tf.style_transfer.losses import (
    TERM_NAMES,
    StyleTransferLoss,
    gram_matrix,
    resize_longer_side,
    total_variation,
)
from yoto_tf.style_transfer.transformer import build_network


@pytest.fixture(scope="module")
def space():
    return st_space.style_transfer_loss_space()


@pytest.fixture(scope="module")
def style_image():
    return skimage.data.coffee()[::4, ::4]  # 100x150 uint8


@pytest.fixture(scope="module")
def loss_layer(style_image):
    return StyleTransferLoss([style_image], vgg_weights="none", style_size=64)


def _randomize_conditioning(network, seed=0):
    """Gives the (zero-initialized) CIN heads random values so lambda/style matter."""
    rng = np.random.default_rng(seed)
    for layer in network.layers:
        if isinstance(layer, ConditionalInstanceNormalization):
            layer.gamma_kernel.assign(0.3 * rng.standard_normal(layer.gamma_kernel.shape))
            layer.beta_kernel.assign(0.3 * rng.standard_normal(layer.beta_kernel.shape))


# ------------------------------------------------------------------------- loss space
def test_loss_space_has_content_five_styles_and_tv(space):
    assert space.names == ("content", *st_space.STYLE_NAMES, "tv") == TERM_NAMES
    assert len(st_space.STYLE_NAMES) == 5
    for coef in space.coefficients:
        assert coef.distribution == "log_uniform"
        assert coef.low < coef.default < coef.high


def test_strength_scales_only_the_style_weights(space):
    lam = st_space.with_strength(space, 2.0)
    default = space.default()
    for name in space.names:
        i = space.index(name)
        factor = 2.0 if name.startswith("style") else 1.0
        assert lam[i] == pytest.approx(factor * default[i])
    low, high = st_space.strength_range(space)
    assert low == pytest.approx(0.1) and high == pytest.approx(10.0)
    with pytest.raises(ValueError, match="strength 20 is outside its allowed range"):
        st_space.with_strength(space, 20.0)


def test_lambda_from_values_validates(space):
    lam = st_space.lambda_from_values(space, content_weight=2.0, style_weights=[0.5] * 5)
    assert lam[space.index("content")] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="Expected 5 style weights"):
        st_space.lambda_from_values(space, style_weights=[0.1, 0.1])
    with pytest.raises(ValueError, match="'tv' = 5 is outside its allowed range"):
        st_space.lambda_from_values(space, tv_weight=5.0)


# ------------------------------------------------------------------------- transformer
@pytest.mark.parametrize("height,width", [(37, 50), (64, 64), (5, 9)])
def test_transformer_keeps_any_input_size(space, height, width):
    network = build_network(space, width_multiplier=0.25)
    image = np.random.default_rng(0).random((2, height, width, 3), np.float32)
    out = keras.ops.convert_to_numpy(network((image, space.default(2))))
    assert out.shape == (2, height, width, 3)
    assert out.min() > 0.0 and out.max() < 1.0  # sigmoid


def test_transformer_architecture(space):
    network = build_network(space)
    assert [t.name for t in network.inputs] == ["image", "loss_weights"]
    layers = network.layers
    conditioners = [l for l in layers if isinstance(l, ConditioningNetwork)]
    assert len(conditioners) == 1
    cins = [l for l in layers if isinstance(l, ConditionalInstanceNormalization)]
    convs = [l for l in layers if isinstance(l, keras.layers.Conv2D)]
    # Every conv is normalized by a CIN and every CIN reads the one ConditioningNetwork.
    assert len(cins) == len(convs) == 3 + 2 * 5 + 2 + 1
    embedding = conditioners[0].output
    for cin in cins:
        assert cin.input[1] is embedding
    assert not any(
        isinstance(l, (keras.layers.UpSampling2D, keras.layers.GroupNormalization,
                       keras.layers.BatchNormalization, keras.layers.Lambda))
        for l in layers
    )
    assert [c.filters for c in convs] == [32, 64, 128] + [128] * 10 + [64, 32, 3]
    assert [c.kernel_size for c in convs][:1] == [(9, 9)] and convs[-1].kernel_size == (9, 9)
    assert all(c.padding == "valid" for c in convs)  # reflection pads precede every conv
    assert network.layers[-2].name == "sigmoid"


def test_width_multiplier_scales_channels(space):
    half = build_network(space, width_multiplier=0.5)
    convs = [l for l in half.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32, 64] + [64] * 10 + [32, 16, 3]


def test_unconditioned_baseline_has_the_same_convolutions(space):
    plain = build_network(space, width_multiplier=0.5, conditioned=False)
    conditioned = build_network(space, width_multiplier=0.5)
    assert [t.name for t in plain.inputs] == ["image"]
    assert not any(isinstance(l, (ConditioningNetwork, ConditionalInstanceNormalization))
                   for l in plain.layers)
    kernels = lambda m: [l.kernel.shape for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    assert kernels(plain) == kernels(conditioned)
    out = plain(np.random.default_rng(0).random((1, 21, 30, 3), np.float32))
    assert tuple(out.shape) == (1, 21, 30, 3)


def test_lambda_changes_the_output(space):
    network = build_network(space, width_multiplier=0.25)
    _randomize_conditioning(network)
    image = np.random.default_rng(1).random((1, 16, 16, 3), np.float32)
    low = network((image, st_space.with_strength(space, 0.1)[None]))
    high = network((image, st_space.with_strength(space, 10.0)[None]))
    assert np.abs(keras.ops.convert_to_numpy(low - high)).mean() > 1e-3


def test_multi_style_selects_per_style_parameters(space):
    network = build_network(space, num_styles=3, width_multiplier=0.25)
    assert [t.name for t in network.inputs] == ["image", "loss_weights", "style_index"]
    _randomize_conditioning(network)
    image = np.random.default_rng(2).random((2, 16, 16, 3), np.float32)
    lam = space.default(2)
    outputs = [
        keras.ops.convert_to_numpy(
            network({"image": image, "loss_weights": lam, "style_index": np.array([s, s])})
        )
        for s in range(3)
    ]
    assert np.abs(outputs[0] - outputs[1]).mean() > 1e-3
    assert np.abs(outputs[1] - outputs[2]).mean() > 1e-3
    # Per-example: a mixed batch equals the per-style results.
    mixed = network({"image": image, "loss_weights": lam, "style_index": np.array([0, 2])})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mixed)[1], outputs[2][1], atol=1e-5)


@pytest.mark.parametrize("num_styles", [1, 2])
def test_keras_round_trip_keeps_outputs_and_loss_space(space, tmp_path, num_styles):
    network = build_network(space, num_styles=num_styles, width_multiplier=0.25)
    _randomize_conditioning(network)
    path = str(tmp_path / "model.keras")
    network.save(path)
    loaded = keras.saving.load_model(path)
    assert find_loss_space(loaded) == space
    feed = {"image": np.random.default_rng(3).random((1, 13, 22, 3), np.float32),
            "loss_weights": st_space.with_strength(space, 3.0)[None]}
    if num_styles > 1:
        feed["style_index"] = np.array([1], np.int32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(feed)), keras.ops.convert_to_numpy(network(feed)),
        atol=1e-6,
    )


# ------------------------------------------------------------------------- losses
def test_gram_matrix_is_normalized_by_hwc():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    expected = np.einsum("bhwc,bhwd->bcd", features, features) / (3 * 5 * 4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gram_matrix(features)), expected,
                               rtol=1e-5, atol=1e-6)


def test_total_variation_is_zero_for_flat_images_only():
    flat = np.full((1, 8, 8, 3), 0.3, np.float32)
    stripes = np.tile(np.array([0.0, 1.0], np.float32), (1, 8, 4, 3)).reshape(1, 8, 8, 3)
    assert keras.ops.convert_to_numpy(total_variation(flat))[0] == 0.0
    assert keras.ops.convert_to_numpy(total_variation(stripes))[0] > 0.4


def test_loss_terms_per_example_and_well_defined(loss_layer, style_image):
    rng = np.random.default_rng(0)
    content = rng.random((3, 32, 40, 3)).astype(np.float32)
    terms = loss_layer(content, content)
    assert tuple(terms) and set(terms) == set(TERM_NAMES)
    for name, value in terms.items():
        assert tuple(value.shape) == (3,), name
    np.testing.assert_allclose(keras.ops.convert_to_numpy(terms["content"]), 0.0, atol=1e-6)
    # The style image itself (at the size its targets were computed) has zero style loss.
    style = resize_longer_side(style_image, 64)[None]
    own = loss_layer(style, style)
    for name in st_space.STYLE_NAMES:
        assert keras.ops.convert_to_numpy(own[name])[0] < 1e-6 * (
            1.0 + keras.ops.convert_to_numpy(terms[name])[0]
        )
        assert keras.ops.convert_to_numpy(terms[name]).min() > 0.0


def test_vgg_is_frozen_average_pooled_and_tracked(loss_layer):
    assert not loss_layer.features.trainable
    assert loss_layer.trainable_weights == []
    layers = loss_layer.features.layers
    assert any(isinstance(l, keras.layers.AveragePooling2D) for l in layers)
    assert not any(isinstance(l, keras.layers.MaxPooling2D) for l in layers)
    # The VGG weights and the Gram targets are variables of the loss layer (checkpointed).
    names = {w.path for w in loss_layer.non_trainable_weights}
    assert any("block1_conv1" in n for n in names)
    assert sum("gram_target" in n for n in names) == 5


def test_random_vgg_weights_are_reproducible(loss_layer, style_image):
    again = StyleTransferLoss([style_image], vgg_weights="none", style_size=64)
    for a, b in zip(loss_layer.features.weights, again.features.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_multi_style_loss_picks_each_examples_style(style_image):
    second = skimage.data.astronaut()[::8, ::8]
    loss = StyleTransferLoss([style_image, second], vgg_weights="none", style_size=48)
    image = np.random.default_rng(0).random((2, 24, 24, 3)).astype(np.float32)
    both = loss({"image": image, "style_index": np.array([0, 1])}, image)
    first = loss({"image": image, "style_index": np.array([0, 0])}, image)
    assert keras.ops.convert_to_numpy(both["style_block2"])[1] != pytest.approx(
        keras.ops.convert_to_numpy(first["style_block2"])[1])
    with pytest.raises(ValueError, match="holds 2 styles"):
        loss(image, image)


def test_bad_style_image_shape_is_rejected():
    with pytest.raises(ValueError, match=r"Style image 0 must be \[H, W, 3\]"):
        StyleTransferLoss([np.zeros((8, 8), np.uint8)], vgg_weights="none")
