"""The ``compress`` and ``decompress`` commands of ``python -m trainers.compression``:
their flags, and reading, coding and writing the files they name."""

from __future__ import annotations

import os
import time

import numpy as np
from absl import flags

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.files import write_bytes_atomically
from yoto_tf.images import ImageReadError, load_image, load_image_with_note, save_image
from yoto_tf.compression import image_coding
from yoto_tf.compression import quality_map
from yoto_tf.compression import rate_control

FLAGS = flags.FLAGS

CODING_FLAGS = {
    "compress": ("model", "input", "out", "lambda", "target_bpp", "target_bytes", "quality_map",
                 "quality_map_range", "quality_map_cell", "refine_steps"),
    "decompress": ("model", "input", "out"),
}
"""The flags of the compress and decompress commands."""


def define_flags(command: str) -> None:
    """Defines the flags of ``command`` (compress or decompress); idempotent, and the two
    commands' flags can be defined in either order (for code that runs both)."""
    if "model" not in FLAGS:
        _define_common_flags(command)
    elif command == "compress" and "lambda" not in FLAGS:  # decompress's flags came first
        _define_compress_options()


def _define_common_flags(command: str) -> None:
    flags.DEFINE_string("model", None, f"{command}: a trained model.keras or a shipped model's name "
                        + ("(default: the shipped model that wrote the file, found by its fingerprint)."
                           if command == "decompress" else "(default: the shipped compression model)."))
    if command == "compress":
        flags.DEFINE_string("input", None, "Image file to compress.")
        flags.DEFINE_string("out", None, "Compressed file to write.")
        _define_compress_options()
    else:
        flags.DEFINE_string("input", None, "Compressed file to decode.")
        flags.DEFINE_string("out", None, "Image (.png) to write.")


def _define_compress_options() -> None:
    """compress's quality options: at most one of --lambda, --target_bpp, --target_bytes and
    --quality_map, and --refine_steps."""
    flags.DEFINE_float("lambda", None, "Distortion weight (within the model's trained range; default: "
                       "the model's default lambda when no --target_bpp, --target_bytes or --quality_map).")
    flags.DEFINE_float("target_bpp", None, "Search lambda for this many bits per pixel (real file size).")
    flags.DEFINE_integer("target_bytes", None, "Search lambda for a file of this many bytes.")
    _define_quality_map_flags()
    _define_refine_flag()


def _define_refine_flag() -> None:
    flags.DEFINE_integer("refine_steps", 0,
                         "Refine the latents for this image with N gradient steps before coding: a "
                         "smaller file at the same quality, read by the same decoder (100 steps with "
                         "mean_scale_64_30k: about 8 % fewer bits on Kodak, 16 s per 768x512 image on "
                         "2 cores; about 80 s with the default's 192-channel decoder; plain encoding "
                         "0.15 s). --target_bpp/--target_bytes search on plain files, then refine at "
                         "most 4 times. 0 = off.",
                         lower_bound=0)


def _define_quality_map_flags() -> None:
    flags.DEFINE_string("quality_map", None,
                        "Grayscale image: a lambda per region (black = the low end of "
                        "--quality_map_range, white = the high end, log-interpolated; resized to the "
                        "input). Stored in the file.")
    flags.DEFINE_string("quality_map_range", None,
                        "LO,HI lambdas of black and white in --quality_map (default: the model's range).")
    flags.DEFINE_enum("quality_map_cell", str(quality_map.DEFAULT_CELL), [str(c) for c in quality_map.CELLS],
                      "Pixels per side of a stored map cell (16: one value per latent).")


def _require(command, *names):
    missing = [f"--{n}" for n in names if getattr(FLAGS, n) is None]
    if missing:
        raise cli.CommandError(f"{command} needs {', '.join(missing)}")


def _load_codec():
    """The codec of --model: a file, a shipped model's name, or (unset) the shipped default."""
    try:
        if FLAGS.model is None:
            path = pretrained.verify(pretrained.default_model("compression"))
        else:
            path = pretrained.resolve_model_path(FLAGS.model)
        return image_coding.load_compression_model(path)
    except (OSError, ValueError) as err:
        raise cli.CommandError(str(err)) from None


def compress() -> None:
    _require("compress", "input", "out")
    chosen = [n for n in ("lambda", "target_bpp", "target_bytes", "quality_map")
              if getattr(FLAGS, n) is not None]
    if len(chosen) > 1:
        raise cli.CommandError("compress takes at most one of --lambda, --target_bpp, --target_bytes, "
                           f"--quality_map (got {', '.join('--' + n for n in chosen)})")
    chosen = chosen or ["lambda"]
    if FLAGS.quality_map_range is not None and chosen[0] != "quality_map":
        raise cli.CommandError("--quality_map_range needs --quality_map")
    try:
        image, note = load_image_with_note(FLAGS.input)
    except ImageReadError as err:
        raise cli.CommandError(str(err)) from None
    if note:
        print(f"note: {FLAGS.input}: converted {note}")
    codec = _load_codec()
    height, width = image.shape[:2]
    start = time.perf_counter()
    try:
        result = None
        if chosen[0] == "lambda":
            lam = getattr(FLAGS, "lambda")  # `lambda` is a Python keyword
            if lam is None:
                lam = codec.default_lambda
                print(f"note: no --lambda, --target_bpp, --target_bytes or --quality_map: "
                      f"using the model's default lambda {lam:g} (range {codec.lambda_range[0]:g}-"
                      f"{codec.lambda_range[1]:g}; larger = higher quality)")
            payload = image_coding.compress_image(codec, image, lam, refine_steps=FLAGS.refine_steps)
        elif chosen[0] == "quality_map":
            lambda_map = _read_quality_map(codec, image.shape[:2])
            payload = image_coding.compress_image(codec, image, lambda_map=lambda_map,
                                               map_cell=int(FLAGS.quality_map_cell),
                                               refine_steps=FLAGS.refine_steps)
            lam = float(np.exp(np.log(lambda_map).mean()))
        else:
            target = (FLAGS.target_bytes if chosen[0] == "target_bytes"
                      else rate_control.target_bytes_for_bpp(FLAGS.target_bpp, height, width))
            result = rate_control.compress_to_target(codec, image, float(target),
                                                     refine_steps=FLAGS.refine_steps)
            payload, lam = result.data, result.lam
    except ValueError as err:
        raise cli.CommandError(str(err)) from None
    seconds = time.perf_counter() - start
    _write_bytes(FLAGS.out, payload)
    bpp = len(payload) * 8 / (height * width)
    what = "lambda" if chosen[0] != "quality_map" else "quality map, geometric-mean lambda"
    print(f"wrote {FLAGS.out}: {len(payload)} bytes, {bpp:.4f} bpp, {width}x{height}, "
          f"{what} {lam:.6g}, {seconds:.2f} s")
    if result is not None:
        status = "met" if result.met else f"NOT met ({result.reason})"
        print(f"target {result.target_bytes:.0f} bytes: {status}; {len(payload)} bytes "
              f"({100 * result.relative_error:+.2f} %) after {result.tries} tries")


def _read_quality_map(codec, size: tuple[int, int]) -> np.ndarray:
    """The --quality_map image as lambdas [H, W] at the input's size (checked)."""
    low, high = codec.lambda_range
    if FLAGS.quality_map_range is not None:
        try:
            low, high = cli.parse_range("--quality_map_range", FLAGS.quality_map_range, allow_equal=True)
        except ValueError as err:
            raise cli.CommandError(str(err)) from None
        allowed = codec.lambda_range
        if low < allowed[0] * (1 - 1e-6) or high > allowed[1] * (1 + 1e-6):
            raise cli.CommandError(f"--quality_map_range {low:g},{high:g} leaves the model's trained "
                               f"lambda range [{allowed[0]:g}, {allowed[1]:g}]")
    try:
        gray = load_image(FLAGS.quality_map).astype(np.float64).mean(axis=-1)
    except ImageReadError as err:
        raise cli.CommandError(f"--quality_map: {err}") from None
    if gray.shape != tuple(size):
        print(f"note: quality map {FLAGS.quality_map} is {gray.shape[1]}x{gray.shape[0]}; "
              f"resized to the input's {size[1]}x{size[0]}")
        gray = quality_map.resize_map(gray, *size)
    return quality_map.lambdas_from_gray(gray / 255.0, low, high)


def decompress() -> None:
    _require("decompress", "input", "out")
    try:
        with open(FLAGS.input, "rb") as f:
            payload = f.read()
    except OSError as err:
        raise cli.CommandError(f"cannot read {FLAGS.input}: {err.strerror}") from None
    if FLAGS.model is None:  # the shipped model that wrote the file
        try:
            shipped, codec = image_coding.shipped_model_for(payload)
        except (OSError, ValueError) as err:
            raise cli.CommandError(f"cannot decode {FLAGS.input}: {err}") from None
        model_name = shipped.name
    else:
        codec = _load_codec()
        model_name = FLAGS.model
    start = time.perf_counter()
    try:
        image = image_coding.decompress_image(codec, payload)
    except ValueError as err:
        raise cli.CommandError(f"cannot decode {FLAGS.input}: {err}") from None
    seconds = time.perf_counter() - start
    try:
        save_image(FLAGS.out, image)
    except (OSError, ValueError) as err:
        raise cli.CommandError(f"cannot write {FLAGS.out}: {err}") from None
    print(f"wrote {FLAGS.out}: {image.shape[1]}x{image.shape[0]}, {seconds:.2f} s, decoded with {model_name}")


def _write_bytes(path: str, payload: bytes) -> None:
    """Writes the file atomically: an interrupted run leaves the old file (or none), never a
    truncated one that would fail to decode later."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_bytes_atomically(path, payload)
    except OSError as err:
        raise cli.CommandError(f"cannot write {path}: {err.strerror}") from None
