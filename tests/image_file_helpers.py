"""Image files for the image tests: random photos, saved with Pillow options, or corrupt."""

import io

import numpy as np
from PIL import Image


def save_pil(path, image, **options):
    """Saves a Pillow image at ``path`` (a pathlib path) and returns the path as a string."""
    image.save(path, **options)
    return str(path)


def png_bytes(image):
    """The PNG encoding of a Pillow image."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def random_photo(size=(40, 30), seed=0):
    """Random RGB Pillow image (width, height)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def corrupt_file(path):
    """Writes bytes that no image decoder accepts at ``path``; returns it as a string."""
    path.write_bytes(b"this is not an image")
    return str(path)
