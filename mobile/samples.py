"""Sample inputs for the parity gate and int8 calibration: images and lambda draws."""

from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from mobile.model_io import IMAGE, LOSS_WEIGHTS, STYLE_INDEX
from yoto_tf import data
from yoto_tf.coefficients import LossSpace


SIZE_MULTIPLE = 16
"""Dynamic-size parity also runs at a second, non-square size that is a multiple of this
(every downsampling factor of the yoto_tf networks divides it)."""


def parity_sizes(image_size: int, dynamic_size: bool) -> list[tuple[int, int]]:
    """(height, width) pairs the parity gate runs at: the export size, plus a smaller
    non-square one for dynamic-size exports."""
    sizes = [(image_size, image_size)]
    if dynamic_size:
        other = max(SIZE_MULTIPLE, (3 * image_size // 4) // SIZE_MULTIPLE * SIZE_MULTIPLE)
        sizes.append((other, image_size))
    return sizes


def selection_cases(images, space, num_styles: int, skip: int, seed: int = 1):
    """Inputs the int8 layer selection measures errors on: the calibration images after
    the first ``skip`` (the parity gate's; all of them when there are no others), each
    at the default lambda, at all coefficients low and at all high (the extremes where
    errors peak), plus a random draw; styles cycle. Not the parity gate's own cases."""
    images = images[skip:] or images
    lams = [space.default(), space.low, space.high, space.sample_numpy(1, seed)[0]]
    cases = []
    for i, lam in enumerate(lams):
        case = {IMAGE: images[i % len(images)], LOSS_WEIGHTS: np.asarray(lam, np.float32)[None]}
        if num_styles:
            case[STYLE_INDEX] = np.array([i % num_styles], np.int32)
        cases.append(case)
    return cases


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [height, width, 3] in [0, 1]: centre crop to the target
    aspect ratio, then a bicubic resize."""
    h, w = image.shape[:2]
    target = width / height
    if w / h > target:
        crop = int(round(h * target))
        image = image[:, (w - crop) // 2:(w - crop) // 2 + crop]
    else:
        crop = int(round(w / target))
        image = image[(h - crop) // 2:(h - crop) // 2 + crop]
    resized = Image.fromarray(image).resize((width, height), Image.BICUBIC)
    return np.asarray(resized, np.float32) / 255.0


def load_images(source: str, sizes: Sequence[tuple[int, int]], max_images: int) -> list[np.ndarray]:
    """Up to ``max_images`` images of ``source`` (a yoto_tf.data spec such as ``builtin`` or
    ``folder:GLOB``), each fitted to every (height, width) in ``sizes``:
    float32 [1, h, w, 3] arrays, images in the outer loop."""
    images = data.eval_images(source, max_images=max_images)
    if not images:
        raise ValueError(f"Image source {source!r} holds no readable images.")
    return [fit_image(pixels, h, w)[None] for _, pixels in images for h, w in sizes]


def calibration_data(
    images: Sequence[np.ndarray],
    space: LossSpace,
    num_samples: int,
    num_styles: int = 0,
    image_input: str = "image",
    seed: int = 0,
) -> Callable[[], Iterator[Mapping[str, np.ndarray]]]:
    """A representative-dataset factory for int8 calibration: ``num_samples`` dicts
    cycling over the images, each with a lambda drawn from the model's LossSpace (its
    training distribution) and, for multi-style models, a random style index. Inputs are keyed by signature name."""
    if not images:
        raise ValueError("Calibration needs at least one image.")

    def generate():
        rng = np.random.default_rng(seed)
        lams = space.sample_numpy(num_samples, rng)
        for i in range(num_samples):
            sample = {image_input: images[i % len(images)], LOSS_WEIGHTS: lams[i:i + 1]}
            if num_styles:
                sample[STYLE_INDEX] = rng.integers(num_styles, size=1).astype(np.int32)
            yield sample

    return generate
