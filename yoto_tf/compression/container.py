"""The compressed-image file format (a small self-checking container).

Layout (little-endian)::

    magic        4 bytes   b"YOTC"
    version      u8        FORMAT_VERSION (1), or QUALITY_MAP_VERSION (2): the same layout
                           for a file whose last payload is a quality map (quality_map.py)
    k            u8        number of loss coefficients
    fingerprint  8 bytes   identifies the model (weights + config + codec constants)
    lambda       k x f32   the loss weights the image was coded at (LossSpace order)
    height       u32       original image size (the decoder crops to it)
    width        u32
    count        u8        number of payloads
    lengths      count x u32
    payloads     the bytes of each payload, in order
    crc32        u32       CRC-32 of every byte before it

Files without a quality map are written as version 1, byte for byte as before version 2
existed; a decoder that reads only version 1 refuses a map file by its version.

Any damage is reported as :class:`CorruptFileError` (a ValueError) with the reason:
wrong magic, unknown version, truncation or trailing bytes (the header states the exact
total length), checksum mismatch, implausible sizes.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

MAGIC = b"YOTC"
FORMAT_VERSION = 1
QUALITY_MAP_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, QUALITY_MAP_VERSION)
FINGERPRINT_BYTES = 8
MAX_PAYLOADS = 16
MAX_DIMENSION = 1 << 20

_FIXED = struct.Struct("<4sBB8s")
_SIZE = struct.Struct("<IIB")
_CRC = struct.Struct("<I")


class CorruptFileError(ValueError):
    """The file is not a valid compressed image (damaged, truncated, or another format)."""


@dataclasses.dataclass(frozen=True)
class CompressedImage:
    """The parsed contents of a file.

    Attributes:
      fingerprint: 8 bytes naming the model that wrote the file.
      lam: float32 [k], the loss weights used.
      height, width: the original image size in pixels.
      payloads: the raw payloads (their meaning is the codec's business).
      version: FORMAT_VERSION, or QUALITY_MAP_VERSION when the last payload is a quality map.
    """

    fingerprint: bytes
    lam: np.ndarray
    height: int
    width: int
    payloads: tuple[bytes, ...]
    version: int = FORMAT_VERSION


def header_size(num_coefficients: int, num_payloads: int) -> int:
    """Bytes of a file that are not payload (header + checksum)."""
    return _FIXED.size + 4 * num_coefficients + _SIZE.size + 4 * num_payloads + _CRC.size


def pack(image: CompressedImage) -> bytes:
    """Serializes ``image`` to bytes."""
    lam = np.asarray(image.lam, dtype="<f4").ravel()
    if len(image.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes, got {len(image.fingerprint)}")
    if not 1 <= lam.size <= 255 or not 1 <= len(image.payloads) <= MAX_PAYLOADS:
        raise ValueError("a container holds 1..255 coefficients and 1..16 payloads")
    if image.version not in READABLE_VERSIONS:
        raise ValueError(f"unknown format version {image.version}")
    if not (1 <= image.height <= MAX_DIMENSION and 1 <= image.width <= MAX_DIMENSION):
        raise ValueError(f"image size {image.height}x{image.width} is outside 1..{MAX_DIMENSION}")
    parts = [
        _FIXED.pack(MAGIC, image.version, lam.size, image.fingerprint),
        lam.tobytes(),
        _SIZE.pack(image.height, image.width, len(image.payloads)),
        struct.pack(f"<{len(image.payloads)}I", *(len(p) for p in image.payloads)),
        *image.payloads,
    ]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes) -> CompressedImage:
    """Parses and verifies a file.

    Raises:
      CorruptFileError: naming what is wrong.
    """
    data = bytes(data)
    if len(data) < _FIXED.size:
        raise CorruptFileError(f"file is too short ({len(data)} bytes) to be a compressed image")
    magic, version, k, fingerprint = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptFileError(
            f"not a yoto_tf compressed image (starts with {magic!r}, expected {MAGIC!r})"
        )
    if version not in READABLE_VERSIONS:
        raise CorruptFileError(
            f"unsupported format version {version} (this decoder reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    pos = _FIXED.size
    if k == 0 or len(data) < pos + 4 * k + _SIZE.size:
        raise CorruptFileError(f"file is truncated: the header is incomplete ({len(data)} bytes)")
    lam = np.frombuffer(data, dtype="<f4", count=k, offset=pos).astype(np.float32)
    pos += 4 * k
    height, width, count = _SIZE.unpack_from(data, pos)
    pos += _SIZE.size
    if not 1 <= count <= MAX_PAYLOADS or len(data) < pos + 4 * count:
        raise CorruptFileError(f"file is truncated or damaged: bad payload table ({count} payloads)")
    lengths = struct.unpack_from(f"<{count}I", data, pos)
    pos += 4 * count
    expected = pos + sum(lengths) + _CRC.size
    if len(data) < expected:
        raise CorruptFileError(f"file is truncated: {len(data)} bytes, the header says {expected}")
    if len(data) > expected:
        raise CorruptFileError(f"file has {len(data) - expected} unexpected trailing bytes")
    (stored_crc,) = _CRC.unpack_from(data, expected - _CRC.size)
    if zlib.crc32(data[: expected - _CRC.size]) != stored_crc:
        raise CorruptFileError("checksum mismatch: the file is corrupted")
    if not (1 <= height <= MAX_DIMENSION and 1 <= width <= MAX_DIMENSION):
        raise CorruptFileError(f"implausible image size {height}x{width} in the header")
    if not np.all(np.isfinite(lam)):
        raise CorruptFileError("the stored lambda is not a finite number")
    payloads = []
    for length in lengths:
        payloads.append(data[pos : pos + length])
        pos += length
    return CompressedImage(fingerprint, lam, height, width, tuple(payloads), version)
