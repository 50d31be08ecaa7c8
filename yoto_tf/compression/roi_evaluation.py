"""Evidence for quality maps: does a region of interest get better at the same file size?

For each image, :func:`roi_evidence` compresses it with a two-valued quality map (``high``
inside the region of interest, ``low`` outside), then searches the uniform lambda whose
file has the SAME number of bytes (rate control, ``rate_control.compress_to_target``, the
map file's own map payload included in its size), decodes both and measures PSNR inside
and outside the region. A quality map that works moves quality into the region: higher
PSNR inside, lower outside, than the uniform file of the same size.

The edge band (pixels within ``EDGE_BAND`` = 16 pixels, one quality-map cell, of the
region's boundary, on both sides) shows a seam: where the decoder blends the two lambdas
badly, the map file's PSNR there falls below both its inside and its outside PSNR.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from yoto_tf.compression import codec as codec_lib
from yoto_tf.compression import image_coding
from yoto_tf.compression import metrics, rate_control

FIELDS = ("image", "roi_fraction", "low", "high", "map_bytes", "map_bpp", "uniform_lambda",
          "uniform_bytes", "size_met", "map_psnr_inside", "uniform_psnr_inside",
          "map_psnr_outside", "uniform_psnr_outside", "map_psnr_edge", "uniform_psnr_edge",
          "gain_inside_db", "cost_outside_db")
EDGE_BAND = 16


@dataclasses.dataclass(frozen=True)
class RoiEvidence:
    """One image's comparison (PSNR in dB, sizes in bytes of the real files)."""

    image: str
    roi_fraction: float
    low: float
    high: float
    map_bytes: int
    map_bpp: float
    uniform_lambda: float
    uniform_bytes: int
    size_met: bool
    map_psnr_inside: float
    uniform_psnr_inside: float
    map_psnr_outside: float
    uniform_psnr_outside: float
    map_psnr_edge: float
    uniform_psnr_edge: float

    @property
    def gain_inside_db(self) -> float:
        return self.map_psnr_inside - self.uniform_psnr_inside

    @property
    def cost_outside_db(self) -> float:
        return self.uniform_psnr_outside - self.map_psnr_outside

    def row(self) -> dict:
        return {f: getattr(self, f) for f in FIELDS}


def centre_roi(height: int, width: int, fraction: float = 0.5) -> np.ndarray:
    """bool [height, width]: a centred rectangle ``fraction`` of the height and width."""
    if not 0 < fraction < 1:
        raise ValueError(f"the region's side fraction must be in (0, 1), got {fraction}")
    mask = np.zeros((height, width), bool)
    h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - h) // 2, (width - w) // 2
    mask[top:top + h, left:left + w] = True
    return mask


def masked_psnr(reference, decoded, selected) -> float:
    """PSNR (dB, 8-bit) over the pixels where the bool [H, W] ``selected`` is True."""
    selected = np.asarray(selected, bool)
    return metrics.psnr(np.asarray(reference)[selected], np.asarray(decoded)[selected])


def psnr_inside_outside(reference, decoded, mask) -> tuple[float, float]:
    """PSNR (dB, 8-bit) over the pixels where ``mask`` is True, and where it is False."""
    mask = np.asarray(mask, bool)
    return masked_psnr(reference, decoded, mask), masked_psnr(reference, decoded, ~mask)


def edge_band(mask, radius: int = EDGE_BAND) -> np.ndarray:
    """bool [H, W]: the pixels whose (2 radius + 1)^2 window (clipped to the image) holds
    pixels inside and outside ``mask``, i.e. within ``radius`` of the region's boundary."""
    mask = np.asarray(mask, bool)

    def window_sums(values):
        padded = np.pad(values.astype(np.int64), radius)
        table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        size = 2 * radius + 1
        return (table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size])

    inside, pixels = window_sums(mask), window_sums(np.ones_like(mask))
    return (inside > 0) & (inside < pixels)


def roi_evidence(model, image, roi_mask, low: float | None = None, high: float | None = None,
                 name: str = "", tolerance: float = rate_control.DEFAULT_TOLERANCE) -> RoiEvidence:
    """Compares a two-valued quality map with the uniform lambda of the same file size.

    Args:
      model: a CompressionCodec or CompressionNetwork.
      image: uint8 [H, W, 3].
      roi_mask: bool [H, W] (any size: resized, nearest), True inside the region.
      low, high: lambdas outside / inside (default: the ends of the model's range).
      tolerance: relative size tolerance of the uniform file's rate control.

    Raises:
      ValueError: an empty or full region, lambdas outside the range, a bad image.
    """
    codec = codec_lib.as_codec(model)
    image = codec_lib.check_image(image)
    height, width = image.shape[:2]
    mask = _fit_mask(roi_mask, height, width)
    if mask.all() or not mask.any():
        raise ValueError("the region of interest must cover some but not all of the image")
    range_low, range_high = codec.lambda_range
    low = range_low if low is None else float(low)
    high = range_high if high is None else float(high)
    data = image_coding.compress_image(codec, image, lambda_map=np.where(mask, high, low))
    mapped = image_coding.decompress_image(codec, data)
    uniform = rate_control.compress_to_target(codec, image, len(data), tolerance)
    flat = image_coding.decompress_image(codec, uniform.data)
    map_in, map_out = psnr_inside_outside(image, mapped, mask)
    uni_in, uni_out = psnr_inside_outside(image, flat, mask)
    band = edge_band(mask)
    return RoiEvidence(
        name, float(mask.mean()), low, high, len(data), len(data) * 8 / (height * width),
        uniform.lam, len(uniform.data), uniform.met, map_in, uni_in, map_out, uni_out,
        masked_psnr(image, mapped, band), masked_psnr(image, flat, band),
    )


def _fit_mask(mask, height: int, width: int) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"the region of interest is a non-empty [H, W] mask, got shape {mask.shape}")
    if mask.shape == (height, width):
        return mask
    rows = (np.arange(height) * mask.shape[0]) // height
    cols = (np.arange(width) * mask.shape[1]) // width
    return mask[rows][:, cols]


def evaluate_roi(model, images: Sequence[tuple[str, np.ndarray]], roi: Callable[[int, int], np.ndarray],
                 low: float | None = None, high: float | None = None,
                 log: Callable[[str], None] = print) -> list[RoiEvidence]:
    """:func:`roi_evidence` for every ``(name, image)``; ``roi(height, width)`` gives the mask."""
    results = []
    for name, image in images:
        result = roi_evidence(model, image, roi(*image.shape[:2]), low, high, name)
        log(f"{name}: {result.map_bytes} B; inside {result.map_psnr_inside:.2f} vs "
            f"{result.uniform_psnr_inside:.2f} dB (uniform lambda {result.uniform_lambda:.4g}, "
            f"{result.uniform_bytes} B), outside {result.map_psnr_outside:.2f} vs "
            f"{result.uniform_psnr_outside:.2f} dB, edge band {result.map_psnr_edge:.2f} vs "
            f"{result.uniform_psnr_edge:.2f} dB")
        results.append(result)
    return results


def summary(results: Sequence[RoiEvidence]) -> dict:
    """Means over images of the PSNRs and of the gain inside / cost outside (dB), and how
    many images gained inside the region."""
    def mean(field):
        return float(np.mean([getattr(r, field) for r in results]))

    return {
        "num_images": len(results),
        "map_bpp": mean("map_bpp"),
        "map_psnr_inside": mean("map_psnr_inside"),
        "uniform_psnr_inside": mean("uniform_psnr_inside"),
        "map_psnr_outside": mean("map_psnr_outside"),
        "uniform_psnr_outside": mean("uniform_psnr_outside"),
        "map_psnr_edge": mean("map_psnr_edge"),
        "uniform_psnr_edge": mean("uniform_psnr_edge"),
        "gain_inside_db": mean("gain_inside_db"),
        "cost_outside_db": mean("cost_outside_db"),
        "images_gaining_inside": sum(r.gain_inside_db > 0 for r in results),
        "sizes_matched": sum(r.size_met for r in results),
    }
