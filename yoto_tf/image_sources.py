"""Where training and evaluation images come from (no TensorFlow).

* ``builtin_image_paths`` / ``builtin_style_image_path``: offline default images (photos
  that ship inside scikit-image; a public-domain painting that ships inside this package).
* ``parse_source``: parses the ``--content`` / ``--train_data`` flag values into a
  ``BuiltinSource``, ``FolderSource`` or ``TfdsSource``.
* ``list_image_paths`` / ``scan_images``: the image files of a source and which of them can
  be read. The ``tf.data`` pipelines over these sources are in :mod:`yoto_tf.data`.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
from typing import NamedTuple, Union

import skimage.data

from yoto_tf.images import ImageReadError, load_image, verify_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm",
)
"""File extensions (lower case) that folder sources treat as images."""

_MAX_NAMES_IN_MESSAGES = 3

# Natural RGB photographs bundled with scikit-image (checked on disk: RGB mode, no alpha).
# Left out: grayscale images, synthetic ones (color.png, chessboard_RGB.png, phantom.png),
# RGBA clip-art (horse.png, logo.png), motorcycle_right.png (near-duplicate of the left view),
# and scientific images dominated by black background (hubble_deep_field.jpg, retina.jpg).
_BUILTIN_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "rocket.jpg",
)
_BUILTIN_STYLE = ("style_transfer", "paintings", "vangogh_starry_night.jpg")


# --------------------------------------------------------------------------------------------
# Built-in images (files inside scikit-image and this package; nothing is downloaded)
# --------------------------------------------------------------------------------------------


def _skimage_data_file(name: str) -> str:
    path = os.path.join(os.path.dirname(skimage.data.__file__), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"built-in image {name} is missing from scikit-image at {path}")
    return path


def builtin_image_paths() -> list[str]:
    """Paths of the natural RGB photos bundled with scikit-image, sorted.

    astronaut, chelsea (cat), coffee, motorcycle_left and rocket: 300-741 px colour photos
    that work offline as default content / training images.
    """
    return sorted(_skimage_data_file(name) for name in _BUILTIN_PHOTOS)


def builtin_style_image_path() -> str:
    """Path of the default style image, shipped inside the package (public domain).

    Vincent van Gogh, *The Starry Night* (1889), oil on canvas, Museum of Modern Art, New
    York; the painter died in 1890, so the work is in the public domain worldwide. File:
    ``jcjohnson/fast-neural-style`` @813c834 ``images/styles/starry_night.jpg`` (1024x640),
    downscaled to 512x320. Bold blue and yellow swirls that fill the whole frame give strong,
    uniform Gram-matrix statistics, so even a few-minute run shows the style.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), *_BUILTIN_STYLE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the built-in style image is missing from the package: {path}")
    return path


# --------------------------------------------------------------------------------------------
# Source specs
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BuiltinSource:
    """The photos returned by ``builtin_image_paths``."""

    def __str__(self):
        return "builtin"


@dataclasses.dataclass(frozen=True)
class FolderSource:
    """Image files matched by a glob (``**`` recursive) or directly inside a directory."""

    pattern: str

    def __str__(self):
        return f"folder:{self.pattern}"


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """The ``image`` feature of a TensorFlow Datasets split."""

    name: str
    split: str = "train"

    def __str__(self):
        return f"tfds:{self.name}:{self.split}"


ImageSource = Union[BuiltinSource, FolderSource, TfdsSource]

ACCEPTED_SPECS = (
    "'builtin' (photos bundled with scikit-image); "
    "'folder:GLOB' (e.g. folder:photos/*.jpg or folder:photos/**/*.png; "
    "folder:DIR means every image directly inside DIR); "
    "'tfds:NAME[:SPLIT]' (e.g. tfds:imagenette/320px:train or tfds:cifar10:3.0.2:test; "
    "default split 'train'); or the path of an existing directory"
)

# NAME may carry a /config and a :x.y.z version (wildcards allowed); the rest is the split,
# which may contain ':' itself (e.g. "train[:10%]").
_TFDS_SPEC = re.compile(
    r"tfds:(?P<name>[^:\s\[\]]+(?::\d+\.(?:\d+|\*)\.(?:\d+|\*))?)(?::(?P<split>\S+))?"
)


def parse_source(spec: str) -> ImageSource:
    """Parses a ``--content`` / ``--train_data`` value; see ``ACCEPTED_SPECS`` for the forms.

    Raises:
      ValueError: the spec matches none of the accepted forms (the message lists them).
    """
    text = spec.strip()
    if text == "builtin":
        return BuiltinSource()
    if text.startswith("folder:") and text[len("folder:"):].strip():
        return FolderSource(text[len("folder:"):].strip())
    tfds_match = _TFDS_SPEC.fullmatch(text)
    if tfds_match:
        return TfdsSource(tfds_match["name"], tfds_match["split"] or "train")
    if not text.startswith(("folder:", "tfds:")) and os.path.isdir(os.path.expanduser(text)):
        return FolderSource(text)
    raise ValueError(f"invalid image source {spec!r}; accepted forms: {ACCEPTED_SPECS}")


def as_source(spec: str | ImageSource) -> ImageSource:
    return spec if isinstance(spec, (BuiltinSource, FolderSource, TfdsSource)) else parse_source(spec)


def list_image_paths(spec: str | BuiltinSource | FolderSource) -> list[str]:
    """Sorted image file paths of a ``builtin`` or ``folder:`` source (not decoded).

    Only files with an extension in ``IMAGE_EXTENSIONS`` (case-insensitive) count.

    Raises:
      ValueError: no image file matched (the message names the glob), or a ``tfds:`` source.
    """
    source = as_source(spec)
    if isinstance(source, BuiltinSource):
        return builtin_image_paths()
    if not isinstance(source, FolderSource):
        raise ValueError(f"{source} is a TFDS source; it has no image files to list")
    pattern = os.path.expanduser(source.pattern)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    files = [path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path)]
    images = sorted(path for path in files if path.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        detail = (
            f" ({len(files)} files matched, but none has an image extension "
            f"{', '.join(IMAGE_EXTENSIONS)})" if files else ""
        )
        raise ValueError(f"no images matched '{source.pattern}'{detail}")
    return images


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class ScanResult(NamedTuple):
    """Outcome of ``scan_images``; unpacks as ``good, bad = scan_images(paths)``."""

    good: list[str]
    """Readable paths, in input order."""
    bad: dict[str, str]
    """Unreadable path -> reason."""


def scan_images(paths, *, decode: bool = True) -> ScanResult:
    """Splits image files into readable and unreadable ones.

    Args:
      paths: file paths.
      decode: fully decode each file (catches truncated data). ``False`` only runs Pillow's
        header/structure check (``Image.verify``), which is much faster for big folders but
        can miss truncated JPEGs.
    """
    done, bad = read_each(paths, load_image if decode else verify_image)
    return ScanResult([path for path, _ in done], bad)


def read_each(paths, read=load_image, limit: int | None = None):
    """Applies ``read`` to every path (stopping after ``limit`` successes).

    Returns:
      ``([(path, read(path)), ...], {unreadable path: reason})``, both in input order.
    """
    done, bad = [], {}
    for path in paths:
        if limit is not None and len(done) == limit:
            break
        try:
            done.append((path, read(path)))
        except ImageReadError as error:
            bad[path] = error.reason
    return done, bad


def report_unreadable(source: ImageSource, num_files: int, bad: dict[str, str]) -> None:
    """Logs skipped files; raises ValueError when none of ``num_files`` is readable."""
    if not bad:
        return
    examples = "; ".join(
        f"{os.path.basename(path)} ({reason})"
        for path, reason in list(bad.items())[:_MAX_NAMES_IN_MESSAGES]
    )
    more = ", ..." if len(bad) > _MAX_NAMES_IN_MESSAGES else ""
    if len(bad) == num_files:
        raise ValueError(f"none of the {num_files} image files of {source} can be read: {examples}{more}")
    logger.warning(
        "skipped %d of %d image files of %s that cannot be read: %s%s",
        len(bad), num_files, source, examples, more,
    )
