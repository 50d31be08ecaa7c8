"""Exports whose lambda input is a MAP: ``loss_weights`` float32 [1, h, w, k], one raw
weighting per cell, instead of [1, k] (``python -m mobile.convert --lambda_map``).

The graph has a fixed size: the map covers the image at ``1 / stride`` of its resolution
(style transfer: stride 4, ``yoto_tf.style_transfer.lambda_maps.MAP_DOWNSCALE``;
compression: stride 16, the latent grid, which is also the codec's quality-map cell).
Every conditioned layer resizes the embedding map bilinearly to its own resolution.

The parity gate and the int8 calibration run on maps: every lambda setting of the
per-example gate as a uniform map, plus, per sample, a left/right map (all coefficients
low on the left, high on the right) and a map of independent draws per cell.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from mobile.model_io import LOSS_WEIGHTS
from yoto_tf.coefficients import LossSpace

STYLE_MAP_STRIDE = 4
COMPRESSION_MAP_STRIDE = 16
FILE_SUFFIX = "_lambda_map"


def map_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """The map's (h, w) for an input of ``height`` x ``width`` pixels."""
    return math.ceil(height / stride), math.ceil(width / stride)


def uniform_map(lam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """lambda [1, k] or [k] -> the constant map float32 [1, h, w, k]."""
    lam = np.asarray(lam, np.float32).reshape(-1)
    return np.broadcast_to(lam, (1, *size, lam.size)).copy()


def split_map(space: LossSpace, size: tuple[int, int]) -> np.ndarray:
    """[1, h, w, k]: every coefficient at its low end in the left half, high in the right."""
    lam = uniform_map(space.low, size)
    lam[:, :, size[1] // 2:] = np.asarray(space.high, np.float32)
    return lam


def random_map(space: LossSpace, size: tuple[int, int], seed) -> np.ndarray:
    """[1, h, w, k]: an independent draw of the training distribution per cell."""
    draws = space.sample_numpy(size[0] * size[1], seed)
    return np.asarray(draws, np.float32).reshape(1, *size, space.size)


def _size_of(case: Mapping[str, np.ndarray], data_input: str, stride: int) -> tuple[int, int]:
    height, width = np.shape(case[data_input])[1:3]
    return map_size(height, width, stride)


def map_cases(cases: Sequence[Mapping[str, np.ndarray]], space: LossSpace, data_input: str,
              stride: int, seed: int = 0) -> list[dict]:
    """Per-example cases (``loss_weights`` [1, k]) -> map cases: each as a uniform map, plus
    a left/right and a random map per distinct ``data_input`` sample (first of its cases)."""
    result, seen = [], []
    for case in cases:
        size = _size_of(case, data_input, stride)
        result.append({**case, LOSS_WEIGHTS: uniform_map(case[LOSS_WEIGHTS], size)})
        sample = case[data_input]
        if not any(sample is s for s in seen):
            seen.append(sample)
            result.append({**case, LOSS_WEIGHTS: split_map(space, size)})
            result.append({**case, LOSS_WEIGHTS: random_map(space, size, seed + len(seen))})
    return result


def map_calibration(calibration: Callable[[], Iterator[Mapping[str, np.ndarray]]],
                    space: LossSpace, data_input: str, stride: int, seed: int = 0):
    """An int8 representative-dataset factory feeding maps: the samples of ``calibration``
    alternate between a uniform map of their lambda and a random map."""

    def generate():
        for i, sample in enumerate(calibration()):
            size = _size_of(sample, data_input, stride)
            lam = (uniform_map(sample[LOSS_WEIGHTS], size) if i % 2 == 0
                   else random_map(space, size, seed + i))
            yield {**sample, LOSS_WEIGHTS: lam}

    return generate


def sidecar_note(stride: int, image_input: str) -> dict:
    """What the sidecar says about a map ``loss_weights`` input."""
    return {
        "kind": "lambda_map",
        "map_stride": stride,
        "description": (
            f"One RAW loss-weight vector per cell: cell (i, j) covers pixels [{stride} i, "
            f"{stride} (i + 1)) x [{stride} j, {stride} (j + 1)) of '{image_input}'. Build it from "
            "a brush map by resizing the map (bilinear) to this height and width and mapping each "
            "cell to its weights; a constant map gives the per-example output."
        ),
    }
