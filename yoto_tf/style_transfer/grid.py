"""Labelled image grids (for lambda sweeps): rows of captioned cells in one PNG-able array."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_CAPTION_HEIGHT = 16
_GAP = 4
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def _to_uint8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image


def fit_longer_side(image, size: int) -> np.ndarray:
    """uint8 [H, W, 3] copy (or float [0, 1] input) scaled so its longer side is <= ``size``."""
    pil = Image.fromarray(_to_uint8(image))
    pil.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(pil)


def resize_gray(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float [h, w] -> float32 [H, W] (``size`` = (H, W)), bilinear."""
    pil = Image.fromarray(np.asarray(gray, np.float32))
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float32)


def labelled_grid(
    rows: Sequence[Sequence[tuple[str, np.ndarray]]],
    row_labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Lays out captioned images in rows.

    Args:
      rows: each row a sequence of ``(caption, image)``; images are uint8 or float [0, 1]
        [H, W, 3] of any sizes (columns are as wide as the widest image, rows as tall as their tallest).
      row_labels: optional text drawn above each row.

    Returns:
      uint8 [H, W, 3] grid: white background, black captions above every cell.
    """
    cells = [[(caption, _to_uint8(image)) for caption, image in row] for row in rows]
    cell_w = max(img.shape[1] for row in cells for _, img in row)
    columns = max(len(row) for row in cells)
    label_h = _CAPTION_HEIGHT if row_labels else 0
    row_heights = [
        label_h + _CAPTION_HEIGHT + max(img.shape[0] for _, img in row) + _GAP for row in cells
    ]
    canvas = Image.new(
        "RGB", (columns * (cell_w + _GAP) + _GAP, sum(row_heights) + _GAP), _BACKGROUND
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    y = _GAP
    for r, row in enumerate(cells):
        if row_labels:
            draw.text((_GAP, y + 2), row_labels[r], fill=_TEXT, font=font)
        for c, (caption, image) in enumerate(row):
            x = _GAP + c * (cell_w + _GAP)
            draw.text((x, y + label_h + 2), caption, fill=_TEXT, font=font)
            canvas.paste(Image.fromarray(image), (x, y + label_h + _CAPTION_HEIGHT))
        y += row_heights[r]
    return np.asarray(canvas)
