"""Spatially varying lambda for style transfer: paint where the style is strong.

A *strength map* is a grayscale image: black = the lowest strength, white = the highest,
log-interpolated between (strength multiplies every style weight, as ``--strength`` does).
Two ways to apply it:

* :func:`stylize_strength_map` (what ``trainers.stylize --strength_map`` uses by default):
  stylizes the image at a few log-spaced uniform strengths and blends them per pixel (linear
  in log strength). Every region matches the uniform output of its strength exactly and a
  sharp edge in the map stays sharp; it works with every model, at the cost of one pass per
  level.
* :func:`stylize_with_map` (``--one_pass``, and the TFLite map export): ONE pass of the
  lambda-map twin of the network
  (:func:`~yoto_tf.style_transfer.transformer.lambda_map_network`, same weights), with a
  lambda map [h, w, k] fed at a quarter of the image's resolution and every conditional
  instance norm modulated per pixel. Any map, smooth ones included, in one pass; it needs a
  model trained with lambda maps (``trainers.style_transfer --lambda_map_fraction``, e.g. the
  shipped ``painters4_maps``). A model trained with one lambda per image washes out the
  strong side of a sharp map in this mode (instance normalization mixes both regions'
  statistics); ``trainers.evaluate_strength_map`` measures it.

Large images are tiled as in ``stylize``; each tile reads its own part of the map.
"""

from __future__ import annotations

import math

import numpy as np

from yoto_tf.layers import find_loss_space
from yoto_tf.style_transfer.grid import resize_gray
from yoto_tf.style_transfer.inference import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    as_float_image,
    check_style_index,
    num_styles,
    stylize,
    stylize_in_tiles,
)
from yoto_tf.style_transfer.loss_space import strength_range, style_names, with_strength
from yoto_tf.style_transfer.transformer import IMAGE_INPUT, LAMBDA_INPUT, STYLE_INPUT

MAP_DOWNSCALE = 4
"""The lambda map is fed at 1/4 of the image's resolution (the network's deepest layers)."""


def strengths_from_gray(gray: np.ndarray, low: float, high: float) -> np.ndarray:
    """Grayscale [H, W] (uint8, or float in [0, 1]) -> strengths [H, W], log-interpolated.

    Raises:
      ValueError: ``low``/``high`` not positive or ``low > high``.
    """
    if not (0 < low <= high):
        raise ValueError(f"Strength range must satisfy 0 < low <= high, got {low}, {high}.")
    gray = np.asarray(gray)
    t = gray.astype(np.float64) / 255.0 if gray.dtype == np.uint8 else np.clip(gray, 0, 1)
    return np.exp(math.log(low) + t * (math.log(high) - math.log(low))).astype(np.float32)


def check_strength_range(space, low: float, high: float, base=None) -> None:
    """Raises ValueError naming the model's allowed range when [low, high] leaves it."""
    allowed = strength_range(space, base)
    if low < allowed[0] * (1 - 1e-6) or high > allowed[1] * (1 + 1e-6) or low > high:
        raise ValueError(
            f"Strengths {low:.4g}..{high:.4g} leave the model's allowed range "
            f"[{allowed[0]:.4g}, {allowed[1]:.4g}] of allowed strengths (or low > high)."
        )


def lambda_map(space, strengths: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Strengths [h, w] -> lambda map float32 [h, w, k]: ``base`` with every style weight
    multiplied by the pixel's strength (validated against the LossSpace)."""
    base = space.default() if base is None else space.validate(base)
    styles = [space.index(name) for name in style_names(space)]
    lam = np.broadcast_to(base, strengths.shape + (space.size,)).astype(np.float32).copy()
    lam[..., styles] *= strengths[..., None]
    space.validate(lam.reshape(-1, space.size))
    return lam


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [h, w, c] -> [height, width, c], bilinear per channel."""
    return np.stack([resize_gray(array[..., c], (height, width)) for c in range(array.shape[-1])],
                    axis=-1)


def stylize_with_map(
    map_network,
    image,
    lam_map: np.ndarray,
    style_index: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Stylizes one image with one weighting per pixel.

    Args:
      map_network: a lambda-map transformer (``lambda_map_network(network)``).
      image: uint8 or float [0, 1] [H, W, 3].
      lam_map: float32 [h, w, k] covering the whole image (any h, w; resized here).
      style_index, max_pixels, tile_size, overlap: as in ``stylize``.

    Returns:
      float32 [H, W, 3] in [0, 1].
    """
    space = find_loss_space(map_network)
    lam_map = np.asarray(lam_map, np.float32)
    if lam_map.ndim != 3 or lam_map.shape[-1] != space.size:
        raise ValueError(f"lam_map must be [h, w, {space.size}], got {lam_map.shape}.")
    space.validate(lam_map.reshape(-1, space.size))
    check_style_index(map_network, style_index)
    pixels = as_float_image(image)
    height, width = pixels.shape[:2]
    small = _resize(lam_map, math.ceil(height / MAP_DOWNSCALE), math.ceil(width / MAP_DOWNSCALE))

    def run(tile: np.ndarray, top: int, left: int) -> np.ndarray:
        h, w = tile.shape[:2]
        rows = slice(top // MAP_DOWNSCALE, max(math.ceil((top + h) / MAP_DOWNSCALE), top // MAP_DOWNSCALE + 1))
        cols = slice(left // MAP_DOWNSCALE, max(math.ceil((left + w) / MAP_DOWNSCALE), left // MAP_DOWNSCALE + 1))
        feed = {IMAGE_INPUT: tile[None], LAMBDA_INPUT: small[None, rows, cols]}
        if num_styles(map_network) > 1:
            feed[STYLE_INPUT] = np.array([style_index], np.int32)
        return np.asarray(map_network.predict_on_batch(feed))[0]

    return stylize_in_tiles(pixels, run, max_pixels, tile_size, overlap)


def strength_levels(strengths: np.ndarray, max_levels: int = 5) -> np.ndarray:
    """The uniform strengths to blend: the map's distinct values when there are at most
    ``max_levels`` of them, else ``max_levels`` log-spaced values over its range."""
    distinct = np.unique(strengths)
    if len(distinct) <= max_levels:
        return distinct.astype(np.float64)
    return np.geomspace(float(distinct[0]), float(distinct[-1]), max_levels)


def blend_weights(strengths: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per-pixel weights [L, H, W] of the levels: linear in log strength between the two
    neighbouring levels (each pixel's weights sum to 1)."""
    logs = np.log(levels)
    position = np.interp(np.log(strengths), logs, np.arange(len(levels), dtype=np.float64))
    weights = np.zeros((len(levels),) + strengths.shape, np.float32)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, len(levels) - 1)
    fraction = (position - lower).astype(np.float32)
    rows, cols = np.indices(strengths.shape)
    np.add.at(weights, (lower, rows, cols), 1.0 - fraction)
    np.add.at(weights, (upper, rows, cols), fraction)
    return weights


def stylize_strength_map(
    network,
    image,
    strengths: np.ndarray,
    base: np.ndarray | None = None,
    style_index: int = 0,
    max_levels: int = 5,
    **stylize_kwargs,
) -> np.ndarray:
    """Stylizes ``image`` with a strength per pixel by blending uniform stylizations.

    Args:
      network: a (per-image lambda) style transformer.
      image: uint8 or float [0, 1] [H, W, 3].
      strengths: float [H, W], each inside the model's strength range around ``base``.
      base: lambda [k] the strengths scale (default: the model's defaults).
      max_levels: most uniform passes (distinct map values, or log-spaced levels).
      stylize_kwargs: tiling options of ``stylize``.

    Returns:
      float32 [H, W, 3] in [0, 1].
    """
    space = find_loss_space(network)
    strengths = np.asarray(strengths, np.float64)
    if strengths.shape != np.shape(image)[:2]:
        raise ValueError(f"strengths {strengths.shape} must match the image {np.shape(image)[:2]}.")
    check_strength_range(space, float(strengths.min()), float(strengths.max()), base)
    strengths = np.clip(strengths, *strength_range(space, base))
    levels = strength_levels(strengths, max_levels)
    weights = blend_weights(strengths, levels)
    result = np.zeros(np.shape(image)[:2] + (3,), np.float32)
    for level, weight in zip(levels, weights):
        if weight.any():
            lam = with_strength(space, float(level), base)
            result += stylize(network, image, lam, style_index, **stylize_kwargs) * weight[..., None]
    return result
