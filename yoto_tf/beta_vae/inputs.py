"""Image input of the beta-VAE trainer: ``shapes``, ``folder:GLOB`` or ``tfds:NAME[:SPLIT]``.

``shapes`` is the procedural dataset of :mod:`yoto_tf.beta_vae.shapes` (held-out images come
from its ``test`` split). Any other spec goes to :func:`yoto_tf.data.image_dataset`: each
example is a random ``image_size`` square crop (images smaller than that are scaled up), so
a folder of 64 x 64 images (dSprites / Shapes3D exports) is used whole.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from yoto_tf import data as image_data
from yoto_tf.beta_vae import shapes

SHAPES = "shapes"
ACCEPTED = "'shapes', 'folder:GLOB' or 'tfds:NAME[:SPLIT]'"


def _check_spec(spec: str) -> None:
    if spec != SHAPES and not spec.startswith(("folder:", "tfds:")):
        raise ValueError(f"Unknown beta-VAE data {spec!r}; expected {ACCEPTED}.")


def training_dataset(spec: str, image_size: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Infinite batches float32 [batch_size, image_size, image_size, 3] in [0, 1].

    Raises:
      ValueError: unknown spec, a folder with no (readable) images, an unknown TFDS dataset
        (messages name the pattern / dataset).
    """
    _check_spec(spec)
    if spec == SHAPES:
        return shapes.shapes_dataset(batch_size, image_size, seed=seed, split="train")
    return image_data.image_dataset(spec, image_size, batch_size, seed=seed)


def heldout_images(spec: str, image_size: int, num_images: int, seed: int = 0) -> np.ndarray:
    """Evaluation images float32 [num_images, S, S, 3]: the shapes ``test`` split, or (for
    folder / TFDS specs) crops drawn from ``spec`` with a seed of their own, which are held
    out only if ``spec`` names held-out data (e.g. ``tfds:NAME:test``)."""
    _check_spec(spec)
    if spec == SHAPES:
        images, _ = shapes.shape_images(range(num_images), image_size, seed=seed, split="test")
        return images
    batches = image_data.image_dataset(spec, image_size, num_images, seed=seed + 1_000_003)
    return next(iter(batches)).numpy()
