r"""Exports a yoto_tf style-transfer model to .tflite with lambda as a live input.

    python -m mobile.convert --model painters4 --out exported/      # a shipped model, by name
    python -m mobile.convert --model style.keras --out exported/ \
        [--image_size 384 | --dynamic_size] [--quantize none,float16,dynamic_int8,int8]

For every variant it writes ``<model>_<variant>.tflite`` (``float32`` for ``none``) and the
sidecar ``<model>_<variant>.json`` (mobile/metadata.py). The file has one signature,
``stylize``: inputs ``image`` float32 [1, H, W, 3] in [0, 1], ``loss_weights`` float32
[1, k] (raw lambda, LossSpace order), ``style_index`` int32 [1] for multi-style models;
output ``stylized`` float32 [1, H, W, 3] in [0, 1]. TFLite builtin ops only.

Parity gate: Keras and the .tflite run on sample images at >= 5 lambda settings (and the
styles); the max / mean abs error of every variant is printed and a variant past its
tolerance (mobile/parity.py TOLERANCES, or --tolerance) is NOT written and makes the
command exit with status 1. Every variant is also checked against the GPU delegate's op
rules (mobile/gpu_delegate.py); the result goes to the sidecar.

A compression model (yoto_tf.compression.CompressionNetwork .keras) gets its analysis and
synthesis transforms exported instead (mobile/compression.py: ``<model>_analysis_*`` and
``<model>_synthesis_*``, signatures ``analysis`` and ``synthesis``).

``--lambda_map`` exports the variant whose ``loss_weights`` is a MAP (mobile/lambda_maps.py):
float32 [1, H/4, W/4, k] for a style model (``<model>_lambda_map_<variant>.tflite``, the
network's per-pixel twin), [1, H/16, W/16, k] for the compression transforms
(``<model>_analysis_lambda_map_*``, ``<model>_synthesis_lambda_map_*``); fixed size only.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import app, flags, logging

from mobile import compression, parity, quantization
from mobile.model_io import load_model
from mobile.style_transfer import convert_model
from yoto_tf import pretrained

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing this
    module next to other absl programs defines no flags)."""
    flags.DEFINE_string("model", None, "A shipped model's name (python -m trainers.stylize "
                        "--list_models) or the .keras file of a yoto_tf style-transfer network "
                        "(or of a compression model: its transforms are exported).")
    flags.DEFINE_string("out", None, "Output directory for the .tflite files and sidecars.")
    flags.DEFINE_integer("image_size", 384, "Side of the square input image (and of the "
                         "parity / calibration images).")
    flags.DEFINE_bool("dynamic_size", False, "Export with dynamic H and W (resize the input "
                      "per call); parity then also runs at a second, non-square size.")
    flags.DEFINE_list("quantize", ["none"], f"Variants to write, from {quantization.VARIANTS}.")
    flags.DEFINE_string("images", "builtin", "Parity / calibration images: a yoto_tf.data source "
                        "('builtin' or folder:GLOB).")
    flags.DEFINE_integer("num_parity_images", 2, "Images the parity gate runs on.")
    flags.DEFINE_integer("num_lambdas", parity.MIN_LAMBDA_SETTINGS,
                         "Lambda settings the parity gate runs at (>= 5).")
    flags.DEFINE_integer("calibration_samples", 64, "int8 calibration samples (image, lambda).")
    flags.DEFINE_list("tolerance", [], "Overrides of the max-abs-error tolerance, e.g. "
                      f"int8=0.08. Defaults: {parity.TOLERANCES}.")
    flags.DEFINE_integer("num_styles", None, "Number of styles of a multi-style model "
                         "(read from the model when omitted).")
    flags.DEFINE_bool("lambda_map", False, "Export the variant whose loss_weights input is a map "
                      "[1, H/s, W/s, k] (s = 4 for style transfer, 16 for compression), one "
                      "weighting per cell; needs a fixed --image_size.")


def _parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    tolerances = {}
    for item in items:
        variant, sep, value = item.partition("=")
        if not sep or variant not in quantization.VARIANTS:
            raise ValueError(
                f"--tolerance {item!r}: expected VARIANT=VALUE with VARIANT in "
                f"{quantization.VARIANTS}."
            )
        tolerances[variant] = float(value)
    return tolerances


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel / converter chatter
    if not FLAGS.model or not FLAGS.out:
        raise app.UsageError("--model and --out are required.")
    try:
        if FLAGS.lambda_map and FLAGS.dynamic_size:
            raise ValueError("--lambda_map exports a fixed-size graph; drop --dynamic_size.")
        path = pretrained.resolve_model_path(FLAGS.model)
        model = load_model(path)
        options = dict(
            name=os.path.splitext(os.path.basename(path))[0],
            variants=FLAGS.quantize, image_size=FLAGS.image_size,
            dynamic_size=FLAGS.dynamic_size, images=FLAGS.images,
            num_parity_images=FLAGS.num_parity_images, num_lambdas=FLAGS.num_lambdas,
            calibration_samples=FLAGS.calibration_samples,
            tolerances=_parse_tolerances(FLAGS.tolerance),
            source_model=os.path.basename(path), lambda_map=FLAGS.lambda_map,
        )
        if compression.is_compression_model(model):
            results = compression.convert_compression(model, FLAGS.out, **options)
        else:
            results = convert_model(model, FLAGS.out, num_styles=FLAGS.num_styles, **options)
    except (ValueError, parity.ParityError) as error:
        print(f"mobile.convert: error: {error}", file=sys.stderr)
        sys.exit(1)
    for r in results:
        print(f"{r.variant:>12}: {r.path} {r.size_bytes / 1024:.1f} KiB, ops {', '.join(r.ops)}")


def cli_main() -> None:
    """Entry point of `python -m mobile.convert` and of the `yoto-convert` console script."""
    from trainers import cli  # pylint: disable=import-outside-toplevel

    define_flags()
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
