"""Reading and writing single images with Pillow and NumPy only (no TensorFlow).

* :func:`load_image` / :func:`load_image_with_note`: any Pillow mode -> RGB ``uint8 [H, W, 3]``,
  with a clear :class:`ImageReadError` naming the file when it cannot be read.
* :func:`save_image`: ``uint8`` or float ``[0, 1]`` pixels -> a file whose extension picks the
  format.

The command-line tools that read one image (``stylize``, ``compress``, ``decompress``) use this
module, so they do not import TensorFlow Datasets.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from yoto_tf.files import write_atomically

_16BIT_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_MODE_NAMES = {
    "1": "bilevel (1)",
    "L": "grayscale (L)",
    "P": "palette (P)",
    "CMYK": "CMYK",
    "YCbCr": "YCbCr",
    "LAB": "Lab",
    "HSV": "HSV",
    "F": "32-bit float grayscale (F)",
}


# --------------------------------------------------------------------------------------------
# Single images
# --------------------------------------------------------------------------------------------


class ImageReadError(ValueError):
    """An image file is missing or cannot be decoded.

    Attributes:
      path: the file that failed.
      reason: short human-readable cause (e.g. "file not found").
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read image '{path}': {reason}")
        self.path = path
        self.reason = reason


def load_image(path) -> np.ndarray:
    """Decodes an image file with Pillow into RGB ``uint8 [H, W, 3]``.

    See :func:`load_image_with_note` for the conversions applied.
    """
    return load_image_with_note(path)[0]


def load_image_with_note(path) -> tuple[np.ndarray, str | None]:
    """Decodes an image file with Pillow into RGB, and says what conversion it applied.

    Handles every Pillow mode: grayscale (``1``, ``L``) is replicated to 3 channels;
    16-bit grayscale (``I;16*``, and ``I``, whose values are taken as 16-bit and clipped to
    [0, 65535]) is scaled to 8 bits as ``round(value / 257)`` (so 65535 -> 255, not clipped);
    anything with transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a
    transparency key) is **alpha-composited on white**, so transparent pixels become white
    rather than whatever colour they happen to store; palette, CMYK, YCbCr etc. go through
    Pillow's ``convert("RGB")``. 16-bit-per-channel RGB files are reduced to 8 bits by Pillow
    itself (high byte). The EXIF orientation tag is applied. Multi-frame files (GIF, TIFF)
    yield their first frame.

    Args:
      path: file path (str or os.PathLike).

    Returns:
      ``(uint8 [H, W, 3] array, note)``, where ``note`` is e.g. ``"grayscale (L) -> RGB"``
      or ``None`` for an upright RGB file.

    Raises:
      ImageReadError: the file is missing, not an image, or its data is corrupt/truncated;
        the message names the file and the reason.
    """
    path = os.fspath(path)
    with _read_errors(path), Image.open(path) as image:
        image.load()
        notes = []
        if getattr(image, "n_frames", 1) > 1:
            notes.append(f"used first of {image.n_frames} frames")
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            ImageOps.exif_transpose(image, in_place=True)
            notes.append("applied EXIF orientation")
        array, conversion = _to_rgb_uint8(image)
    if conversion:
        notes.insert(0, conversion)
    return array, "; ".join(notes) or None


@contextlib.contextmanager
def _read_errors(path: str):
    """Turns the errors Pillow raises while opening/decoding ``path`` into ImageReadError."""
    try:
        yield
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format, or corrupt") from None
    # Pillow signals bad data with several exception types depending on the codec.
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise ImageReadError(path, f"corrupt or unreadable image data ({error})") from error


def verify_image(path: str) -> None:
    """Cheap structural check of an image file (Pillow's ``verify``); raises ImageReadError."""
    with _read_errors(path), Image.open(path) as image:
        image.verify()


def _to_rgb_uint8(image: Image.Image) -> tuple[np.ndarray, str | None]:
    """Converts a loaded Pillow image to ``uint8 [H, W, 3]`` plus a conversion note."""
    mode = image.mode
    if mode in _16BIT_GREY_MODES:
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        grey = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1), f"16-bit grayscale ({mode}) -> 8-bit RGB"
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
        return np.array(rgb), f"{mode} -> RGB (transparency composited on white)"
    if mode == "RGB":
        return np.array(image), None
    return np.array(image.convert("RGB")), f"{_MODE_NAMES.get(mode, mode)} -> RGB"


def save_image(path, array) -> None:
    """Writes an image; the format follows the extension (``.png``, ``.jpg``, ...).

    Args:
      path: destination; missing parent directories are created. JPEG uses quality 95. The
        file is written atomically (a temporary file, then a rename): an interrupted or failed
        write leaves the previous file, never a truncated one.
      array: ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]``; ``uint8``, or floating point in
        ``[0, 1]`` (clipped, then scaled by 255 and rounded). Tensors are accepted.

    Raises:
      ValueError: unsupported shape or dtype, non-finite values, or unknown extension.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"save_image expects [H, W, 3] or [H, W] pixels, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"cannot save {path}: image contains NaN or infinite values")
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8 or float [0, 1] pixels, got {array.dtype}")
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    options = {"quality": 95} if path.lower().endswith((".jpg", ".jpeg")) else {}
    # Pillow picks the format from the temporary file's name, which keeps the extension.
    write_atomically(path, lambda tmp: Image.fromarray(array).save(tmp, **options),
                     suffix=os.path.splitext(path)[1])
