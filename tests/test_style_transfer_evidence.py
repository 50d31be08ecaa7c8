"""Evidence that the knobs work: a briefly trained model trades content for style monotonically;
and that ImageNet VGG features (the offline 8-bit VGG19) keep a photo's structure.

Trains a small model on the built-in data (scikit-image photos, built-in style, seeded random
VGG weights so it runs offline), then measures every loss term with a FIXED reference
weighting (each term divided by the running mean it was normalized by during training)
while the style-strength input rises.
"""

import os

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from yoto_tf import image_sources

from yoto_tf.images import load_image, save_image
from yoto_tf.layers import find_loss_space as network_space
from yoto_tf.style_transfer.evaluation import edge_correlation, strength_sweep
from yoto_tf.style_transfer.inference import stylize
from yoto_tf.style_transfer import grid
from yoto_tf.style_transfer.loss_space import (
    strength_range,
    style_transfer_loss_space,
    with_strength,
)
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.training import StyleTransferModel, training_dataset
from yoto_tf.style_transfer.transformer import build_network

STEPS = 150
CROP = 48
EVAL_SIZE = 64


def train_small_model(seed=0):
    keras.utils.set_random_seed(seed)
    space = style_transfer_loss_space()
    # Offline and fast: seeded random VGG16 features and a texture-filling style image
    # (scikit-image's immunohistochemistry photo), whose Gram statistics random features
    # still separate.
    losses = StyleTransferLoss(
        [skimage.data.immunohistochemistry()], vgg="vgg16", vgg_weights="none",
        style_size=2 * CROP,
    )
    network = build_network(space, width_multiplier=0.25)  # 256-unit conditioning MLP
    model = StyleTransferModel(network, losses, seed=seed)
    model.compile(keras.optimizers.Adam(2e-3))
    model.fit(training_dataset("builtin", CROP, 4, seed=seed), steps_per_epoch=STEPS,
              epochs=1, verbose=0)
    return model


@pytest.mark.slow
def test_style_loss_falls_and_content_loss_rises_with_strength():
    model = train_small_model()
    images = np.stack([
        tf.image.resize(load_image(path) / 255.0, (EVAL_SIZE, EVAL_SIZE)).numpy()
        for path in image_sources.builtin_image_paths()
    ]).astype(np.float32)
    reference = dict(zip(model.loss_space.names, model.term_means.numpy()))
    sweep = strength_sweep(model.network, model.loss_terms, images, num=5,
                           reference_scales=reference)
    print(sweep.table())
    # After 150 steps the style loss levels off at the top of the range: between neighbouring
    # strengths it may stay level (within 5 %, run-to-run numerics), never rise beyond that.
    assert np.all(sweep.style_loss[1:] < 1.05 * sweep.style_loss[:-1]), sweep.table()
    assert np.all(np.diff(sweep.style_loss[:3]) < 0), sweep.table()
    assert np.all(np.diff(sweep.content_loss) > 0), sweep.table()
    assert sweep.style_loss[0] > 1.3 * sweep.style_loss[-1], sweep.table()
    assert np.all(sweep.output_change > 2e-3), sweep.table()


def train_briefly_with(vgg_weights, content, steps=150, crop=64):
    keras.utils.set_random_seed(0)
    losses = StyleTransferLoss(
        [load_image(image_sources.builtin_style_image_path())], vgg="vgg19", vgg_weights=vgg_weights,
        style_size=128,
    )
    network = build_network(style_transfer_loss_space(), width_multiplier=0.25)
    model = StyleTransferModel(network, losses, seed=0)
    model.compile(keras.optimizers.Adam(2e-3))
    model.fit(training_dataset(content, crop, 4, seed=0), steps_per_epoch=steps, epochs=1,
              verbose=0)
    return network


@pytest.mark.slow
def test_imagenet_vgg_features_keep_the_photos_structure_better_than_random_ones(tmp_path):
    """Edge correlation (Sobel, Pearson) between an unseen photo and its stylization.

    Both models train on the built-in photos except the cat, then stylize the cat at the
    lowest strength, where a model should keep the most of the photo. With 64-pixel crops
    the measured gap was 0.16 and 0.21 for seeds 0 and 1 (ImageNet 0.33 / 0.27, random 0.17 /
    0.05); with 80-pixel crops 0.28 and 0.36 at about 1.5 times the time; with 112-pixel
    crops 0.07-0.11 at three times the time. The gap depends on the initialization at this
    scale: when the one-time conversion of the 8-bit weights still drew from the global seed
    (so a first run initialized the transformer differently), seed 0 gave 0.22 / 0.17.
    """
    held_out = "chelsea"
    for path in image_sources.builtin_image_paths():
        if held_out not in path:
            save_image(str(tmp_path / (os.path.basename(path) + ".png")), load_image(path))
    photo = grid.fit_longer_side(load_image(skimage.data.data_dir + "/chelsea.png"), 192)
    correlations = {}
    for weights in ("imagenet8bit", "none"):
        network = train_briefly_with(weights, f"folder:{tmp_path}/*.png")
        space = network_space(network)
        low = stylize(network, photo, with_strength(space, strength_range(space)[0]))
        correlations[weights] = edge_correlation(photo, low)
    print(correlations)
    assert correlations["imagenet8bit"] > correlations["none"] + 0.1, correlations
