"""Running ``python -m trainers.compression train`` in-process for the trainer tests: the
flags defined once, a folder of random training images."""

from __future__ import annotations

import os

import numpy as np
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from trainers import compression as compression_cli

FLAGS = flags.FLAGS
compression_cli.define_flags()  # train, compress and decompress: each command's own flags


def train(**flag_values) -> None:
    """``compression train`` with ``flag_values`` set (the others at their defaults)."""
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**flag_values):
        compression_cli.main(["compression", "train"])


def write_image_folder(directory, count: int = 3) -> str:
    """``count`` random 80x96 RGB PNGs in a new ``directory``; returns its ``folder:`` source spec."""
    rng = np.random.default_rng(0)
    os.makedirs(directory)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(os.path.join(directory, f"{i}.png"))
    return f"folder:{directory}/*.png"
