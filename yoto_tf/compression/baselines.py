"""Classical codec baselines (JPEG and WebP through Pillow) for rate-distortion comparisons.

Each image is really encoded to bytes in memory and decoded back, so the rate is the size
of an actual file: ``bpp = len(bytes) * 8 / (H * W)``. Pillow's defaults are kept apart from
the quality (JPEG: 4:2:0 chroma subsampling, baseline Huffman; WebP: lossy, method 4).
"""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
from PIL import Image

CODECS = {"jpeg": "JPEG", "webp": "WEBP"}


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """One image through one codec at one quality.

    Attributes:
      data: the encoded file's bytes.
      reconstruction: the decoded ``uint8 [H, W, 3]`` image.
      encode_seconds, decode_seconds: wall-clock time of the Pillow encode / decode.
    """

    data: bytes
    reconstruction: np.ndarray
    encode_seconds: float
    decode_seconds: float

    @property
    def bpp(self) -> float:
        """Bits per pixel of the real encoded file."""
        height, width = self.reconstruction.shape[:2]
        return len(self.data) * 8.0 / (height * width)


def check_quality(codec: str, quality) -> int:
    """Returns ``quality`` as an int; ValueError for an unknown codec or a quality outside [0, 100]."""
    if codec not in CODECS:
        raise ValueError(f"unknown baseline codec {codec!r}; expected one of {sorted(CODECS)}")
    if isinstance(quality, bool) or int(quality) != quality or not 0 <= quality <= 100:
        raise ValueError(f"{codec} quality must be an integer in [0, 100], got {quality!r}")
    return int(quality)


def encode_decode(image: np.ndarray, codec: str, quality: int) -> EncodedImage:
    """Encodes ``image`` (``uint8 [H, W, 3]``) with ``codec`` ("jpeg" or "webp") at
    ``quality`` (0-100) and decodes the bytes back.

    Raises:
      ValueError: unknown codec, quality outside [0, 100], or an image that is not
        ``uint8 [H, W, 3]``.
    """
    quality = check_quality(codec, quality)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    pil_image = Image.fromarray(image)
    buffer = io.BytesIO()
    start = time.perf_counter()
    pil_image.save(buffer, format=CODECS[codec], quality=quality)
    encode_seconds = time.perf_counter() - start
    data = buffer.getvalue()
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as decoded:
        reconstruction = np.asarray(decoded.convert("RGB"))
    decode_seconds = time.perf_counter() - start
    return EncodedImage(data, reconstruction, encode_seconds, decode_seconds)

