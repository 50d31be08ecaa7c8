"""Quality maps: a distortion weight lambda per image region, stored compactly in the file.

A quality map says how much each region of the image matters (a region of interest gets
a higher lambda, more bits and less error). The codec conditions every transform on it
per position (the map goes through the model's ConditioningNetwork per cell and every
FiLM layer resizes the embedding map to its own resolution), so the decoder needs the
same map: it travels in the file as a :class:`QuantizedMap`:

* one value per ``cell x cell`` block of pixels (``cell`` 16 = the latent grid, H/16 x W/16,
  by default; 32 or 64 for coarser maps), the mean log-lambda of the block;
* quantized to ``2**bits`` levels (4 bits by default) spaced evenly in log-lambda between
  the map's lowest value ``low`` (black) and its highest ``high`` (white): a two-valued map
  is stored exactly, a uniform map is one level;
* stored as the cell levels coded left-to-right as differences, deflate-compressed (raw
  packed levels when that is smaller): a region-of-interest map costs a few dozen bytes.

Both sides rebuild the same float32 lambda grid from the stored integers
(:meth:`QuantizedMap.lambda_grid`), so the encoder's and the decoder's entropy parameters
come from bit-identical inputs. Payload layout (little-endian)::

    cell_log2  u8    log2 of the cell side in pixels (4, 5 or 6)
    bits       u8    bits per level (1..8)
    high       f32   lambda of the top level (``low``, of level 0, is the header's lambda)
    coding     u8    0: levels packed ``bits`` per cell, 1: raw deflate of the row-wise
                     differences (mod 2**bits, one byte per cell)
    data       the levels of the ceil(H / cell) x ceil(W / cell) cells, row by row

This module needs only NumPy and Pillow (no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib

import numpy as np
from PIL import Image

DEFAULT_CELL = 16
"""Cell side in pixels: the latent grid (one FiLM value per latent position)."""
CELLS = (16, 32, 64)
DEFAULT_BITS = 4
_HEADER = struct.Struct("<BBfB")
_PACKED, _DELTA_ZLIB = 0, 1


class QualityMapError(ValueError):
    """A lambda map that cannot be used (shape, values outside the model's range)."""


@dataclasses.dataclass(frozen=True)
class QuantizedMap:
    """A stored quality map.

    Attributes:
      low, high: float32 lambdas of level 0 and of the top level.
      cell: the side in pixels of the block each level covers.
      bits: bits per level (``2**bits`` levels).
      levels: uint8 [ceil(H / cell), ceil(W / cell)], each in [0, 2**bits).
    """

    low: float
    high: float
    cell: int
    bits: int
    levels: np.ndarray

    def lambda_grid(self) -> np.ndarray:
        """float32 [gh, gw]: each cell's lambda, log-interpolated between low and high
        (computed in float64, rounded once to float32: identical on both sides)."""
        top = (1 << self.bits) - 1
        log_low, log_high = math.log(float(np.float32(self.low))), math.log(float(np.float32(self.high)))
        fraction = self.levels.astype(np.float64) / top
        return np.exp(log_low + fraction * (log_high - log_low)).astype(np.float32)

    def padded_lambda_grid(self, grid_height: int, grid_width: int) -> np.ndarray:
        """:meth:`lambda_grid` edge-padded to [grid_height, grid_width] (the padded image)."""
        grid = self.lambda_grid()
        return np.pad(grid, ((0, grid_height - grid.shape[0]), (0, grid_width - grid.shape[1])),
                      mode="edge")

    def to_bytes(self) -> bytes:
        levels = np.asarray(self.levels, np.uint8)
        header = _HEADER.pack(int(math.log2(self.cell)), self.bits, np.float32(self.high), 0)
        packed = _pack_bits(levels.ravel(), self.bits)
        deltas = np.diff(levels.astype(np.int16), axis=1, prepend=0) % (1 << self.bits)
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the container has a CRC
        compressed = deflate.compress(deltas.astype(np.uint8).tobytes()) + deflate.flush()
        if len(compressed) < len(packed):
            return header[:-1] + bytes([_DELTA_ZLIB]) + compressed
        return header + packed

    @classmethod
    def from_bytes(cls, data: bytes, low: float, height: int, width: int) -> "QuantizedMap":
        """Parses a payload for an image of ``height`` x ``width`` pixels.

        Raises:
          QualityMapError: a damaged payload (naming what is wrong).
        """
        if len(data) < _HEADER.size:
            raise QualityMapError(f"the quality-map payload is truncated ({len(data)} bytes)")
        cell_log2, bits, high, coding = _HEADER.unpack_from(data, 0)
        cell = 1 << cell_log2 if cell_log2 < 16 else 0
        if cell not in CELLS or not 1 <= bits <= 8 or coding not in (_PACKED, _DELTA_ZLIB):
            raise QualityMapError(
                f"the quality-map payload is damaged (cell {cell}, {bits} bits, coding {coding})")
        if not (math.isfinite(high) and 0 < low <= high):
            raise QualityMapError(f"the quality map's range {low:g}..{high:g} is invalid")
        shape = grid_shape(height, width, cell)
        count = shape[0] * shape[1]
        body = data[_HEADER.size:]
        if coding == _PACKED:
            if len(body) != -(-count * bits // 8):
                raise QualityMapError("the quality-map payload has the wrong length")
            levels = _unpack_bits(body, bits, count).reshape(shape)
        else:
            try:
                raw = zlib.decompress(body, -15)
            except zlib.error as err:
                raise QualityMapError(f"the quality-map payload is damaged: {err}") from None
            if len(raw) != count:
                raise QualityMapError("the quality-map payload has the wrong length")
            deltas = np.frombuffer(raw, np.uint8).reshape(shape).astype(np.int64)
            levels = (np.cumsum(deltas, axis=1) % (1 << bits)).astype(np.uint8)
        if levels.max(initial=0) >= 1 << bits:
            raise QualityMapError("the quality-map payload holds a level out of range")
        return cls(float(np.float32(low)), float(np.float32(high)), cell, bits, levels)


def grid_shape(height: int, width: int, cell: int) -> tuple[int, int]:
    """Cells covering an image of ``height`` x ``width`` pixels."""
    return -(-height // cell), -(-width // cell)


def lambdas_from_gray(gray: np.ndarray, low: float, high: float) -> np.ndarray:
    """Grayscale [H, W] (uint8, or float in [0, 1]) -> lambdas float64 [H, W]: black =
    ``low``, white = ``high``, log-interpolated between."""
    gray = np.asarray(gray)
    t = gray.astype(np.float64) / 255.0 if gray.dtype == np.uint8 else np.clip(gray, 0.0, 1.0)
    return np.exp(math.log(low) + t * (math.log(high) - math.log(low)))


def resize_map(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """float [h, w] -> float64 [height, width], bilinear (Pillow)."""
    values = np.asarray(values, np.float32)
    if values.shape == (height, width):
        return values.astype(np.float64)
    resized = Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, np.float64)


def quantize_map(lambda_map: np.ndarray, height: int, width: int, lambda_range,
                 cell: int = DEFAULT_CELL, bits: int = DEFAULT_BITS) -> QuantizedMap:
    """Per-pixel lambdas -> the stored map.

    Args:
      lambda_map: float [h, w] distortion weights; resized (bilinearly in log-lambda) to
        ``height`` x ``width`` when its size differs.
      height, width: the image size.
      lambda_range: (low, high) of the model; every value must lie inside.
      cell: block side in pixels (16, 32 or 64); bits: bits per level (1..8).

    Raises:
      QualityMapError: wrong rank, empty, non-finite values or values outside the range
        (naming the allowed range).
    """
    if cell not in CELLS:
        raise QualityMapError(f"the map cell must be one of {CELLS} pixels, got {cell}")
    if not 1 <= bits <= 8:
        raise QualityMapError(f"bits per map cell must be 1..8, got {bits}")
    values = np.asarray(lambda_map, np.float64)
    if values.ndim != 2 or values.size == 0:
        raise QualityMapError(f"a lambda map is a non-empty [H, W] array, got shape {values.shape}")
    low, high = (float(v) for v in lambda_range)
    if not np.all(np.isfinite(values)):
        raise QualityMapError("the lambda map holds non-finite values (NaN or inf)")
    if values.min() < low * (1 - 1e-6) or values.max() > high * (1 + 1e-6):
        raise QualityMapError(
            f"lambda map values {values.min():.4g}..{values.max():.4g} leave the model's "
            f"trained range [{low:g}, {high:g}]"
        )
    logs = np.log(np.clip(values, low, high))
    logs = resize_map(logs, height, width)
    map_low, map_high = float(np.float32(math.exp(logs.min()))), float(np.float32(math.exp(logs.max())))
    map_low, map_high = min(max(map_low, low), high), min(max(map_high, low), high)
    gh, gw = grid_shape(height, width, cell)
    padded = np.pad(logs, ((0, gh * cell - height), (0, gw * cell - width)), mode="edge")
    means = padded.reshape(gh, cell, gw, cell).mean(axis=(1, 3))
    top = (1 << bits) - 1
    span = math.log(map_high) - math.log(map_low)
    if span <= 0:
        levels = np.zeros((gh, gw), np.uint8)
    else:
        fraction = (means - math.log(map_low)) / span
        levels = np.clip(np.round(fraction * top), 0, top).astype(np.uint8)
    return QuantizedMap(map_low, map_high, cell, bits, levels)


def _pack_bits(values: np.ndarray, bits: int) -> bytes:
    bit_array = ((values[:, None].astype(np.uint16) >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)
    return np.packbits(bit_array.ravel()).tobytes()


def _unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    bit_array = np.unpackbits(np.frombuffer(data, np.uint8))[: count * bits].reshape(count, bits)
    return (bit_array.astype(np.uint16) << np.arange(bits - 1, -1, -1)).sum(axis=1).astype(np.uint8)
