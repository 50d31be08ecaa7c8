"""Small loss-conditioned image networks for the mobile/ export tests.

The network uses the same TFLite-relevant building blocks as the style-transfer
transformer (reflection padding, conv, conditional instance norm fed by a
ConditioningNetwork on raw lambda, nearest upsampling, sigmoid output in [0, 1]) at a
size that converts and runs in well under a second.
"""

from __future__ import annotations

import keras
import numpy as np
import skimage.data
import skimage.transform
from keras import ops

from yoto_tf import (
    Coefficient,
    ConditionalInstanceNormalization,
    ConditioningNetwork,
    LossConditionalModel,
    LossSpace,
    NearestUpsampling2D,
    ReflectionPadding2D,
)


def tiny_loss_space() -> LossSpace:
    """Three log-uniform knobs (like the style model's content / style / tv weights)."""
    return LossSpace([
        Coefficient("content", 0.1, 10.0, default=1.0),
        Coefficient("smooth", 0.01, 1.0, default=0.1),
        Coefficient("tint", 0.001, 0.1, default=0.01),
    ])


def build_tiny_network(
    space: LossSpace | None = None, width: int = 8, num_styles: int = 0, seed: int = 0
) -> keras.Model:
    """``[image [B,H,W,3], loss_weights [B,k] (, style_index [B] int32)] -> [B,H,W,3]``.

    H and W must be even (one stride-2 conv, one 2x nearest upsampling). With
    ``num_styles > 0`` a learned per-style vector (looked up by ``style_index``) is
    concatenated to the lambda embedding.
    """
    space = space or tiny_loss_space()
    init = keras.initializers.GlorotUniform(seed)
    image = keras.Input((None, None, 3), name="image")
    lam = keras.Input((space.size,), name="loss_weights")
    inputs = [image, lam]
    emb = ConditioningNetwork(space, units=16, name="conditioning")(lam)
    if num_styles:
        style = keras.Input((), dtype="int32", name="style_index")
        inputs.append(style)
        style_embedding = keras.layers.Embedding(num_styles, 4, name="style_embedding")
        emb = keras.layers.Concatenate()([emb, style_embedding(style)])

    def cin(x, name):
        return ConditionalInstanceNormalization(
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.05, seed=seed),
            name=name,
        )([x, emb])

    x = ReflectionPadding2D(2)(image)
    x = keras.layers.Conv2D(width, 5, kernel_initializer=init)(x)
    x = keras.layers.ReLU()(cin(x, "cin_1"))
    x = ReflectionPadding2D(1)(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, kernel_initializer=init)(x)
    x = keras.layers.ReLU()(cin(x, "cin_2"))
    x = NearestUpsampling2D(2)(x)
    x = ReflectionPadding2D(1)(x)
    x = keras.layers.Conv2D(width, 3, kernel_initializer=init)(x)
    x = keras.layers.ReLU()(cin(x, "cin_3"))
    x = ReflectionPadding2D(2)(x)
    out = keras.layers.Conv2D(3, 5, activation="sigmoid", kernel_initializer=init)(x)
    return keras.Model(inputs, out, name="tiny_stylizer")


TINT = np.array([1.0, 0.6, 0.3], np.float32)


def tiny_loss_terms(image, stylized):
    """Per-example terms {name: [B]}: stay close to the input, be smooth, be sepia-tinted."""
    content = ops.mean(ops.square(stylized - image), axis=(1, 2, 3))
    dx = stylized[:, :, 1:] - stylized[:, :, :-1]
    dy = stylized[:, 1:] - stylized[:, :-1]
    smooth = ops.mean(ops.square(dx), axis=(1, 2, 3)) + ops.mean(ops.square(dy), axis=(1, 2, 3))
    tint = ops.mean(ops.square(stylized - image * TINT), axis=(1, 2, 3))
    return {"content": content, "smooth": smooth, "tint": tint}


def sample_images(size: int = 32, count: int = 3) -> np.ndarray:
    """``count`` scikit-image photos resized to float32 [count, size, size, 3] in [0, 1]."""
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(),
              skimage.data.rocket()]
    return np.stack([
        skimage.transform.resize(photos[i % len(photos)], (size, size), anti_aliasing=True)
        for i in range(count)
    ]).astype(np.float32)


def train_tiny_network(steps: int = 150, size: int = 32, seed: int = 0) -> keras.Model:
    """A tiny network trained briefly (lambda sampled per example) on random crops."""
    network = build_tiny_network(seed=seed)
    model = LossConditionalModel(
        network, tiny_loss_terms, normalize_terms=True, seed=seed
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(seed)
    photos = sample_images(128, 4)
    batches = np.stack([
        photos[rng.integers(len(photos)), y:y + size, x:x + size]
        for y, x in rng.integers(0, 128 - size, (steps * 4, 2))
    ])
    model.fit(batches, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return network
