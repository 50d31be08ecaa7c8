"""Inference: stylize an image of any size at a chosen lambda, and sweeps along one knob.

Memory: a one-pass stylization at width multiplier 1 peaks at about 0.8 KB per input pixel
(measured: +0.82 GB of resident memory for a 1024x1024 image), so an image is stylized in
ONE pass when it has at most ``max_pixels`` pixels (default 2**21, about 2 MP, e.g.
1448x1448: ~1.7 GB). Larger images are cut into overlapping tiles of ``tile_size``
(default 1024, ~0.85 GB each) that are stylized one after the other and blended with
linear ramps over the ``overlap`` (default 128 px), so memory stays bounded whatever the
image size (the output and input arrays themselves take 12 + 3 bytes per pixel).

Trade-off of tiling: instance normalization computes its statistics per tile rather than
over the whole image, so the colour/contrast of the stylization can drift slightly from
tile to tile (the blending hides the seams, not the drift); the larger the tiles, the
closer each tile's statistics are to the whole image's. Raise ``max_pixels`` when memory
allows, to avoid tiling altogether.
"""

from __future__ import annotations

import numpy as np

from yoto_tf.layers import find_loss_space
from yoto_tf.style_transfer.loss_space import strength_grid
from yoto_tf.style_transfer.transformer import (
    IMAGE_INPUT,
    LAMBDA_INPUT,
    STYLE_INPUT,
)

DEFAULT_MAX_PIXELS = 2**21
DEFAULT_TILE_SIZE = 1024
DEFAULT_OVERLAP = 128
MIN_SIDE = 5
"""Smallest image side the network accepts (reflection padding of the 9x9 convolutions)."""


def num_styles(network) -> int:
    """How many styles ``network`` holds (1 when it has no ``style_index`` input)."""
    for layer in network.layers:
        if layer.name == "style_one_hot":
            return layer.num_styles
    return 1


def as_float_image(image) -> np.ndarray:
    """uint8 or float [H, W, 3] -> float32 [H, W, 3] in [0, 1] (checked)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image [H, W, 3], got shape {image.shape}.")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"Image of {image.shape[1]}x{image.shape[0]} px is too small: both sides must be "
            f">= {MIN_SIDE} px."
        )
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def check_style_index(network, style_index: int) -> None:
    count = num_styles(network)
    if not 0 <= style_index < count:
        raise ValueError(
            f"style_index {style_index} is out of range: this model holds {count} "
            f"style(s), valid indices are 0..{count - 1}."
        )


def _run(network, images: np.ndarray, lam: np.ndarray, style_index: int) -> np.ndarray:
    """One forward pass: images float32 [N, H, W, 3], lam [k] -> float32 [N, H, W, 3]."""
    n = len(images)
    feed = {IMAGE_INPUT: images, LAMBDA_INPUT: np.tile(lam[None], (n, 1)).astype(np.float32)}
    if num_styles(network) > 1:
        feed[STYLE_INPUT] = np.full((n,), style_index, np.int32)
    # predict_on_batch runs a compiled function (graph mode frees every intermediate
    # tensor as soon as it is used; an eager call keeps them all until the end).
    return np.asarray(network.predict_on_batch(feed))


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with >= ``overlap``
    shared pixels between neighbours (one tile when ``size <= tile``)."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(length: int, start: int, size: int, overlap: int) -> np.ndarray:
    """Blend weights [length] of a tile at ``start``: rising over ``overlap`` pixels at an
    edge shared with another tile, 1 elsewhere (image borders are not faded)."""
    weights = np.ones(length, np.float32)
    ramp = (np.arange(1, overlap + 1, dtype=np.float32)) / (overlap + 1)
    if start > 0:
        weights[:overlap] = np.minimum(weights[:overlap], ramp)
    if start + length < size:
        weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


def stylize(
    network,
    image,
    lam,
    style_index: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Stylizes one image of any size.

    Args:
      network: a style transformer (e.g. ``keras.saving.load_model("model.keras")``).
      image: uint8 or float [0, 1] array [H, W, 3].
      lam: the loss weights [k] in the order of the model's LossSpace names (validated:
        a value out of its range raises ValueError naming the coefficient and range).
      style_index: which style of a multi-style model.
      max_pixels: images with more pixels are tiled (see the module docstring).
      tile_size, overlap: tile side and overlap in pixels (tile_size > 2 * overlap).

    Returns:
      float32 [H, W, 3] in [0, 1].
    """
    space = find_loss_space(network)
    lam = space.validate(lam)
    if lam.ndim != 1:
        raise ValueError(f"stylize takes one lambda vector [{space.size}], got {lam.shape}.")
    check_style_index(network, style_index)
    return stylize_in_tiles(
        as_float_image(image),
        lambda tile, top, left: _run(network, tile[None], lam, style_index)[0],
        max_pixels, tile_size, overlap,
    )


def stylize_in_tiles(
    pixels: np.ndarray,
    run_tile,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
) -> np.ndarray:
    """Runs ``run_tile`` on the whole image, or on overlapping tiles blended with ramps.

    Args:
      pixels: float32 [H, W, 3] in [0, 1].
      run_tile: ``(tile [h, w, 3], top, left) -> float32 [h, w, 3]``; ``top``/``left`` say
        where the tile lies, for inputs that vary over the image (a lambda map).
      max_pixels, tile_size, overlap: as in :func:`stylize`.

    Returns:
      float32 [H, W, 3].
    """
    height, width = pixels.shape[:2]
    if height * width <= max_pixels:
        return run_tile(pixels, 0, 0)
    if tile_size <= 2 * overlap or tile_size < MIN_SIDE:
        raise ValueError(
            f"tile_size ({tile_size}) must exceed 2 * overlap ({overlap}) and {MIN_SIDE}."
        )
    result = np.zeros_like(pixels)
    total_weight = np.zeros((height, width, 1), np.float32)
    for top in tile_starts(height, tile_size, overlap):
        for left in tile_starts(width, tile_size, overlap):
            tile = pixels[top : top + tile_size, left : left + tile_size]
            out = run_tile(tile, top, left)
            h, w = tile.shape[:2]
            weight = np.outer(_ramp(h, top, height, overlap), _ramp(w, left, width, overlap))
            result[top : top + h, left : left + w] += out * weight[..., None]
            total_weight[top : top + h, left : left + w] += weight[..., None]
    return result / total_weight


def sweep(
    network,
    image,
    name: str,
    num: int = 5,
    base=None,
    style_index: int = 0,
    **stylize_kwargs,
) -> list[tuple[str, np.ndarray]]:
    """Stylizes ``image`` at ``num`` values of one knob, the others at ``base``.

    Args:
      name: a coefficient of the model's LossSpace (swept log-spaced over its range), or
        ``"strength"`` (all style weights scaled together over the allowed factors).
      base: lambda [k] for the other coefficients (default: the LossSpace defaults).

    Returns:
      ``[(label, float32 [H, W, 3]), ...]``, labels like ``"style_block3=0.05"``.
    """
    space = find_loss_space(network)
    if name == "strength":
        values, lams = strength_grid(space, num, base)
    elif name in space.names:
        lams = space.grid(name, num, base)
        values = lams[:, space.index(name)]
    else:
        raise ValueError(
            f"Cannot sweep {name!r}: choose 'strength' or one of {list(space.names)}."
        )
    return [
        (f"{name}={value:.3g}", stylize(network, image, lam, style_index, **stylize_kwargs))
        for value, lam in zip(values, lams)
    ]
