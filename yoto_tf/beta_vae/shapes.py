"""A procedural shapes dataset with known generative factors (dSprites / Shapes3D-like).

Every image shows one coloured shape on a coloured background. Its factors are drawn
independently per example:

==================  ==========================================================================
``shape``           int in {0, 1, 2}: ``SHAPE_NAMES`` = square, ellipse, triangle
``scale``           size, as a fraction of the image side, uniform in ``SCALE_RANGE``
                    (square: half side; ellipse: semi-axes 1.2*scale and 0.6*scale;
                    triangle: circumradius 1.3*scale)
``rotation``        radians, uniform in [0, 2*pi) (counter-clockwise)
``x``, ``y``        centroid of the shape, as a fraction of the width / height (``y`` counts
                    down from the top row), uniform in ``POSITION_RANGE``
``object_hue``      hue of the shape (HSV saturation 0.9, value 0.95), uniform in [0, 1)
``background_hue``  hue of the background (HSV saturation 0.6, value 0.35), uniform in [0, 1)
==================  ==========================================================================

Generation is deterministic and needs no download: the factors of example ``i`` of a split
depend only on ``(seed, split, i)``, whatever the batch size. Edges are anti-aliased by 2x2
supersampling. Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` in image
coordinates, so a shape at ``x = 0.5`` is centred on the middle of the image.
"""

from __future__ import annotations

import colorsys
import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # only shapes_dataset needs TensorFlow; it imports it when called
    import tensorflow as tf

SHAPE_NAMES = ("square", "ellipse", "triangle")
SCALE_RANGE = (0.08, 0.16)
POSITION_RANGE = (0.25, 0.75)
SPLITS = {"train": 0, "test": 1, "validation": 2}
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y", "object_hue", "background_hue")

_OBJECT_SATURATION, _OBJECT_VALUE = 0.9, 0.95
_BACKGROUND_SATURATION, _BACKGROUND_VALUE = 0.6, 0.35
_SUPERSAMPLING = 2


@dataclasses.dataclass(frozen=True)
class ShapeFactors:
    """The generative factors of N images; every field is a NumPy array of shape [N]."""

    shape: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    x: np.ndarray
    y: np.ndarray
    object_hue: np.ndarray
    background_hue: np.ndarray

    def __len__(self) -> int:
        return len(self.shape)

    def as_array(self) -> np.ndarray:
        """float32 [N, 7], columns in ``FACTOR_NAMES`` order."""
        return np.stack([getattr(self, n) for n in FACTOR_NAMES], axis=-1).astype(np.float32)


def _split_id(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"Unknown shapes split {split!r}; expected one of {sorted(SPLITS)}.")
    return SPLITS[split]


def sample_factors(indices: Sequence[int], seed: int = 0, split: str = "train") -> ShapeFactors:
    """The factors of examples ``indices`` of ``split``; each depends only on (seed, split, i)."""
    split_id = _split_id(split)
    draws = np.array(
        [np.random.default_rng([seed, split_id, int(i)]).random(7) for i in indices],
        dtype=np.float64,
    ).reshape(-1, 7)
    lo, hi = POSITION_RANGE
    return ShapeFactors(
        shape=np.minimum((draws[:, 0] * len(SHAPE_NAMES)).astype(np.int64), len(SHAPE_NAMES) - 1),
        scale=SCALE_RANGE[0] + draws[:, 1] * (SCALE_RANGE[1] - SCALE_RANGE[0]),
        rotation=draws[:, 2] * 2.0 * np.pi,
        x=lo + draws[:, 3] * (hi - lo),
        y=lo + draws[:, 4] * (hi - lo),
        object_hue=draws[:, 5],
        background_hue=draws[:, 6],
    )


def _hsv_to_rgb(hues: np.ndarray, saturation: float, value: float) -> np.ndarray:
    return np.array([colorsys.hsv_to_rgb(h, saturation, value) for h in hues], np.float32).reshape(-1, 3)


def _inside(factors: ShapeFactors, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) [N, P] in shape-local coordinates (fractions of the image side,
    already un-rotated) lie inside each example's shape; bool [N, P]."""
    inside = np.zeros(u.shape, bool)
    scale = factors.scale.astype(np.float32)[:, None]
    for kind in range(len(SHAPE_NAMES)):
        rows = np.flatnonzero(factors.shape == kind)
        inside[rows] = _SHAPE_TESTS[kind](u[rows], v[rows], scale[rows])
    return inside


def _inside_square(u, v, s):
    return (np.abs(u) <= s) & (np.abs(v) <= s)


def _inside_ellipse(u, v, s):
    return (u / (1.2 * s)) ** 2 + (v / (0.6 * s)) ** 2 <= 1.0


def _inside_triangle(u, v, s):
    """Equilateral triangle, centroid at the origin, a vertex at 90 degrees: inside when the
    projection on each of the three outward edge normals is at most the inradius."""
    inradius = 0.5 * 1.3 * s
    inside = np.ones(u.shape, bool)
    for angle in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
        inside &= u * np.float32(np.cos(angle)) + v * np.float32(np.sin(angle)) <= inradius
    return inside


_SHAPE_TESTS = (_inside_square, _inside_ellipse, _inside_triangle)


def render(factors: ShapeFactors, image_size: int = 64) -> np.ndarray:
    """Renders images from their factors: float32 [N, image_size, image_size, 3] in [0, 1]."""
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}.")
    n, k = len(factors), _SUPERSAMPLING
    # Sub-pixel sample centres (fractions of the side); y grows downwards, as rows do.
    ticks = ((np.arange(image_size * k) + 0.5) / (image_size * k)).astype(np.float32)
    py, px = np.meshgrid(ticks, ticks, indexing="ij")
    f32 = lambda a: a.astype(np.float32)[:, None]
    dx = px.reshape(1, -1) - f32(factors.x)
    dy = f32(factors.y) - py.reshape(1, -1)  # up is positive, for a counter-clockwise angle
    cos, sin = f32(np.cos(factors.rotation)), f32(np.sin(factors.rotation))
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    coverage = _inside(factors, u, v).reshape(n, image_size, k, image_size, k).mean(axis=(2, 4))
    obj = _hsv_to_rgb(factors.object_hue, _OBJECT_SATURATION, _OBJECT_VALUE)
    background = _hsv_to_rgb(factors.background_hue, _BACKGROUND_SATURATION, _BACKGROUND_VALUE)
    alpha = coverage[..., None].astype(np.float32)
    return alpha * obj[:, None, None, :] + (1.0 - alpha) * background[:, None, None, :]


def shape_images(
    indices: Sequence[int], image_size: int = 64, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, ShapeFactors]:
    """Images float32 [N, S, S, 3] in [0, 1] and factors of examples ``indices``."""
    factors = sample_factors(indices, seed, split)
    return render(factors, image_size), factors


def shapes_dataset(
    batch_size: int,
    image_size: int = 64,
    seed: int = 0,
    split: str = "train",
    num_examples: int | None = None,
    with_factors: bool = False,
) -> tf.data.Dataset:
    """Batches of procedural shape images as a ``tf.data.Dataset`` (TensorFlow only; the
    rest of this module is NumPy, for any Keras backend).

    Args:
      batch_size: images per batch.
      image_size: side S of the square images.
      seed: dataset seed; the same (seed, split) always yields the same examples in order.
      split: ``"train"``, ``"test"`` or ``"validation"`` (independent streams: held-out
        examples, and a third set for choosing settings without touching the test set).
      num_examples: examples 0..num_examples-1 once (last batch may be smaller); ``None``:
        an infinite stream of fresh examples (batches of exactly ``batch_size``).
      with_factors: yield ``(images, factors)`` with factors float32 [B, 7] in
        ``FACTOR_NAMES`` order instead of images alone.

    Returns:
      A dataset of float32 [B, S, S, 3] in [0, 1] (or pairs, see ``with_factors``).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    _split_id(split)
    indices = tf.data.Dataset.counter() if num_examples is None else tf.data.Dataset.range(num_examples)

    def make_batch(batch_indices):
        images, factors = shape_images(batch_indices, image_size, seed, split)
        return images, factors.as_array()

    def to_tensors(batch_indices):
        images, factors = tf.numpy_function(
            make_batch, [batch_indices], [tf.float32, tf.float32], stateful=False
        )
        images = tf.ensure_shape(images, [None, image_size, image_size, 3])
        factors = tf.ensure_shape(factors, [None, len(FACTOR_NAMES)])
        return (images, factors) if with_factors else images

    batches = indices.batch(batch_size, drop_remainder=num_examples is None)
    return batches.map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )
